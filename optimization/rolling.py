"""Rolling day-ahead dispatch over a long period (``factory-twin optimize ... --duration 1y``).

One plan per horizon (default a day at 5 min): plan ``k`` starts at ``start + k x horizon`` and is
planned on its own with the scenario as the forecast, exactly as ``dispatch(..., start=...)`` plans that
day (each starts from the spec's BESS energy; no state passes between plans). The plans run in parallel
on Dask (or serially) and stream into one NetCDF, resumable after a kill
(:mod:`factory_twin.twin.runs.streamed`).

Output: every per-step variable of the plans on one ``time`` axis (the step starts; ``gpu_cap_w`` over
``time`` and ``group``, the groups named in the ``group_names``/``group_classes`` attributes), per plan
(``segment``): ``plan_optimal``, ``plan_objective``, ``plan_build_s``, ``plan_solve_s``, ``segment_wall_s``,
``segment_cpu_s``; attributes: the sums over the plans of :func:`~factory_twin.optimization.plan.plan_kpis`
(``*_total``: objective and its parts, grid energy, MWh curtailed, tokens), the peak import, the number of
optimal plans and, for the others, their status (``plans_not_optimal``), and the soft-limit
violations by plan (``violations``): a plan that is not optimal is never silent.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import numpy as np
import xarray as xr
from factory_twin.models.units import S_PER_H
from factory_twin.optimization.dispatch import dispatch
from factory_twin.optimization.feasibility import validate_request
from factory_twin.optimization.options import DispatchOptions
from factory_twin.optimization.plan import plan_kpis
from factory_twin.twin.runs.provenance import fingerprint
from factory_twin.twin.runs.streamed import Layout, Summary, run_streamed
from factory_twin.twin.scenario.timeparse import seconds

SUMMED = ("objective", "token_value", "energy_cost", "carbon_cost", "energy_mwh", "mwh_curtailed", "tokens")


def plan_starts(start, duration: str | float, options: DispatchOptions) -> np.ndarray:
    """Start times of the plans covering ``duration`` from ``start`` (the last may run past its end)."""
    n = math.ceil(seconds(duration, "duration") / options.horizon - 1e-9)
    if n < 1:
        raise ValueError(f"duration: must be > 0, got {duration!r}")
    return np.datetime64(start, "s") + (np.arange(n) * options.horizon).astype("timedelta64[s]")


def plan_one(facility, scenario, options: DispatchOptions, starts: np.ndarray, k: int) -> dict:
    """Plan ``k`` (from ``starts[k]``) as a streamed segment: its series, status and figures."""
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    plan = dispatch(facility, scenario, options, start=starts[k])
    a = plan.attrs
    out = {f"series/{v}": plan[v].values.astype(float) for v in plan.data_vars}
    out |= {k: v for k, v in plan_kpis(plan).items() if k in SUMMED or k == "peak_import_mw"}
    out |= {k: float(a[k]) for k in ("build_seconds", "solve_seconds")}
    out |= {k: str(a.get(k, "")) for k in ("status", "violations", "conflicts")}
    out["time"] = plan.time.values.astype("datetime64[s]").astype(np.int64)
    out |= {"wall_s": time.perf_counter() - t_wall, "cpu_s": time.process_time() - t_cpu}
    return out


def run_dispatch_year(
    facility,
    scenario,
    options: DispatchOptions,
    start,
    duration: str | float,
    out: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    resume: bool = False,
    force: bool = False,
    progress: Callable[[float, str], None] | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Plan every horizon from ``start`` over ``duration`` and stream the plans into ``out`` (see the module
    docstring); return the finished Dataset. Requests are checked for the whole period before any work.
    The ``"auto"`` backend takes the matrix path (the same LP; Pyomo's build would cost more than the
    solve)."""
    if options.backend == "auto":
        options = options.updated(backend="highspy")
    starts = plan_starts(start, duration, options)
    n = options.n_steps
    times = (starts[:, None] + (np.arange(n) * options.step).astype("timedelta64[s]")).ravel()
    validate_request(scenario, times, options.horizon, options.step, scenario.import_limit(times))
    template = dispatch(facility, scenario, options, start=starts[0])  # names, dims and units of the plans
    layout = Layout(
        starts.size * n,
        n,
        starts.astype(np.int64),
        {v: (template[v].dims, dict(template[v].attrs)) for v in template.data_vars},
        {"group": template.sizes["group"]},
        time_name="start of the plan step (local time)",
    )
    config = fingerprint(facility, scenario) | {
        "start": str(starts[0]),
        "plans": int(starts.size),
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.as_dict().items()},
    }

    def summarize(plans: list[dict]) -> Summary:
        return _summary(plans, template, options, starts, attrs or {})

    return run_streamed(
        out,
        config,
        layout,
        plan_one,
        (facility, scenario, options, starts),
        summarize,
        scheduler=scheduler,
        workers=workers,
        serial=serial,
        resume=resume,
        force=force,
        progress=progress,
    )


def _summary(plans: list[dict], template: xr.Dataset, options, starts, extra: dict) -> Summary:
    a = template.attrs
    status = [str(p["status"]) for p in plans]
    bad = [f"{starts[k]}: {s}" for k, s in enumerate(status) if s != "optimal"]
    viol = [f"{starts[k]}: {p['violations']}" for k, p in enumerate(plans) if str(p["violations"])]
    attrs = {
        "facility": a["facility"],
        "scenario": a["scenario"],
        "start": str(starts[0]),
        "plans": len(plans),
        "plans_optimal": len(plans) - len(bad),
        "plans_not_optimal": "; ".join(bad),
        "violations": "; ".join(viol),
        "step_s": options.step,
        "horizon_s": options.horizon,
        "hours": len(plans) * options.horizon / S_PER_H,
        "grouping": a["grouping"],
        "solver": a["solver"],
        "backend": options.backend,
        "currency": a["currency"],
        "group_names": [str(g) for g in template.group.values],
        "group_classes": [str(c) for c in template.group_class.values],
        **{f"{k}_total": float(np.nansum([float(p[k]) for p in plans])) for k in SUMMED},
        "peak_import_mw": float(np.nanmax([float(p["peak_import_mw"]) for p in plans])),
        "Conventions": "CF-1.10",
    }
    per_plan = {
        "plan_optimal": (
            np.array([s == "optimal" for s in status], float),
            "1",
            "plan solved to optimality (1) or not (0)",
        ),
        "plan_objective": (np.array([float(p["objective"]) for p in plans]), a["currency"], "objective of the plan"),
        "plan_build_s": (np.array([float(p["build_seconds"]) for p in plans]), "s", "time to build the plan's model"),
        "plan_solve_s": (np.array([float(p["solve_seconds"]) for p in plans]), "s", "time the solver took"),
        "segment_wall_s": (np.array([float(p["wall_s"]) for p in plans]), "s", "wall time of the plan's task"),
        "segment_cpu_s": (np.array([float(p["cpu_s"]) for p in plans]), "s", "CPU time of the plan's task"),
    }
    return Summary(attrs | extra, per_plan)
