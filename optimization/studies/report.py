"""Self-contained HTML report of a study Dataset: plotly figures (plotly.js inlined, opens offline) and
tables of the values."""

from __future__ import annotations

import html
import os
from itertools import product
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import xarray as xr
from factory_twin.twin.atomic import write_atomic

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
    figs = figures(ds)
    divs = [pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs)]
    scalars = "".join(
        f"<li>{html.escape(str(k))}: {float(v):.6g} {html.escape(v.attrs.get('units', ''))}</li>"
        for k, v in ds.data_vars.items()
        if v.ndim == 0 and v.dtype.kind in "fiu"
    )
    attrs = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))[:400]}</li>" for k, v in ds.attrs.items())
    title = html.escape(f"{ds.attrs.get('study', 'study')} ({ds.attrs.get('analysis', '')})")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style></head><body>
<h1>{title}</h1><p>{html.escape(str(ds.attrs.get("description", "")))}</p>
<ul>{attrs}{scalars}</ul>{"".join(divs)}<h2>Values</h2>{table(ds)}</body></html>"""
    return write_atomic(path, lambda f: f.write(page.encode("utf-8")))
