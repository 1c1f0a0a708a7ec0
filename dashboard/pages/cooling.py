"""Cooling: the loop chain rack -> TCS -> CDU -> facility water -> heat rejection, live; alarms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from factory_twin.dashboard.common import (
    GRAPH_CONFIG,
    fmt,
    l_per_min,
    names,
    readable,
    time_panels,
    times,
    waiting_figure,
    water_l_per_min,
)
from factory_twin.models.units import MW
from factory_twin.twin.live.runner import Snapshot
from factory_twin.twin.simulation.plant import MODES

PATH, TITLE = "/cooling", "Cooling"
SETPOINT_TOL_K = 0.1  # a supply this far above its setpoint counts as "not held" [K]
MIN_SPAN_K = 2.0  # the ambient panel shows at least this many kelvin (a flat hour is no 0.01 K tick)
MIN_SPAN_FRAC = 0.05  # MW panels show at least 5 % of their largest value
OVER_FILL = "rgba(176, 0, 32, 0.15)"


def over_capacity_text(now: dict, loops: dict) -> str:
    """The plant's shortfall in numbers: load to reject for the setpoint against its capacity at this ambient."""
    return (
        f"heat-rejection plant over capacity: {now['plant_load_mw']:.2f} MW to reject to hold the facility water at "
        f"{loops['fws_setpoint_c']:.1f} °C, capacity {now['rejection_capacity_mw']:.2f} MW at "
        f"{now['dry_bulb_c']:.1f} / {now['wet_bulb_c']:.1f} °C db/wb"
    )


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Cooling"),
            html.Div(id="cool-alarms"),
            html.Div(id="cool-schematic", className="schematic"),
            html.Div(
                [
                    dcc.Graph(id="cool-rejection", config=GRAPH_CONFIG, className="half"),
                    dcc.Graph(id="cool-cdus", config=GRAPH_CONFIG, className="half"),
                ],
                className="row",
            ),
        ]
    )


def alarms(snap: Snapshot, tol_k: float = SETPOINT_TOL_K) -> list[str]:
    """Supply setpoints that cannot be held: CDUs at capacity, facility water above setpoint."""
    loops, now, out = snap.meta["loops"], snap.meta["now"], []
    at_cap = np.asarray(snap["cdu_at_capacity"], bool)
    sup = np.asarray(snap["cdu_tcs_supply_c"], float)
    if at_cap.any():
        ids = np.asarray(names(snap)[1])[at_cap]
        where = ", ".join(ids[:5]) + (f" and {ids.size - 5} more" if ids.size > 5 else "")
        out.append(
            f"{int(at_cap.sum())} CDU(s) ({where}) cannot hold the TCS supply setpoint "
            f"{loops['tcs_setpoint_c']:.1f} °C (warmest supply {sup[at_cap].max():.2f} °C)"
        )
    if MODES[snap.meta["plant_mode"]] == "over capacity":
        out.append(over_capacity_text(now, loops))
    if now["fws_supply_c"] > loops["fws_setpoint_c"] + tol_k:
        mode = MODES[snap.meta["plant_mode"]]
        out.append(
            f"facility water supply {now['fws_supply_c']:.2f} °C above setpoint "
            f"{loops['fws_setpoint_c']:.1f} °C (plant: {mode})"
        )
    return out


def _block(title: str, lines: list[str], alarm: bool = False) -> html.Div:
    return html.Div(
        [html.Div(title, className="block-title"), *[html.Div(x) for x in lines]],
        className="block alarm" if alarm else "block",
    )


def schematic(snap: Snapshot) -> list[html.Div]:
    """The loop chain as blocks with live temperatures [°C], flows and duties [MW]."""
    loops, now, mode = snap.meta["loops"], snap.meta["now"], snap.meta["plant_mode"]
    die = np.asarray(snap["rack_die_temp_c"])
    sup, ret = np.asarray(snap["cdu_tcs_supply_c"]), np.asarray(snap["cdu_tcs_return_c"])
    at_cap = np.asarray(snap["cdu_at_capacity"], bool)
    arrow = html.Div("→", className="arrow")
    fws_alarm = now["fws_supply_c"] > loops["fws_setpoint_c"] + SETPOINT_TOL_K
    blocks = [
        _block(
            "Racks",
            [
                f"{die.size:,} racks",
                f"liquid heat {fmt(now['liquid_heat_mw'], 2)} MW",
                f"air heat {fmt(now['air_heat_mw'], 2)} MW",
                f"hottest die {fmt(float(die.max()), 1)} °C",
                f"throttled racks {int(np.count_nonzero(snap['rack_throttled']))}",
            ],
        ),
        _block(
            "TCS loops",
            [
                f"supply {fmt(float(sup.mean()), 2)} °C (max {fmt(float(sup.max()), 2)})",
                f"return {fmt(float(ret.mean()), 2)} °C",
                f"setpoint {loops['tcs_setpoint_c']:.1f} °C",
                f"flow {fmt(l_per_min(loops['tcs_v_dot_m3_s']), 0)} L/min",
            ],
            alarm=bool(at_cap.any()),
        ),
        _block(
            "CDUs",
            [
                f"{sup.size} CDUs, {int(at_cap.sum())} at capacity",
                f"duty (TCS -> facility water) {fmt(float(np.nansum(snap['cdu_q_w'])) / MW, 2)} MW",
                f"design {fmt(float(np.sum(snap['cdu_design_q_w'])) / MW, 1)} MW",
            ],
            alarm=bool(at_cap.any()),
        ),
        _block(
            "Facility water",
            [
                f"supply {fmt(now['fws_supply_c'], 2)} °C",
                f"return {fmt(now['fws_return_c'], 2)} °C",
                f"setpoint {loops['fws_setpoint_c']:.1f} °C",
                f"flow {fmt(l_per_min(loops['fws_v_dot_m3_s']), 0)} L/min",
            ],
            alarm=fws_alarm,
        ),
        _block(
            "Heat rejection",
            [
                f"mode: {MODES[mode]}",
                f"plant (facility water) {fmt(now['plant_heat_mw'], 2)} MW of {fmt(now['rejection_capacity_mw'], 2)} "
                "MW capacity at this ambient",
                f"+ air system {fmt(now['air_heat_mw'], 2)} MW "
                f"= total heat rejected {fmt(now['heat_rejected_mw'], 2)} MW",
                f"fans {fmt(now['fan_power_mw'], 2)} MW, chiller {fmt(now['chiller_power_mw'], 2)} MW",
                f"make-up water {fmt(water_l_per_min(now['water_use_kg_s']), 0)} L/min",
                f"ambient {fmt(now['dry_bulb_c'], 1)} / {fmt(now['wet_bulb_c'], 1)} °C db/wb",
            ],
            alarm=MODES[mode] == "over capacity",
        ),
    ]
    out: list[html.Div] = []
    for b in blocks:
        out += [b, arrow]
    return out[:-1]


def over_capacity_spans(t: np.ndarray, load: np.ndarray, capacity: np.ndarray) -> list[tuple[Any, Any]]:
    """(start, end) of each run of records where the plant's load exceeds its capacity."""
    over = np.asarray(load, float) > np.asarray(capacity, float)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], over.astype(int), [0]])))
    return [(t[a], t[min(b, t.size - 1)]) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def rejection_figure(snap: Snapshot) -> go.Figure:
    """Last 24 h. Top: heat rejected [MW] stacked as the plant's share (facility water) and the air system's
    (their sum is the total heat rejected), the plant's load and its capacity at the ambient of each record,
    runs over capacity shaded. Bottom: dry and wet bulb [°C]."""
    x = times(snap["hist_time"])
    plant, air = snap["hist_plant_heat_mw"], snap["hist_air_heat_mw"]
    load, cap = snap["hist_plant_load_mw"], snap["hist_rejection_capacity_mw"]
    fig = time_panels(["MW", "°C"], heights=[0.65, 0.35])
    hover = "%{y:,.2f} MW"
    fig.add_scatter(x=x, y=plant, name="plant (facility water)", stackgroup="heat", line=dict(color="#1f4e79"),
                    hovertemplate=hover, row=1, col=1)  # fmt: skip
    fig.add_scatter(x=x, y=air, name="+ air system = total heat rejected", stackgroup="heat",
                    line=dict(color="#8fb3d9"), hovertemplate=hover, row=1, col=1)  # fmt: skip
    fig.add_scatter(x=x, y=load, name="plant load (to hold the setpoint)", line=dict(color="#000", dash="dot"),
                    hovertemplate=hover, row=1, col=1)  # fmt: skip
    fig.add_scatter(x=x, y=cap, name="plant capacity at ambient", line=dict(color="#b00020", dash="dash", width=2),
                    hovertemplate=hover, row=1, col=1)  # fmt: skip
    for x0, x1 in over_capacity_spans(x, load, cap):
        fig.add_vrect(x0=x0, x1=x1, fillcolor=OVER_FILL, line_width=0, annotation_text="over capacity",
                      annotation_position="top left", row=1, col=1)  # fmt: skip
    fig.add_scatter(x=x, y=snap["hist_dry_bulb_c"], name="dry bulb", line=dict(color="#e67e22", width=1),
                    hovertemplate="%{y:.1f} °C", row=2, col=1)  # fmt: skip
    fig.add_scatter(x=x, y=snap["hist_wet_bulb_c"], name="wet bulb", line=dict(color="#16a085", width=1),
                    hovertemplate="%{y:.1f} °C", row=2, col=1)  # fmt: skip
    readable(fig, 1.0, 0.0, np.add(plant, air), load, cap, min_frac=MIN_SPAN_FRAC, row=1)  # areas fill from 0
    readable(fig, MIN_SPAN_K, snap["hist_dry_bulb_c"], snap["hist_wet_bulb_c"], row=2)
    fig.update_layout(
        title="Heat rejected vs plant capacity; ambient",
        height=420,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.15, traceorder="normal"),
        hovermode="x unified",
    )
    return fig


def cdu_figure(snap: Snapshot) -> go.Figure:
    """TCS supply per CDU against its setpoint; CDUs at capacity in red."""
    sup = np.asarray(snap["cdu_tcs_supply_c"])
    at_cap = np.asarray(snap["cdu_at_capacity"], bool)
    fig = go.Figure(
        go.Scattergl(
            x=np.arange(sup.size),
            y=sup,
            mode="markers",
            name="TCS supply",
            marker=dict(color=np.where(at_cap, "#b00020", "#1f4e79"), size=5),
            customdata=np.asarray(snap["cdu_q_w"]) / MW,
            text=names(snap)[1],
            hovertemplate="%{text}<br>supply %{y:.2f} °C<br>duty %{customdata:.3f} MW<extra></extra>",
        )
    )
    fig.add_hline(y=snap.meta["loops"]["tcs_setpoint_c"], line_dash="dash", line_color="#999")
    readable(fig, MIN_SPAN_K, sup, snap.meta["loops"]["tcs_setpoint_c"])
    fig.update_layout(
        title="TCS supply by CDU [°C]",
        xaxis_title="CDU # (hover: its id)",
        height=360,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig


def update(snap: Snapshot | None) -> tuple[Any, Any, Any, Any]:
    if snap is None or snap.meta["now"] is None:
        return (
            [],
            html.Div("waiting for the twin...", className="message"),
            waiting_figure(),
            waiting_figure(),
        )
    alarm_divs = [html.Div(a, className="message error") for a in alarms(snap)]
    return alarm_divs, schematic(snap), rejection_figure(snap), cdu_figure(snap)


def register(app: Dash, source, sink, studies_dir: Path) -> None:
    @app.callback(
        Output("cool-alarms", "children"),
        Output("cool-schematic", "children"),
        Output("cool-rejection", "figure"),
        Output("cool-cdus", "figure"),
        Input("tick", "n_intervals"),
    )
    def _update(_n):
        return update(source())
