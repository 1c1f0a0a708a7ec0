"""Shared helpers for the pages: snapshot time axes, placeholders, number formatting."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import html
from factory_twin.twin.grid_signals import DREvent
from factory_twin.twin.live import Snapshot
from factory_twin.twin.targets import Miss, dr_target_mw, missed_targets

GRAPH_CONFIG = {"displaylogo": False, "responsive": True}


def times(epoch_s: np.ndarray) -> np.ndarray:
    """Seconds since the epoch (naive local time) -> ``datetime64[s]`` for plotly axes."""
    return np.asarray(epoch_s, np.int64).astype("datetime64[s]")


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


def card(label: str, value: str, alarm: bool = False, **kw: Any) -> html.Div:
    return html.Div(
        [html.Div(label, className="kpi-label"), html.Div(value, className="kpi-value")],
        className="kpi alarm" if alarm else "kpi",
        **kw,
    )


def status_text(snap: Snapshot | None) -> str:
    """One line for the header: simulated time, speed, controller."""
    if snap is None:
        return "twin not running yet"
    m = snap.meta
    state = "paused" if m["paused"] else f"{m['speed']:g}x (achieved {m['achieved_speed']:.0f}x)"
    when = m["time"].replace("T", " ")
    return f"{m['facility']} · {m['scenario']} · {when} · {state} · {m['controller']}"


def snapshot_misses(snap: Snapshot) -> list[Miss]:
    """Missed DR and import-limit targets in the snapshot's campus history (see :mod:`twin.targets`)."""
    t = times(snap["hist_time"])
    if t.size < 2:
        return []
    events = [
        DREvent(
            np.datetime64(ev["start"], "s"),
            float((np.datetime64(ev["end"], "s") - np.datetime64(ev["start"], "s")).astype(float)),
            ev["depth"],
            ev["ramp_min"] * 60,
            ev["notice_min"] * 60,
        )
        for ev in snap.meta["dr_events"]
    ]
    target = dr_target_mw(events, [ev["baseline_mw"] for ev in snap.meta["dr_events"]], t)
    return missed_targets(
        t, snap["hist_grid_import_mw"], snap["hist_import_limit_mw"], target, float(snap.meta["record_s"])
    )


def target_alarm(snap: Snapshot | None) -> list[html.Div]:
    """An alarm line per missed grid target in the history shown (nothing while every target is met)."""
    if snap is None:
        return []
    return [html.Div(f"Alarm: {m}", className="banner alarm") for m in snapshot_misses(snap)]
