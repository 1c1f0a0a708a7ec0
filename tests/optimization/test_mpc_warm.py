"""Warm-started MPC re-plans (the LP kept in a ``WarmHighs`` and updated in place) against cold
builds of the same LP: campus-100mw, 2 h at 5 min, re-plans every 5 min across the DR event's
announcement, with a changing measured state."""

import numpy as np
import pytest
from factory_twin.optimization import MPC_OPTIONS, MPCController
from factory_twin.twin.simulation.controllers import TwinState
from factory_twin.twin.simulation.engine import simulate

OPTS = MPC_OPTIONS.updated(horizon="2h", step="5min", backend="highspy")


def _state(f, t, import_w, cap_frac):
    cap = f.min_cap_w + cap_frac * (f.tdp_w - f.min_cap_w)
    return TwinState(t, f.demand_w, cap, np.full(f.n_racks, 60.0), np.full(f.n_cdus, 35.0), 32.0, import_w,
                     np.nan, np.nan, 0.0)  # fmt: skip


def test_warm_replans_equal_cold_replans(campus, hot):
    warm = MPCController(campus, hot, OPTS, warm_start=True)
    cold = MPCController(campus, hot, OPTS, warm_start=False)
    t0 = hot.dr_events[0].announced - np.timedelta64(20, "m")  # the event enters the plans at k = 4
    base_w = None
    for k in range(8):
        t = t0 + np.timedelta64(300 * k, "s")
        imp = np.nan if k == 0 else base_w * (1.0 - 0.01 * k)  # measured import drifts
        s = _state(campus, t, imp, 1.0 - 0.05 * (k % 3))
        cw, cc = warm(s, t), cold(s, t)
        rw, rc = warm.log[-1], cold.log[-1]
        base_w = float(cold.plan.grid_import_w[0])
        assert np.isfinite(warm.plan.dr_target_w).any() == (t >= hot.dr_events[0].announced)
        assert rw.status == rc.status == "optimal"
        assert rw.objective == pytest.approx(rc.objective, rel=1e-6)
        # the first command is unique here (checked: the caps agree to the solver's tolerance)
        np.testing.assert_allclose(cw.gpu_cap_w, cc.gpu_cap_w, rtol=1e-6)
        np.testing.assert_allclose(warm.plan.grid_import_w, cold.plan.grid_import_w, rtol=1e-6)
    # rebuilt only for the first plan and the first measured import: the DR rows were there all along
    assert (warm.warm.warm, warm.warm.cold) == (6, 2)
    assert sum(r.warm for r in warm.log) == warm.warm.warm
    assert cold.warm is None and not any(r.warm for r in cold.log)


def test_warm_closed_loop_replans_equal_cold(campus, hot):
    """Along a closed loop driven by the warm controller (across the DR event's start), a cold
    re-plan from the same measured state reaches the same optimum at every re-plan. (The caps
    themselves need not agree: halls of one class are interchangeable in the LP, so the optimum
    can be a face, and warm and cold solves may return different vertices of it.)"""
    ev = hot.dr_events[0]
    warm = MPCController(campus, hot, OPTS, warm_start=True)
    cold = MPCController(campus, hot, OPTS, warm_start=False)

    def both(state, t):
        in_force = warm._last
        cmd = warm(state, t)
        cold._last = in_force  # the same command in force for the bias
        cold(state, t)
        return cmd

    both.period_s = warm.period_s
    kw = dict(start=ev.start - np.timedelta64(20, "m"), duration="50min", step="1s", plant_step="10s",
              record_every="60s")  # fmt: skip
    simulate(campus, hot, controller=both, **kw)
    assert len(warm.log) == len(cold.log) == 10
    assert warm.warm.warm == 8 and warm.warm.cold == 2  # the first plan and the first measured import
    np.testing.assert_allclose([r.objective for r in warm.log], [r.objective for r in cold.log], rtol=1e-6)
    np.testing.assert_allclose([r.bias_mw for r in warm.log], [r.bias_mw for r in cold.log], rtol=1e-9)
    assert [r.status for r in warm.log] == [r.status for r in cold.log]
    assert sum(bool(r.violations) for r in warm.log) == sum(bool(r.violations) for r in cold.log) >= 1
