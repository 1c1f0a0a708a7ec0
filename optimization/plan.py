"""Stage 5, the plan: a :class:`optimization.solution.Solution` as an xarray Dataset (MW, MWh, W at
this edge), its key figures, and the same figures as CLI rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from factory_twin.models.units import S_PER_H
from factory_twin.optimization.feasibility import violations
from factory_twin.optimization.groups import Groups
from factory_twin.optimization.linearization import Forecast
from factory_twin.optimization.problem import Problem
from factory_twin.optimization.solution import Solution


def plan_dataset(p: Problem, fc: Forecast, groups: Groups, sol: Solution | None, attrs: dict) -> xr.Dataset:
    """The plan as a Dataset; all variables NaN when ``sol`` is None or has no values."""
    T, G = p.busy_mw.shape
    values = sol.values if sol is not None and sol.has_values else {}
    values = {"x": np.full((T, G), np.nan), "grid_mw": np.full(T, np.nan)} | values
    x = values["x"]
    st = p.stops
    stopped = st.group_share(values["stop_share"], G) if st is not None and "stop_share" in values else None
    if stopped is None:
        y = np.min(p.seg_a[None] + p.seg_b[None] * x[..., None], axis=2)
        cap = x
    else:  # x and y are step means; the cap holds while computing
        run = 1 - stopped
        y = np.min(p.seg_a[None] * run[..., None] + p.seg_b[None] * x[..., None], axis=2)
        cap = np.where(run > 1e-9, x / np.maximum(run, 1e-9), p.x_lo)
    gpu_mw = p.gpu_mw(x, values)
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
    viol = violations(p, sol.slacks, fc.times) if sol is not None and sol.slacks else []
    attrs = attrs | {
        "token_value": value,
        "energy_cost": energy,
        "carbon_cost": carbon,
        "violations": "; ".join(map(str, viol)),
        "optimal": int(attrs.get("status") == "optimal"),
    }
    t, g = ("time",), ("time", "group")

    def var(dims, data, units, desc):
        return xr.Variable(dims, np.asarray(data, float), {"units": units, "long_name": desc, "description": desc})

    data = {
        "gpu_cap_w": var(g, cap * groups.tdp_w, "W", "GPU power cap per GPU of each group"),
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
        "tokens_per_s": var(t, tok, "s-1", "tokens per second"),
        "tokens_uncapped_per_s": var(t, tok_unc, "s-1", "tokens per second uncapped"),
        "bess_power_mw": var(t, dis - ch, "MW", "BESS power at the meter (> 0 discharges)"),
        "bess_soc_mwh": var(t, soc, "MWh", "BESS stored energy at the end of the step"),
        "price": var(t, p.price_per_mwh, "currency MWh-1", "energy price"),
        "carbon_cost": var(t, p.carbon_cost_per_mwh, "currency MWh-1", "carbon cost per MWh imported"),
        "dry_bulb_c": var(t, fc.dry_bulb_c, "degC", "forecast dry bulb"),
        "wet_bulb_c": var(t, fc.wet_bulb_c, "degC", "forecast wet bulb"),
    }
    if stopped is not None:
        kinds = ((0, "paused_share", "time share paused"), (1, "resized_share", "GPU-time share resized away"))
        for kind, name, desc in kinds:
            share = np.zeros((T, G))
            m = st.kind == kind
            np.add.at(share, (slice(None), st.group[m]), values["stop_share"][:, m])
            data[name] = var(g, share, "1", f"{desc} (of the step, per group)")
    coords = {
        "time": fc.times,
        "group": list(groups.names),
        "group_class": ("group", list(groups.class_names)),
        "group_zone": ("group", groups.zone),
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
