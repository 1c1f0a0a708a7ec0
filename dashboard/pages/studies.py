"""Studies: open a NetCDF result of ``factory-twin study``; plot any variable over its dims; a study with a summary
of its own (the MaxLPS sizing study) shows it above the plot.

Only files under the server's ``studies_dir`` can be opened: the browser picks from a list of
relative paths made by the server, and every path it sends back is resolved and checked to lie
inside that folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from dash import ALL, Dash, Input, Output, State, dcc, html
from factory_twin.dashboard.common import GRAPH_CONFIG, readable, table, waiting_figure
from factory_twin.optimization.studies import maxlps

PATH, TITLE = "/studies", "Studies"
SUFFIXES = (".nc", ".nc4", ".netcdf")
MAX_FILES = 500


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Studies"),
            html.Div(
                [
                    dcc.Dropdown(id="st-file", placeholder="study result (NetCDF)", className="dropdown wide"),
                    html.Button("Refresh", id="st-refresh", n_clicks=0, className="btn"),
                    dcc.Dropdown(id="st-var", placeholder="variable", className="dropdown wide"),
                ],
                className="controls",
            ),
            html.Div(id="st-info", className="message"),
            html.Div(id="st-summary"),
            html.Div(id="st-slices", className="controls"),
            dcc.Graph(id="st-plot", config=GRAPH_CONFIG),
        ]
    )


def is_study_result(path: Path) -> bool:
    """A study's results file: NetCDF with the ``study`` attribute the study runners write (not a run or a
    plan that happens to sit in the same folder)."""
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return "study" in ds.attrs
    except (OSError, ValueError):
        return False


def list_studies(studies_dir: Path) -> list[str]:
    """Study results files under ``studies_dir`` as paths relative to it (hidden folders skipped)."""
    root = Path(studies_dir).resolve()
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (
            p.suffix.lower() in SUFFIXES
            and p.is_file()
            and not any(s.startswith(".") for s in rel.parts)
            and is_study_result(p)
        ):
            out.append(rel.as_posix())
            if len(out) >= MAX_FILES:
                break
    return out


def resolve_study(studies_dir: Path, rel: str) -> Path:
    """The file ``rel`` inside ``studies_dir``; ``ValueError`` naming ``study`` otherwise."""
    root = Path(studies_dir).resolve()
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        raise ValueError(f"study: must be a path relative to the studies folder, got {rel!r}")
    p = (root / rel).resolve()
    if not p.is_relative_to(root):
        raise ValueError(f"study: {rel!r} is outside the studies folder")
    if p.suffix.lower() not in SUFFIXES or not p.is_file():
        raise ValueError(f"study: {rel!r} is not a NetCDF file in the studies folder")
    return p


def describe(ds: xr.Dataset) -> tuple[list[dict[str, str]], str]:
    """Dropdown options for the data variables (with dims) and a one-line summary of the sweep."""
    opts = [
        {
            "label": f"{k} ({', '.join(v.dims) or 'scalar'})"
            + (f" [{v.attrs['units']}]" if "units" in v.attrs else ""),
            "value": k,
        }
        for k, v in ds.data_vars.items()
    ]
    dims = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
    return opts, f"{len(opts)} variables; dims: {dims or 'none'}"


def study_summary(ds: xr.Dataset) -> list:
    """What a study says of itself, as the page shows it: for the MaxLPS study the GPUs each policy deploys per shell
    with NVIDIA's published counts beside them, then its ratios and steering figures; nothing for other studies."""
    if ds.attrs.get("study") != "maxlps":
        return []
    policies = [str(p) for p in ds.policy.values]
    nv = ds.nvidia_gpus.values
    with_, without = policies.index("MaxLPS"), policies.index("MaxP-shelf")
    rows = [
        [f"{p:,g}", *(f"{int(g):,}" for g in ds.gpus.values[i]),
         *(f"{int(v):,}" if np.isfinite(v) else "–" for v in (nv[i, with_], nv[i, without]))]
        for i, p in enumerate(ds.shell.values)
    ]  # fmt: skip
    head = ["shell [MW]", *(f"{p} GPUs" for p in policies), "NVIDIA with MaxLPS", "NVIDIA without"]
    out = [html.H3("MaxLPS sizing: GPUs per power shell"), table(head, rows, "st-maxlps-table")]
    if "ambient_quantile" in ds.dims:  # hot days and grid flexibility, at the largest shell
        big = int(np.argmax(ds.shell.values))
        design = ds.gpus.sel(policy="MaxLPS").values[big]
        amb = [
            [f"{100 * q:g} %", f"{kw:.1f}", f"{int(g):,}", f"{100 * g / design - 100:+.1f} %", f"{h:,.0f}", f"{e:,.0f}"]
            for q, kw, g, h, e in zip(ds.ambient_quantile.values, ds.maxlps_per_rack_kw_at.values,
                                      ds.maxlps_gpus_at.values[big], ds.hours_over_shell.values,
                                      ds.shed_mwh_per_yr.values[big], strict=True)
        ]  # fmt: skip
        out += [
            html.H3(f"MaxLPS provisioned at a milder hour: {ds.shell.values[big]:,g} MW"),
            table(
                [
                    "hour of the year [quantile]",
                    "kW per rack",
                    "GPUs",
                    "vs design ambient",
                    "hours over the shell",
                    "MWh to shed a year (at most)",
                ],
                amb,
                "st-maxlps-ambient",
            ),
        ]
    return out + [html.P(line) for line in maxlps.finding_lines(ds)]


def slice_dims(da: xr.DataArray) -> tuple[str, ...]:
    """The dims a plot of ``da`` holds at one index each (a line over one dim, a heatmap over the last two)."""
    return tuple(da.dims[:-2]) if da.ndim > 2 and da.dtype.kind not in "OUSb" else ()


def slice_label(da: xr.DataArray, dim: str, i: int) -> str:
    """Index ``i`` of ``dim`` as a person reads it: its coordinate value (with units), else ``dim[i]``."""
    if dim not in da.coords:
        return f"{dim}[{i}]"
    c = da.coords[dim]
    units = f" {c.attrs['units']}" if "units" in c.attrs else ""
    return f"{c.values[i]!s}{units}"


def slice_controls(da: xr.DataArray) -> list[html.Label]:
    """One dropdown per held dim (:func:`slice_dims`), listing its values, at the first."""
    return [
        html.Label(
            [
                d,
                dcc.Dropdown(
                    id={"type": "st-slice", "dim": d},
                    options=[{"label": slice_label(da, d, i), "value": i} for i in range(da.sizes[d])],
                    value=0,
                    clearable=False,
                    className="dropdown",
                ),
            ],
            className="inline",
        )
        for d in slice_dims(da)
    ]


def variable_figure(da: xr.DataArray, at: dict[str, int] | None = None) -> go.Figure:
    """A line over one dim, a heatmap over two; text as counts; extra dims at the index ``at`` names (the first
    where it names none or one out of range)."""
    note = ""
    held = slice_dims(da)
    if held:
        pick = {d: int((at or {}).get(d, 0)) for d in held}
        pick = {d: i if 0 <= i < da.sizes[d] else 0 for d, i in pick.items()}
        note = " at " + ", ".join(f"{d}={slice_label(da, d, i)}" for d, i in pick.items())
        da = da.isel(pick)
    units = f" [{da.attrs['units']}]" if "units" in da.attrs else ""
    title = f"{da.name}{units}{note}"
    if da.dtype.kind in "OUSb":
        vals, counts = np.unique(np.asarray(da.values).astype(str).ravel(), return_counts=True)
        fig = go.Figure(go.Bar(x=vals, y=counts))
        fig.update_layout(title=f"{title}: counts", yaxis_title="count")
    elif da.ndim == 0:
        fig = waiting_figure(f"{da.name} = {float(da.values):.6g}{units}")
    elif da.ndim == 1:
        d = da.dims[0]
        x = da.coords[d].values if d in da.coords else np.arange(da.size)
        fig = go.Figure(go.Scatter(x=x, y=da.values, mode="lines+markers"))
        if da.dtype.kind in "fiu":
            readable(fig, 0.0, da.values, min_frac=0.05)
        fig.update_layout(title=title, xaxis_title=d, yaxis_title=units.strip(" []") or None)
    else:
        dy, dx = da.dims
        fig = go.Figure(
            go.Heatmap(
                z=da.values,
                x=da.coords[dx].values if dx in da.coords else None,
                y=da.coords[dy].values if dy in da.coords else None,
                colorscale="Viridis",
            )
        )
        fig.update_layout(title=title, xaxis_title=dx, yaxis_title=dy)
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def open_variable(studies_dir: Path, rel: str, name: str, at: dict[str, int] | None = None) -> go.Figure:
    """The figure of variable ``name`` of study ``rel`` (held dims at ``at``, see :func:`variable_figure`)."""
    p = resolve_study(studies_dir, rel)
    with xr.open_dataset(p) as ds:
        if name not in ds.data_vars:
            raise ValueError(f"variable: {name!r} not in {rel}")
        return variable_figure(ds[name].load(), at)


def open_slices(studies_dir: Path, rel: str, name: str) -> list[html.Label]:
    """The slice controls of variable ``name`` of study ``rel`` (none when it has no held dim)."""
    with xr.open_dataset(resolve_study(studies_dir, rel)) as ds:
        return slice_controls(ds[name]) if name in ds.data_vars else []


def register(app: Dash, source, sink, studies_dir: Path) -> None:
    @app.callback(Output("st-file", "options"), Input("st-refresh", "n_clicks"))
    def _files(_n):
        return list_studies(studies_dir)

    @app.callback(
        Output("st-var", "options"),
        Output("st-var", "value"),
        Output("st-info", "children"),
        Output("st-summary", "children"),
        Input("st-file", "value"),
        prevent_initial_call=True,
    )
    def _open(rel):
        if not rel:
            return [], None, "", []
        try:
            with xr.open_dataset(resolve_study(studies_dir, rel)) as ds:
                opts, info = describe(ds)
                summary = study_summary(ds)
        except (ValueError, OSError) as e:
            return [], None, html.Span(str(e), className="error"), []
        return opts, (opts[0]["value"] if opts else None), info, summary

    @app.callback(Output("st-slices", "children"), Input("st-var", "value"), Input("st-file", "value"))
    def _slices(name: Any, rel: Any):
        if not name or not rel:
            return []
        try:
            return open_slices(studies_dir, rel, name)
        except (ValueError, OSError):
            return []

    @app.callback(
        Output("st-plot", "figure"),
        Input("st-var", "value"),
        Input("st-file", "value"),
        Input({"type": "st-slice", "dim": ALL}, "value"),
        State({"type": "st-slice", "dim": ALL}, "id"),
    )
    def _plot(name: Any, rel: Any, picks: list, ids: list):
        if not name or not rel:
            return waiting_figure("pick a study and a variable")
        at = {i["dim"]: p for i, p in zip(ids, picks, strict=True) if isinstance(p, int)}
        try:
            return open_variable(studies_dir, rel, name, at)
        except (ValueError, OSError) as e:
            return waiting_figure(str(e))
