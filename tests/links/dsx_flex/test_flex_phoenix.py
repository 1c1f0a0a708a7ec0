"""The Emerald AI Phoenix field test (SRP, 4 May 2025) replayed closed loop: signed targets over a real
Mosquitto, the flex agent's MPC drives the twin; the issue's acceptance figures."""

from __future__ import annotations

import numpy as np
import pytest
from factory_twin.links.dsx_flex.replay import run_phoenix
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from factory_twin.twin.scenario.scenario import GridTarget
from factory_twin.twin.simulation.controllers import UniformCapToTarget
from factory_twin.twin.simulation.engine import Twin

from factory_twin import twin


@pytest.fixture(scope="module")
def phoenix():
    f = twin.load_facility("emerald-phoenix")
    return f, twin.load_scenario("srp-2025-05-04", f)


@pytest.mark.slow
def test_phoenix_tracks_the_cut_with_every_job_above_its_floor(mosquitto, phoenix):
    f, sc = phoenix
    client = MqttClient(BrokerConfig.from_url(mosquitto.url)).start()
    sender = MqttClient(BrokerConfig.from_url(mosquitto.url)).start()
    try:
        r = run_phoenix(f, sc, "caps", client=client, sender=sender)
    finally:
        client.stop()
        sender.stop()
    assert r.refusals == []
    assert r.pre_event_kw == pytest.approx(float(f.gpus @ f.demand_w) / 1e3, rel=1e-6)
    assert r.hold_below_pre_event == pytest.approx(0.25, abs=0.005)
    assert r.rmse_hold < 0.01  # acceptance: within 1 % (1-min RMSE in the hold)
    assert r.floors_met()
    assert r.weighted_window >= 0.95  # acceptance (Emerald field: 0.91)
    # the Flex 1 job keeps more than the Flex 3 pre-training jobs in the hold
    assert r.jobs["infer-llama8b-48a"]["hold"] > r.jobs["pt-mpt13b"]["hold"]


def test_tracking_pairs_each_minute_with_the_limit_in_force_over_it(phoenix):
    """Issue 20 item 6: each minute's mean GPU power is compared with the limit of that minute (the schedule's
    level), not with the next minute's (a step's end is the next step's start)."""
    from factory_twin.links.dsx_flex.replay import HOLD, RAMP_DOWN, RAMP_MIN

    f, sc = phoenix
    r = run_phoenix(f, sc, "uniform")
    start, limit = r.minutes["start"], r.minutes["limit_w"]
    pre = r.pre_event_kw * 1e3
    minute = np.timedelta64(60, "s")
    for k in range(RAMP_MIN):  # the k-th minute of the ramp down holds (k+1)/15 of the 25 % cut, whole
        (i,) = np.flatnonzero(start == RAMP_DOWN + k * minute)
        assert limit[i] == pytest.approx(pre * (1 - 0.25 * (k + 1) / RAMP_MIN), rel=1e-12)
    hold = (start >= HOLD[0]) & (start < HOLD[1])
    np.testing.assert_allclose(limit[hold], 0.75 * pre, rtol=1e-12)
    before = start < RAMP_DOWN
    np.testing.assert_allclose(limit[before], 102.4e3, rtol=1e-12)  # the feed's default constraint
    gpu = r.minutes["gpu_w"]
    assert r.rmse_hold == pytest.approx(np.sqrt(np.mean((gpu[hold] / limit[hold] - 1) ** 2)), rel=1e-12)


def test_uniform_cap_is_the_highest_single_cap_under_the_target(phoenix):
    f, sc = phoenix
    t = np.datetime64("2025-05-04T17:00:00")
    target_mw = 0.070
    scn = sc.with_changes(grid_targets=(GridTarget(t, None, target_mw, "gpu"),))
    ctl = UniformCapToTarget(f)
    tw = Twin(f, scn, start=str(t), controller=ctl)
    cap = ctl(tw.state(), t).gpu_cap_w
    assert np.ptp(cap / f.tdp_w) == 0  # one cap fraction for all
    drawn = float(f.gpus @ f.drawn_w(cap))
    above = float(f.gpus @ f.drawn_w(cap + (1 - float(np.max(f.min_cap_w / f.tdp_w))) / ctl.levels * f.tdp_w))
    assert drawn <= target_mw * 1e6 < above
    no_target = ctl(tw.state(), t - np.timedelta64(60, "s")).gpu_cap_w
    np.testing.assert_array_equal(no_target, f.tdp_w)


@pytest.mark.slow
def test_pausing_and_resizing_hold_a_cut_below_the_minimum_caps_and_idle_above_them(phoenix):
    f, sc = phoenix
    floor_kw = float(f.gpus @ f.drawn_w(f.min_cap_w)) / 1e3  # every GPU at its lowest useful cap
    caps = run_phoenix(f, sc, "caps", depth=0.5)
    stops = run_phoenix(f, sc, "pause+resize", depth=0.5)
    assert caps.hold_target_kw < floor_kw < caps.pre_event_kw * (1 - 0.45)
    # caps alone stop at the minimum-cap floor and miss the target by its distance from it
    assert caps.hold_below_pre_event == pytest.approx(1 - floor_kw / caps.pre_event_kw, abs=0.015)
    assert caps.rmse_hold > 0.03
    # stopping jobs reaches below it: on target, every job at or above its floor over the window
    assert stops.rmse_hold < 0.02 and stops.floors_met()
    assert stops.hold_below_pre_event == pytest.approx(0.5, abs=0.01)
    assert stops.stop_energy_kwh > 0
    # at the published 25 % cut the caps' curve beats any stop (concave above the chord from idle): unused
    published = run_phoenix(f, sc, "pause+resize")
    assert published.stop_energy_kwh == 0 and published.pauses == 0
    assert published.weighted_window == pytest.approx(0.953, abs=0.002)
