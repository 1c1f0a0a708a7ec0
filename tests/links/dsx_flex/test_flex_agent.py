"""The DSX Flex agent end to end on a real Mosquitto: signed targets in, the MPC-driven twin follows, status and
breach alerts out (each validated against the contract), refusals change nothing, state survives a restart."""

from __future__ import annotations

import json
import queue
import time
from datetime import timedelta

import numpy as np
import pytest
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.dsx_flex.agent import AgentConfig, FlexAgent
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from factory_twin.optimization.mpc import MPCController
from factory_twin.optimization.options import MPC_OPTIONS
from factory_twin.twin.simulation.engine import Twin
from joserfc.jwk import ECKey

from factory_twin import twin

ISV = "srp-test"


@pytest.fixture(scope="module")
def phoenix():
    f = twin.load_facility("emerald-phoenix")
    return f, twin.load_scenario("srp-2025-05-04", f)


def _agent(phoenix, client, grid_key, tmp_path, agent_key):
    f, sc = phoenix
    mpc = MPCController(f, sc, MPC_OPTIONS.updated(horizon="1h", backend="highspy"), replan_every="5min")
    tw = Twin(f, sc, plant_step_s=20.0, controller=mpc)
    trust = dx.TrustStore.bound(ISV, ECKey.import_key(grid_key.as_pem(private=False)))
    cfg = AgentConfig(identifier="phx", heartbeat_s=300, grace_s=60, escalate_s=120)
    return FlexAgent(tw, trust, agent_key, client, tmp_path / "state", cfg)


class Listener:
    """A plain MQTT subscriber collecting the agent's status and breach events (validated on arrival)."""

    def __init__(self, broker, validators):
        self.q: queue.Queue = queue.Queue()
        self.validators = validators
        self.c = MqttClient(BrokerConfig.from_url(broker.url), on_message=lambda m: self.q.put((m.topic, m.payload)))
        self.c.start()
        self.c.subscribe("grid/v1/dsx-flex-agent/phx/#", qos=1)

    def drain(self, agent_key) -> list[tuple[str, dict]]:
        out = []
        while True:
            try:
                _, payload = self.q.get(timeout=0.5)
            except queue.Empty:
                return out
            ev = json.loads(payload)
            data = dx.TrustStore({agent_key.thumbprint(): agent_key}).verify(ev["data"])
            for v in self.validators(ev["type"]):
                v.validate(ev if "Event" in v.schema["$ref"] else data)
            out.append((ev["type"], data))


def _wait_inbox(agent, n=1, timeout=5.0):
    t = time.monotonic() + timeout
    while agent.inbox.qsize() < n and time.monotonic() < t:
        time.sleep(0.02)
    assert agent.inbox.qsize() >= n, "the agent did not receive the message"


def _events(msgs, feed="cluster"):
    return [d["feeds"][feed]["event"] for t, d in msgs if t == dx.STATUS and d["feeds"][feed]["event"] != "periodic"]


def test_target_ramp_removal_refusals_breach_and_restart(mosquitto, phoenix, tmp_path, flex_contract):
    v = flex_contract
    schemas = {
        dx.STATUS: [v("PowerStateStatusEvent"), v("PowerStateStatusData")],
        dx.BREACH: [v("PowerBreachAlertEvent"), v("PowerBreachAlertData")],
    }
    grid_key, agent_key = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    client = MqttClient(BrokerConfig.from_url(mosquitto.url)).start()
    sender = MqttClient(BrokerConfig.from_url(mosquitto.url)).start()
    listen = Listener(mosquitto, lambda t: schemas.get(t, []))
    agent = _agent(phoenix, client, grid_key, tmp_path, agent_key)
    topic = dx.loadtarget_topic(ISV)

    def send(targets, key=grid_key, mutate=None):
        ev = dx.loadtarget_event(ISV, targets, key, agent.now())
        if mutate:
            mutate(ev)
        queued = agent.inbox.qsize()  # earlier messages may still wait in the inbox: wait for this one
        sender.publish(topic, json.dumps(ev), qos=1)
        _wait_inbox(agent, n=queued + 1)
        return ev

    agent.run(300, speed=None)  # 5 min of twin time, uncapped
    before = agent.measured_w()["cluster"]
    f = agent.twin.f  # every GPU busy at its measured uncapped draw (95.2 kW; ~93 kW in the field before the event)
    assert before == pytest.approx(float(f.gpus @ f.demand_w), rel=1e-6)

    target = 0.75 * before
    first = send([dx.loadtarget_data(target)])
    agent.handle_inbox()
    sender.publish(topic, json.dumps(first), qos=1)  # the same event again: a replay
    _wait_inbox(agent)
    agent.run(600, speed=None)
    msgs = listen.drain(agent_key)
    assert _events(msgs)[:3] == ["target_set", "start_ramp_down", "end_ramp_down"]
    measured = agent.measured_w()["cluster"]
    assert measured == pytest.approx(target, rel=0.01)
    last = [d for t, d in msgs if t == dx.STATUS][-1]["feeds"]["cluster"]
    assert last["compliant"] and last["targets"][0]["active"]

    # five refusals: nothing changes
    saved = (tmp_path / "state" / "flex-state.json").read_text()
    good = send([dx.loadtarget_data(0.5 * before)], key=ECKey.generate_key("P-256"))  # untrusted key
    send([dx.loadtarget_data(0.5 * before)], mutate=lambda e: e.update(data={"targets": []}))  # unsigned
    send([dx.loadtarget_data(0.5 * before)], mutate=lambda e: e.update(time=dx.iso(agent.now() - timedelta(hours=1))))
    send([{"interval": {}, "load_constraint": {"value": "much", "unit": "kilowatt"}}])  # schema
    agent.handle_inbox()
    assert len(agent.refusals) == 5 and good["id"] not in agent.state.seen
    for word in ("not a trusted key", "unsigned", "expired", "schema", "replayed"):
        assert any(word in r for r in agent.refusals), word
    assert (tmp_path / "state" / "flex-state.json").read_text() == saved

    # removal: ramp back up
    send([dx.loadtarget_data(None)])
    agent.run(600, speed=None)
    msgs = listen.drain(agent_key)
    assert _events(msgs)[:3] == ["target_set", "start_ramp_up", "end_ramp_up"]
    assert agent.measured_w()["cluster"] > 0.97 * before

    # below what the floors allow: breach with shed hints, flex-3 jobs first; lifted -> resolved
    floor_w = float(agent.twin.f.gpus @ agent.twin.f.drawn_w(agent.twin.f.min_cap_w))
    send([dx.loadtarget_data(0.6 * floor_w, best_effort=True)])
    agent.run(400, speed=None)
    send([dx.loadtarget_data(None)])
    agent.run(300, speed=None)
    alerts = [d for t, d in listen.drain(agent_key) if t == dx.BREACH]
    assert [a["status"] for a in alerts] == ["active", "escalated", "resolved"]
    assert alerts[0]["severity"] == "critical" and len({a["breach"]["breach_id"] for a in alerts}) == 1
    tiers = [agent.twin.f.spec.workloads[agent.twin.f.class_names.index(h["resource_id"].split("@")[0])].flex_tier
             for h in alerts[0]["shed_hints"]]  # fmt: skip
    assert tiers == sorted(tiers, reverse=True) and tiers[0] == 0.5

    # restart: a scheduled target survives and starts on time
    start = agent.now() + timedelta(minutes=10)
    send([dx.loadtarget_data(0.8 * before, start, start + timedelta(minutes=30))])
    agent.handle_inbox()
    client.stop()
    client2 = MqttClient(BrokerConfig.from_url(mosquitto.url)).start()
    again = _agent(phoenix, client2, grid_key, tmp_path, agent_key)
    again.twin.time = agent.twin.time
    assert again.state.targets == agent.state.targets
    assert again.state.limit_w("cluster", start - timedelta(seconds=1)) > 0.99 * 102.4e3
    assert again.state.limit_w("cluster", start) == pytest.approx(0.8 * before)
    for c in (client2, sender, listen.c):
        c.stop()
    assert np.all(np.isfinite(agent.latency_s))
