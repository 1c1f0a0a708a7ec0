"""``dispatch``: GPU caps and BESS power over a horizon, as an xarray Dataset (MW/MWh/W at this
edge)."""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import xarray as xr
from factory_twin.optimization.build import S_PER_H, Forecast, build_problem, forecast
from factory_twin.optimization.feasibility import check, explain_infeasible, validate_request, violations
from factory_twin.optimization.groups import Groups, make_groups
from factory_twin.optimization.problem import Problem
from factory_twin.optimization.solve import solve_problem
from factory_twin.twin.timeparse import seconds
from numpy.typing import NDArray

Array = NDArray[np.float64]


def plan_times(scenario, start, horizon, step) -> tuple[NDArray[np.datetime64], float, float]:
    """Step start times, step [s] and horizon [s]; the horizon must hold a whole number of steps."""
    step_s, horizon_s = seconds(step, "step"), seconds(horizon, "horizon")
    n = horizon_s / step_s
    if abs(n - round(n)) > 1e-9 or round(n) < 1:
        raise ValueError(f"horizon: {horizon_s:g} s must be a whole multiple of step {step_s:g} s")
    t0 = np.datetime64(start if start is not None else scenario.start, "s")
    return t0 + (np.arange(round(n)) * step_s).astype("timedelta64[s]"), step_s, horizon_s


def dispatch(
    facility,
    scenario,
    start=None,
    horizon: str | float = "24h",
    step: str | float = "5min",
    soft=(),
    solver: str = "simplex",
    time_limit: float = 300,
    threads: int = 1,
    grouping: str = "hall",
    backend: str = "auto",
    extra_constraints: Callable | None = None,
    initial=None,
    penalty_per_mwh: float | None = None,
    smoothing_floor_w: float | None = None,
    smoothing_ramp_w_s: float | None = None,
    known_at=None,
) -> xr.Dataset:
    """Optimal GPU caps per group and BESS power over ``horizon`` from ``start`` (default: scenario
    start).

    Parameters
    ----------
    facility, scenario : twin Facility and Scenario (the scenario is the forecast).
    horizon, step : durations like ``"24h"``, ``"5min"`` or seconds.
    soft : limits turned into penalized slacks, from ``optimization.problem.SOFT_LIMITS``.
    solver : ``"simplex"``, ``"ipx"`` (crossover choose), ``"pdlp"``; time_limit [s]; threads.
    grouping : ``"hall"`` (class x hall) or ``"cdu"`` (class x CDU).
    backend : ``"pyomo"``, ``"highspy"`` (matrix path) or ``"auto"`` (by size).
    extra_constraints : ``f(model, problem)`` adding Pyomo components before the solve.
    initial : ``twin.controllers.TwinState`` (or an object with ``grid_import_w`` and per-rack
        ``gpu_cap_w``): the first step ramps from it.
    penalty_per_mwh : price of soft slacks [currency/MWh]; default in
    :func:`optimization.build.default_penalty`.
    smoothing_floor_w, smoothing_ramp_w_s : per-GPU power-smoothing floor [W] and ramp [W/s].
    known_at : include only DR events announced by this time (default: all events of the scenario).

    Returns
    -------
    xarray.Dataset with ``gpu_cap_w(time, group)`` and per-step ``grid_import_mw``,
    ``import_limit_mw``, ``it_power_mw``, ``cooling_power_mw``, ``throughput``, ``tokens_per_s``,
    ``bess_power_mw``, ``bess_soc_mwh``, ``price``...; attributes ``status`` (``"optimal"`` or why
    not), ``objective``, ``build_seconds``, ``solve_seconds``, ``conflicts``, ``violations``. When
    hard limits conflict before the solve, or the solve finds no solution, the variables are NaN and
    ``status`` says why.
    """
    f = facility
    times, step_s, horizon_s = plan_times(scenario, start, horizon, step)
    validate_request(
        scenario,
        times,
        horizon_s,
        step_s,
        scenario.import_limit(times, f.spec.grid.import_limit_mw),
    )
    groups = make_groups(f, grouping)
    return plan_horizon(
        f,
        scenario,
        groups,
        times,
        step_s,
        soft=soft,
        solver=solver,
        time_limit=time_limit,
        threads=threads,
        backend=backend,
        extra_constraints=extra_constraints,
        initial=initial,
        penalty_per_mwh=penalty_per_mwh,
        smoothing_floor_w=smoothing_floor_w,
        smoothing_ramp_w_s=smoothing_ramp_w_s,
        known_at=known_at,
    )


def plan_horizon(
    f,
    scenario,
    groups: Groups,
    times: NDArray[np.datetime64],
    step_s: float,
    *,
    soft=(),
    solver="simplex",
    time_limit=300.0,
    threads=1,
    backend="auto",
    extra_constraints=None,
    initial=None,
    penalty_per_mwh=None,
    smoothing_floor_w=None,
    smoothing_ramp_w_s=None,
    known_at=None,
    bias_mw: float = 0.0,
    hold_steps: int = 1,
) -> xr.Dataset:
    """Forecast, build, pre-check and solve over ``times`` (no request validation; used by the MPC).

    ``bias_mw`` is added to the site model at every level (a measured-minus-predicted import
    offset); it shifts the cuts, the floor and the DR baseline alike.
    """
    t0 = _time.perf_counter()
    fc = forecast(f, scenario, groups, times, step_s, known_at=known_at)
    if bias_mw:
        fc = replace(fc, grid_mw=fc.grid_mw + bias_mw)
    grid0, x0 = initial_state(initial, groups)
    p = build_problem(
        f,
        scenario,
        groups,
        fc,
        step_s,
        soft=soft,
        penalty_per_mwh=penalty_per_mwh,
        smoothing_floor_w=smoothing_floor_w,
        smoothing_ramp_w_s=smoothing_ramp_w_s,
        grid0_mw=grid0,
        x0=x0,
        hold_steps=hold_steps,
    )
    prep_s = _time.perf_counter() - t0
    conflicts = check(p, times, p.bess.p_max_mw if p.bess else 0.0)
    attrs = {
        "facility": f.spec.name,
        "scenario": scenario.name,
        "solver": solver,
        "grouping": "cdu" if groups.names[0].split("@")[1].startswith("cdu-") else "hall",
        "step_s": step_s,
        "currency": scenario.signals.currency,
        "prepare_seconds": prep_s,
        "conflicts": "; ".join(map(str, conflicts)),
    }
    if conflicts:
        failed = {
            "status": "infeasible (hard limits below the floor)",
            "objective": np.nan,
            "build_seconds": 0.0,
            "solve_seconds": 0.0,
            "backend": "none",
        }
        return plan_dataset(p, fc, groups, None, attrs | failed)
    res, values, build_s, used = solve_problem(p, backend, solver, time_limit, threads, extra_constraints)
    if "infeasible" in res.status.lower():
        attrs["conflicts"] = "; ".join(map(str, explain_infeasible(p, times, p.bess.p_max_mw if p.bess else 0.0)))
    attrs |= {
        "status": res.status,
        "objective": res.objective,
        "build_seconds": build_s,
        "solve_seconds": res.solve_seconds,
        "backend": used,
    }
    return plan_dataset(p, fc, groups, values, attrs)


def initial_state(initial, groups: Groups) -> tuple[float | None, Array | None]:
    """(import [MW], busy fraction per group) from a twin state, or (None, None)."""
    if initial is None:
        return None, None
    grid_w = float(initial.grid_import_w)
    cap = np.asarray(initial.gpu_cap_w, float)
    x0 = np.minimum(np.bincount(groups.rack_group, cap) / np.bincount(groups.rack_group), groups.demand_w)
    return (grid_w / 1e6 if np.isfinite(grid_w) else None), x0 / groups.tdp_w


def plan_dataset(p: Problem, fc: Forecast, groups: Groups, values: dict[str, Array] | None, attrs: dict) -> xr.Dataset:
    """The plan as a Dataset; all variables NaN when ``values`` is None (no solution)."""
    T, G = p.busy_mw.shape
    if values is None:
        nan = np.full((T, G), np.nan)
        values = {"x": nan, "grid_mw": np.full(T, np.nan)}
    x = values["x"]
    y = np.min(p.seg_a[None] + p.seg_b[None] * x[..., None], axis=2)
    gpu_mw = p.gpu_mw(x)
    zeros = np.zeros(T)
    ch, dis = values.get("bess_charge_mw", zeros), values.get("bess_discharge_mw", zeros)
    soc = values.get("bess_soc_mwh", np.full(T, p.bess.e0_mwh) if p.bess else zeros)
    tok = np.sum(p.tokens_per_s * y, axis=1)
    tok_unc = np.sum(p.tokens_per_s * p.y_uncapped, axis=1)
    grid = values["grid_mw"]
    dt_s = p.dt_h * S_PER_H
    value = float(np.sum(p.value_per_token * p.tokens_per_s * y) * dt_s)
    energy = float(np.sum(p.price_per_mwh * grid) * p.dt_h)
    carbon = float(np.sum(p.carbon_cost_per_mwh * grid) * p.dt_h)
    viol = violations(p, values, fc.times) if "slack_" in "".join(values) else []
    attrs = attrs | {
        "token_value": value,
        "energy_cost": energy,
        "carbon_cost": carbon,
        "violations": "; ".join(map(str, viol)),
        "optimal": int(attrs.get("status") == "optimal"),
    }
    t, g = ("time",), ("time", "group")

    def var(dims, data, units, desc):
        return xr.Variable(dims, np.asarray(data, float), {"units": units, "description": desc})

    cur = attrs.get("currency", "")
    data = {
        "gpu_cap_w": var(g, x * groups.tdp_w, "W", "GPU power cap per GPU of each group"),
        "grid_import_mw": var(t, grid, "MW", "planned grid import (after the BESS)"),
        "import_limit_mw": var(t, p.import_limit_mw, "MW", "import limit"),
        "dr_target_mw": var(
            t,
            np.where(np.isfinite(p.dr_cap_mw), p.dr_cap_mw, np.nan),
            "MW",
            "demand-response target (1 - depth) x baseline",
        ),
        "baseline_mw": var(t, fc.baseline_mw, "MW", "uncapped forecast import"),
        "floor_mw": var(t, fc.floor_mw, "MW", "import with every group at its minimum cap"),
        "gpu_power_mw": var(t, gpu_mw, "MW", "campus GPU power"),
        "it_power_mw": var(t, fc.at_gpu_mw("it_mw", gpu_mw), "MW", "IT power (PSU input)"),
        "cooling_power_mw": var(t, fc.at_gpu_mw("cooling_mw", gpu_mw), "MW", "cooling power"),
        "throughput": var(
            t,
            np.divide(tok, tok_unc, out=np.ones(T), where=tok_unc > 0),
            "1",
            "tokens over uncapped tokens",
        ),
        "tokens_per_s": var(t, tok, "1/s", "tokens per second"),
        "tokens_uncapped_per_s": var(t, tok_unc, "1/s", "tokens per second uncapped"),
        "bess_power_mw": var(t, dis - ch, "MW", "BESS power at the meter (> 0 discharges)"),
        "bess_soc_mwh": var(t, soc, "MWh", "BESS stored energy at the end of the step"),
        "price": var(t, p.price_per_mwh, f"{cur}/MWh", "energy price"),
        "carbon_cost": var(t, p.carbon_cost_per_mwh, f"{cur}/MWh", "carbon cost per MWh imported"),
        "dry_bulb_c": var(t, fc.dry_bulb_c, "degC", "forecast dry bulb"),
        "wet_bulb_c": var(t, fc.wet_bulb_c, "degC", "forecast wet bulb"),
    }
    coords = {
        "time": fc.times,
        "group": list(groups.names),
        "group_class": ("group", [n.split("@")[0] for n in groups.names]),
        "group_zone": ("group", groups.zone),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
