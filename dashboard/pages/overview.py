"""Overview: KPIs now, a Sankey of power from the grid meter to IT and cooling, the 24 h trend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from factory_twin.dashboard.common import GRAPH_CONFIG, card, fmt, times, waiting_figure
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


def kpi_cards(snap: Snapshot) -> list[html.Div]:
    """Headline meters over the latest plant step."""
    now, cur = snap.meta["now"], snap.meta["currency"]
    over = now["grid_import_mw"] > now["import_limit_mw"]
    return [
        card(
            "Grid import / limit",
            f"{fmt(now['grid_import_mw'])} / {fmt(now['import_limit_mw'])} MW",
            alarm=over,
            id="kpi-import",
        ),
        card("IT power", fmt(now["it_power_mw"], 1, "MW")),
        card("Cooling power", fmt(now["cooling_power_mw"], 2, "MW")),
        card("PUE", fmt(now["pue"], 3)),
        card("Throughput kept", fmt(100 * now["throughput"], 1, "%")),
        card("Tokens/s", f"{now['tokens_per_s'] / 1e6:,.1f} M"),
        card("Cost per Mtok", fmt(now["cost_per_mtok"], 1, cur)),
        card("Carbon", fmt(now["carbon_t_per_h"], 1, "t/h")),
    ]


def sankey_links(snap: Snapshot) -> tuple[list[str], list[tuple[int, int, float]]]:
    """Nodes and (source, target, MW) links: meter and BESS -> site bus -> losses, IT, cooling;
    IT -> PSU losses, GPUs, other rack loads; cooling -> fans, chiller, pumps and air."""
    now = snap.meta["now"]
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
    bess, cool = now["bess_power_mw"], now["cooling_power_mw"]
    fan, chill = now["fan_power_mw"], now["chiller_power_mw"]
    links = [
        (0, 2, now["grid_import_mw"] - max(-bess, 0.0)),
        (1, 2, max(bess, 0.0)),
        (2, 3, now["losses_mw"]),
        (2, 4, now["it_power_mw"]),
        (2, 5, cool),
        (4, 6, now["psu_loss_mw"]),
        (4, 7, now["gpu_power_mw"]),
        (4, 8, now["rack_other_mw"]),
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
    if snap is None or snap.meta["now"] is None:
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
