"""Flexibility envelope on campus-100mw (6 h plans at 15 min) and the headroom analysis built on it."""

import numpy as np
import pytest
from factory_twin.optimization.studies.cases import model_for, plan
from factory_twin.optimization.studies.envelope import envelope_cell
from factory_twin.optimization.studies.runner import load_study, run_study
from factory_twin.twin.scenario.grid_signals import DREvent

TOL = 0.02


@pytest.fixture(scope="module")
def study():
    s = load_study("data/studies/headroom.toml")
    s["options"] |= {"horizon": "6h", "depth_tol": TOL, "dr_start": "2026-08-08T15:00:00"}
    s["sweep"] = {"duration_h": [0.25, 1.0, 4.0]}
    s["balancing_area"] |= {"years": [2016, 2018], "firm_mw": [1000.0, 3000.0]}
    return s


@pytest.fixture(scope="module")
def result(study, tmp_path_factory):
    return run_study(study, tmp_path_factory.mktemp("headroom"), serial=True, progress=False)


def test_reduction_shrinks_or_stays_as_the_event_grows(result):
    depth = result.depth.values
    assert (result.status == 0).all() and np.all((depth > 0.05) & (depth < 1))
    assert np.all(np.diff(depth) <= TOL)
    np.testing.assert_allclose(result.reduction_pct, 100 * result.depth, rtol=1e-12)
    np.testing.assert_allclose(result.reduction_mw, result.depth * result.baseline_mw, rtol=1e-12)
    assert np.all(result.tokens_lost > 0) and np.all(result.throughput_kept_event < 1)


def test_the_found_depth_holds_and_a_deeper_one_does_not(study, result):
    ctx = {k: study.get(k) for k in ("facility", "scenario", "options", "labels")}
    f, s, p = model_for(ctx, {})
    t0 = np.datetime64(p["dr_start"], "s")
    p |= {"start": str(t0 - np.timedelta64(1, "h"))}
    d = float(result.depth.sel(duration_h=4.0))
    status = []
    for depth in (d, d + TOL):
        ev = DREvent(t0, 4 * 3600.0, depth, 900.0, 3600.0)
        status.append(plan(f, s.with_changes(dr_events=(ev,)), p).attrs["status"])
    assert status[0] == "optimal" and status[1] != "optimal"
    with pytest.raises(ValueError, match="duration_h"):
        envelope_cell(ctx, duration_h=0.0)


def test_headroom_analysis(result):
    r = result
    assert r.flex_headroom_mw.dims == ("budget",) and np.all(r.flex_headroom_mw <= r.headroom_mw)
    flex, flat = r.flex_nonfirm_mw, r.nonfirm_mw
    assert np.all(flex <= flat * (1 + 1e-9)) and np.all(flex > 0)
    # non-firm share at the threshold hour stays within the 15-min envelope depth
    share = flex / (flex.firm_mw + flex)
    assert np.all(share <= float(r.depth.sel(duration_h=0.25)) + 1e-9)
