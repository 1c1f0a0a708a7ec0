"""The engine end to end: analytic RC response, pipe delay, convergence, energy books, hot-day chain."""

from pathlib import Path

import numpy as np
import pytest
from factory_twin.twin.scenario.scenario import ScenarioSpec, WorkloadProfile, build_scenario
from scipy.linalg import expm

from factory_twin import twin

BENCH = Path(__file__).parents[1] / "data" / "one-rack.toml"


@pytest.fixture(scope="module")
def bench():
    return twin.load_facility(BENCH)


@pytest.fixture(scope="module")
def campus():
    return twin.load_facility("campus-100mw")


def _winter(f, **workload):
    spec = ScenarioSpec(start="2026-01-15T00:00:00", workload={k: WorkloadProfile(**v) for k, v in workload.items()})
    return build_scenario(spec, f, None, "test")


def test_single_rack_reproduces_two_node_step_response(bench):
    """Cap step at t=0 from steady state; die temperature vs the modal solution of the 2x2 ODE (expm)."""
    f = bench
    sc = _winter(f)
    ds = twin.simulate(
        f,
        sc,
        duration="300s",
        step="1s",
        plant_step="10s",
        record_every="10s",
        controller=twin.FixedCap(f.tdp_w, f.min_cap_w, 0.6),
    )
    p0, p1 = float(f.demand_w[0]), 0.6 * float(f.tdp_w[0])
    r1, r2, c1, c2 = (float(a[0]) for a in (f.r_die_plate_k_w, f.r_plate_coolant_k_w, f.c_die_j_k, f.c_plate_j_k))
    a = np.array([[-1 / (r1 * c1), 1 / (r1 * c1)], [1 / (r1 * c2), -(1 / r1 + 1 / r2) / c2]])
    theta0 = np.array([p0 * (r1 + r2), p0 * r2])  # steady state over the local coolant
    theta_inf = np.array([p1 * (r1 + r2), p1 * r2])
    t = (ds.time.values - np.datetime64("2026-01-15T00:00:00")).astype(float)
    expected = np.array([theta_inf + expm(a * ti) @ (theta0 - theta_inf) for ti in t])[:, 0]
    t_cool = float(ds.tcs_supply_c[-1, 0])  # held at setpoint; the rack rise is ~1 mK at this flow
    die = ds.die_temp_c.values[:, 0].astype(float)
    assert t_cool == pytest.approx(f.spec.cooling.tcs.supply_setpoint_c, abs=1e-6)
    np.testing.assert_allclose(die - t_cool, expected, atol=5e-3)  # float32 output, 1 mK rise
    assert theta0[0] - (die[-1] - t_cool) > 10.0  # a real transient was exercised


def test_adaptive_interval_step_equals_stepping_every_rack_each_second(campus, monkeypatch):
    from factory_twin.twin.simulation import engine

    sc = twin.load_scenario("hot-day-dr", campus)
    kw = {"start": "2026-08-08T15:50:00", "duration": "20min", "record_every": "60s"}
    ctl = twin.FixedCap(campus.tdp_w, campus.min_cap_w, 0.7)
    fast = twin.simulate(campus, sc, controller=ctl, **kw)
    monkeypatch.setattr(engine, "HOT_MARGIN_K", 1e6)  # every rack takes the 1 s steps
    monkeypatch.setattr(engine.Twin, "_stays_below_limit", lambda self, idx, *a: np.zeros(idx.size, bool))
    slow = twin.simulate(campus, sc, controller=ctl, **kw)
    assert float(fast.throttled_gpus.max()) == 0.0
    np.testing.assert_allclose(fast.die_temp_c, slow.die_temp_c, rtol=1e-6)
    np.testing.assert_allclose(fast.grid_import_mw, slow.grid_import_mw, rtol=1e-12)


def test_racks_near_the_limit_that_never_reach_it_take_the_interval_step(campus, monkeypatch):
    """Uncapped afternoon 4.5 K hotter than the hot day (some racks throttle): racks within the margin whose
    sampled die path stays below t_max skip the 1 s steps; the result equals stepping them every second."""
    from factory_twin.twin.simulation import engine

    sc = twin.load_scenario("hot-day-dr", campus).with_changes(offset_k=4.5)  # plant short: supply floats up
    kw = {"start": "2026-08-08T14:00:00", "duration": "10min", "record_every": "60s"}
    pruned = []
    check = engine.Twin._stays_below_limit

    def counting(self, idx, *a):
        out = check(self, idx, *a)
        pruned.append(int(out.sum()))
        return out

    monkeypatch.setattr(engine.Twin, "_stays_below_limit", counting)
    fast = twin.simulate(campus, sc, **kw)
    monkeypatch.setattr(engine.Twin, "_stays_below_limit", lambda self, idx, *a: np.zeros(idx.size, bool))
    slow = twin.simulate(campus, sc, **kw)
    assert sum(pruned) > 0 and float(fast.throttled_gpus.max()) > 0
    np.testing.assert_allclose(fast.die_temp_c, slow.die_temp_c, rtol=1e-6)
    np.testing.assert_allclose(fast.throttled_gpus, slow.throttled_gpus, atol=0)
    np.testing.assert_allclose(fast.grid_import_mw, slow.grid_import_mw, rtol=1e-12)


def test_heat_step_reaches_plant_after_pipe_delay(campus):
    f = campus
    sc = _winter(f)
    ds = twin.simulate(
        f,
        sc,
        duration="240s",
        step="1s",
        plant_step="5s",
        record_every="5s",
        controller=twin.FixedCap(f.tdp_w, f.min_cap_w, 0.5),
    )
    tw = twin.Twin(f, sc)
    delay_s = f.spec.cooling.facility_water.return_volume_m3 / tw.fws_v_dot
    tcs_delay_s = f.spec.cooling.tcs.loop_volume_l * 1e-3 / float(f.tcs_v_dot_m3_s[0])
    ret = ds.fws_return_c.values
    t = (ds.time.values - sc.start).astype(float)
    changed = t[np.flatnonzero(np.abs(ret - ret[0]) > 1e-6)[0]]
    # the drop leaves the racks at once (die RC ~ seconds), crosses the TCS leg, then the facility pipe
    assert delay_s + tcs_delay_s - 5.0 <= changed <= delay_s + tcs_delay_s + 10.0
    assert 20.0 < delay_s < 200.0


def test_results_converge_as_steps_shrink(bench):
    """A 7.3 s training power oscillation varies the input inside steps: the mean die temperature
    converges as the thermal step shrinks (errors vs a 1/32 s reference fall step by step)."""
    f = bench
    sc = _winter(f, training={"oscillation_depth": 0.4, "oscillation_period_s": 7.3, "oscillation_duty": 0.55})

    def mean_die(step):
        ds = twin.simulate(f, sc, duration="140s", step=step, plant_step="20s", record_every="20s")
        return float(ds.die_temp_c[:, 0].mean())

    ref = mean_die(1 / 32)
    errs = [abs(mean_die(s) - ref) for s in (1.0, 0.25, 1 / 16)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.02
    assert errs[0] > 0.05  # the coarse step really differs: the test can fail


def test_energy_books_close(campus):
    f = campus
    sc = twin.load_scenario("hot-day-dr", f)
    ds = twin.simulate(
        f,
        sc,
        start="2026-08-08T15:30:00",
        duration="30min",
        step="1s",
        plant_step="10s",
        controller=twin.FixedCap(f.tdp_w, f.min_cap_w, 0.8),
    )
    assert abs(ds.attrs["heat_book_residual"]) < 1e-6
    assert abs(ds.attrs["electric_book_residual"]) < 1e-6
    # grid = IT + losses + cooling - BESS, per record
    np.testing.assert_allclose(
        ds.grid_import_mw, ds.it_power_mw + ds.losses_mw + ds.cooling_power_mw - ds.bess_power_mw, rtol=1e-9
    )
    for name, var in ds.data_vars.items():
        assert "units" in var.attrs, name


def test_hot_afternoon_chain_and_heatwave_throttling(campus):
    f = campus
    sc = twin.load_scenario("hot-day-dr", f)
    night = twin.simulate(f, sc, start="2026-08-08T04:00:00", duration="10min", record_every="60s")
    day = twin.simulate(f, sc, start="2026-08-08T15:00:00", duration="10min", record_every="60s")
    assert float(day.wet_bulb_c.max()) > 27.5
    assert float(day.fws_supply_c.mean()) >= float(night.fws_supply_c.mean())
    assert float(day.fan_power_mw.mean()) > float(night.fan_power_mw.mean())
    assert float(day.water_use_kg_s.mean()) > 0.0 or float(day.chiller_power_mw.mean()) > 0.0
    assert float(day.pue.mean()) > float(night.pue.mean())
    hot = sc.with_changes(offset_k=9.0)
    wave = twin.simulate(f, hot, start="2026-08-08T14:00:00", duration="20min", record_every="60s")
    assert float(wave.tcs_supply_c.max()) > f.spec.cooling.tcs.supply_setpoint_c + 1.0
    assert float(wave.throttled_gpus.max()) > 0.0
    assert float(wave.die_temp_c.max()) <= float(f.t_max_c.max()) + 1.0


def _bench_with(text_change: tuple[str, str]):
    from factory_twin.twin.facility.assembly import assemble, rack_catalog
    from factory_twin.twin.facility.spec import parse_facility

    text = BENCH.read_text().replace(*text_change)
    return assemble(parse_facility(text, "bench", set(rack_catalog())), rack_catalog())


def test_fitted_drawn_power_under_a_cap():
    """With ``drawn_power = "fit"`` a capped GPU draws the class's fitted mean (below the cap), the uncapped
    draw is unchanged, and the LP's draw maps back to the cap that yields it; a curve without a fit is an error
    naming the key."""
    from factory_twin.twin.facility.curves import load_drawn
    from factory_twin.twin.facility.spec import SpecError
    from factory_twin.twin.simulation.controllers import FixedCap
    from factory_twin.twin.simulation.engine import Twin

    f = _bench_with(('curve = "training"', 'curve = "training"\ndrawn_power = "fit"'))
    sc = _winter(f)
    tw = Twin(f, sc, plant_step_s=10.0, controller=FixedCap(f.tdp_w, f.min_cap_w, 0.75))
    tw.advance()
    expected = load_drawn("training").drawn(0.75) * f.tdp_w
    np.testing.assert_allclose(tw.gpu_power_w, expected, rtol=1e-12)
    assert np.all(tw.gpu_power_w < 0.75 * f.tdp_w - 5.0)
    np.testing.assert_allclose(f.drawn_w(f.tdp_w), f.demand_w, rtol=1e-9)
    np.testing.assert_allclose(f.cap_for_drawn_w(expected), 0.75 * f.tdp_w, rtol=1e-6)
    with pytest.raises(SpecError, match=r"workloads\.0\.drawn_power"):
        _bench_with(('curve = "training"', 'curve = "v100-bert"\ndrawn_power = "fit"'))


def test_a_plant_step_off_the_clock_is_refused():
    """The twin's clock counts whole seconds: a 0.5 s plant step would never move it (round(0.5) == 0)."""
    from factory_twin.twin.simulation.engine import Twin

    f = _bench_with(("", ""))
    with pytest.raises(ValueError, match=r"plant_step: must be a whole number of seconds, got 0.5 s"):
        Twin(f, _winter(f), step_s=0.5, plant_step_s=0.5)
