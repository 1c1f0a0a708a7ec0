"""The twin as an OpenADR 2.0b VEN against a real openleadr VTN (the utility) on 127.0.0.1, over mutual TLS with signed
messages: events in, opt decisions out, the MPC-driven twin's import follows each event within its ramp, follows a
modification and a cancellation, reports equal the twin's meter; numbers out of range and events below the floor are
opted out of; a VTN that sends what fails the schema, cannot be reached or answers errors is reported while the twin
runs on; a second VEN name with the wrong certificate is refused.

The twin runs at 60x (the VEN's clock maps the utility's wall-clock events onto it): a 20 s plant step every 1/3 s.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from factory_twin.links.openadr.link import LinkConfig, VtnLink, fingerprint
from factory_twin.links.openadr.ven import DECISIONS, STATUS, TwinVen
from factory_twin.optimization.options import MPC_OPTIONS
from openadr_vtn import Utility, make_pki
from support import free_port, wait_for

SPEED = 60.0
PLANT_WALL_S = 20.0 / SPEED
OPENADR = """
[openadr]
simple_levels = { 1 = 0.10, 2 = 0.25 }
capacity_mw = 0.25
grid_hz = 60
meter_voltage_kv = 12.47
"""


@pytest.fixture(scope="module")
def facility(tmp_path_factory) -> Path:
    """emerald-phoenix (256 A100s, import ~0.236 MW, minimum-cap floor ~0.155 MW, flex floors ~0.191 MW) with a
    stated OpenADR mapping."""
    from factory_twin import data

    p = tmp_path_factory.mktemp("fac") / "phoenix-openadr.toml"
    p.write_text(data.path("facilities", "emerald-phoenix.toml").read_text() + OPENADR)
    return p


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), names=("vtn", "ven", "second", "rogue"))


class Ven:
    """A VEN of the test's: the twin stepping in a thread, openleadr's client in its link thread."""

    def __init__(self, facility: Path, name: str, url: str, pki, cert: str, state_dir: Path):
        opts = MPC_OPTIONS.updated(horizon="1h", backend="highspy")
        self.ven = TwinVen.build(facility, None, SPEED, state_dir, options=opts)
        self.state_dir = state_dir
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.ven.run, args=(self.stop,), daemon=True)
        self.thread.start()
        cfg = LinkConfig(url, name, pki.cert(cert), pki.key(cert), pki.ca, fingerprint(pki.cert("vtn")), retry_s=1.0)
        self.link = VtnLink(self.ven, cfg).start()

    def readings(self, after: datetime, before: datetime | None = None) -> list[float]:
        """Import of the plant steps that lie wholly in [after, before) [W]."""
        rows = list(self.ven.readings)
        return [w for t, w in rows if t - timedelta(seconds=PLANT_WALL_S) >= after and (before is None or t <= before)]

    def decision(self, event_id: str, modification: int = 0) -> dict:
        def found():
            rows = list(self.ven.decisions)
            return next((d for d in rows if d.get("event_id") == event_id and d.get("modification") == modification),
                        None)  # fmt: skip

        return wait_for(found, 30, f"the decision on {event_id} #{modification}")

    def close(self) -> None:
        self.link.stop()
        self.stop.set()
        self.thread.join(10)


def _opt(vtn: Utility, event_id: str) -> str:
    return wait_for(lambda: next((o for _, e, o in vtn.state()["opts"] if e == event_id), None), 30, "the VTN's opt")


def _runs_on(v: Ven) -> None:
    """The VEN's twin still advances."""
    t0 = v.ven.twin.time
    time.sleep(1)
    assert v.ven.twin.time > t0


def _sleep_until(t: datetime) -> None:
    time.sleep(max((t - datetime.now(UTC)).total_seconds(), 0.0))


def test_events_followed_opted_and_reported(facility, pki, tmp_path):
    vtn = Utility(
        pki, free_port(), {"twin-ven": fingerprint(pki.cert("ven")), "second-ven": fingerprint(pki.cert("second"))}
    )
    v = Ven(facility, "twin-ven", vtn.url, pki, "ven", tmp_path / "ven")
    try:
        wait_for(lambda: v.ven.link["state"] == "registered", 30, "the registration")
        wait_for(lambda: len(vtn.state()["reports"].get("id-twin-ven", [])) >= 3, 30, "the first reports")
        base = v.ven.readings[-1][1]
        assert 0.23e6 < base < 0.24e6  # 256 A100s busy uncapped, with cooling and losses

        # 1. LOAD_CONTROL capacity 0.82 x 0.25 MW = 205 kW, 3 s (3 twin min) ramp before its start
        start = datetime.now(UTC) + timedelta(seconds=6)
        eid = vtn.add_event("twin-ven", "LOAD_CONTROL", "x-loadControlCapacity", [(start, 15, 0.82)], ramp_s=3)
        assert _opt(vtn, eid) == "optIn"
        d = v.decision(eid)
        assert d["targets"][0]["import_mw"] == pytest.approx(0.205) and "capacity 0.82 x 0.250 MW" in d["mapping"][0]
        _sleep_until(start + timedelta(seconds=6))
        held = v.readings(start)
        assert len(held) >= 12 and max(held) <= 205e3 * 1.01  # from the plant step holding the start on
        assert max(v.readings(datetime.now(UTC) - timedelta(seconds=30), start - timedelta(seconds=4))) > 0.23e6

        # 2. modified to 0.78 (195 kW): followed within two plant steps of the VEN's decision
        vtn.modify("twin-ven", eid, [0.78])
        t_mod = datetime.fromisoformat(v.decision(eid, 1)["time"])
        time.sleep(3)
        assert max(v.readings(t_mod + timedelta(seconds=2 * PLANT_WALL_S))) <= 195e3 * 1.01

        # 3. cancelled: the target leaves and the import rises back
        vtn.cancel("twin-ven", eid)
        t_cancel = datetime.fromisoformat(v.decision(eid, 2)["time"])
        wait_for(lambda: v.ven.twin.scenario.grid_targets == (), 10, "the target to leave the twin")
        time.sleep(3)
        assert min(v.readings(t_cancel + timedelta(seconds=1.5))) > 0.23e6

        # 4. SIMPLE level 1 -> DR depth 10 % of the import when it arrived, reached within the 3 s ramp
        start = datetime.now(UTC) + timedelta(seconds=6)
        sid = vtn.add_event("twin-ven", "SIMPLE", "level", [(start, 10, 1.0)], ramp_s=3)
        assert _opt(vtn, sid) == "optIn"
        target = 0.9 * v.decision(sid)["baseline_mw"] * 1e6
        _sleep_until(start + timedelta(seconds=10))
        held = v.readings(start, start + timedelta(seconds=10))
        assert len(held) >= 20 and max(held) <= target * 1.01
        ev = v.ven.twin.scenario.dr_events[-1]
        assert ev.depth == 0.1 and ev.ramp_s == 3 * SPEED  # the ramp, on the twin's clock

        # 5. below the floor, out of range, not a number (xs:float's NaN passes the schema): opted out with the
        # reason, nothing applied
        later = start + timedelta(seconds=60)
        low, bad, nan = (vtn.add_event("twin-ven", "LOAD_CONTROL", "x-loadControlCapacity", [(later, 10, x)])
                         for x in (0.3, 5.0, "NaN"))  # fmt: skip
        assert [_opt(vtn, e) for e in (low, bad, nan)] == ["optOut"] * 3
        assert "is below the floor 0.155 MW" in v.decision(low)["reason"]
        assert "x-loadControlCapacity is a fraction in [0, 1], got 5" in v.decision(bad)["reason"]
        assert "signal_payload: must be a finite number, got nan" in v.decision(nan)["reason"]
        assert v.ven.twin.scenario.grid_targets == ()

        # 6. every report the utility received equals the twin's meter at that time
        readings = dict(v.ven.readings)
        reports = vtn.state()["reports"]["id-twin-ven"]
        assert len(reports) >= 30
        assert all(readings[datetime.fromisoformat(t)] == w for t, w in reports)

        # follow times (the report's figures): each target met within its ramp (negative: before its start), at the
        # latest by the end of the plant step that holds its start; the modification within two plant steps
        follow = {(r["event_id"], r["modification"]): r for r in v.ven.follow.values()}
        for key, latest in (((eid, 0), PLANT_WALL_S), ((eid, 1), 2 * PLANT_WALL_S), ((sid, 0), PLANT_WALL_S)):
            assert -3.0 <= follow[key]["met_after_s"] <= latest + 1e-6, (key, follow[key])

        # 7. the utility sends what fails the schema ("nan" is no xs:float): openleadr drops the message before it
        # reaches the twin, the link reports it, the twin runs on (last: the VTN resends it with every later event)
        vtn.add_event("twin-ven", "LOAD_CONTROL", "x-loadControlCapacity", [(start + timedelta(seconds=90), 10, "nan")])
        wait_for(lambda: any("schema" in p for p in v.ven.link["problems"]), 20, "the schema failure reported")
        _runs_on(v)

        rows = [json.loads(x) for x in (tmp_path / "ven" / DECISIONS).read_text().splitlines()]
        assert {r["event_id"] for r in rows if r["kind"] == "decision"} == {eid, sid, low, bad, nan}
        status = json.loads((tmp_path / "ven" / STATUS).read_text())
        assert status["ven_name"] == "twin-ven" and status["link"]["state"] == "registered"
    finally:
        v.close()

    # a second VEN name with a certificate other than the one registered for it: refused, its twin runs on
    w = Ven(facility, "second-ven", vtn.url, pki, "rogue", tmp_path / "second")
    try:
        wait_for(lambda: w.ven.link["state"] == "refused", 30, "the refusal")
        assert "second-ven" in vtn.state()["refused"] and "second-ven" not in vtn.state()["registered"]
        _runs_on(w)
    finally:
        w.close()
        vtn.stop()


def test_unreachable_and_misbehaving_vtns_are_reported_and_the_twin_runs_on(facility, pki, tmp_path):
    # nothing listens
    v = Ven(facility, "twin-ven", f"https://localhost:{free_port()}/OpenADR2/Simple/2.0b", pki, "ven", tmp_path / "a")
    try:
        wait_for(lambda: v.ven.link["state"] == "unreachable", 30, "the link reported unreachable")
        assert "Could not connect" in v.ven.link["detail"] or "Cannot connect" in v.ven.link["detail"]
        _runs_on(v)
    finally:
        v.close()
    rows = [json.loads(x) for x in (tmp_path / "a" / DECISIONS).read_text().splitlines()]
    assert any(r["kind"] == "link" and r["state"] == "unreachable" for r in rows)

    # a TLS server that answers every OpenADR request with HTTP 500
    class Broken(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(500)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"boom")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Broken)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert("vtn"), pki.key("vtn"))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    v = Ven(facility, "twin-ven", f"https://localhost:{server.server_address[1]}/OpenADR2/Simple/2.0b", pki, "ven",
            tmp_path / "b")  # fmt: skip
    try:
        wait_for(lambda: v.ven.link["state"] == "refused" and "500" in v.ven.link["detail"], 30, "the 500s reported")
        _runs_on(v)
    finally:
        v.close()
        server.shutdown()
