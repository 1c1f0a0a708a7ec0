"""Racks: the floor as a heatmap (hall/row x slot) of die temperature, cap or power; rack detail.

Designed for a 1 GW campus (~7,200 racks in ~720 rows): when a floor has more than ``MAX_LINES`` rows,
consecutive rows of a hall are laid side by side on one line (separated by an empty column), so the
heatmap stays within ``MAX_LINES`` lines of ``LINE_PX`` pixels whatever the campus size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html, no_update
from factory_twin.dashboard.common import GRAPH_CONFIG, names, readable, time_panels, times, waiting_figure
from factory_twin.twin.live.runner import Snapshot
from numpy.typing import NDArray

PATH, TITLE = "/racks", "Racks"
MAX_LINES = 60  # heatmap lines at most (rows of a hall fold side by side beyond it)
LINE_PX = 12  # height of one heatmap line [px]
METRICS = {
    "die_temp_c": "die temperature [°C]",
    "cap_pct": "GPU cap [% of TDP]",
    "gpu_power_w": "GPU power [W per GPU]",
}


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Racks"),
            html.Div(
                [
                    dcc.RadioItems(
                        id="racks-metric",
                        value="die_temp_c",
                        inline=True,
                        options=[{"label": v, "value": k} for k, v in METRICS.items()],
                    ),
                    html.Label(
                        [
                            "rack",
                            dcc.Input(
                                id="racks-id",
                                type="text",
                                debounce=True,
                                placeholder="hall-a-r01-01 or 0",
                                className="field wide",
                            ),
                        ],
                        className="inline",
                    ),
                ],
                className="controls",
            ),
            dcc.Graph(id="racks-floor", config=GRAPH_CONFIG),
            html.Div(
                [
                    html.Div(id="racks-detail-text", className="third"),
                    dcc.Graph(id="racks-detail", config=GRAPH_CONFIG, className="twothirds"),
                ],
                className="row",
            ),
        ]
    )


def metric_values(snap: Snapshot, metric: str) -> NDArray[np.float64]:
    """Per-rack value of ``metric`` (cap as a share of TDP in %)."""
    if metric == "die_temp_c":
        return np.asarray(snap["rack_die_temp_c"], float)
    if metric == "cap_pct":
        return 100.0 * np.asarray(snap["rack_gpu_cap_w"], float) / np.asarray(snap["rack_tdp_w"], float)
    if metric == "gpu_power_w":
        return np.asarray(snap["rack_gpu_power_w"], float)
    raise ValueError(f"metric: must be one of {list(METRICS)}, got {metric!r}")


def floor_grid(snap: Snapshot, values: NDArray) -> tuple[NDArray, NDArray, list[str], NDArray, NDArray]:
    """Place per-rack ``values`` on a grid of lines (hall rows) x columns (slots).

    Up to ``MAX_LINES`` (hall, row) pairs each get a line and x is the slot. Beyond that, ``k`` consecutive
    rows of a hall share a line: row ``j`` of the line occupies columns ``j * (slots + 1) + slot``.
    Returns ``z`` [line, column] (NaN where no rack), ``rack`` [line, column] (index, -1 where none), the
    line labels, and each rack's line and column.
    """
    hall = np.asarray(snap["rack_hall"], np.int64)
    row = np.asarray(snap["rack_row"], np.int64)
    slot = np.asarray(snap["rack_slot"], np.int64)
    n_row, n_slot = int(row.max()) + 1, int(slot.max()) + 1
    uniq, yi = np.unique(hall * n_row + row, return_inverse=True)
    u_hall, u_row = uniq // n_row, uniq % n_row
    first = np.searchsorted(u_hall, u_hall)  # index of the hall's first row among uniq (sorted by hall)
    rank = np.arange(uniq.size) - first
    rows_per_hall = np.bincount(u_hall, minlength=int(u_hall.max()) + 1)
    k = max(1, -(-uniq.size // MAX_LINES))  # rows per line: the fewest that fit, halls starting on new lines
    while np.sum(-(-rows_per_hall // k)) > MAX_LINES:
        k += 1
    offset = np.r_[0, np.cumsum(-(-rows_per_hall // k))]
    u_line = offset[u_hall] + rank // k
    u_col0 = (rank % k) * (n_slot + 1)
    line, col = u_line[yi], u_col0[yi] + slot
    z = np.full((int(offset[-1]), k * (n_slot + 1) - 1), np.nan)
    rack = np.full(z.shape, -1, np.int64)
    z[line, col] = values
    rack[line, col] = np.arange(values.size)
    names = snap.meta["hall_names"]
    labels = []
    for ln in range(z.shape[0]):
        rows = u_row[u_line == ln]
        span = f"row {rows[0]}" if rows.size == 1 else f"rows {rows[0]}-{rows[-1]}"
        labels.append(f"{names[int(u_hall[u_line == ln][0])]} {span}")
    return z, rack, labels, line, col


def floor_figure(snap: Snapshot, metric: str) -> go.Figure:
    """Heatmap of ``metric`` over the floor; throttled racks marked x; hover shows the rack."""
    v = metric_values(snap, metric)
    z, rack, labels, yi, col = floor_grid(snap, v)
    die = np.asarray(snap["rack_die_temp_c"], float)
    cap = 100.0 * np.asarray(snap["rack_gpu_cap_w"], float) / np.asarray(snap["rack_tdp_w"], float)
    pw = np.asarray(snap["rack_gpu_power_w"], float)
    idx = rack.clip(0)
    row, slot = np.asarray(snap["rack_row"])[idx], np.asarray(snap["rack_slot"])[idx]
    custom = np.stack([rack, die[idx], cap[idx], pw[idx], row, slot], axis=-1)
    ids = np.asarray(names(snap)[0], object)[idx]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            y=labels,
            customdata=custom,
            text=np.where(rack >= 0, ids, ""),
            colorscale="Turbo",
            hoverongaps=False,
            colorbar=dict(title=METRICS[metric]),
            xgap=1,
            ygap=1,
            hovertemplate="%{text} (#%{customdata[0]})<br>row %{customdata[4]}, slot %{customdata[5]}<br>"
            "die %{customdata[1]:.1f} °C<br>cap %{customdata[2]:.0f} %<br>"
            "GPU %{customdata[3]:.0f} W<extra></extra>",
        )
    )
    folded = z.shape[1] > int(np.max(snap["rack_slot"])) + 1
    thr = np.flatnonzero(np.asarray(snap["rack_throttled"], bool))
    fig.add_scatter(
        x=col[thr],
        y=[labels[i] for i in yi[thr]],
        mode="markers",
        name="throttled",
        customdata=thr,
        marker=dict(symbol="x", color="black", size=7),
        hovertemplate="rack %{customdata} throttled<extra></extra>",
    )
    fig.update_layout(
        title=f"Floor: {METRICS[metric]} ({thr.size} racks throttled)",
        xaxis=dict(
            title="slot" if not folded else "slot (consecutive rows of a hall side by side)", showticklabels=not folded
        ),
        height=max(320, LINE_PX * len(labels) + 120),
        margin=dict(l=10, r=10, t=40, b=10),
        showlegend=False,
        yaxis=dict(autorange="reversed"),
    )
    return fig


def parse_rack(value: Any, rack_ids: list[str]) -> int:
    """The rack the box names: its DSX id (``hall-a-r03-07``, any case) or its index; ``ValueError`` naming
    ``rack`` otherwise."""
    text = str(value).strip()
    by_id = {name.lower(): i for i, name in enumerate(rack_ids)}
    if text.lower() in by_id:
        return by_id[text.lower()]
    try:
        i = int(text)
    except ValueError:
        raise ValueError(
            f"rack: no rack {text!r}: type its id (e.g. {rack_ids[0]}) or its number 0-{len(rack_ids) - 1}"
        ) from None
    if not 0 <= i < len(rack_ids):
        raise ValueError(f"rack: must be within [0, {len(rack_ids) - 1}] or an id like {rack_ids[0]}, got {i}")
    return i


def rack_from_click(click: dict | None) -> int | None:
    """The rack index under a click on the floor heatmap or a throttle marker."""
    if not click or not click.get("points"):
        return None
    cd = click["points"][0].get("customdata")
    if isinstance(cd, dict):  # plotly sends a heatmap cell's customdata row as {"0": rack, "1": ...}
        cd = cd.get("0")
    if isinstance(cd, list):
        cd = cd[0] if cd else None
    try:
        r = int(cd)
    except (TypeError, ValueError):
        return None
    return r if r >= 0 else None


def rack_detail(snap: Snapshot, rack: int) -> tuple[list[html.Div], go.Figure]:
    """Facts about ``rack`` and its recent history (die temperature, GPU power and cap)."""
    m = snap.meta
    rack_ids, cdu_ids = names(snap)
    facts = [
        ("rack", f"{rack_ids[rack]} (#{rack})"),
        ("hall", m["hall_names"][int(snap["rack_hall"][rack])]),
        ("row / slot", f"{int(snap['rack_row'][rack])} / {int(snap['rack_slot'][rack])}"),
        ("CDU", cdu_ids[int(snap["rack_cdu"][rack])]),
        ("workload", m["class_names"][int(snap["rack_class"][rack])]),
        ("GPUs", int(snap["rack_gpus"][rack])),
        ("TDP", f"{snap['rack_tdp_w'][rack]:.0f} W"),
        ("cap", f"{snap['rack_gpu_cap_w'][rack]:.0f} W"),
        ("GPU power", f"{snap['rack_gpu_power_w'][rack]:.0f} W"),
        ("die", f"{snap['rack_die_temp_c'][rack]:.2f} °C (max {snap['rack_t_max_c'][rack]:.0f})"),
        ("throttled", "yes" if snap["rack_throttled"][rack] else "no"),
    ]
    text = [html.Div([html.B(f"{k}: "), str(v)]) for k, v in facts]
    fig = time_panels(["W per GPU", "die °C"], heights=[0.55, 0.45])
    if "rack_hist_time" in snap.arrays and snap["rack_hist_time"].size:
        x = times(snap["rack_hist_time"])
        pw, cap = snap["rack_hist_gpu_power_w"][:, rack], snap["rack_hist_gpu_cap_w"][:, rack]
        die = snap["rack_hist_die_temp_c"][:, rack]
        w = "%{y:,.0f} W per GPU"
        fig.add_scatter(x=x, y=pw, name="GPU power", hovertemplate=w, row=1, col=1)
        fig.add_scatter(x=x, y=cap, name="cap", line=dict(dash="dash"), hovertemplate=w, row=1, col=1)
        fig.add_scatter(x=x, y=die, name="die", hovertemplate="%{y:.1f} °C", row=2, col=1)
        t_max = float(snap["rack_t_max_c"][rack])
        fig.add_scatter(x=x[[0, -1]], y=[t_max, t_max], name="throttle temperature", mode="lines",
                        line=dict(color="#b00020", dash="dash"), hovertemplate="%{y:.0f} °C", row=2, col=1)  # fmt: skip
        readable(fig, 50.0, pw, cap, row=1)
        readable(fig, 2.0, die, t_max, row=2)
    fig.update_layout(
        title=f"Rack {rack_ids[rack]}: recent history",
        height=360,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.2),
    )
    return text, fig


def register(app: Dash, source, sink, studies_dir: Path) -> None:
    @app.callback(
        Output("racks-floor", "figure"),
        Input("tick", "n_intervals"),
        Input("racks-metric", "value"),
    )
    def _floor(_n, metric):
        snap = source()
        if snap is None:
            return waiting_figure()
        return floor_figure(snap, metric if metric in METRICS else "die_temp_c")

    @app.callback(Output("racks-id", "value"), Input("racks-floor", "clickData"), prevent_initial_call=True)
    def _click(click):
        r = rack_from_click(click)
        snap = source() if r is not None else None
        return no_update if snap is None else names(snap)[0][r]  # the id a person reads, as on the BMS

    @app.callback(
        Output("racks-detail-text", "children"),
        Output("racks-detail", "figure"),
        Input("tick", "n_intervals"),
        Input("racks-id", "value"),
    )
    def _detail(_n, value):
        if value in (None, ""):
            hint = html.Div("click a rack (or type its id or number) for its history", className="message")
            return hint, waiting_figure("no rack selected")
        snap = source(rack_history=True)
        if snap is None:
            return no_update, waiting_figure()
        try:
            rack = parse_rack(value, names(snap)[0])
        except ValueError as e:
            return html.Div(str(e), className="message error"), waiting_figure("no rack selected")
        return rack_detail(snap, rack)
