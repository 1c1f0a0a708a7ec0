"""Overview: KPIs now, a Sankey of power from the grid meter to IT and cooling, the 24 h trend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from factory_twin.dashboard.common import GRAPH_CONFIG, card, fmt, times, waiting_figure
from factory_twin.models.units import MW
from factory_twin.twin.live import Snapshot
from plotly.subplots import make_subplots

PATH, TITLE = "/", "Overview"


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Overview"),
            html.Div(id="ov-kpis", className="kpis"),
            html.Div(
                [
                    dcc.Graph(id="ov-sankey", config=GRAPH_CONFIG, className="half"),
                    dcc.Graph(id="ov-trend", config=GRAPH_CONFIG, className="half"),
                ],
                className="row",
            ),
        ]
    )


def kpis(snap: Snapshot) -> dict[str, float]:
    """Headline numbers over the latest plant step.

    cost per Mtok = price [cur/MWh] x import [MW] / 3600 [s/h] / tokens [1/s] x 1e6;
    carbon rate [t/h] = intensity [kg/MWh] x import [MW] / 1000.
    """
    live, now = snap.meta["live"], snap.meta["now"]
    import_mw = (live["grid_w"] - live["bess_w"]) / MW
    tok = live["tokens_per_s"]
    cost_s = now["price_per_mwh"] * import_mw / 3600.0
    return {
        "import_mw": import_mw,
        "limit_mw": now["import_limit_mw"],
        "it_mw": live["it_w"] / MW,
        "cooling_mw": live["cooling_w"] / MW,
        "pue": live["grid_w"] / live["it_w"],
        "throughput": live["throughput"] if "throughput" in live else tok / live["tokens_uncapped_per_s"],
        "tokens_per_s": tok,
        "cost_per_mtok": cost_s / tok * 1e6 if tok > 0 else math.nan,
        "carbon_t_h": now["carbon_kg_per_mwh"] * import_mw / 1000.0,
    }


def kpi_cards(snap: Snapshot) -> list[html.Div]:
    k, cur = kpis(snap), snap.meta["currency"]
    over = k["import_mw"] > k["limit_mw"]
    return [
        card(
            "Grid import / limit",
            f"{fmt(k['import_mw'])} / {fmt(k['limit_mw'])} MW",
            alarm=over,
            id="kpi-import",
        ),
        card("IT power", fmt(k["it_mw"], 1, "MW")),
        card("Cooling power", fmt(k["cooling_mw"], 2, "MW")),
        card("PUE", fmt(k["pue"], 3)),
        card("Throughput kept", fmt(100 * k["throughput"], 1, "%")),
        card("Tokens/s", f"{k['tokens_per_s'] / 1e6:,.1f} M"),
        card("Cost per Mtok", fmt(k["cost_per_mtok"], 1, cur)),
        card("Carbon", fmt(k["carbon_t_h"], 1, "t/h")),
    ]


def sankey_links(snap: Snapshot) -> tuple[list[str], list[tuple[int, int, float]]]:
    """Nodes and (source, target, MW) links: meter and BESS -> site bus -> losses, IT, cooling;
    IT -> PSU losses, GPUs, other rack loads; cooling -> fans, chiller, pumps and air."""
    live, rej = snap.meta["live"], snap.meta.get("rejection") or {}
    nodes = [
        "Grid meter",
        "BESS",
        "Site bus",
        "Distribution losses",
        "IT (PSU input)",
        "Cooling",
        "PSU losses",
        "GPUs",
        "Other rack loads",
        "Heat-rejection fans",
        "Chiller",
        "Pumps + air",
    ]
    bess = live["bess_w"] / MW
    fan, chill = rej.get("fan_w", 0.0) / MW, rej.get("chiller_w", 0.0) / MW
    cool = live["cooling_w"] / MW
    links = [
        (0, 2, (live["grid_w"] - live["bess_w"]) / MW - max(-bess, 0.0)),
        (1, 2, max(bess, 0.0)),
        (2, 3, live["losses_w"] / MW),
        (2, 4, live["it_w"] / MW),
        (2, 5, cool),
        (4, 6, (live["it_w"] - live["rack_dc_w"]) / MW),
        (4, 7, live["gpu_w"] / MW),
        (4, 8, (live["rack_dc_w"] - live["gpu_w"]) / MW),
        (5, 9, fan),
        (5, 10, chill),
        (5, 11, cool - fan - chill),
    ]
    if bess < 0:  # charging: part of the meter flow goes into the battery
        links.append((0, 1, -bess))
    return nodes, [lk for lk in links if lk[2] > 0]


def sankey_figure(snap: Snapshot) -> go.Figure:
    nodes, links = sankey_links(snap)
    s, t, v = zip(*links, strict=True)
    fig = go.Figure(
        go.Sankey(
            node=dict(label=nodes, pad=14),
            valueformat=".2f",
            valuesuffix=" MW",
            link=dict(source=s, target=t, value=v),
        )
    )
    fig.update_layout(title="Power flow now [MW]", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def trend_figure(snap: Snapshot) -> go.Figure:
    """24 h of import, limit, the optimizer's plan and price (right axis)."""
    x = times(snap["hist_time"])
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=x, y=snap["hist_grid_import_mw"], name="import", line=dict(color="#1f4e79"))
    fig.add_scatter(x=x, y=snap["hist_import_limit_mw"], name="limit", line=dict(color="#b00020", dash="dash"))
    if np.any(np.isfinite(snap["hist_plan_mw"])):
        fig.add_scatter(x=x, y=snap["hist_plan_mw"], name="plan", line=dict(color="#2e7d32", dash="dot"))
    fig.add_scatter(
        x=x,
        y=snap["hist_price_per_mwh"],
        name="price",
        line=dict(color="#999", width=1),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="MW", secondary_y=False)
    fig.update_yaxes(
        title_text=f"{snap.meta['currency']}/MWh",
        secondary_y=True,
        showgrid=False,
        rangemode="tozero",
        tickformat=",.0f",
    )
    fig.update_layout(
        title="Last 24 h",
        height=380,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.15),
    )
    return fig


def update(snap: Snapshot | None) -> tuple[Any, Any, Any]:
    """KPI cards, Sankey and trend for a snapshot (placeholders before the first plant step)."""
    if snap is None or not snap.meta.get("live"):
        return (
            html.Div("waiting for the twin...", className="message"),
            waiting_figure(),
            waiting_figure(),
        )
    return kpi_cards(snap), sankey_figure(snap), trend_figure(snap)


def register(app: Dash, source, sink, studies_dir: Path) -> None:
    @app.callback(
        Output("ov-kpis", "children"),
        Output("ov-sankey", "figure"),
        Output("ov-trend", "figure"),
        Input("tick", "n_intervals"),
    )
    def _update(_n):
        return update(source())
