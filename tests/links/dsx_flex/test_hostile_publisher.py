"""The DSX Flex agent on a real Mosquitto with a hostile publisher on the same broker (issue 20, the flex block):
junk, a flood, cross-ISV targets, non-finite numbers under a trusted key, oversized payloads, replays, all sent
by an independent MQTT client (paho) while the agent runs on its own clock; an honest signed target sent in the
middle of it (again while not taken: QoS 1 ends at the broker and a flood fills the agent's bounded inbox) is
taken and handed to the twin at once, in force from its own time; nothing else changes state, the clock keeps
its pace and everything the agent publishes stays strict JSON."""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import paho.mqtt.client as paho
import pytest
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.dsx_flex.agent import MAX_PAYLOAD_BYTES, AgentConfig, FlexAgent
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from factory_twin.twin.runs import strict_json
from factory_twin.twin.simulation.controllers import UniformCapToTarget
from factory_twin.twin.simulation.engine import Twin
from joserfc import jws
from joserfc.jwk import ECKey
from support import wait_for

from factory_twin import twin

ISV, OTHER_ISV = "srp", "aps"
SPEED = 10.0  # twin seconds per wall second: a 20 s plant step every 2 s


def _raw_signed(text: str, key) -> str:
    return jws.serialize_compact({"alg": "ES256", "kid": key.thumbprint()}, text.encode(), key)


def _hostile_messages(agent, grid, other, stranger, captured: dict) -> list[tuple[str, bytes]]:
    """What a publisher without the grid's key can send: (topic, payload), about 3,000 messages."""
    own, theirs = dx.loadtarget_topic(ISV), dx.loadtarget_topic(OTHER_ISV)
    now = agent.now()
    value = '{"targets":[{"interval":{},"load_constraint":{"value":%s,"unit":"kilowatt"}}]}'
    msgs: list[tuple[str, bytes]] = []
    for k in range(2000):  # the flood: junk bytes, JSON of the wrong shape, deep nesting
        msgs.append((own, [b"junk %d" % k, b"{}", b"[" * 5000, b'{"specversion": NaN}'][k % 4]))
    for value_text in ("1e309", "NaN", '"Infinity"', "-5", "1" + "0" * 400):  # non-finite or out of range, signed
        ev = dx.loadtarget_event(OTHER_ISV, [dx.loadtarget_data(70e3)], other, now)
        ev["data"] = _raw_signed(value % value_text, other)  # by a key trusted for its own ISV
        msgs.append((theirs, json.dumps(ev).encode()))
    cross = dx.loadtarget_event(OTHER_ISV, [dx.loadtarget_data(60e3)], other, now)  # aps's key, srp's topic
    msgs.append((own, json.dumps(cross).encode()))
    cross_source = dict(cross, source=f"//grid/v1/isv/{ISV}")
    msgs.append((own, json.dumps(cross_source).encode()))
    msgs.append((own, json.dumps(dx.loadtarget_event(ISV, [dx.loadtarget_data(50e3)], stranger, now)).encode()))
    unsigned = dx.loadtarget_event(ISV, [dx.loadtarget_data(50e3)], grid, now) | {"data": {"targets": []}}
    msgs.append((own, json.dumps(unsigned).encode()))
    msgs.append((own, b"{" + b" " * (2 * MAX_PAYLOAD_BYTES) + b"}"))  # oversized
    msgs += [(f"grid/v1/isv/{ISV}/loadtarget/set/x", b"{}"), (f"grid/v1/isv/{ISV}/loadtarget", b"{}")]
    captured["first"] = len(msgs)
    for k in range(1000):  # a second wave after the honest target, with its replay inside
        msgs.append((own, b"junk %d" % k))
    return msgs


def settle(agent, quiet_s: float = 0.5, timeout_s: float = 15.0) -> None:
    """Wait until the agent has dealt with what was sent: its refused and dropped counts still for ``quiet_s``."""
    last, since, end = None, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < end:
        now = (agent.refused_total, agent.dropped, agent.inbox.qsize())
        if now != last:
            last, since = now, time.monotonic()
        elif now[2] == 0 and time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.05)
    raise AssertionError(f"the agent did not settle in {timeout_s} s")


@pytest.fixture(scope="module")
def phoenix():
    f = twin.load_facility("emerald-phoenix")
    return f, twin.load_scenario("srp-2025-05-04", f)


def test_an_honest_target_is_taken_on_time_through_a_hostile_publisher(mosquitto, phoenix):
    f, sc = phoenix
    grid, other, stranger, own_key = (ECKey.generate_key("P-256") for _ in range(4))
    trust = dx.TrustStore(
        {k.thumbprint(): k for k in (grid, other)}, {grid.thumbprint(): {ISV}, other.thumbprint(): {OTHER_ISV}}
    )
    client = MqttClient(BrokerConfig.from_url(mosquitto.url)).start()
    tw = Twin(f, sc, plant_step_s=20.0, controller=UniformCapToTarget(f))
    agent = FlexAgent(tw, trust, own_key, client, None, AgentConfig(identifier="phx"))
    honest_sender = MqttClient(BrokerConfig.from_url(mosquitto.url)).start()
    hostile = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="mallory")
    hostile.connect(mosquitto.host, mosquitto.port)
    hostile.loop_start()
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(3600.0, SPEED, stop))
    start_twin = agent.twin.time
    t0 = time.monotonic()
    runner.start()
    try:
        wait_for(lambda: agent.twin.last is not None, 10.0, "the first plant step")
        captured: dict = {}
        msgs = _hostile_messages(agent, grid, other, stranger, captured)
        flood, targeted, wave = msgs[:2000], msgs[2000 : captured["first"]], msgs[captured["first"] :]
        for topic, payload in flood:
            hostile.publish(topic, payload, qos=0)
        settle(agent)
        for topic, payload in targeted:  # each reaches the agent (the flood is over) and is refused for its reason
            hostile.publish(topic, payload, qos=1)
        settle(agent)
        reasons = " | ".join(list(agent.refusals)[-50:])  # the flood's and the targeted messages' (the log is bounded)
        honest = dx.loadtarget_event(ISV, [dx.loadtarget_data(70e3)], grid, agent.now())
        honest_sender.publish(dx.loadtarget_topic(ISV), json.dumps(honest), qos=1)
        sent_at, sends = time.monotonic(), 1
        for topic, payload in wave:
            hostile.publish(topic, payload, qos=0)
        # QoS 1 ends at the broker: a flood can fill the agent's inbox (what does not fit is dropped and counted),
        # so the grid side sends again until it sees its target taken, as a sender waiting for target_set does
        while honest["id"] not in agent.state.seen and sends < 10:
            time.sleep(1.0)
            if honest["id"] not in agent.state.seen:
                honest_sender.publish(dx.loadtarget_topic(ISV), json.dumps(honest), qos=1)
                sends += 1
        wait_for(lambda: honest["id"] in agent.state.seen, 5.0, "the honest target")
        taken_s = time.monotonic() - sent_at
        settle(agent)
        hostile.publish(dx.loadtarget_topic(ISV), json.dumps(honest), qos=1)  # a replay of what it overheard
        wait_for(lambda: "replayed event id" in agent.refusals[-1], 5.0, "the replay refused")
        rewrapped = {**honest, "id": str(uuid.uuid4()), "time": dx.iso(agent.now())}  # its signed data, a new envelope
        hostile.publish(dx.loadtarget_topic(ISV), json.dumps(rewrapped), qos=1)
        wait_for(lambda: "replayed signed data" in agent.refusals[-1], 5.0, "the re-wrapped replay refused")
        in_force = [t for t in agent.twin.scenario.grid_targets if t.start <= agent._local(agent.now())]
        step_at = agent.twin.time
        wait_for(lambda: agent.twin.time > step_at, 2 * 20.0 / SPEED + 5.0, "the next plant step")
    finally:
        stop.set()
        runner.join(15)
        hostile.loop_stop()
        hostile.disconnect()
        for c in (client, honest_sender):
            c.stop()
    elapsed = time.monotonic() - t0
    moved = float((agent.twin.time - start_twin) / np.timedelta64(1, "s"))
    print(
        f"hostile messages {len(msgs) + 2} (flood 2000, targeted {len(targeted)}, wave 1000, replays 2), "
        f"refused {agent.refused_total}, dropped (inbox full) {agent.dropped}; "
        f"honest target taken {taken_s:.2f} s after the first of {sends} send(s), "
        f"in the twin {agent.latency_s[0]:.3f} s after arrival; "
        f"twin moved {moved:.0f} s in {elapsed:.1f} s at speed {SPEED:g}"
    )
    accepted = [k for k in agent.state.seen if not k.startswith("jws:")]
    assert accepted == [honest["id"]], "only the honest event was accepted"
    assert dx.data_digest(honest["data"]) in agent.state.seen
    assert agent.state.limit_w("cluster", agent.now()) == pytest.approx(70e3)
    feed = agent.state.feed["cluster"]  # handed to the twin at once, in force from the event's own time
    assert any(t.end is None and t.limit_mw == pytest.approx(70e3 / feed.share / 1e6) for t in in_force), in_force
    assert moved <= SPEED * elapsed + 20.0, "the clock ran ahead of its pace"
    assert agent.refused_total + agent.dropped >= 1000 and agent.refused_total <= len(msgs) + 2
    reasons += " | " + " | ".join(list(agent.refusals)[-2:])
    for why in ("payload is not JSON", "trusted for ISV ['aps'], not for 'srp'", "not a trusted key", "unsigned",
                f"larger than {MAX_PAYLOAD_BYTES}", "replayed event id", "replayed signed data",
                "beyond the range of a double"):  # fmt: skip
        assert why in reasons, why
    assert agent.published, "the agent published its status"
    for p in agent.published:  # strict JSON in and out
        ev = strict_json.loads(strict_json.dumps(p.event))
        strict_json.loads(jws.extract_compact(ev["data"].encode()).payload)
