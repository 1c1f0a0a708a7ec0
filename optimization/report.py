"""A plan in a few lines for the command line."""

from __future__ import annotations

import numpy as np
import xarray as xr

S_PER_H = 3600.0


def plan_summary(plan: xr.Dataset) -> list[tuple[str, str]]:
    """(label, value) rows: status, objective, MWh shifted, peak import, throughput kept, tokens,
    cost.

    MWh shifted = energy below the uncapped forecast, sum of max(baseline - import, 0) x step.
    Throughput kept = planned tokens / uncapped tokens over the horizon.
    """
    a = plan.attrs
    cur = a.get("currency", "")
    dt_h = float(a.get("step_s", np.nan)) / S_PER_H
    imp = plan.grid_import_mw.values
    shifted = float(np.sum(np.clip(plan.baseline_mw.values - imp, 0.0, None)) * dt_h)
    tok, unc = plan.tokens_per_s.values, plan.tokens_uncapped_per_s.values
    kept = float(np.sum(tok) / np.sum(unc)) if np.sum(unc) > 0 else float("nan")
    cost = float(a.get("energy_cost", np.nan)) + float(a.get("carbon_cost", 0.0))
    rows = [
        ("status", str(a.get("status"))),
        ("objective", f"{float(a.get('objective', np.nan)):,.0f} {cur}"),
        ("MWh shifted", f"{shifted:,.1f} MWh"),
        ("peak import", f"{np.nanmax(imp) if np.isfinite(imp).any() else np.nan:,.2f} MW"),
        ("throughput kept", f"{kept:.4f}"),
        ("tokens", f"{np.sum(tok) * dt_h * S_PER_H:,.3e}"),
        ("energy + carbon cost", f"{cost:,.0f} {cur}"),
        (
            "build / solve",
            f"{a.get('build_seconds', 0.0):.2f} s / {a.get('solve_seconds', 0.0):.2f} s",
        ),
    ]
    for key in ("conflicts", "violations"):
        if a.get(key):
            rows.append((key, str(a[key])))
    return rows
