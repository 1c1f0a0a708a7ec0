"""Shared helpers for the pages: snapshot time axes, stacked panels with readable ticks, placeholders, number
formatting, flows in the engineering unit (L/min)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, dcc, html
from factory_twin.models.heat_rejection import RHO_WATER_KG_M3
from factory_twin.models.units import M3_S_PER_L_MIN
from factory_twin.twin.facility.nodes import cdu_names, rack_names
from factory_twin.twin.live.runner import Snapshot
from factory_twin.twin.simulation.targets import Miss, missed_targets
from plotly.subplots import make_subplots

GRAPH_CONFIG = {"displaylogo": False, "responsive": True}


def times(epoch_s: np.ndarray) -> np.ndarray:
    """Seconds since the epoch (naive local time) -> ``datetime64[s]`` for plotly axes."""
    return np.asarray(epoch_s, np.int64).astype("datetime64[s]")


def l_per_min(m3_s: Any) -> Any:
    """Volume flow [m3/s] -> the engineering unit, L/min."""
    return np.asarray(m3_s, float) / M3_S_PER_L_MIN if np.ndim(m3_s) else float(m3_s) / M3_S_PER_L_MIN


def water_l_per_min(kg_s: Any) -> Any:
    """Make-up water mass flow [kg/s] -> L/min at the density the evaporative model turned litres into kg."""
    return l_per_min(np.asarray(kg_s, float) / RHO_WATER_KG_M3 if np.ndim(kg_s) else float(kg_s) / RHO_WATER_KG_M3)


def axis_ticks(values: Any, min_span: float, min_frac: float = 0.0, n_ticks: int = 5) -> dict[str, Any]:
    """Range, tick step and format for a y axis over ``values``: ticks on round steps (1, 2 or 5 x 10^k) with
    as many decimals as the step needs, over at least ``min_span`` and ``min_frac`` of the largest magnitude
    (a flat line gets a readable window instead of ticks like 21.489); ``{}`` (plotly's autorange) when no
    value is finite."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {}
    lo, hi = float(v.min()), float(v.max())
    min_span = max(min_span, min_frac * max(abs(lo), abs(hi)))
    if min_span <= 0 and hi == lo:  # a flat line with no span asked for: a tenth of its value (or 1)
        min_span = 0.1 * abs(lo) or 1.0
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    raw = (hi - lo) / n_ticks
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    pad = 0.05 * (hi - lo)
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return dict(range=[lo - pad, hi + pad], tick0=0.0, dtick=step, tickformat=f",.{digits}f")


def time_panels(titles: list[str], heights: list[float] | None = None) -> go.Figure:
    """Panels stacked over one shared time axis, one quantity (unit) per y axis: never two scales on one plot
    area, so no line hides behind another quantity's."""
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=heights)
    for i, title in enumerate(titles, 1):
        fig.update_yaxes(title_text=title, row=i, col=1)
    return fig


def readable(fig: go.Figure, min_span: float, *values: Any, min_frac: float = 0.0, row: int | None = None) -> None:
    """Set the y axis of panel ``row`` (of a one-axis figure when ``None``) to :func:`axis_ticks` over ``values``."""
    arrays = [np.asarray(v, float).ravel() for v in values]
    ticks = axis_ticks(np.concatenate(arrays) if arrays else [], min_span, min_frac)
    fig.update_yaxes(**ticks, **({} if row is None else {"row": row, "col": 1}))


def waiting_figure(text: str = "waiting for the twin...") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=300, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def fmt(x: Any, digits: int = 1, unit: str = "") -> str:
    """A number for display; an en dash when it is missing or not finite."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{digits}f}{' ' + unit if unit else ''}"


def table(head: list[str], rows: list[list], tid: str) -> html.Table:
    """A plain table: one header row, then ``rows`` (cells may be components)."""
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows])],
        className="table",
        id=tid,
    )


def read_json(folder: Path, name: str) -> dict | None:
    """A link's status file ``name`` in the one ``folder`` the server was given (None when there is none yet or
    it is unreadable: the writers replace it atomically)."""
    try:
        return json.loads((Path(folder) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def card(label: str, value: str, alarm: bool = False, note: str | None = None, **kw: Any) -> html.Div:
    """A key figure: label, value and, below it, an optional note."""
    parts = [html.Div(label, className="kpi-label"), html.Div(value, className="kpi-value")]
    if note:
        parts.append(html.Div(note, className="kpi-note"))
    return html.Div(parts, className="kpi alarm" if alarm else "kpi", **kw)


def standalone_app(brand: str, body: list, interval_ms: int = 1000) -> Dash:
    """A one-page app without a twin of its own (the plant on DSX Exchange, a flex agent's page): the dashboard's
    stylesheet, a header with ``brand`` and a ``status`` span, ``body`` in the page, a ``tick`` interval."""
    app = Dash(
        __name__,
        assets_folder=str(Path(__file__).with_name("assets")),
        serve_locally=True,
        title=f"factory-twin · {brand}",
        update_title=None,
    )
    app.layout = html.Div(
        [
            dcc.Interval(id="tick", interval=interval_ms),
            html.Header(
                [html.Span(f"factory-twin · {brand}", className="brand"), html.Span(id="status", className="status")],
                className="header",
            ),
            html.Main(body, className="page"),
        ]
    )
    return app


def names(snap: Snapshot) -> tuple[list[str], list[str]]:
    """The DSX ids of the snapshot's racks and CDUs (``hall-a-r03-07``, ``hall-a-cdu03``): the one naming of
    :mod:`twin.facility.nodes`, over the snapshot's layout arrays."""
    layout = SimpleNamespace(
        hall_names=snap.meta["hall_names"],
        rack_hall=np.asarray(snap["rack_hall"]),
        rack_row=np.asarray(snap["rack_row"]),
        rack_slot=np.asarray(snap["rack_slot"]),
        cdu_hall=np.asarray(snap["cdu_hall"]),
    )
    return rack_names(layout), cdu_names(layout)


def status_text(snap: Snapshot | None) -> str:
    """One line for the header: simulated time, speed, controller."""
    if snap is None:
        return "twin not running yet"
    m = snap.meta
    state = "paused" if m["paused"] else f"{m['speed']:g}x (achieved {m['achieved_speed']:.0f}x)"
    when = m["time"].replace("T", " ")
    return f"{m['facility']} · {m['scenario']} · {when} · {state} · {m['controller']}"


def snapshot_misses(snap: Snapshot) -> list[Miss]:
    """Missed DR and import-limit targets in the snapshot's campus history: the recorded targets, the ones the plan
    and the table use (:mod:`twin.simulation.targets`)."""
    t = times(snap["hist_time"])
    if t.size < 2:
        return []
    return missed_targets(
        t,
        snap["hist_grid_import_mw"],
        snap["hist_import_limit_mw"],
        snap["hist_dr_target_mw"],
        float(snap.meta["record_s"]),
    )


def target_alarm(snap: Snapshot | None) -> list[html.Div]:
    """An alarm line per missed grid target in the history shown (nothing while every target is met)."""
    if snap is None:
        return []
    return [html.Div(f"Alarm: {m}", className="banner alarm") for m in snapshot_misses(snap)]
