"""Pushing limits with DMTF's ``redfish`` client (its asyncio client) to the emulated BMCs over verified HTTPS:
only what changed, verified, clipped to AllowableMax, retried, refusals and silence reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from factory_twin.links.redfish.credentials import Credentials, load_credentials
from factory_twin.links.redfish.steer import Connection, LimitPusher, SteerState


def credentials(bmc, user="steer", password="steer-password-1", auth="session") -> Credentials:
    return Credentials(user, password, auth, bmc.cert)


async def pushing(url, creds, layout, fn, **kw):
    conn = await Connection.open(url, creds, concurrency=8, timeout_s=5)
    try:
        pusher = LimitPusher(conn.client, layout, SteerState(url), concurrency=8, **kw)
        return await fn(pusher)
    finally:
        await conn.close()


def setpoints(bmc) -> np.ndarray:
    return bmc.emu.limits.effective_w()


@pytest.mark.parametrize("auth", ["session", "basic"])
def test_push_writes_what_changed_and_verifies_it(bmc, auth):
    lay = bmc.emu.layout
    cap = np.full(lay.n_gpus, 900.0)

    async def go(p: LimitPusher):
        assert await p.discover() == lay.n_nodes
        first = await p.push(cap)
        again = await p.push(cap)
        cap2 = cap.copy()
        cap2[lay.gpu(2, 0) : lay.gpu(2, 3) + 1] = 700.0  # node 2 moves as a whole: one node write
        cap2[lay.gpu(5, 1)] = 650.0  # one GPU of node 5 apart: a write for that GPU only
        third = await p.push(cap2, deadline_s=10.0)
        return first, again, third, cap2, setpoints(bmc), bmc.emu.controller.caps_w().copy()

    first, again, third, cap2, held, rack_cap = asyncio.run(pushing(bmc.url, credentials(bmc, auth=auth), lay, go))
    assert (first.node_writes, first.gpu_writes, first.applied) == (lay.n_nodes, 0, lay.n_nodes)
    assert not (first.refused or first.failed or first.changed_by_bmc)
    assert again.writes == 0
    assert (third.node_writes, third.gpu_writes, third.applied) == (1, 1, 2)
    assert third.lagging == []
    assert np.array_equal(held, cap2)
    # the twin steers by them: the rack's cap makes its busy GPUs draw what the 72 do under their limits
    f = bmc.emu.f
    drawn = f.drawn_w(cap2, racks=lay.gpu_rack)
    assert f.drawn_w(rack_cap)[0] == pytest.approx(drawn.mean(), rel=1e-9)
    if auth == "session":  # steering logged out: the BMCs lost their controller and fell back to the idle policy
        assert np.all(setpoints(bmc) == 600.0)
        assert len(bmc.emu.fallbacks) == 1
    else:  # Basic has no session to end: the lease runs until the watchdog time
        assert np.array_equal(setpoints(bmc), cap2)
        assert bmc.emu.holder == "basic:steer"


def test_never_above_allowable_max(bmc):
    lay = bmc.emu.layout
    too_much = np.full(lay.n_gpus, 5000.0)
    too_little = np.full(lay.n_gpus, 10.0)

    async def go(p: LimitPusher):
        await p.discover()
        high = await p.push(too_much)
        at_high = setpoints(bmc)
        return high, at_high, await p.push(too_little), setpoints(bmc)

    high, at_high, low, at_low = asyncio.run(pushing(bmc.url, credentials(bmc), lay, go))
    assert high.refused == {} and low.refused == {}
    assert bmc.emu.app.patches == 2 * lay.n_nodes  # no request was sent that the BMC had to refuse
    assert np.all(at_high == 1200.0) and np.all(at_low == 600.0)  # AllowableMax and AllowableMin of a GB200
    assert high.applied == low.applied == lay.n_nodes


def test_refusals_are_reported_with_their_message(bmc):
    lay = bmc.emu.layout
    creds = credentials(bmc, "viewer", "viewer-password-1")

    async def go(p):
        await p.discover()
        return await p.push(np.full(lay.n_gpus, 800.0), deadline_s=1.0)

    rep = asyncio.run(pushing(bmc.url, creds, lay, go))
    assert len(rep.refused) == lay.n_nodes
    assert set(rep.refused.values()) == {"Base.1.22.1.InsufficientPrivilege"}
    assert len(rep.lagging) == lay.n_nodes
    assert rep.applied == 0
    assert np.all(setpoints(bmc) == 1200.0)
    assert "18 refused" in rep.summary()


def test_transient_errors_are_retried(one_rack, bmc_factory):
    b = bmc_factory(one_rack)
    left = {"n": 25}
    respond = b.emu.app.respond

    def busy_first(req):  # the first 25 writes meet a busy BMC
        if req.method == "PATCH" and left["n"] > 0:
            left["n"] -= 1
            return 503, [("Content-Type", "application/json"), ("Retry-After", "0")], b'{"error": {}}'
        return respond(req)

    b.emu.app.respond = busy_first
    lay = b.emu.layout

    async def go(p):
        await p.discover()
        return await p.push(np.full(lay.n_gpus, 800.0)), setpoints(b)

    rep, held = asyncio.run(pushing(b.url, credentials(b), lay, go, retries=4, backoff_s=0.01))
    assert rep.applied == lay.n_nodes
    assert rep.retries == 25
    assert rep.failed == {}
    assert np.all(held == 800.0)


def test_silence_is_reported_as_failed(one_rack, bmc_factory):
    b = bmc_factory(one_rack)
    lay = b.emu.layout

    async def go(p):
        await p.discover()
        b.server.stop()  # the service goes away between discovery and the push
        return await p.push(np.full(lay.n_gpus, 800.0))

    rep = asyncio.run(pushing(b.url, credentials(b), lay, go, retries=1, backoff_s=0.01))
    assert len(rep.failed) == lay.n_nodes
    assert rep.applied == 0


def test_credentials_file(tmp_path, tls):
    cert, _ = tls
    p = tmp_path / "bmc.toml"
    p.write_text(f'username = "steer"\npassword = "pw"\nauth = "basic"\nca_file = "{cert}"\n')
    p.chmod(0o600)
    c = load_credentials(p)
    assert (c.username, c.auth, c.ca_file) == ("steer", "basic", Path(cert))
    assert "pw" not in repr(c)
    p.write_text('username = "steer"\npassword = "pw"\nauth = "cookie"\n')
    with pytest.raises(ValueError, match="auth must be one of session, basic"):
        load_credentials(p)
    p.write_text('username = "steer"\npassword = "pw"\n')
    p.chmod(0o644)
    with pytest.warns(UserWarning, match="readable by other users"):
        load_credentials(p)
    p.chmod(0o600)
    with pytest.raises(ValueError, match="HTTPS only"):
        asyncio.run(Connection.open("http://127.0.0.1:1", load_credentials(p), 1, 1))
