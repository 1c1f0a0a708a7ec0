"""``dispatch``: GPU caps and BESS power over a horizon, as an xarray Dataset (``dispatch_plan``: the typed
:class:`optimization.plan.DispatchPlan` it is made from).

The stages in order: ``groups.make_groups`` (racks -> groups), ``linearization.forecast`` (the site
model per step), ``problem.make_problem`` (the ``Problem``), ``feasibility.check`` (hard limits
below the floor), ``solve.solve`` (a backend -> ``Solution``), ``plan.make_plan`` (the ``DispatchPlan``),
``plan.plan_dataset`` (the Dataset).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import xarray as xr
from factory_twin.models.units import MW
from factory_twin.optimization.backend_highspy import WarmHighs
from factory_twin.optimization.feasibility import check, explain_infeasible, validate_request
from factory_twin.optimization.groups import Groups, aggregate, group_drawn_w, make_groups
from factory_twin.optimization.linearization import Forecast, forecast
from factory_twin.optimization.options import DispatchOptions
from factory_twin.optimization.plan import DispatchPlan, make_plan, plan_dataset
from factory_twin.optimization.problem import make_problem
from factory_twin.optimization.solution import Solution
from factory_twin.optimization.solve import solve
from factory_twin.twin.scenario.inputs import facility_and_scenario
from factory_twin.twin.simulation.memory_budget import check_memory
from numpy.typing import NDArray

Array = NDArray[np.float64]

FORECAST_ARRAYS = 6  # [steps, racks] float64 arrays the dispatch forecast holds at once


def check_dispatch_memory(f, options: DispatchOptions, hint: str = "use a longer step or a shorter horizon") -> None:
    """Refuse (``ValueError`` with the estimate) a plan whose forecast would not fit in memory."""
    n = options.n_steps
    check_memory(n * f.n_racks * 8 * FORECAST_ARRAYS, f"dispatch: {n:,} steps x {f.n_racks:,} racks", hint)


def plan_times(scenario, start, options: DispatchOptions) -> NDArray[np.datetime64]:
    """Step start times of a plan from ``start`` (default: the scenario's start)."""
    t0 = np.datetime64(start if start is not None else scenario.start, "s")
    return t0 + (np.arange(options.n_steps) * options.step).astype("timedelta64[s]")


def dispatch(facility, scenario, options: DispatchOptions | None = None, **arguments) -> xr.Dataset:
    """Optimal GPU caps per group and BESS power over the horizon from ``start`` (default: scenario
    start): :func:`dispatch_plan` (the same arguments) as the Dataset ``factory-twin optimize`` writes.

    Returns
    -------
    xarray.Dataset with ``gpu_cap_w(time, group)`` and per-step ``grid_import_mw``,
    ``import_limit_mw``, ``it_power_mw``, ``cooling_power_mw``, ``throughput``, ``tokens_per_s``,
    ``bess_power_mw``, ``bess_soc_mwh``, ``price``...; attributes ``status`` (``"optimal"`` or why
    not), ``objective``, ``build_seconds``, ``solve_seconds``, ``conflicts``, ``violations``. When
    hard limits conflict before the solve, or the solve finds no solution, the variables are NaN and
    ``status`` says why.
    """
    return plan_dataset(dispatch_plan(facility, scenario, options, **arguments))


def dispatch_plan(
    facility,
    scenario,
    options: DispatchOptions | None = None,
    *,
    start=None,
    initial=None,
    known_at=None,
    extra_constraints: Callable | None = None,
    **option_values,
) -> DispatchPlan:
    """The plan over the horizon from ``start`` as a :class:`optimization.plan.DispatchPlan` (SI units; what
    :class:`optimization.plan_follower.PlanFollower` follows; :func:`dispatch` makes it a Dataset).

    Parameters
    ----------
    facility, scenario : twin Facility and Scenario (the scenario is the forecast), or their built-in
        names or TOML paths.
    options : :class:`optimization.options.DispatchOptions` (default: its defaults). Any of its
        fields may also be given as a keyword (``horizon="24h"``, ``soft=("dr",)``, ...); they
        override ``options``.
    start : first step (ISO time or datetime64).
    initial : ``twin.simulation.controllers.TwinState`` (or an object with ``grid_import_w`` and per-rack
        ``gpu_cap_w``): the first step ramps from it; at class x CDU grouping the CDU limits take its
        ``fws_supply_c`` (the measured facility-water supply) when it has one.
    known_at : include only DR events announced by this time (default: all events of the scenario).
    extra_constraints : ``f(model, problem)`` adding Pyomo components before the solve (forces the
        Pyomo backend).
    """
    facility, scenario = facility_and_scenario(facility, scenario)
    if options is not None and not isinstance(options, DispatchOptions):
        raise ValueError(f"options: expected DispatchOptions, got {type(options).__name__}")
    opts = (options or DispatchOptions()).updated(**option_values)
    f = facility
    check_dispatch_memory(f, opts)
    times = plan_times(scenario, start, opts)
    limit_mw = scenario.import_limit(times)
    validate_request(scenario, times, opts.horizon, opts.step, limit_mw)
    groups = make_groups(f, opts.grouping)
    return plan_horizon(
        f, scenario, groups, times, opts, initial=initial, known_at=known_at, extra_constraints=extra_constraints
    )


def plan_horizon(
    f,
    scenario,
    groups: Groups,
    times: NDArray[np.datetime64],
    options: DispatchOptions,
    *,
    initial=None,
    known_at=None,
    extra_constraints: Callable | None = None,
    bias_mw: float = 0.0,
    hold_steps: int = 1,
    warm: WarmHighs | None = None,
    pause_fixed: Array | None = None,
) -> DispatchPlan:
    """Forecast, build, pre-check and solve over ``times`` (no request validation; used by the MPC).

    ``bias_mw`` is added to the site model at every level (a measured-minus-predicted import
    offset); it shifts the cuts, the floor and the DR baseline alike. ``warm`` keeps the LP between
    calls and updates it in place (see :class:`optimization.backend_highspy.WarmHighs`). ``pause_fixed``
    holds the paused share of each group over the first ``hold_steps`` (NaN: free; see the MPC).
    """
    t0 = _time.perf_counter()
    step_s = options.step
    fc = forecast(f, scenario, groups, times, step_s, known_at=known_at)
    if bias_mw:
        fc = replace(fc, grid_mw=fc.grid_mw + bias_mw)
    fc = _gpu_targets_as_import_limit(fc, scenario)
    grid0, x0 = initial_state(initial, groups, f)
    stop0 = initial_stops(initial, groups, f)
    fws = getattr(initial, "fws_supply_c", None)
    fws = float(fws) if fws is not None and np.isfinite(fws) else None
    p = make_problem(
        f, scenario, groups, fc, options, grid0_mw=grid0, x0=x0, hold_steps=hold_steps, stop0=stop0,
        pause_fixed=pause_fixed, fws_supply_c=fws,
    )  # fmt: skip
    prep_s = _time.perf_counter() - t0
    bess_mw = p.bess.p_max_mw if p.bess else 0.0
    conflicts = check(p, times, bess_mw)
    if conflicts:
        sol = Solution("infeasible (hard limits below the floor)", np.nan, "none")
    else:
        sol = solve(p, options, extra_constraints, warm)
        if "infeasible" in sol.status.lower():
            conflicts = explain_infeasible(p, times, bess_mw)
    return make_plan(
        f,
        p,
        fc,
        groups,
        sol,
        conflicts="; ".join(map(str, conflicts)),
        facility=f.spec.name,
        scenario=scenario.name,
        solver=options.solver,
        grouping=groups.grouping,
        step_s=step_s,
        currency=scenario.signals.currency,
        prepare_seconds=prep_s,
    )


def _gpu_targets_as_import_limit(fc: Forecast, scenario) -> Forecast:
    """Grid targets metered at the GPUs become import limits through the site model (grid import rises with
    GPU power, so ``import <= model(target)`` holds exactly when ``GPU power <= target``)."""
    gpu = scenario.target_limit(fc.times, "gpu") if getattr(scenario, "grid_targets", ()) else None
    if gpu is None or not np.isfinite(gpu).any():
        return fc
    on = np.isfinite(gpu)
    lim = np.where(on, fc.at_gpu_mw("grid_mw", np.where(on, gpu, 0.0)), np.inf)
    return replace(fc, import_limit_mw=np.minimum(fc.import_limit_mw, lim))


def initial_stops(initial, groups: Groups, f) -> tuple[Array, Array] | None:
    """(paused, resized) shares per group (GPU-weighted means) from a twin state that reports job stops."""
    if getattr(initial, "paused", None) is None:
        return None
    return aggregate(groups, initial.paused, f.gpus), aggregate(groups, initial.resized, f.gpus)


def initial_state(initial, groups: Groups, f) -> tuple[float | None, Array | None]:
    """(import [MW], busy fraction per group) from a twin state, or (None, None)."""
    if initial is None:
        return None, None
    grid_w = float(initial.grid_import_w)
    x0 = group_drawn_w(f, groups, initial.gpu_cap_w)
    return (grid_w / MW if np.isfinite(grid_w) else None), x0 / groups.tdp_w
