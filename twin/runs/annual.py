"""Annual figures of a long run (a year from :func:`~factory_twin.twin.runs.segments.run_segments`, or any run
with the campus series): energy, PUE over the year and by month, water, throttling, tokens and their cost,
the peak import and its hour, and the flexible headroom the year offered.

Ratios over a period are ratios of the period's energies (The Green Grid's annual PUE), computed with the same
functions as the instantaneous meters (:func:`factory_twin.twin.simulation.meters.period_totals`). Each record holds
interval means over ``record_s`` (powers) or samples at its end (temperatures, water rate, prices).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from factory_twin.models.units import S_PER_H
from factory_twin.twin.simulation.meters import PERIOD_UNITS, period_totals

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def annual_figures(ds: xr.Dataset) -> dict[str, object]:
    """The year's figures (keys carry their units); ``monthly`` holds the same per calendar month."""
    out: dict[str, object] = period_totals(ds)
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
    out["monthly"] = {int(m): period_totals(g) for m, g in ds.groupby(mid.dt.month.rename("month"))}
    return out


def annual_dataset(ds: xr.Dataset) -> xr.Dataset:
    """The monthly figures as a Dataset over ``month`` (for plots and the report)."""
    fig = annual_figures(ds)
    months = sorted(fig["monthly"])
    data = {
        k: ("month", np.array([fig["monthly"][m][k] for m in months]), {"units": u}) for k, u in PERIOD_UNITS.items()
    }
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
