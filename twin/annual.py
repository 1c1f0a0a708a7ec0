"""Annual figures of a long run (a year from :func:`~factory_twin.twin.segments.run_segments`, or any run
with the campus series): energy, PUE over the year and by month, water, throttling, tokens and their cost,
the peak import and its hour, and the flexible headroom the year offered.

Ratios over a period are ratios of the period's energies (The Green Grid's annual PUE), computed with the
same functions as the instantaneous meters (:mod:`factory_twin.models.metrics`). Each record holds interval
means over ``record_s`` (powers) or samples at its end (temperatures, water rate, prices).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from factory_twin.models import metrics
from factory_twin.models.units import KG_PER_T, MW, S_PER_H

# units of the per-period figures
UNITS = {"grid_energy_mwh": "MWh", "it_energy_mwh": "MWh", "pue": "1", "water_t": "t", "cost": "currency",
         "tokens": "1", "cost_per_mtok": "currency", "hours_throttled": "h", "throttled_gpu_hours": "h"}  # fmt: skip
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _totals(ds: xr.Dataset) -> dict[str, float]:
    """Energies and sums of one period (the whole run or one month)."""
    h = float(ds.attrs["record_s"]) / S_PER_H
    grid = float(ds.grid_import_mw.sum()) * h  # after the BESS
    meter = float((ds.grid_import_mw + ds.bess_power_mw).sum()) * h  # at the utility meter, before the BESS
    it = float(ds.it_power_mw.sum()) * h
    cost = float((ds.grid_import_mw * ds.price_per_mwh).sum()) * h
    tokens = float(ds.tokens_per_s.sum()) * h * S_PER_H
    hours = ds.time.size * h
    mean_import_w = grid * MW / hours if hours else 0.0
    price = cost / grid if grid else 0.0  # import-weighted price: mean power x this price = the period's cost
    return {
        "grid_energy_mwh": grid,
        "it_energy_mwh": it,
        "pue": float(metrics.pue(meter, it)),
        "water_t": float(ds.water_use_kg_s.sum()) * h * S_PER_H / KG_PER_T,
        "cost": cost,
        "tokens": tokens,
        "cost_per_mtok": float(metrics.cost_per_mtok(mean_import_w, price, tokens / (hours * S_PER_H)))
        if hours
        else np.nan,
        "hours_throttled": float((ds.throttled_gpus > 0).sum()) * h,
        "throttled_gpu_hours": float(ds.throttled_gpus.sum()) * h,
    }


def annual_figures(ds: xr.Dataset) -> dict[str, object]:
    """The year's figures (keys carry their units); ``monthly`` holds the same per calendar month."""
    out: dict[str, object] = _totals(ds)
    i = int(np.argmax(ds.grid_import_mw.values))
    # a record's mean covers the interval that ends at its time stamp: the peak hour is the one it falls in
    peak_end = ds.time.values[i]
    peak_mid = peak_end - np.timedelta64(int(ds.attrs["record_s"] // 2), "s")
    out |= {
        "peak_import_mw": float(ds.grid_import_mw[i]),
        "peak_import_time": str(peak_end.astype("datetime64[s]")),
        "peak_import_hour": str(peak_mid.astype("datetime64[h]")),
        "hours": ds.time.size * float(ds.attrs["record_s"]) / S_PER_H,
    }
    if "flexible_mw" in ds:
        flex = ds.flexible_mw.values
        out |= {
            "flexible_mean_mw": float(flex.mean()),
            "flexible_min_mw": float(flex.min()),
            "flexible_p05_mw": float(np.percentile(flex, 5)),
            "flexible_energy_mwh": float(flex.sum()) * float(ds.attrs["record_s"]) / S_PER_H,
        }
    # each record belongs to the month its interval lies in (its time stamp is the interval's end)
    mid = ds.time - np.timedelta64(int(ds.attrs["record_s"] // 2), "s")
    out["monthly"] = {int(m): _totals(g) for m, g in ds.groupby(mid.dt.month.rename("month"))}
    return out


def annual_dataset(ds: xr.Dataset) -> xr.Dataset:
    """The monthly figures as a Dataset over ``month`` (for plots and the report)."""
    fig = annual_figures(ds)
    months = sorted(fig["monthly"])
    data = {k: ("month", np.array([fig["monthly"][m][k] for m in months]), {"units": u}) for k, u in UNITS.items()}
    return xr.Dataset(data, coords={"month": ("month", np.array(months))})


def rows(ds: xr.Dataset) -> list[tuple[str, str]]:
    """The annual figures as (label, value) rows for the CLI and the report."""
    f = annual_figures(ds)
    cur = ds.attrs.get("currency", "")
    out = [
        ("period [h]", f"{f['hours']:,.0f}"),
        ("grid energy [GWh]", f"{f['grid_energy_mwh'] / 1e3:,.1f}"),
        ("IT energy [GWh]", f"{f['it_energy_mwh'] / 1e3:,.1f}"),
        ("PUE (energy ratio)", f"{f['pue']:.4f}"),
        ("PUE by month", " ".join(f"{MONTHS[m - 1]} {v['pue']:.3f}" for m, v in sorted(f["monthly"].items()))),
        ("water [t]", f"{f['water_t']:,.0f}"),
        ("hours with throttling [h]", f"{f['hours_throttled']:,.1f}"),
        ("throttled GPU-hours", f"{f['throttled_gpu_hours']:,.0f}"),
        ("tokens [1e15]", f"{f['tokens'] / 1e15:,.3f}"),
        (f"energy cost [{cur}]", f"{f['cost']:,.0f}"),
        (f"cost per million tokens [{cur}]", f"{f['cost_per_mtok']:,.3f}"),
        ("peak import [MW]", f"{f['peak_import_mw']:,.1f} in the hour from {f['peak_import_hour']}"),
    ]
    if "flexible_mean_mw" in f:
        out.append(
            (
                "flexible headroom [MW]",
                f"mean {f['flexible_mean_mw']:,.0f}, 5th percentile {f['flexible_p05_mw']:,.0f}, "
                f"least {f['flexible_min_mw']:,.0f} (GPU power above the minimum caps)",
            )
        )
    return out


__all__ = ["MONTHS", "annual_dataset", "annual_figures", "rows"]
