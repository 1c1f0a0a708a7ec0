"""The emulated Redfish service over HTTPS, driven with ``requests`` as any client would: what is public,
authentication (Basic, sessions, roles, plain HTTP), and every way a limit write is refused."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import requests
import yaml
from factory_twin.links.redfish.auth import load_accounts
from factory_twin.links.redfish.emulator import BmcEmulator
from factory_twin.links.redfish.server import Server
from factory_twin.links.redfish.tls import self_signed

from factory_twin import twin

NODE = "/redfish/v1/Chassis/bench-r01-01-n03/EnvironmentMetrics"
GPU = "/redfish/v1/Systems/bench-r01-01-n03/Processors/GPU_2/EnvironmentMetrics"
STEER = ("steer", "steer-password-1")
PUBLIC = (
    "/redfish",
    "/redfish/v1",
    "/redfish/v1/",
    "/redfish/v1/$metadata",
    "/redfish/v1/odata",
    "/redfish/v1/openapi.yaml",
)
PRIVATE = (
    "/redfish/v1/Chassis",
    "/redfish/v1/Chassis/bench-r01-01-n03",
    NODE,
    GPU,
    "/redfish/v1/Systems/bench-r01-01-n03/Processors",
    "/redfish/v1/SessionService",
    "/redfish/v1/SessionService/Sessions",
    "/redfish/v1/Managers/BMC",
    "/redfish/v1/NoSuchThing",  # an unknown URI answers 401 too: no probing without credentials
)


def message_ids(r) -> list[str]:
    return [m["MessageId"].rsplit(".", 1)[1] for m in r.json()["error"]["@Message.ExtendedInfo"]]


def test_public_resources_need_no_credentials_and_the_rest_does(bmc):
    for path in PUBLIC:
        r = bmc.call("GET", path)
        assert r.status_code == 200, path
        assert r.headers["OData-Version"] == "4.0"
    assert bmc.call("GET", "/redfish").json() == {"v1": "/redfish/v1/"}
    assert bmc.call("GET", "/redfish/v1/").json()["Links"]["Sessions"]["@odata.id"].endswith("/Sessions")
    doc = yaml.safe_load(bmc.call("GET", "/redfish/v1/openapi.yaml").text)
    assert "/redfish/v1/Chassis/{ChassisId}/EnvironmentMetrics" in doc["paths"]
    for path in PRIVATE:
        r = bmc.call("GET", path)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        assert message_ids(r) == ["NoValidSession"]
        assert bmc.call("GET", path, auth=STEER).status_code == (404 if "NoSuch" in path else 200), path
    assert bmc.call("PATCH", NODE, json={"PowerLimitWatts": {"SetPoint": 3000}}).status_code == 401


def test_wrong_password_and_unknown_user_are_refused(bmc):
    for auth in (("steer", "wrong-password"), ("nobody", STEER[1]), ("steer", "")):
        assert bmc.call("GET", NODE, auth=auth).status_code == 401
    r = bmc.call("POST", "/redfish/v1/SessionService/Sessions", json={"UserName": "steer", "Password": "nope-nope"})
    assert r.status_code == 401
    assert "X-Auth-Token" not in r.headers
    r = bmc.call("GET", NODE, headers={"X-Auth-Token": "not-a-token"})
    assert r.status_code == 401


def test_session_create_use_and_delete(bmc):
    token, location = bmc.login()
    assert location.startswith("/redfish/v1/SessionService/Sessions/")
    me = bmc.call("GET", location, headers={"X-Auth-Token": token})
    assert me.status_code == 200 and me.json()["UserName"] == "steer"
    assert "Set-Cookie" not in me.headers
    listed = bmc.call("GET", "/redfish/v1/SessionService/Sessions", headers={"X-Auth-Token": token}).json()
    assert {"@odata.id": location} in listed["Members"]
    assert bmc.call("DELETE", location, headers={"X-Auth-Token": token}).status_code == 204
    assert bmc.call("GET", NODE, headers={"X-Auth-Token": token}).status_code == 401
    # another user's session is not theirs to see or end
    t_view, _ = bmc.login("viewer")
    t_steer, loc_steer = bmc.login("steer")
    assert bmc.call("DELETE", loc_steer, headers={"X-Auth-Token": t_view}).status_code == 404
    assert bmc.call("GET", NODE, headers={"X-Auth-Token": t_steer}).status_code == 200
    t_admin, _ = bmc.login("admin")
    assert bmc.call("DELETE", loc_steer, headers={"X-Auth-Token": t_admin}).status_code == 204


def test_read_only_account_cannot_write(bmc, passwords):
    r = bmc.call("PATCH", NODE, auth=("viewer", passwords["viewer"]), json={"PowerLimitWatts": {"SetPoint": 3000}})
    assert r.status_code == 403
    assert message_ids(r) == ["InsufficientPrivilege"]
    assert bmc.call("GET", NODE, auth=STEER).json()["PowerLimitWatts"]["SetPoint"] == 4 * 1200.0


def test_credentials_over_plain_http_are_refused_unless_the_test_option(one_rack, bmc_factory):
    plain = bmc_factory(one_rack, https=False)
    assert plain.url.startswith("http://")
    assert plain.call("GET", "/redfish/v1/").status_code == 200
    assert plain.call("GET", NODE, auth=STEER).status_code == 403
    login = {"UserName": "steer", "Password": STEER[1]}
    r = plain.call("POST", "/redfish/v1/SessionService/Sessions", json=login)
    assert r.status_code == 403
    assert "HTTPS" in r.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
    test_option = bmc_factory(one_rack, https=False, allow_http_auth=True)
    assert test_option.call("GET", NODE, auth=STEER).status_code == 200
    assert test_option.call("POST", "/redfish/v1/SessionService/Sessions", json=login).status_code == 201


def test_a_limit_write_takes_effect_with_a_new_etag(bmc):
    before = bmc.call("GET", NODE, auth=STEER)
    etag = before.headers["ETag"]
    assert before.json()["@odata.etag"] == etag
    ctl = before.json()["PowerLimitWatts"]
    assert (ctl["AllowableMin"], ctl["AllowableMax"], ctl["SetPoint"]) == (4 * 600.0, 4 * 1200.0, 4 * 1200.0)
    r = bmc.call("PATCH", NODE, auth=STEER, json={"PowerLimitWatts": {"SetPoint": 3200}}, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["PowerLimitWatts"]["SetPoint"] == 3200.0
    assert r.headers["ETag"] != etag
    for k in range(4):  # the node's limit is split equally over its GPUs
        g = bmc.call("GET", f"/redfish/v1/Systems/bench-r01-01-n03/Processors/GPU_{k}/EnvironmentMetrics", auth=STEER)
        assert g.json()["PowerLimitWatts"]["SetPoint"] == 800.0
    # the twin applies it: under the rack's cap a busy GPU draws the mean of what its 72 GPUs draw under their
    # own limits (68 at 1200 W, these four at 800 W)
    f = bmc.emu.f
    cap = bmc.emu.controller.caps_w()
    per_gpu = f.drawn_w(np.array([1200.0, 800.0]), racks=np.array([0, 0]))
    assert f.drawn_w(cap)[0] == pytest.approx((68 * per_gpu[0] + 4 * per_gpu[1]) / 72, rel=1e-6)
    assert 800.0 < cap[0] < 1200.0


@pytest.mark.parametrize(
    ("body", "status", "ids"),
    [
        (b'{"PowerLimitWatts": {"SetPoint": 3000', 400, ["MalformedJSON"]),
        (b"[1, 2]", 400, ["MalformedJSON"]),
        (b'{"PowerLimitWatts": {"SetPoint": NaN}}', 400, ["MalformedJSON"]),
        (b'{"PowerLimitWatts": {"SetPoint": Infinity}}', 400, ["MalformedJSON"]),
        (b'{"PowerLimitWatts": {"SetPoint": 1e400}}', 400, ["PropertyValueOutOfRange"]),
        (b'{"PowerLimitWatts": {"SetPoint": 5000}}', 400, ["PropertyValueOutOfRange"]),
        (b'{"PowerLimitWatts": {"SetPoint": 2399.9}}', 400, ["PropertyValueOutOfRange"]),
        (b'{"PowerLimitWatts": {"SetPoint": -1}}', 400, ["PropertyValueOutOfRange"]),
        (b'{"PowerLimitWatts": {"SetPoint": "3000"}}', 400, ["PropertyValueTypeError"]),
        (b'{"PowerLimitWatts": {"SetPoint": true}}', 400, ["PropertyValueTypeError"]),
        (b'{"PowerLimitWatts": {"SetPoint": null}}', 400, ["PropertyValueTypeError"]),
        (b'{"PowerLimitWatts": 3000}', 400, ["PropertyValueTypeError"]),
        (b'{"PowerLimitWatts": {"ControlMode": "Turbo"}}', 400, ["PropertyValueNotInList"]),
        (b'{"PowerLimitWatts": {"ControlMode": 1}}', 400, ["PropertyValueTypeError"]),
        (b'{"PowerLimitWatts": {"SetPoint": 3000, "SetPoint": 3100}}', 400, ["PropertyDuplicate"]),
        (b'{"PowerLimitWatts": {"AllowableMax": 9000}}', 400, ["PropertyNotWritable"]),
        (b'{"PowerWatts": {"Reading": 1}}', 400, ["PropertyNotWritable"]),
        (b'{"Turbo": true}', 400, ["PropertyUnknown"]),
        (b"{}", 400, ["EmptyJSON"]),
    ],
)
def test_bad_writes_are_refused_and_change_nothing(bmc, body, status, ids):
    before = bmc.call("GET", NODE, auth=STEER)
    r = bmc.call("PATCH", NODE, auth=STEER, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert message_ids(r) == ids
    assert r.json()["error"]["code"].endswith(ids[0])
    after = bmc.call("GET", NODE, auth=STEER)
    assert after.headers["ETag"] == before.headers["ETag"]
    assert after.json()["PowerLimitWatts"] == before.json()["PowerLimitWatts"]


def test_a_valid_write_beside_read_only_properties_applies_and_says_what_it_ignored(bmc):
    body = {"PowerLimitWatts": {"SetPoint": 3000, "AllowableMax": 9999}, "Name": "x"}
    r = bmc.call("PATCH", NODE, auth=STEER, json=body)
    assert r.status_code == 200
    assert r.json()["PowerLimitWatts"]["SetPoint"] == 3000.0
    ignored = {m["MessageArgs"][0] for m in r.json()["@Message.ExtendedInfo"]}
    assert ignored == {"PowerLimitWatts/AllowableMax", "Name"}


def test_disabled_control_lifts_the_limit(bmc):
    r = bmc.call("PATCH", GPU, auth=STEER, json={"PowerLimitWatts": {"SetPoint": 600, "ControlMode": "Disabled"}})
    assert r.status_code == 200
    assert r.json()["PowerLimitWatts"]["ControlMode"] == "Disabled"
    assert bmc.emu.limits.effective_w()[bmc.emu.layout.gpu(3, 2)] == 1200.0
    node = bmc.call("GET", NODE, auth=STEER).json()["PowerLimitWatts"]
    assert node["ControlMode"] is None  # its GPUs' modes differ
    assert node["SetPoint"] == 3 * 1200.0 + 600.0


def test_if_match_mismatch_is_412_and_changes_nothing(bmc):
    etag = bmc.call("GET", GPU, auth=STEER).headers["ETag"]
    assert bmc.call("PATCH", GPU, auth=STEER, json={"PowerLimitWatts": {"SetPoint": 900}}).status_code == 200
    r = bmc.call("PATCH", GPU, auth=STEER, json={"PowerLimitWatts": {"SetPoint": 700}}, headers={"If-Match": etag})
    assert r.status_code == 412
    assert message_ids(r) == ["PreconditionFailed"]
    assert bmc.call("GET", GPU, auth=STEER).json()["PowerLimitWatts"]["SetPoint"] == 900.0
    star = bmc.call("PATCH", GPU, auth=STEER, json={"PowerLimitWatts": {"SetPoint": 700}}, headers={"If-Match": "*"})
    assert star.status_code == 200


def test_concurrent_writers_with_if_match_one_wins(bmc):
    etag = bmc.call("GET", NODE, auth=STEER).headers["ETag"]
    barrier = threading.Barrier(8)
    results: list[tuple[int, float]] = []

    def writer(setpoint: float) -> None:
        barrier.wait()
        r = bmc.call(
            "PATCH", NODE, auth=STEER, json={"PowerLimitWatts": {"SetPoint": setpoint}}, headers={"If-Match": etag}
        )
        results.append((r.status_code, setpoint))

    threads = [threading.Thread(target=writer, args=(2500.0 + 100 * i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [sp for code, sp in results if code == 200]
    assert len(winners) == 1
    assert sorted(code for code, _ in results) == [200] + [412] * 7
    assert bmc.call("GET", NODE, auth=STEER).json()["PowerLimitWatts"]["SetPoint"] == winners[0]


def test_methods_and_uris_the_service_does_not_have(bmc):
    r = bmc.call("DELETE", NODE, auth=STEER)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, PATCH"
    assert bmc.call("PATCH", "/redfish/v1/Chassis/bench-r01-01-n03", auth=STEER, json={"Name": "x"}).status_code == 405
    for path in (
        "/redfish/v1/Chassis/bench-r01-01-n18",
        "/redfish/v1/Systems/bench-r01-01-n03/Processors/GPU_4",
        "/redfish/v1/Systems/bench-r01-01-n03/Processors/GPU_01",
    ):
        assert bmc.call("GET", path, auth=STEER).status_code == 404, path
    assert bmc.call("GET", "/redfish/v1/Chassis?$top=2", auth=STEER).status_code == 501
    assert bmc.call("GET", "/redfish/v1/", headers={"OData-Version": "4.1"}).status_code == 412


def test_mutual_tls_refuses_a_client_without_a_certificate(one_rack, accounts_file, tls, tmp_path):
    client_cert, client_key = self_signed(tmp_path / "client", ("steer",))  # its own CA
    emu = BmcEmulator(one_rack, twin.load_scenario(None, one_rack), load_accounts(accounts_file))
    server = Server(emu.app, "127.0.0.1", 0, *tls, tls_ca=client_cert)
    try:
        url, ca = server.url + NODE, str(tls[0])
        with pytest.raises(requests.exceptions.ConnectionError):  # the handshake (TLS 1.3: the first read) fails
            requests.get(url, auth=STEER, verify=ca, timeout=5)
        r = requests.get(url, auth=STEER, verify=ca, cert=(str(client_cert), str(client_key)), timeout=5)
        assert r.status_code == 200
    finally:
        server.stop()
