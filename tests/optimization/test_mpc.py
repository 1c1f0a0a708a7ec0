"""MPC in closed loop with the twin: campus-100mw, hot day, 25 % / 3 h DR event with 15 min
ramps."""

import numpy as np
from factory_twin.optimization import MPC_OPTIONS, MPCController
from factory_twin.twin.simulation.controllers import Controller, TwinState
from factory_twin.twin.simulation.engine import simulate

from factory_twin import twin


def test_mpc_is_a_controller_and_first_command_has_rack_caps(campus, hot):
    mpc = MPCController(campus, hot, MPC_OPTIONS.updated(horizon="30min", step="5min"), replan_every="5min")
    assert isinstance(mpc, Controller) and mpc.period_s == 300.0
    t = hot.dr_events[0].start - np.timedelta64(60, "m")
    state = TwinState(
        t,
        campus.demand_w,
        campus.tdp_w,
        np.full(campus.n_racks, 60.0),
        np.full(campus.n_cdus, 35.0),
        32.0,
        np.nan,
        np.nan,
        np.nan,
        0.0,
    )
    cmd = mpc(state, t)
    assert cmd.gpu_cap_w.shape == (campus.n_racks,)
    assert np.all(cmd.gpu_cap_w >= campus.min_cap_w) and np.all(cmd.gpu_cap_w <= campus.tdp_w)
    assert mpc.log[-1].status == "optimal"


def test_closed_loop_dr_event_within_one_percent_of_target(campus, hot):
    ev = hot.dr_events[0]
    start, duration = ev.start - np.timedelta64(30, "m"), "4h"
    kw = dict(start=start, duration=duration, step="1s", plant_step="10s", record_every="60s")
    base = simulate(campus, hot, **kw)
    mpc = MPCController(campus, hot, replan_every="5min")
    run = simulate(campus, hot, controller=mpc, **kw)
    t = run.time.values
    # records are stamped at the end of their minute: full depth from start + ramp to the end
    hold = (t > ev.start + np.timedelta64(int(ev.ramp_s), "s")) & (t <= ev.end)
    target = 0.75 * base.grid_import_mw.values[hold]
    err = run.grid_import_mw.values[hold] / target - 1
    assert np.max(np.abs(err)) <= 0.01, f"import off the target by up to {np.max(np.abs(err)):.3%}"
    assert np.all(run.die_temp_c.values <= campus.t_max_c[None, :] + 1e-9)
    kept = float(run.tokens_per_s.values[hold].sum() / base.tokens_per_s.values[hold].sum())
    print(f"throughput kept through the event: {kept:.4f}; worst import error {np.max(np.abs(err)):.3%}")
    assert 0.5 < kept <= 1.0
    assert all(r.status == "optimal" for r in mpc.log)


def test_mpc_follows_what_if_changes_of_the_running_twin(campus, hot):
    """The controller was built without the DR event; the twin's scenario has it: the plan must use it."""
    base = hot.with_changes(dr_events=())
    ev = hot.dr_events[0]
    mpc = MPCController(campus, base, MPC_OPTIONS.updated(horizon="30min", step="5min"), replan_every="5min")
    tw = twin.Twin(campus, hot, start=ev.start - np.timedelta64(10, "m"), controller=mpc)
    tw.advance()
    target = mpc.plan.dr_target_w
    assert np.isfinite(target).any()  # the event entered the plan
    inside = np.isfinite(target)
    assert np.all(mpc.plan.grid_import_w[inside] <= target[inside] * (1 + 1e-6))
    tw.scenario = hot.with_changes(dr_events=())
    tw.request_control()
    tw.advance()
    assert not np.isfinite(mpc.plan.dr_target_w).any()  # cleared again


def test_whole_pauses_stop_at_least_the_gpus_of_the_fractional_plan():
    from factory_twin.optimization.mpc import whole_pauses

    gpus = np.array([32.0, 48.0, 32.0, 48.0, 8.0])
    # 0.3 x 32 + 0.6 x 48 = 38.4 GPUs fractionally paused: the 48-GPU job (most paused) covers them
    np.testing.assert_array_equal(whole_pauses(np.array([0.3, 0.6, 1.0, 0.0, 0.2]), gpus), [0, 1, 1, 0, 0])
    # 0.9 x 8 + 0.5 x 32 = 23.2: the 8-GPU job is not enough, the next one joins
    np.testing.assert_array_equal(whole_pauses(np.array([0.5, 0.0, 0.0, 0.0, 0.9]), gpus), [1, 0, 0, 0, 1])
    np.testing.assert_array_equal(whole_pauses(np.array([0.0, 1.0, 0.0, 0.0, 0.0]), gpus), [0, 1, 0, 0, 0])
