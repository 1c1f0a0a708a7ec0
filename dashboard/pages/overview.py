"""Overview: KPIs now, a Sankey of power from the grid meter to IT and cooling, the 24 h trend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from factory_twin.dashboard.common import GRAPH_CONFIG, card, fmt, readable, time_panels, times, waiting_figure
from factory_twin.models.units import MW
from factory_twin.twin.live.runner import Snapshot

PATH, TITLE = "/", "Overview"


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Overview"),
            html.Div(id="ov-kpis", className="kpis"),
            html.Div(
                [
                    dcc.Graph(id="ov-sankey", config=GRAPH_CONFIG, className="half sankey"),
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
    IT -> PSU losses, GPUs, other rack loads; the cooling loads (fans, chiller, pumps, air system) straight from
    the bus (a "Cooling" node between wrote its label over theirs); every sink in the last column."""
    now = snap.meta["now"]
    nodes = [
        "Grid meter",
        "BESS",
        "Site bus",
        "Distribution losses",
        "IT (PSU input)",
        "PSU losses",
        "GPUs",
        "Other rack loads",
        "Cooling: heat-rejection fans",
        "Cooling: chiller",
        "Cooling: pumps",
        "Cooling: air system",
    ]
    bess, cool = now["bess_power_mw"], now["cooling_power_mw"]
    fan, chill, pumps = now["fan_power_mw"], now["chiller_power_mw"], snap.meta["loops"]["pump_w"] / MW
    links = [
        (0, 2, now["grid_import_mw"] - max(-bess, 0.0)),
        (1, 2, max(bess, 0.0)),
        (2, 3, now["losses_mw"]),
        (2, 4, now["it_power_mw"]),
        (4, 5, now["psu_loss_mw"]),
        (4, 6, now["gpu_power_mw"]),
        (4, 7, now["rack_other_mw"]),
        (2, 8, fan),
        (2, 9, chill),
        (2, 10, pumps),
        (2, 11, cool - fan - chill - pumps),
    ]
    if bess < 0:  # charging: part of the meter flow goes into the battery
        links.append((0, 1, -bess))
    links = [lk for lk in links if lk[2] > 0]
    used = sorted({i for s, t, _ in links for i in (s, t)})  # a node without flow is not drawn
    new = {old: i for i, old in enumerate(used)}
    return [nodes[i] for i in used], [(new[s], new[t], v) for s, t, v in links]


def node_values(n_nodes: int, links: list[tuple[int, int, float]]) -> np.ndarray:
    """Power through each node [MW]: what enters it, or what leaves it for a source."""
    inflow, outflow = np.zeros(n_nodes), np.zeros(n_nodes)
    for s, t, v in links:
        outflow[s] += v
        inflow[t] += v
    return np.maximum(inflow, outflow)


# Where each node sits (normalized x of its column, as plotly's snap arrangement takes it), and the colour of the
# ribbons into it: supply, the rack feed, what the racks draw, losses, cooling. The IT column sits left of centre so
# that its label and the sinks' (plotly writes the last column's labels to their left) have room side by side: in
# the default even columns "IT (PSU input)" ran over "GPUs".
COLUMN_X = {"Grid meter": 0.001, "BESS": 0.001, "Site bus": 0.2, "IT (PSU input)": 0.42}
SINK_X = 0.999
RIBBON = {"supply": "rgba(31, 78, 121, 0.45)", "GPUs": "rgba(46, 125, 50, 0.5)",
          "Other rack loads": "rgba(91, 102, 115, 0.45)", "Cooling": "rgba(0, 131, 143, 0.5)",
          "losses": "rgba(176, 0, 32, 0.4)"}  # fmt: skip


def ribbon_colour(target: str) -> str:
    """The colour of the ribbons into node ``target`` (visible on white: alpha 0.4-0.5, not plotly's 0.2 grey)."""
    if target.startswith("Cooling"):
        return RIBBON["Cooling"]
    if "losses" in target:
        return RIBBON["losses"]
    return RIBBON.get(target, RIBBON["supply"])


def node_positions(nodes: list[str], value: np.ndarray, pad: float = 0.04) -> tuple[list[float], list[float]]:
    """(x, y) of each node, normalized: x its column's, y the centre of its share of the column's height, stacked in
    the order given with ``pad`` between (plotly needs both; its snap arrangement then removes any overlap)."""
    x = [COLUMN_X.get(n, SINK_X) for n in nodes]
    columns = sorted(set(x))
    full = max(sum(v for v, c in zip(value, x, strict=True) if c == col) for col in columns)
    n_max = max(x.count(col) for col in columns)
    scale = (1.0 - pad * (n_max - 1)) / full if full > 0 else 0.0
    y, top = [0.0] * len(nodes), dict.fromkeys(columns, 0.0)
    for i, (v, col) in enumerate(zip(value, x, strict=True)):
        h = max(v * scale, 0.01)
        y[i] = min(max(top[col] + h / 2, 0.001), 0.999)
        top[col] += h + pad
    return x, y


def sankey_figure(snap: Snapshot) -> go.Figure:
    """The power flow with each node's MW written on it and each link's MW on hover."""
    nodes, links = sankey_links(snap)
    s, t, v = zip(*links, strict=True)
    value = node_values(len(nodes), links)
    x, y = node_positions(nodes, value)
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node=dict(
                label=[f"{n} {fmt(x, 2)} MW" for n, x in zip(nodes, value, strict=True)],
                customdata=nodes,
                hovertemplate="%{customdata}: %{value:,.2f} MW<extra></extra>",
                pad=14,
                x=x,
                y=y,
            ),
            valueformat=",.2f",
            valuesuffix=" MW",
            link=dict(
                source=s,
                target=t,
                value=v,
                color=[ribbon_colour(nodes[b]) for b in t],
                customdata=[f"{nodes[a]} → {nodes[b]}" for a, b in zip(s, t, strict=True)],
                hovertemplate="%{customdata}: %{value:,.2f} MW<extra></extra>",
            ),
        )
    )
    fig.update_layout(title="Power flow now [MW]", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def trend_figure(snap: Snapshot) -> go.Figure:
    """24 h: import against its limit and the optimizer's plan [MW] above, price below (its own panel: a price
    on a second axis over the MW lines hid the limit at 1 GW)."""
    x = times(snap["hist_time"])
    cur = snap.meta["currency"]
    imp, lim, plan = snap["hist_grid_import_mw"], snap["hist_import_limit_mw"], snap["hist_plan_mw"]
    fig = time_panels(["MW", f"{cur}/MWh"], heights=[0.7, 0.3])
    mw = "%{y:,.1f} MW"
    fig.add_scatter(x=x, y=imp, name="grid import", line=dict(color="#1f4e79", width=2), hovertemplate=mw,
                    row=1, col=1)  # fmt: skip
    if np.any(np.isfinite(plan)):
        fig.add_scatter(x=x, y=plan, name="plan", line=dict(color="#2e7d32", dash="dot"), hovertemplate=mw,
                        row=1, col=1)  # fmt: skip
    # drawn last, on top: an import held at the limit does not hide it
    fig.add_scatter(x=x, y=lim, name="import limit", line=dict(color="#b00020", dash="dash", width=2),
                    hovertemplate=mw, row=1, col=1)  # fmt: skip
    fig.add_scatter(x=x, y=snap["hist_price_per_mwh"], name="price", line=dict(color="#7f7f7f", width=1, shape="hv"),
                    hovertemplate=f"%{{y:,.0f}} {cur}/MWh", row=2, col=1)  # fmt: skip
    readable(fig, 1.0, imp, lim, plan, min_frac=0.05, row=1)
    readable(fig, 1.0, snap["hist_price_per_mwh"], min_frac=0.1, row=2)
    fig.update_layout(
        title="Last 24 h",
        height=380,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.15),
        hovermode="x unified",
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
