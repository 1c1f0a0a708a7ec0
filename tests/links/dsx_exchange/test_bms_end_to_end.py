"""End to end through a real Mosquitto: ``emulate-bms`` publishes campus-100mw with one fault of every kind,
``connect`` maps, estimates and diagnoses; every message is checked against bms.yaml on the way."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from dsx_support import DATA, START_MS, alarms
from dsx_support import start_connect as _connect
from dsx_support import stop_connect as _stop
from dsx_support import wait_caught_up as _wait_caught_up
from factory_twin.links.mqtt import BrokerConfig, MqttClient

SCENARIO = DATA / "dsx-steps.toml"  # inference steps 0.6 <-> 0.95 every 30 min
FAULT_AT_S = 240
# one fault of every kind, each on its own entity; (fault spec, entity, alarm kind, point)
FAULTS = [
    ("bias:hall-a-r01-01/return_c:1.5", "hall-a-r01-01", "sensor_bias", "rack/return_c"),
    ("bias:hall-b-r03-03/power_kw:8", "hall-b-r03-03", "sensor_bias", "rack/power_kw"),
    ("drift:hall-a-cdu03/sec_supply_c:3", "hall-a-cdu03", "sensor_drift", "cdu/sec_supply_c"),
    ("dropout:hall-a-r05-04/flow_lpm", "hall-a-r05-04", "stale", "rack/flow_lpm"),
    ("badquality:hall-a-cdu07/pri_flow_lpm", "hall-a-cdu07", "bad_quality", "cdu/pri_flow_lpm"),
    ("fouling:hall-a-cdu09:0.3", "hall-a-cdu09", "hx_fouling", None),
    ("pump:hall-a-cdu11:0.5", "hall-a-cdu11", "pump_failure", None),
    ("nometa:hall-a-r13-01/supply_c", "hall-a-r13-01", "metadata_missing", "rack/supply_c"),
    ("dropout:BMS/heartbeat_ms", "BMS", "heartbeat_loss", None),
]
# stuck needs the process to move: it starts before the load step at 30 min
STUCK = ("stuck:hall-b-r30-02/return_c", 1500, "hall-b-r30-02", "sensor_stuck", "rack/return_c")


class Recorder:
    """A plain subscriber of the test's own: keeps every BMS message for contract validation."""

    def __init__(self, url: str) -> None:
        self.msgs: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = MqttClient(BrokerConfig.from_url(url), on_message=self._on)
        self.client.start()
        self.client.subscribe("BMS/#", qos=0)

    def _on(self, m) -> None:
        with self._lock:
            self.msgs.append((m.topic, m.payload))


@pytest.mark.slow
def test_every_fault_kind_alarmed_on_its_entity_and_fouling_ua_estimated(bms_broker, tmp_path, child_env):
    mosquitto = bms_broker
    state = tmp_path / "state"
    con = _connect(mosquitto, state, child_env, "--no-requests")
    duration_s = FAULT_AT_S + 3600 + 60  # one hour of data after the fouling starts
    emu_cmd = [sys.executable, "-m", "factory_twin", "emulate-bms", "campus-100mw", "--broker", mosquitto.url]
    emu_cmd += ["--scenario", str(SCENARIO), "--speed", "max", "--duration", f"{duration_s}s", "--plant-step", "20s"]
    emu_cmd += ["--summary", str(tmp_path / "emu.json")]
    for spec, *_ in FAULTS:
        emu_cmd += ["--fault", f"{spec}@{FAULT_AT_S}s"]
    emu_cmd += ["--fault", f"{STUCK[0]}@{STUCK[1]}s"]
    subprocess.run(emu_cmd, env=child_env, check=True, capture_output=True, timeout=600)
    emu = json.loads((tmp_path / "emu.json").read_text())
    st = _wait_caught_up(state, START_MS + int((duration_s - 40) * 1000))
    out = _stop(con)
    # every value the emulator published reached connect and is in its history
    assert st["values"] == emu["value_messages"] == st["history_rows"]

    raised = [a for a in alarms(state) if a["state"] == "raised"]
    first = {}
    for a in raised:
        first.setdefault((a["entity"], a["kind"], a["point"]), a["time_ms"])
    expected = [(e, k, p, FAULT_AT_S) for _, e, k, p in FAULTS] + [(STUCK[2], STUCK[3], STUCK[4], STUCK[1])]
    for entity, kind, point, start_s in expected:
        t = first.get((entity, kind, point))
        assert t is not None, f"no {kind} on {entity} {point}; raised: {sorted(first)}"
        delay_s = (t - START_MS) / 1000 - start_s
        print(f"{kind:17s} {entity:15s} {point or '':18s} after {delay_s:4.0f} s")
        assert 0 <= delay_s <= 600, f"{kind} on {entity} after {delay_s:.0f} s"
    # nothing else: no alarm on an entity without a fault
    assert set(first) <= {(e, k, p) for e, k, p, _ in expected}, sorted(set(first) - {x[:3] for x in expected})

    # the fouling CDU's UA, one simulated hour after the fault, within 5 % of the injected value
    ua_true = emu["ua_w_k"]["hall-a-cdu09"]
    ua_est = st["ua_estimate_w_k"]["hall-a-cdu09"]
    assert ua_est == pytest.approx(ua_true, rel=0.05)
    print(f"UA estimated {ua_est:.0f} W/K vs injected {ua_true:.0f} W/K ({ua_est / ua_true - 1:+.2%})")
    assert "points mapped" in out and st["point_map"]["unmapped_count"] == 0
    assert np.isfinite(st["max_die_c"])


def test_short_run_every_message_validates_and_maps(bms_broker, tmp_path, child_env, bms_contract):
    """Three simulated minutes of campus-100mw: all messages arrive, validate, and map onto the spec."""
    mosquitto = bms_broker
    state = tmp_path / "state"
    rec = Recorder(mosquitto.url)
    con = _connect(mosquitto, state, child_env, "--no-requests")
    emu_cmd = [sys.executable, "-m", "factory_twin", "emulate-bms", "campus-100mw", "--broker", mosquitto.url]
    emu_cmd += ["--speed", "max", "--duration", "200s", "--summary", str(tmp_path / "emu.json")]
    subprocess.run(emu_cmd, env=child_env, check=True, capture_output=True, timeout=300)
    emu = json.loads((tmp_path / "emu.json").read_text())
    st = _wait_caught_up(state, START_MS + 180_000)
    out = _stop(con)
    rec.client.stop()
    assert sum(t.startswith("BMS/v1/PUB/") for t, _ in rec.msgs) == emu["messages"]
    for topic, payload in rec.msgs:  # the BMS's messages and connect's own (heartbeats)
        bms_contract.validate(topic, payload)
    assert {t.split("/")[2] for t, _ in rec.msgs} == {"PUB", "FactoryTwin"}
    # the map: every point the BMS publishes metadata for is mapped (integration points included)
    n_points = emu["points"]["bms_values"] + emu["points"]["integration"]
    assert st["point_map"]["mapped"] == n_points and st["point_map"]["unmapped_count"] == 0
    # one count of mapped points: status.json, the exit line and the plant page (issue 20 item 17)
    bms, ours = emu["points"]["bms_values"], emu["points"]["integration"]
    assert st["points"] == {"mapped": n_points, "bms": bms, "integration": ours}
    assert f"{n_points:,} points mapped ({bms:,} from the BMS, {ours:,} written by this integration)" in out
    assert st["point_map"]["missing_count"] == 0 and not st["point_map"]["topology"]
    assert st["active_alarms"] == []
    # the history holds every value connect received (values only, not metadata)
    assert st["history_rows"] == st["values"] > 0


@pytest.mark.slow
def test_broker_killed_30_s_connect_recovers_history_complete_and_resumes(mosquitto, tmp_path, child_env):
    state = tmp_path / "state"
    con = _connect(mosquitto, state, child_env, "--no-requests")
    emu_cmd = [sys.executable, "-m", "factory_twin", "emulate-bms", "campus-100mw", "--broker", mosquitto.url]
    emu_cmd += ["--speed", "10", "--duration", "500s", "--plant-step", "20s"]
    emu = subprocess.Popen(emu_cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_caught_up(state, START_MS + 150_000)
    mosquitto.stop()
    time.sleep(30)
    mosquitto.start()
    out, _ = emu.communicate(timeout=300)
    assert emu.returncode == 0, out
    st = _wait_caught_up(state, START_MS + 460_000)
    out = _stop(con)
    assert len(st["outages"]) == 1 and 29 <= st["outages"][0]["seconds"] < 60, st["outages"]
    assert "1 broker outage(s), blind" in out
    # back on its own: metadata rebuilt from the republished retained snapshot, values flowing again
    assert st["point_map"]["mapped"] > 6000 and st["connected"]
    # every value received is in the history
    import duckdb

    db = duckdb.connect(str(state / "history.duckdb"), read_only=True)
    rows = db.execute("SELECT count(*) FROM samples").fetchone()[0]
    gap = db.execute(
        "SELECT max(ts_ms) - min(ts_ms) FROM samples s JOIN points p ON p.id = s.point_id"
        " WHERE p.point LIKE 'System/HeartbeatTimestampBms/%'"
    ).fetchone()[0]
    db.close()
    assert rows == st["values"] == st["history_rows"]
    assert gap >= 420_000  # heartbeats from before and after the outage

    # a restart resumes: same history file, estimates and active alarms carried over
    con2 = _connect(mosquitto, state, child_env, "--no-requests")
    subprocess.run(
        [*emu_cmd[:-4], "--duration", "120s", "--speed", "max"], env=child_env, check=True, capture_output=True
    )
    time.sleep(3)
    out2 = _stop(con2)
    st2 = json.loads((state / "status.json").read_text())
    assert "(resumed)" in out2 and st2["resumed"]
    assert st2["history_rows"] > rows


@pytest.mark.slow
def test_supply_temperature_requests_inside_guardrails_cut_heat_rejection_power(bms_broker, tmp_path, child_env):
    """connect requests warmer CDU supplies where the dies have margin; the BMS applies them inside its own
    limits; the plant follows, the dies stay under their limit and the heat-rejection meter falls."""
    mosquitto = bms_broker
    duration = 1800
    base = [sys.executable, "-m", "factory_twin", "emulate-bms", "campus-100mw", "--duration", f"{duration}s"]
    base += ["--plant-step", "20s", "--sp-max", "39", "--scenario", str(DATA / "dsx-part-load.toml")]
    # the same plant without an integration: the reference heat-rejection power
    subprocess.run(
        [*base, "--broker", mosquitto.url, "--speed", "max", "--summary", str(tmp_path / "ref.json")],
        env=child_env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    state = tmp_path / "state"
    con = _connect(mosquitto, state, child_env, "--request-max", "38.5", "--request-rate", "0.5")
    time.sleep(1.0)
    subprocess.run(
        [*base, "--broker", mosquitto.url, "--speed", "60", "--summary", str(tmp_path / "run.json")],
        env=child_env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    out = _stop(con)
    ref, run = (json.loads((tmp_path / n).read_text()) for n in ("ref.json", "run.json"))
    reqs = [json.loads(line) for line in (state / "requests.jsonl").read_text().splitlines()]
    sent = [r for r in reqs if r["state"] == "sent"]
    # (requests sent after the emulator's last step find no plant: received <= sent)
    assert sent and run["requests_received"] > 0 and run["requests_rejected"] == 0
    # connect's guardrails: 35 <= request <= 38.5 degC, at most 0.5 K/min (0.084 K per 10 s tick)
    assert all(35.0 <= r["value_c"] <= 38.5 for r in sent)
    by_cdu: dict[str, list] = {}
    for r in sent:
        by_cdu.setdefault(r["cdu"], []).append(r)
    for rs in by_cdu.values():
        for a, b in itertools.pairwise(rs):
            dt_min = (b["time_ms"] - a["time_ms"]) / 60_000
            assert abs(b["value_c"] - a["value_c"]) <= 0.5 * dt_min + 0.011
    # the plant followed (acknowledged: the BMS's setpoint reached the request), inside the BMS's own limit
    assert any(r["state"] == "acknowledged" for r in reqs)
    assert run["setpoint_range_c"][1] <= 39.0 and run["setpoint_mean_c"] > 36.5
    assert run["min_die_margin_k"] > 0  # every die under its throttle limit throughout
    n = int(600 / 20)  # the last 10 simulated minutes
    hr_ref, hr_run = np.mean(ref["hr_power_kw_series"][-n:]), np.mean(run["hr_power_kw_series"][-n:])
    print(f"heat rejection {hr_ref:.0f} kW -> {hr_run:.0f} kW ({hr_run / hr_ref - 1:+.1%}), "
          f"mean setpoint {run['setpoint_mean_c']:.2f} degC, die margin {run['min_die_margin_k']:.1f} K")  # fmt: skip
    assert hr_run < 0.95 * hr_ref
    assert "points mapped" in out
