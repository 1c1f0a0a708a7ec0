"""Stage 5, the plan: a :class:`optimization.solution.Solution` as a :class:`DispatchPlan` (SI units, the
twin's :class:`~twin.simulation.controllers.ControlPlan` hand-off plus the forecast and the economics), its
Dataset for files and the CLI (MW, MWh at this edge), its key figures, and the same figures as CLI rows.

The LP decides ``x`` per step and group, the mean power a busy GPU draws as a share of its TDP (a step mean
with job stops; ``x / (1 - stopped)`` while computing). :func:`make_plan` names that power ``gpu_drawn_w``
and turns it into the cap that yields it, ``gpu_cap_w`` (:func:`optimization.groups.group_caps_w`: the draw
itself for classes that draw ``min(demand, cap)``, the inverse of the fitted draw for ``drawn_power = "fit"``
classes), within ``[min_cap_w, tdp_w]``. The MPC and :class:`optimization.plan_follower.PlanFollower` command
that cap (per rack, :func:`optimization.groups.rack_caps_w`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from factory_twin.models.units import J_PER_MWH, MW, S_PER_H
from factory_twin.optimization.feasibility import violations
from factory_twin.optimization.groups import Groups, group_caps_w
from factory_twin.optimization.linearization import Forecast
from factory_twin.optimization.problem import Problem
from factory_twin.optimization.solution import Solution
from factory_twin.twin.simulation.controllers import ControlPlan
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False, kw_only=True)
class DispatchPlan(ControlPlan):
    """A dispatch plan: the :class:`~twin.simulation.controllers.ControlPlan` the twin reads, plus (per step
    ``[T]``, SI units, money in the scenario's ``currency``) the site model's forecast: ``baseline_w`` (the
    import uncapped), ``floor_w`` (every group at its minimum cap), ``it_power_w``, ``cooling_power_w``,
    ``dry_bulb_c``, ``wet_bulb_c``; the planned ``throughput`` (tokens over uncapped tokens [-]),
    ``tokens_per_s``, ``tokens_uncapped_per_s``, ``bess_energy_j`` (stored at the end of the step); the
    signals ``price_per_mwh`` and ``carbon_cost_per_mwh`` [currency/MWh]; over the horizon ``token_value``,
    ``energy_cost``, ``carbon_cost`` [currency]; and how it was made (groups' classes and zones, solver,
    backend, seconds spent)."""

    group_classes: tuple[str, ...]
    group_zones: NDArray[np.int64]
    baseline_w: Array
    floor_w: Array
    it_power_w: Array
    cooling_power_w: Array
    throughput: Array
    tokens_per_s: Array
    tokens_uncapped_per_s: Array
    bess_energy_j: Array
    price_per_mwh: Array
    carbon_cost_per_mwh: Array
    dry_bulb_c: Array
    wet_bulb_c: Array
    token_value: float
    energy_cost: float
    carbon_cost: float
    facility: str
    scenario: str
    solver: str
    backend: str
    grouping: str
    currency: str
    prepare_seconds: float
    build_seconds: float
    solve_seconds: float


def make_plan(
    f, p: Problem, fc: Forecast, groups: Groups, sol: Solution, *, conflicts: str, **made: Any
) -> DispatchPlan:
    """The plan of ``sol`` (every per-step value NaN when it has no values); ``made``: ``facility``,
    ``scenario``, ``solver``, ``grouping``, ``currency``, ``prepare_seconds`` (how it was made)."""
    T, G = p.busy_mw.shape
    values = sol.values if sol.has_values else {}
    values = {"x": np.full((T, G), np.nan), "grid_mw": np.full(T, np.nan)} | values
    x = values["x"]
    st = p.stops
    stopped = st.group_share(values["stop_share"], G) if st is not None and "stop_share" in values else None
    if stopped is None:
        y = np.min(p.seg_a[None] + p.seg_b[None] * x[..., None], axis=2)
        drawn = x
    else:  # x and y are step means; the cap holds while computing
        run = 1 - stopped
        y = np.min(p.seg_a[None] * run[..., None] + p.seg_b[None] * x[..., None], axis=2)
        drawn = np.where(run > 1e-9, x / np.maximum(run, 1e-9), p.x_lo)
    drawn_w = drawn * groups.tdp_w
    gpu_mw = p.gpu_mw(x, values)
    zeros = np.zeros(T)
    ch, dis = values.get("bess_charge_mw", zeros), values.get("bess_discharge_mw", zeros)
    soc = values.get("bess_soc_mwh", np.full(T, p.bess.e0_mwh) if p.bess else zeros)
    tok = np.sum(p.tokens_per_s * y, axis=1)
    tok_unc = np.sum(p.tokens_per_s * p.y_uncapped, axis=1)
    grid = values["grid_mw"]
    dt_s = p.dt_h * S_PER_H
    shares = {}
    if stopped is not None:
        for kind, name in ((0, "paused_share"), (1, "resized_share")):
            share = np.zeros((T, G))
            m = st.kind == kind
            np.add.at(share, (slice(None), st.group[m]), values["stop_share"][:, m])
            shares[name] = share
    return DispatchPlan(
        times=fc.times,
        step_s=made.pop("step_s"),
        group_names=groups.names,
        gpu_cap_w=np.clip(group_caps_w(f, groups, drawn_w), groups.min_cap_w, groups.tdp_w),
        gpu_drawn_w=drawn_w,
        gpu_power_w=gpu_mw * MW,
        grid_import_w=grid * MW,
        bess_power_w=(dis - ch) * MW,
        import_limit_w=p.import_limit_mw * MW,
        dr_target_w=np.where(np.isfinite(p.dr_cap_mw), p.dr_cap_mw, np.nan) * MW,
        status=sol.status,
        objective=sol.objective,
        violations="; ".join(map(str, violations(p, sol.slacks, fc.times))) if sol.slacks else "",
        conflicts=conflicts,
        **shares,
        group_classes=groups.class_names,
        group_zones=groups.zone,
        baseline_w=fc.baseline_mw * MW,
        floor_w=fc.floor_mw * MW,
        it_power_w=fc.at_gpu_mw("it_mw", gpu_mw) * MW,
        cooling_power_w=fc.at_gpu_mw("cooling_mw", gpu_mw) * MW,
        throughput=np.divide(tok, tok_unc, out=np.ones(T), where=tok_unc > 0),
        tokens_per_s=tok,
        tokens_uncapped_per_s=tok_unc,
        bess_energy_j=soc * J_PER_MWH,
        price_per_mwh=p.price_per_mwh,
        carbon_cost_per_mwh=p.carbon_cost_per_mwh,
        dry_bulb_c=fc.dry_bulb_c,
        wet_bulb_c=fc.wet_bulb_c,
        token_value=float(np.sum(p.value_per_token * p.tokens_per_s * y) * dt_s),
        energy_cost=float(np.sum(p.price_per_mwh * grid) * p.dt_h),
        carbon_cost=float(np.sum(p.carbon_cost_per_mwh * grid) * p.dt_h),
        backend=sol.backend,
        build_seconds=sol.build_seconds,
        solve_seconds=sol.solve_seconds,
        **made,
    )


def plan_dataset(plan: DispatchPlan) -> xr.Dataset:
    """The plan as the Dataset ``factory-twin optimize`` writes (MW, MWh; attributes say how it was made)."""
    t, g = ("time",), ("time", "group")

    def var(dims, data, units, desc):
        return xr.Variable(dims, np.asarray(data, float), {"units": units, "long_name": desc, "description": desc})

    data = {
        "gpu_cap_w": var(g, plan.gpu_cap_w, "W", "GPU power cap per GPU of each group"),
        "grid_import_mw": var(t, plan.grid_import_w / MW, "MW", "planned grid import (after the BESS)"),
        "import_limit_mw": var(t, plan.import_limit_w / MW, "MW", "import limit"),
        "dr_target_mw": var(t, plan.dr_target_w / MW, "MW", "demand-response target (1 - depth) x baseline"),
        "baseline_mw": var(t, plan.baseline_w / MW, "MW", "uncapped forecast import"),
        "floor_mw": var(t, plan.floor_w / MW, "MW", "import with every group at its minimum cap"),
        "gpu_power_mw": var(t, plan.gpu_power_w / MW, "MW", "campus GPU power"),
        "it_power_mw": var(t, plan.it_power_w / MW, "MW", "IT power (PSU input)"),
        "cooling_power_mw": var(t, plan.cooling_power_w / MW, "MW", "cooling power"),
        "throughput": var(t, plan.throughput, "1", "tokens over uncapped tokens"),
        "tokens_per_s": var(t, plan.tokens_per_s, "s-1", "tokens per second"),
        "tokens_uncapped_per_s": var(t, plan.tokens_uncapped_per_s, "s-1", "tokens per second uncapped"),
        "bess_power_mw": var(t, plan.bess_power_w / MW, "MW", "BESS power at the meter (> 0 discharges)"),
        "bess_soc_mwh": var(t, plan.bess_energy_j / J_PER_MWH, "MWh", "BESS stored energy at the end of the step"),
        "price": var(t, plan.price_per_mwh, "currency MWh-1", "energy price"),
        "carbon_cost": var(t, plan.carbon_cost_per_mwh, "currency MWh-1", "carbon cost per MWh imported"),
        "dry_bulb_c": var(t, plan.dry_bulb_c, "degC", "forecast dry bulb"),
        "wet_bulb_c": var(t, plan.wet_bulb_c, "degC", "forecast wet bulb"),
    }
    if plan.paused_share is not None:
        data["paused_share"] = var(g, plan.paused_share, "1", "time share paused (of the step, per group)")
        data["resized_share"] = var(g, plan.resized_share, "1", "GPU-time share resized away (of the step, per group)")
    attrs = {
        "facility": plan.facility,
        "scenario": plan.scenario,
        "solver": plan.solver,
        "grouping": plan.grouping,
        "step_s": plan.step_s,
        "currency": plan.currency,
        "prepare_seconds": plan.prepare_seconds,
        "conflicts": plan.conflicts,
        "status": plan.status,
        "objective": plan.objective,
        "build_seconds": plan.build_seconds,
        "solve_seconds": plan.solve_seconds,
        "backend": plan.backend,
        "token_value": plan.token_value,
        "energy_cost": plan.energy_cost,
        "carbon_cost": plan.carbon_cost,
        "violations": plan.violations,
        "optimal": int(plan.optimal),
    }
    coords = {
        "time": plan.times,
        "group": list(plan.group_names),
        "group_class": ("group", list(plan.group_classes)),
        "group_zone": ("group", plan.group_zones),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def plan_kpis(plan: xr.Dataset) -> dict[str, Any]:
    """Key figures of a plan: status, objective and its parts [currency], throughput kept (planned /
    uncapped tokens over the horizon), MWh curtailed (sum of max(baseline - import, 0) x step),
    energy [MWh], peak import [MW], tokens."""
    a = plan.attrs
    dt_h = float(a["step_s"]) / S_PER_H
    imp, base = plan.grid_import_mw.values, plan.baseline_mw.values
    tok, unc = plan.tokens_per_s.values, plan.tokens_uncapped_per_s.values
    return {
        "plan_status": str(a["status"]),
        "optimal": int(a["status"] == "optimal"),
        "objective": float(a.get("objective", np.nan)),
        "token_value": float(a.get("token_value", np.nan)),
        "energy_cost": float(a.get("energy_cost", np.nan)),
        "carbon_cost": float(a.get("carbon_cost", np.nan)),
        "throughput_kept": float(tok.sum() / unc.sum()) if unc.sum() > 0 else np.nan,
        "mwh_curtailed": float(np.sum(np.maximum(base - imp, 0.0)) * dt_h),
        "energy_mwh": float(imp.sum() * dt_h),
        "peak_import_mw": float(imp.max()),
        "tokens": float(tok.sum() * dt_h * S_PER_H),
    }


def plan_summary(plan: xr.Dataset) -> list[tuple[str, str]]:
    """(label, value) rows of :func:`plan_kpis` for the command line, with build/solve seconds and
    any conflicts or violations."""
    a = plan.attrs
    k = plan_kpis(plan)
    cur = a.get("currency", "")
    rows = [
        ("status", k["plan_status"]),
        ("objective", f"{k['objective']:,.0f} {cur}"),
        ("MWh shifted", f"{k['mwh_curtailed']:,.1f} MWh"),
        ("peak import", f"{k['peak_import_mw']:,.2f} MW"),
        ("throughput kept", f"{k['throughput_kept']:.4f}"),
        ("tokens", f"{k['tokens']:,.3e}"),
        ("energy + carbon cost", f"{k['energy_cost'] + k['carbon_cost']:,.0f} {cur}"),
        (
            "build / solve",
            f"{a.get('build_seconds', 0.0):.2f} s / {a.get('solve_seconds', 0.0):.2f} s",
        ),
    ]
    for key in ("conflicts", "violations"):
        if a.get(key):
            rows.append((key, str(a[key])))
    return rows
