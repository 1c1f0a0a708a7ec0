"""Self-contained HTML report of a study Dataset: plotly figures (plotly.js inlined, opens offline) and
tables of the values."""

from __future__ import annotations

import html
import os
from itertools import product
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import xarray as xr
from factory_twin.twin.runs.atomic import write_atomic

# x axis per analysis (first sweep dimension otherwise)
X_DIM = {"envelope": "duration_h", "headroom": "budget", "sizing": "firm_mw", "replay": "case"}
SKIP = {"status", "error", "elapsed_s", "optimal", "probes"}


def figures(ds: xr.Dataset) -> list[go.Figure]:
    """One line figure per numeric variable over the analysis' x dimension, one curve per combination
    of the other dimensions (time series over ``step`` are left to the tables)."""
    figs = []
    for name, da in ds.data_vars.items():
        if name in SKIP or da.dtype.kind not in "fiu" or da.ndim == 0 or "step" in da.dims:
            continue
        x = X_DIM.get(ds.attrs.get("analysis", ""), da.dims[0])
        x = x if x in da.dims else da.dims[0]
        rest = [d for d in da.dims if d != x]
        flat = da.transpose(x, *rest).values.reshape(da.sizes[x], -1)
        combos = list(product(*[ds[d].values.tolist() for d in rest]))
        fig = go.Figure()
        for j in range(flat.shape[1]):
            label = ", ".join(f"{d}={v}" for d, v in zip(rest, combos[j], strict=True)) if rest else name
            fig.add_scatter(x=ds[x].values, y=flat[:, j], mode="lines+markers", name=label)
        units = da.attrs.get("units", "")
        fig.update_layout(title=name, xaxis_title=x, yaxis_title=f"{name} [{units}]" if units else name,
                          height=380, margin={"t": 40, "b": 40})  # fmt: skip
        figs.append(fig)
    return figs


def table(ds: xr.Dataset) -> str:
    """HTML table of every scalar-per-case variable (status and errors included)."""
    names = [k for k, v in ds.data_vars.items() if "step" not in v.dims and v.ndim > 0]
    dims = {d for k in names for d in ds[k].dims}
    groups: dict[tuple, list[str]] = {}
    for k in names:
        groups.setdefault(ds[k].dims, []).append(k)
    parts = []
    for _, keys in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        df = ds[keys].to_dataframe().reset_index()
        df = df[[c for c in df.columns if c in dims or c in keys]]
        parts.append(df.to_html(index=False, float_format=lambda v: f"{v:.6g}", border=0))
    return "\n".join(parts)


def write_report(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write the report atomically; the first figure carries plotly.js, so the file opens offline."""
    scalars = "".join(
        f"<li>{html.escape(str(k))}: {float(v):.6g} {html.escape(v.attrs.get('units', ''))}</li>"
        for k, v in ds.data_vars.items()
        if v.ndim == 0 and v.dtype.kind in "fiu"
    )
    attrs = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))[:400]}</li>" for k, v in ds.attrs.items())
    intro = f"<p>{html.escape(str(ds.attrs.get('description', '')))}</p><ul>{attrs}{scalars}</ul>"
    title = f"{ds.attrs.get('study', 'study')} ({ds.attrs.get('analysis', '')})"
    return _write_page(path, title, intro, figures(ds), f"<h2>Values</h2>{table(ds)}")


def _write_page(path: str | os.PathLike[str], title: str, intro: str, figs: list[go.Figure], tail: str) -> Path:
    """One offline HTML page (plotly.js inlined with the first figure), written atomically."""
    divs = [pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs)]
    title = html.escape(title)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style></head><body>
<h1>{title}</h1>{intro}{"".join(divs)}{tail}</body></html>"""
    return write_atomic(path, lambda f: f.write(page.encode("utf-8")))


def write_year_report(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Report of a long run (``simulate --duration 1y``): the annual figures, monthly bar charts and the
    daily import range (:func:`year_figures`); offline like the study report."""
    from factory_twin.twin.runs.annual import rows

    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows(ds))
    keep = ("facility", "scenario", "start", "step_s", "record_s", "segments", "seam_error_max_k", "missed_targets")
    attrs = "".join(f"<li>{html.escape(k)}: {html.escape(str(ds.attrs[k]))[:400]}</li>" for k in keep if k in ds.attrs)
    intro = f"<table>{table}</table><ul>{attrs}</ul>"
    a = ds.attrs
    title = f"{a.get('facility', '')} under {a.get('scenario', '')}: {rows(ds)[0][1]} h from {a.get('start', '')}"
    return _write_page(path, title, intro, year_figures(ds), "")


def bar_range(values) -> list[float]:
    """A bar chart's value axis: from zero (or the lowest value, when negative) to 5 % above the highest; 0 to 1
    when every bar is zero (plotly's own range was -1 to 1, half of it below anything a count can be)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    lo = min(0.0, float(v.min())) if v.size else 0.0
    hi = max(0.0, float(v.max())) if v.size else 0.0
    return [lo * 1.05, hi * 1.05] if hi > lo else [0.0, 1.0]


def year_figures(ds: xr.Dataset) -> list[go.Figure]:
    """Monthly bars of the year's figures and the grid import by day. A record holds the interval that ends at its
    time stamp: it counts in the day (and month) its interval lies in, so a run ending at midnight has no extra
    day made of its last record."""
    from factory_twin.twin.runs.annual import MONTHS, annual_dataset

    monthly = annual_dataset(ds)
    labels = [MONTHS[m - 1] for m in monthly.month.values]
    figs = []
    for name, label in (
        ("grid_energy_mwh", "grid energy"),
        ("pue", "PUE (energy ratio)"),
        ("water_t", "water"),
        ("cost_per_mtok", "cost per million tokens"),
        ("hours_throttled", "hours with throttling"),
    ):
        units = monthly[name].attrs["units"].replace("currency", ds.attrs.get("currency", "currency"))
        fig = go.Figure(go.Bar(x=labels, y=monthly[name].values, name=label))
        fig.update_layout(title=f"{label} by month", yaxis_title=f"{label} [{units}]", height=340,
                          margin={"t": 40, "b": 40})  # fmt: skip
        fig.update_yaxes(range=bar_range(monthly[name].values))
        figs.append(fig)
    day = (ds.time - np.timedelta64(int(float(ds.attrs["record_s"]) // 2), "s")).dt.floor("1D").rename("day")
    daily = ds.grid_import_mw.groupby(day)
    fig = go.Figure()
    fig.add_scatter(x=daily.max().day.values, y=daily.max().values, name="daily peak", mode="lines")
    fig.add_scatter(x=daily.mean().day.values, y=daily.mean().values, name="daily mean", mode="lines")
    if "import_limit_mw" in ds:
        limit = ds.import_limit_mw.groupby(day).min()
        fig.add_scatter(x=limit.day.values, y=limit.values, name="import limit", mode="lines", line={"dash": "dash"})
    fig.update_layout(title="grid import by day", yaxis_title="grid import [MW]", height=380, margin={"t": 40, "b": 40})
    figs.append(fig)
    return figs
