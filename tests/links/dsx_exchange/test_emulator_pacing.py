"""The emulated BMS's timing, through a real Mosquitto: flat out, a step's readings all carry the step's
end; in real time they are spread over the step like a BMS scanning its controllers, each stamped when it
leaves: never later than it leaves, inside the step it samples."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from factory_twin.links.dsx_exchange.emulator import SLICE_S, BmsEmulator
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from factory_twin.twin import load_facility, load_scenario

STEP_S = 2.0


@pytest.fixture(scope="module")
def facility():
    return load_facility("campus-100mw")


def _run(facility, url: str, speed: float | None, duration_s: float) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Run the emulator; return its start [Unix ms], the rack readings per step and every rack value's
    timestamp and arrival [Unix ms]."""
    got: list[tuple[bytes, float]] = []
    lock = threading.Lock()

    def on_message(msg) -> None:
        with lock:
            got.append((msg.payload, time.time()))

    cfg = BrokerConfig.from_url(url)
    sub = MqttClient(cfg, on_message=on_message).start()
    sub.subscribe("BMS/v1/PUB/Value/Rack/#")
    time.sleep(0.3)
    t0 = int(time.time())
    client = MqttClient(cfg).start()
    emu = BmsEmulator(
        facility, load_scenario(None, facility), client, plant_step_s=STEP_S, start=str(np.datetime64(t0, "s")),
        every_step=True,
    )  # fmt: skip
    try:
        emu.run(duration_s, speed, t0_epoch_s=t0 if speed else None)
        per_step = sum(len(g.ids) for g in emu.cat.groups if g.signal.entity == "rack" and not g.signal.integration)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if len(got) >= per_step * duration_s / STEP_S:
                    break
            time.sleep(0.1)
    finally:
        client.stop()
        sub.stop()
    ts = np.array([json.loads(p)["timestamp"] for p, _ in got], np.int64)
    arrived = np.array([a * 1000 for _, a in got])
    return t0 * 1000, per_step, ts, arrived


def test_flat_out_every_reading_of_a_step_carries_the_step_end(facility, mosquitto):
    t0, _, ts, _ = _run(facility, mosquitto.url, None, 3 * STEP_S)
    steps = (ts - t0) / (STEP_S * 1000)
    assert sorted(set(steps.tolist())) == [1.0, 2.0, 3.0]


def test_real_time_readings_spread_over_the_step_and_stamped_when_they_leave(facility, mosquitto):
    t0, per_step, ts, arrived = _run(facility, mosquitto.url, 1.0, 4 * STEP_S)
    assert ts.size == 4 * per_step
    # never stamped later than it leaves (it arrives after it left); clocks on one machine, 5 ms of rounding
    assert np.all(ts <= arrived + 5), f"{np.sum(ts > arrived + 5)} values stamped after they arrived"
    # inside the step it samples: step k's readings are stamped from t0 + k * step until the next step
    per_step = np.sort(ts).reshape(4, -1)
    for k, stamps in enumerate(per_step, start=1):
        assert t0 + k * STEP_S * 1000 <= stamps.min() and stamps.max() < t0 + (k + 1) * STEP_S * 1000
        # spread: one slice every SLICE_S of the step's wall period, not one burst
        assert np.unique(stamps).size >= STEP_S / SLICE_S / 2
        assert stamps.max() - stamps.min() >= 0.5 * STEP_S * 1000


def test_a_stop_is_answered_within_the_step_not_after_it(facility, mosquitto):
    """Ctrl-C (``should_stop``) mid-step: the real-time run returns at once, not after the 20 s step's pacing."""
    client = MqttClient(BrokerConfig.from_url(mosquitto.url)).start()
    emu = BmsEmulator(facility, load_scenario(None, facility), client, plant_step_s=20.0)
    stop_at = time.monotonic() + 1.0
    try:
        t0 = time.monotonic()
        report = emu.run(3600.0, 1.0, lambda: time.monotonic() > stop_at)
        assert time.monotonic() - t0 < 5.0  # the first step's readings are due only 20 s in
        assert report["simulated_s"] == 0.0
    finally:
        client.stop()


def test_connect_lag_is_publication_to_arrival_at_any_plant_speed(mosquitto, tmp_path):
    """At --speed 60 from the scenario's start the stamps are months behind the wall clock and run 60x: the lag
    connect reports is still wall seconds from publication to arrival (issue 20 item 5: it read ~1.2e7 s)."""
    from factory_twin.links.dsx_exchange.connect import Connector

    facility = load_facility("emerald-phoenix")  # small: the emulator keeps its pace on a busy machine
    cfg = BrokerConfig.from_url(mosquitto.url)
    sub = MqttClient(cfg, client_id="lag-connect")
    con = Connector(facility, tmp_path, sub, requests=False)
    sub.start()
    stop = threading.Event()
    runner = threading.Thread(target=con.run, args=(stop.is_set,))
    runner.start()
    time.sleep(0.3)
    client = MqttClient(cfg).start()
    sent: dict[int, float] = {}  # the truth: each stamp's first publication on the wall clock
    publish_many = client.publish_many

    def timed(topics, payloads):
        sent.setdefault(json.loads(payloads[0])["timestamp"], time.time())
        publish_many(topics, payloads)

    client.publish_many = timed
    emu = BmsEmulator(facility, load_scenario(None, facility), client, plant_step_s=20.0)
    try:
        emu.run(600.0, 60.0)  # 10 s of wall time, 30 plant steps
        time.sleep(0.5)
    finally:
        stop.set()
        runner.join(30)
        client.stop()
        sub.stop()
    st = con.status()
    assert st["values"] > 1000
    assert con.now_ms < (time.time() - 30 * 86400) * 1000  # the plant clock is the scenario's, months ago
    # against the truth: processing time less the publication of the same stamp, above the fastest value
    at = np.array(con.intake.lag_at)
    stamp_ms = np.round((at - np.array(con.intake.lag_s)) * 1000).astype(np.int64)
    known = np.array([int(t) in sent for t in stamp_ms])
    truth = at[known] - np.array([sent[int(t)] for t in stamp_ms[known]])
    p50 = np.percentile(truth - truth.min(), 50)
    print(f"lag at --speed 60: p50 {st['lag_p50_s']:.3f} s (truth {p50:.3f} s), p99 {st['lag_p99_s']:.3f} s")
    assert known.sum() > 100 and truth.min() >= 0
    assert abs(st["lag_p50_s"] - p50) < 0.02 and 0 <= st["lag_p50_s"] < st["lag_p99_s"] < 10


def test_lag_recovers_the_wall_clock_delay_whatever_the_pace():
    """Stamps on a plant clock at 60x from an origin of its own, a start-up backlog of 3 s draining over the first
    5 s, then 20-80 ms: the delays come back to 2 ms; a plant on the wall clock is read as it is."""
    from factory_twin.links.dsx_exchange.lag import publication_lag

    rng = np.random.default_rng(5)
    published = 1.8e9 + np.sort(rng.uniform(0, 60, 2000))  # wall [s]
    delay = rng.uniform(0.02, 0.08, published.size) + np.clip(3.0 - (published - published[0]) * 0.6, 0, None)
    arrived = published + delay
    stamps = 1.786e9 + 60 * (published - published[0])  # 2026-08-07 on, 60x
    lag = publication_lag(arrived, stamps)
    # placed by the fastest value: the delay above the smallest one, to 2 ms (the jitter is 60 ms)
    np.testing.assert_allclose(lag, delay - delay.min(), atol=2e-3)
    np.testing.assert_allclose(publication_lag(arrived, published), delay, atol=1e-6)  # the wall clock: as it is
    assert np.isnan(publication_lag(arrived[:1], stamps[:1])).all()
