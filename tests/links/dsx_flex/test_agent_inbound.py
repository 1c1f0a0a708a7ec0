"""The DSX Flex agent against what an adversary on the broker can send (issue 20 items 9-13): nothing
unauthenticated changes state or the clock; numbers are finite and bounded; each key speaks for its own ISV;
what the agent writes and publishes is strict JSON. The agent runs a cheap controller here (the MPC's part is
in test_flex_agent.py); messages go to :meth:`FlexAgent.handle` or its inbox exactly as the MQTT thread puts them."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import numpy as np
import pytest
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.dsx_flex.agent import AgentConfig, FlexAgent
from factory_twin.twin.runs import strict_json
from factory_twin.twin.simulation.controllers import UniformCapToTarget
from factory_twin.twin.simulation.engine import Twin
from joserfc import jws
from joserfc.jwk import ECKey
from support import wait_for

from factory_twin import twin

ISV = "srp"


@pytest.fixture(scope="module")
def phoenix():
    f = twin.load_facility("emerald-phoenix")
    return f, twin.load_scenario("srp-2025-05-04", f)


@pytest.fixture(scope="module")
def keys():
    return ECKey.generate_key("P-256"), ECKey.generate_key("P-256")  # the grid's, the agent's


def make_agent(phoenix, keys, state_dir=None, **config) -> FlexAgent:
    f, sc = phoenix
    tw = Twin(f, sc, start="2025-05-04T16:00:00", plant_step_s=20.0, controller=UniformCapToTarget(f))
    grid, own = keys
    trust = dx.TrustStore.bound(ISV, grid)
    return FlexAgent(tw, trust, own, None, state_dir, AgentConfig(identifier="phx", **config))


def signed_raw(payload: str, key) -> str:
    """A JWS over exactly ``payload`` (text the grid side wrote, e.g. with a number JSON cannot hold)."""
    return jws.serialize_compact({"alg": "ES256", "kid": key.thumbprint()}, payload.encode(), key)


def event(agent, keys, targets=None, isv=ISV, data=None, now=None) -> bytes:
    ev = dx.loadtarget_event(isv, targets or [dx.loadtarget_data(70e3)], keys[0], now or agent.now())
    if data is not None:
        ev["data"] = data
    return json.dumps(ev).encode()


def published_strict(agent) -> list[dict]:
    """Every event the agent published, re-read as strict JSON (envelope and signed data)."""
    out = []
    for p in agent.published:
        ev = strict_json.loads(strict_json.dumps(p.event))
        out.append(strict_json.loads(jws.extract_compact(ev["data"].encode()).payload))
    return out


def test_item10_non_finite_numbers_are_refused_and_never_published(phoenix, keys):
    agent = make_agent(phoenix, keys)
    agent.step()
    topic = dx.loadtarget_topic(ISV)
    value = '{"targets":[{"interval":{},"load_constraint":{"value":%s,"unit":"kilowatt"}}]}'
    hostile = {
        "overflow": signed_raw(value % "1e309", keys[0]),
        "huge integer": signed_raw(value % ("1" + "0" * 400), keys[0]),
        "NaN token": signed_raw(value % "NaN", keys[0]),
        "infinity as text": signed_raw(value % '"Infinity"', keys[0]),
    }
    for why, data in hostile.items():
        assert not agent.handle(topic, event(agent, keys, data=data)), why
    envelope = event(agent, keys).replace(b'"specversion"', b'"x": -Infinity, "specversion"')
    assert not agent.handle(topic, envelope)
    assert not agent.handle(topic, b"[" * 100_000)  # nesting Python's parser cannot take: refused, not a crash
    assert agent.state.targets["cluster"] == [] and agent.state.seen == {}
    assert len(agent.refusals) == 6
    assert agent.handle(topic, event(agent, keys))  # a finite target is taken
    agent.step()
    data = published_strict(agent)
    assert data[-1]["feeds"]["cluster"]["targets"][0]["load_constraint"] == {"value": 70.0, "unit": "kilowatt"}


def test_item11_a_trusted_key_speaks_only_for_its_own_isv(phoenix, keys, tmp_path):
    """The grid key is trusted for ISV ``srp``: the same key's target under another ISV's topic and source is
    refused; ``--trust-key`` takes ISV=FILE and nothing less."""
    agent = make_agent(phoenix, keys)
    agent.step()
    other = event(agent, keys, isv="mallory")
    assert not agent.handle(dx.loadtarget_topic("mallory"), other)
    assert "trusted for ISV ['srp'], not for 'mallory'" in agent.refusals[-1]
    assert agent.state.targets["cluster"] == [] and agent.state.seen == {}
    assert not agent.handle(dx.loadtarget_topic(ISV), other)  # its source names the other ISV: no match either
    assert agent.handle(dx.loadtarget_topic(ISV), event(agent, keys))
    pem = tmp_path / "grid.pub.pem"
    pem.write_bytes(keys[0].as_pem(private=False))
    with pytest.raises(ValueError, match="expected ISV=FILE"):
        dx.TrustStore.from_files([str(pem)])
    with pytest.raises(ValueError, match="one MQTT topic level"):
        dx.TrustStore.from_files([f"a/b={pem}"])
    both = dx.TrustStore.from_files([f"srp={pem}", f"aps={pem}"])
    assert both.isvs[keys[0].thumbprint()] == {"srp", "aps"}


def test_item12_a_target_above_the_feeds_capacity_is_refused_with_the_reason(phoenix, keys):
    """1e6 MW on the 0.1024 MW ``cluster`` feed would mean "no limit": refused, naming power_maximum; the
    capacity itself is a valid constraint."""
    agent = make_agent(phoenix, keys)
    agent.step()
    topic = dx.loadtarget_topic(ISV)
    huge = dx.loadtarget_data(1e6 * 1e6, unit="megawatt")
    assert not agent.handle(topic, event(agent, keys, [huge]))
    assert "above feed 'cluster' power_maximum 102.4 kW" in agent.refusals[-1]
    assert not agent.handle(topic, event(agent, keys, [dx.loadtarget_data(102.5e3)]))
    assert agent.state.targets["cluster"] == []
    assert agent.handle(topic, event(agent, keys, [dx.loadtarget_data(102.4e3)]))
    assert agent.state.limit_w("cluster", agent.now()) == pytest.approx(102.4e3)


def test_item13_the_saved_state_follows_the_power_event_through_a_removal(phoenix, keys, tmp_path):
    """flex-state.json holds the power-event start while a target is in force and loses it once the event is over
    (it was saved only on acceptance: the start set by the next step was missing, and it stayed after a removal)."""
    folder = tmp_path / "state"
    agent = make_agent(phoenix, keys, folder)
    agent.step()
    saved = lambda: json.loads((folder / "flex-state.json").read_text())  # noqa: E731
    assert agent.handle(dx.loadtarget_topic(ISV), event(agent, keys, [dx.loadtarget_data(70e3)]))
    agent.step()
    start = agent.state.tracks["cluster"].event_start
    assert start is not None and saved()["event_start"] == {"cluster": dx.iso(start)}
    assert agent.handle(dx.loadtarget_topic(ISV), event(agent, keys, [dx.loadtarget_data(None)]))
    for _ in range(30):
        agent.step()
        if agent.state.tracks["cluster"].phase == "steady":
            break
    assert agent.state.tracks["cluster"].event_start is None
    assert saved()["event_start"] == {} and saved()["targets"] == {"cluster": []}
    again = make_agent(phoenix, keys, folder)
    assert again.state.tracks["cluster"].event_start is None
    again.step()
    assert "power_event_start_time" not in published_strict(again)[-1]["feeds"]["cluster"]


class _Msg:
    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


def test_item9_messages_do_not_move_the_clock_a_signed_target_on_it_is_taken(phoenix, keys):
    """At --speed 1 with 20 s plant steps, 40 junk messages in 2 s used to step the twin once each (+800 s), and
    a target stamped with the real time was then refused as expired. The twin keeps its pace: after ~2.5 wall
    seconds it has run the first step only; the junk is refused; an honest target on the clock is taken."""
    agent = make_agent(phoenix, keys)
    start, origin = agent.twin.time, agent.now()
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(3600.0, 1.0, stop))
    t0 = time.monotonic()
    runner.start()
    try:
        topic = dx.loadtarget_topic(ISV)
        for k in range(40):
            agent.on_message(_Msg(topic, b"junk %d" % k if k % 2 else event(agent, keys, data={"targets": []})))
            time.sleep(0.05)
        time.sleep(0.5)
        elapsed = time.monotonic() - t0
        moved = float((agent.twin.time - start) / np.timedelta64(1, "s"))
        assert moved <= elapsed + 20.0, f"{moved:.0f} s of twin time in {elapsed:.1f} s of wall time"
        assert agent.refused_total == 40 and agent.state.seen == {}
        on_the_clock = origin + timedelta(seconds=time.monotonic() - t0)  # speed 1: the twin's start + wall time
        agent.on_message(_Msg(topic, event(agent, keys, [dx.loadtarget_data(70e3)], now=on_the_clock)))
        assert wait_for(lambda: agent.state.seen, 5.0, "the honest target")
    finally:
        stop.set()
        runner.join(10)
    assert agent.refused_total == 40 and agent.state.limit_w("cluster", agent.now()) == pytest.approx(70e3)


def test_item9_floods_and_oversized_payloads_are_bounded(phoenix, keys):
    """A full inbox drops (and counts) what does not fit; a payload beyond MAX_PAYLOAD_BYTES is refused unread;
    refusal reasons are clipped (the sender chose what they quote) and the refusal log is bounded."""
    from factory_twin.links.dsx_flex.agent import INBOX_MAX, MAX_PAYLOAD_BYTES

    agent = make_agent(phoenix, keys)
    topic = dx.loadtarget_topic(ISV)
    for _ in range(INBOX_MAX + 50):
        agent.on_message(_Msg(topic, b"x" * (4 * MAX_PAYLOAD_BYTES)))
    assert agent.inbox.qsize() == INBOX_MAX and agent.dropped == 50
    assert max(len(agent.inbox.queue[i][1]) for i in range(INBOX_MAX)) == MAX_PAYLOAD_BYTES + 1
    agent.handle_inbox()
    assert agent.refused_total == INBOX_MAX and agent.refusals[-1] == f"payload larger than {MAX_PAYLOAD_BYTES} bytes"
    long_type = json.loads(event(agent, keys))
    long_type["type"] = "t" * 100_000
    assert not agent.handle(topic, json.dumps(long_type).encode())
    assert len(agent.refusals[-1]) < 400 and agent.refused[-1][2] == agent.refusals[-1]
    for _ in range(1200):
        agent.handle(topic, b"{}")
    assert len(agent.refusals) == 1000 and agent.refused_total == INBOX_MAX + 1201


def test_item7_accepting_and_removing_a_target_moves_the_load_at_the_ramp_limit(phoenix, keys):
    """A 40 % cut accepted at 95 kW: the agent's immediate cut and the controller's caps reach the target, the grid
    import falling by at most the facility's 0.05 MW/min per 20 s step (it fell 52 kW in one step, ~155 kW/min);
    the removal ramps back up at the same limit."""
    from factory_twin.twin.simulation.meters import grid_import_w

    agent = make_agent(phoenix, keys)
    for _ in range(3):
        agent.step()
    tw = agent.twin
    per_step_w = tw.f.spec.grid.ramp_limit_mw_per_min * 1e6 / 60 * tw.plant_dt
    before = agent.measured_w()["cluster"]
    imports = [grid_import_w(tw.last)]

    def run(n):
        for _ in range(n):
            agent.step()
            imports.append(grid_import_w(tw.last))

    assert agent.handle(dx.loadtarget_topic(ISV), event(agent, keys, [dx.loadtarget_data(0.6 * before)]))
    run(12)
    assert agent.measured_w()["cluster"] <= 0.6 * before * 1.01  # the target is met
    cut = np.diff(imports)
    assert cut.min() < -0.9 * per_step_w  # at the limit, not slower
    assert agent.handle(dx.loadtarget_topic(ISV), event(agent, keys, [dx.loadtarget_data(None)]))
    run(12)
    assert agent.measured_w()["cluster"] > 0.99 * before
    steps = np.diff(imports)
    assert steps.max() > 0.9 * per_step_w
    assert np.abs(steps).max() <= per_step_w * 1.02, f"{np.abs(steps).max() / 1e3:.1f} kW in one step"
