"""``connect`` against the data a real plant sends now and then (issue 23), through a real Mosquitto: values
stamped an hour ahead or in microseconds, on known and unknown points; NaN, Infinity and readings in the
wrong unit; a lone outlier; a site clock that is skewed, jumps, runs back, or counts in seconds; a biased row
meter, a rack return off by 10 K and the faults that used to be blamed on the wrong point; a stop under a
sustained 2,000 values/s. The odd messages come from a plain paho client of the test's own, beside the
emulated BMS."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time

import duckdb
import paho.mqtt.client as paho
import pytest
from dsx_support import DATA, START_MS, emulate, raised, start_connect, status, stop_connect, wait_caught_up
from paho.mqtt.enums import CallbackAPIVersion

SCENARIO = str(DATA / "dsx-steps.toml")
FACILITY = "campus-100mw"
VALUE = "BMS/v1/PUB/Value/"


def point(kind: str, entity: str, signal: str) -> str:
    """The emulated BMS's point name (``objectType/pointType/tagPath``)."""
    return f"{kind}/{FACILITY}/{entity}/{signal}"


RACK_POWER, RACK_RETURN = "Rack/RackPower", "Rack/RackLiquidReturnTemperature"
RACK_SUPPLY, RACK_FLOW = "Rack/RackLiquidSupplyTemperature", "Rack/RackLiquidFlow"
HEARTBEAT = point("System/HeartbeatTimestampBms", "BMS", "heartbeat_ms")


class Site:
    """A plain paho client beside the BMS: follows the BMS heartbeat (the plant clock) and the latest value of
    the points it watches, and publishes whatever the test makes it."""

    def __init__(self, url: str, watch: list[str]) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.latest: dict[str, float] = {}
        self.clock_ms = 0
        self._lock = threading.Lock()
        self.c = paho.Client(CallbackAPIVersion.VERSION2)
        self.c.on_message = self._on
        self.c.connect(host, int(port))
        self.c.loop_start()
        for p in [HEARTBEAT, *watch]:
            self.c.subscribe(VALUE + p, qos=0)

    def _on(self, client, userdata, msg) -> None:
        d = json.loads(msg.payload)
        with self._lock:
            if msg.topic == VALUE + HEARTBEAT:
                self.clock_ms = max(self.clock_ms, d["timestamp"])
            self.latest[msg.topic.removeprefix(VALUE)] = d["value"]

    def wait_clock(self, plant_ms: int, timeout_s: float = 120) -> int:
        end = time.monotonic() + timeout_s
        while self.clock_ms < plant_ms:
            assert time.monotonic() < end, f"the BMS clock did not reach {plant_ms}"
            time.sleep(0.05)
        return self.clock_ms

    def send(self, p: str, body: str) -> None:
        self.c.publish(VALUE + p, body, qos=1).wait_for_publish(10)

    def value(self, p: str, value, ts_ms: int) -> None:
        self.send(p, f'{{"value":{value},"timestamp":{ts_ms},"quality":1}}')

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_mistimed_malformed_and_wrong_unit_values_are_rejected_counted_and_move_nothing(
    bms_broker, tmp_path, child_env
):
    """A value an hour ahead and one in microseconds, on a known and an unknown point; NaN, Infinity and an
    overflowing number; degF on a rack return and kelvin on a rack supply for two samples; a glitch on a rack
    return (one sample 40 K off); GPM on a rack flow for two ticks. The plant is clean: no alarm at all, the
    clock does not jump, every odd value is counted on its point and named at exit."""
    state = tmp_path / "state"
    ahead = point(RACK_POWER, "hall-b-r07-04", "power_kw")
    us_known = point("CDU/LiquidFlow", "hall-a-cdu14", "sec_flow_lpm")
    ahead_unknown = point(RACK_POWER, "hall-z-r99-01", "power_kw")
    us_unknown = point("CDU/LiquidFlow", "ghost-cdu", "sec_flow_lpm")
    nan_ret = point(RACK_RETURN, "hall-a-r21-06", "return_c")
    inf_pow = point(RACK_POWER, "hall-a-r21-06", "power_kw")
    ninf = point("CDU/LiquidTemperature", "hall-b-cdu02", "pri_return_c")
    big = point("PowerMeter/ActivePower", "M-hall-a-cdu10", "power_kw")
    deg_f, kelvin = point(RACK_RETURN, "hall-b-r15-09", "return_c"), point(RACK_SUPPLY, "hall-a-r33-02", "supply_c")
    glitch, gpm = point(RACK_RETURN, "hall-a-r26-08", "return_c"), point(RACK_FLOW, "hall-a-r29-03", "flow_lpm")
    con = start_connect(bms_broker, state, child_env, "--no-requests")
    site = Site(bms_broker.url, [ahead, us_known, deg_f, kelvin, glitch, gpm])
    duration = 900
    args = ["--scenario", SCENARIO, "--speed", "20", "--duration", f"{duration}s", "--plant-step", "20s"]
    emu = threading.Thread(target=emulate, args=(bms_broker, child_env, *args))
    emu.start()
    try:
        t = site.wait_clock(START_MS + 240_000)
        site.value(ahead, site.latest[ahead], t + 3_600_000)
        site.value(ahead_unknown, 80.0, t + 3_600_000)
        site.value(us_known, site.latest[us_known], t * 1000)
        site.value(us_unknown, 1800.0, t * 1000)
        site.send(nan_ret, f'{{"value":NaN,"timestamp":{t},"quality":1}}')
        site.send(inf_pow, f'{{"value":Infinity,"timestamp":{t},"quality":1}}')
        site.send(ninf, f'{{"value":-Infinity,"timestamp":{t},"quality":1}}')
        site.send(big, f'{{"value":1e999,"timestamp":{t},"quality":1}}')
        site.value(glitch, round(site.latest[glitch] - 40.0, 1), t)
        for _ in range(2):  # two samples in the wrong unit, one plant step (20 s) apart
            t = site.wait_clock(t + 20_000)
            site.value(deg_f, round(site.latest[deg_f] * 9 / 5 + 32, 1), t)
            site.value(kelvin, round(site.latest[kelvin] + 273.15, 2), t)
        true_flow = site.latest[gpm]
        site.value(gpm, round(true_flow / 3.785411784, 1), t)  # US gallons a minute, for two ticks
        t = site.wait_clock(t + 20_000)
        site.value(gpm, true_flow, t)  # and back
    finally:
        emu.join()
        site.close()
    st = wait_caught_up(state, START_MS + (duration - 40) * 1000)
    out = stop_connect(con)
    st = status(state)

    assert raised(state) == {}  # nothing alarmed: no jump, no storm, no neighbour blamed
    assert st["clock"]["jumps_count"] == 0 and st["plant_time_ms"] < START_MS + (duration + 60) * 1000
    rej = st["rejected"]
    assert rej["by_reason"] == {"malformed": 0, "non_finite": 4, "out_of_range": 4, "outlier": 1, "timestamp": 2}
    pts = rej["points"]
    assert pts[ahead] == pts[ahead_unknown] == {"timestamp": 1}
    assert pts[nan_ret] == pts[inf_pow] == pts[ninf] == pts[big] == {"non_finite": 1}
    assert pts[deg_f] == pts[kelvin] == {"out_of_range": 2} and pts[glitch] == {"outlier": 1}
    offsets = {q["point"]: q["offset_s"] for q in rej["quarantined_recent"]}
    # quarantined once the clock has moved at least 30 s on (more when connect runs behind a busy machine)
    assert set(offsets) == {ahead, ahead_unknown} and all(3000 <= s <= 3600 for s in offsets.values()), offsets
    assert rej["epoch_units"] == {"us": 2} and us_unknown in rej["unknown_points"]
    # the exit line names them
    assert "values not taken (non_finite 4, out_of_range 4, outlier 1, timestamp 2)" in out
    assert "unknown point(s): " + us_unknown in out and re.search(r"stamped \+3\d{3} s from the plant clock", out)
    # what was not taken is in the history's rejected table, never among the samples
    db = duckdb.connect(str(state / "history.duckdb"), read_only=True)
    reasons = dict(db.execute("SELECT reason, count(*) FROM rejected GROUP BY reason").fetchall())
    odd, latest = db.execute("SELECT count(*) FILTER (NOT isfinite(value)), max(ts_ms) FROM samples").fetchone()
    db.close()
    assert reasons == {"non_finite": 4, "out_of_range": 4, "outlier": 1, "timestamp": 2}
    assert odd == 0 and latest < START_MS + (duration + 60) * 1000  # no infinity, nothing from the future
    assert st["values"] == st["history_rows"]


@pytest.mark.slow
def test_a_site_clock_that_jumps_runs_back_and_is_skewed_is_followed_without_an_alarm_storm(
    bms_broker, tmp_path, child_env
):
    """The whole BMS clock jumps 30 min ahead at 5 min and 20 min back at 12 min; one rack's controller stamps
    45 s late, another's 25 s early, throughout. The plant clock follows both jumps (each alarmed once as
    ``clock_jump``, cleared after the grace), nothing else is alarmed, no value is lost or quarantined."""
    state = tmp_path / "state"
    con = start_connect(bms_broker, state, child_env, "--no-requests")
    duration = 1500
    emulate(
        bms_broker,
        child_env,
        *("--scenario", SCENARIO, "--speed", "max", "--duration", f"{duration}s", "--plant-step", "20s"),
        *("--fault", "clock:BMS:1800@300s", "--fault", "clock:BMS:-1200@720s"),
        *("--fault", "clock:hall-a-r03-02/return_c:-45", "--fault", "clock:hall-b-r08-01/power_kw:25"),
    )
    end_ms = START_MS + (duration + 600) * 1000
    st = wait_caught_up(state, end_ms - 40_000)
    stop_connect(con)
    st = status(state)
    jumps = [j["offset_s"] for j in st["clock"]["jumps"]]
    assert len(jumps) == 2 and 1780 <= jumps[0] <= 1820 and -1220 <= jumps[1] <= -1180, jumps
    assert set(raised(state)) == {("BMS", "clock_jump", None)}
    assert [a for a in st["active_alarms"]] == []
    assert st["rejected"]["total"] == 0 and st["values"] == st["history_rows"]
    assert end_ms - 60_000 <= st["plant_time_ms"] <= end_ms + 30_000  # (one controller stamps 25 s early)
    assert st["ticks"] > (duration - 300) / 10  # it kept stepping after both jumps


@pytest.mark.slow
def test_a_site_stamping_in_seconds_then_microseconds_is_read_as_ms_and_reported(bms_broker, tmp_path, child_env):
    state = tmp_path / "state"
    con = start_connect(bms_broker, state, child_env, "--no-requests")
    duration = 900
    emulate(
        bms_broker,
        child_env,
        *("--scenario", SCENARIO, "--speed", "max", "--duration", f"{duration}s", "--plant-step", "20s"),
        *("--fault", "epoch:BMS:0.001", "--fault", "epoch:BMS:1000000@400s"),  # s, then s x 1e6 = us
    )
    st = wait_caught_up(state, START_MS + (duration - 40) * 1000)
    out = stop_connect(con)
    st = status(state)
    units = st["rejected"]["epoch_units"]
    assert set(units) == {"s", "us"} and sum(units.values()) == st["values"] == st["history_rows"]
    assert raised(state) == {} and st["clock"]["jumps_count"] == 0 and st["rejected"]["total"] == 0
    assert st["ticks"] >= duration / 10 - 3
    assert "timestamps not in ms, converted:" in out


@pytest.mark.slow
def test_each_sensor_fault_is_alarmed_on_the_sensor_that_explains_it_with_evidence_in_its_unit(
    bms_broker, tmp_path, child_env
):
    """Seven sensor faults, each in its own CDU row: a row meter +30 kW, rack returns +10 K and -14 K, a rack
    flow meter +30 L/min, a rack supply +0.9 K, a valve position -9 %, a primary flow meter +150 L/min. Each
    is alarmed on that point and nothing else anywhere (not the CDU return beside a bad rack return, not the
    return beside a bad flow or supply, not the flow meter for a bad valve)."""
    state = tmp_path / "state"
    con = start_connect(bms_broker, state, child_env, "--no-requests")
    faults = {  # fault -> (entity, point, unit, residual in that unit)
        "bias:M-hall-b-cdu09/power_kw:30": ("M-hall-b-cdu09", "meter/power_kw", "kW", 30.0),
        "bias:hall-a-r17-05/return_c:10": ("hall-a-r17-05", "rack/return_c", "degC", 10.0),
        "bias:hall-b-r22-02/return_c:-14": ("hall-b-r22-02", "rack/return_c", "degC", -14.0),
        "bias:hall-a-r06-09/flow_lpm:30": ("hall-a-r06-09", "rack/flow_lpm", "L/min", 30.0),
        "bias:hall-b-r12-03/supply_c:0.9": ("hall-b-r12-03", "rack/supply_c", "degC", 0.9),
        "bias:hall-a-cdu20/valve_pct:-9": ("hall-a-cdu20", "cdu/valve_pct", "%", -9.0),
        "bias:hall-b-cdu30/pri_flow_lpm:150": ("hall-b-cdu30", "cdu/pri_flow_lpm", "L/min", 150.0),
    }
    duration = 1200
    emu = ["--scenario", SCENARIO, "--speed", "max", "--duration", f"{duration}s", "--plant-step", "20s"]
    for spec in faults:
        emu += ["--fault", f"{spec}@240s"]
    emulate(bms_broker, child_env, *emu)
    wait_caught_up(state, START_MS + (duration - 40) * 1000)
    stop_connect(con)
    got = raised(state)
    want = {(e, "sensor_bias", p) for e, p, _, _ in faults.values()}
    assert set(got) == want, sorted(set(got) ^ want)
    for entity, pt, unit, residual in faults.values():
        ev = got[(entity, "sensor_bias", pt)]["evidence"]
        delay_s = (got[(entity, "sensor_bias", pt)]["time_ms"] - START_MS) / 1000 - 240
        print(f"{entity:15s} {pt:17s} after {delay_s:4.0f} s: {ev['residual']:+.2f} {ev['unit']}")
        assert ev["unit"] == unit and ev["residual"] == pytest.approx(residual, rel=0.25, abs=0.3)
        assert 0 <= delay_s <= 600


@pytest.mark.slow
def test_sigint_at_2000_values_per_s_is_answered_within_5_s_with_the_history_flushed(bms_broker, tmp_path, child_env):
    """Every point of campus-100mw every 3 s (6,006 points: 2,002 values/s, each step spread over it), paced in
    real time; connect gets SIGINT in the middle of it and must be gone within 5 s, its history holding every
    value it counted."""
    state = tmp_path / "state"
    con = start_connect(bms_broker, state, child_env, "--no-requests")
    emu_cmd = [sys.executable, "-m", "factory_twin", "emulate-bms", FACILITY, "--broker", bms_broker.url]
    emu_cmd += ["--speed", "1", "--start", "now", "--plant-step", "3s", "--every-step", "--duration", "5min"]
    emu = subprocess.Popen(emu_cmd, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 180  # start-up (slow on a busy machine) and metadata, then the sustained rate
        while not (state / "status.json").is_file() or status(state)["values"] < 20_000:
            assert time.monotonic() < end and emu.poll() is None, "no values into connect"
            time.sleep(0.5)
        v0, t0 = status(state)["values"], time.monotonic()
        time.sleep(8)
        rate = (status(state)["values"] - v0) / (time.monotonic() - t0)
        assert rate > 1700, f"only {rate:.0f} values/s into connect"
        t_sig = time.monotonic()
        con.send_signal(signal.SIGINT)
        out, _ = con.communicate(timeout=60)
        answered = time.monotonic() - t_sig
    finally:
        emu.send_signal(signal.SIGINT)
        emu.wait(30)
    print(f"{rate:.0f} values/s; SIGINT answered in {answered:.2f} s")
    assert con.returncode == 0 and answered < 5.0, out
    st = status(state)
    db = duckdb.connect(str(state / "history.duckdb"), read_only=True)
    rows = db.execute("SELECT count(*) FROM samples").fetchone()[0]
    db.close()
    assert rows == st["values"] == st["history_rows"] > 10_000
    assert "messages" in out
