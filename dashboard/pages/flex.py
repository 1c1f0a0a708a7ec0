"""Grid flex: the DSX Flex agent's feeds, active and scheduled targets, compliance, breaches and refusals.

Reads the agent's ``flex-status.json`` (written atomically by :class:`links.dsx_flex.agent.FlexAgent` in
its ``--state-dir``) from the one folder the server was given; nothing from the browser names a path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from factory_twin.dashboard import wsgi
from factory_twin.dashboard.common import GRAPH_CONFIG, fmt, read_json, readable, standalone_app, table, waiting_figure
from factory_twin.links.dsx_flex.state import STATUS_FILE
from factory_twin.models.units import KW


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Grid flex (DSX Flex agent)"),
            html.H3("Feeds"),
            html.Div(id="flex-feeds", className="scroll"),
            dcc.Graph(id="flex-trend", config=GRAPH_CONFIG),
            html.H3("Targets"),
            html.Div(id="flex-targets", className="scroll"),
            html.H3("Breach alerts"),
            html.Div(id="flex-breaches", className="scroll"),
            html.H3("Refused events"),
            html.Div(id="flex-refused", className="log"),
        ]
    )


def read_status(folder: Path) -> dict | None:
    """The agent's status file in ``folder``, or None when there is none (yet) or it is unreadable."""
    return read_json(folder, STATUS_FILE)


def feeds_table(st: dict) -> html.Table:
    rows = []
    for tag, f in st["feeds"].items():
        breach = f["breach"]["status"] if f["breach"] else "none"
        rows.append(
            [
                tag,
                f["meter"],
                fmt(f["limit_w"] / KW, 1),
                fmt(f["measured_w"] / KW, 1),
                fmt(f["planned_w"] / KW, 1),
                f["phase"].replace("_", " "),
                html.Span("yes", className="ok") if f["compliant"] else html.Span("NO", className="error"),
                breach,
            ]
        )
    head = ["feed", "meter", "limit [kW]", "measured [kW]", "planned [kW]", "state", "compliant", "breach"]
    return table(head, rows, "flex-feeds-table")


def targets_table(st: dict) -> html.Table | html.Div:
    rows = [
        [
            tag,
            fmt(t["constraint_w"] / KW, 1),
            t["start"].replace("T", " "),
            (t["end"] or "until replaced").replace("T", " "),
            "active" if t["active"] else "scheduled",
            "yes" if t["best_effort"] else "no",
        ]
        for tag, f in st["feeds"].items()
        for t in f["targets"]
    ]
    if not rows:
        return html.Div("no targets: every feed at its default constraint", className="message")
    return table(["feed", "constraint [kW]", "start (UTC)", "end (UTC)", "status", "best effort"], rows, "flex-tt")


def breaches_table(st: dict) -> html.Table | html.Div:
    rows = [
        [
            a["breach"]["detected_at"].replace("T", " "),
            a["feed_tag"],
            a["status"],
            a["severity"],
            fmt(a["measured_load"]["value"], 1),
            fmt(a["target"]["load_constraint"]["value"], 1),
            len(a.get("shed_hints", [])),
        ]
        for a in reversed(st["alerts"])
    ]
    if not rows:
        return html.Div("no breaches", className="message")
    head = ["detected (UTC)", "feed", "status", "severity", "measured [kW]", "target [kW]", "shed hints"]
    return table(head, rows, "flex-breach-table")


def trend_figure(st: dict) -> go.Figure:
    fig = go.Figure()
    for tag, f in st["feeds"].items():
        h = f["history"]
        if not h:
            continue
        t = np.array([r[0].rstrip("Z") for r in h], dtype="datetime64[s]")
        fig.add_scatter(x=t, y=[r[1] / KW for r in h], name=f"{tag} measured", mode="lines")
        fig.add_scatter(x=t, y=[r[2] / KW for r in h], name=f"{tag} limit", mode="lines", line=dict(dash="dash"))
    readable(fig, 1.0, *(tr.y for tr in fig.data), min_frac=0.05)
    fig.update_traces(hovertemplate="%{y:,.1f} kW")
    # the time ticks carry the date on a second line: the bottom margin grows to hold it and the axis title (a
    # fixed 40 px cut the date); the legend above the plot, off the ticks
    fig.update_xaxes(automargin=True, title_standoff=8)
    fig.update_layout(height=340, margin=dict(l=50, r=10, t=30, b=40), yaxis_title="kW", xaxis_title="UTC",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0))  # fmt: skip
    return fig


def status_line(st: dict) -> str:
    """The header: the agent's facility and its clock (the page's only twin is the agent's)."""
    return f"{st['facility']} · agent {st['agent']} · {st['time'][:19].replace('T', ' ')} UTC"  # ISO 8601, UTC


def register(app: Dash, flex_dir: Path) -> None:
    @app.callback(
        Output("status", "children"),
        Output("flex-feeds", "children"),
        Output("flex-trend", "figure"),
        Output("flex-targets", "children"),
        Output("flex-breaches", "children"),
        Output("flex-refused", "children"),
        Input("tick", "n_intervals"),
    )
    def _update(_n):
        st = read_status(flex_dir)
        if st is None:
            msg = f"no flex agent status in {flex_dir} (start factory-twin flex-agent ... --state-dir there)"
            return msg, None, waiting_figure("waiting for the flex agent..."), None, None, None
        refused = [html.Div(f"{t.replace('T', ' ')} {src}: {why}", className="error") for t, src, why in st["refused"]]
        return (
            status_line(st),
            feeds_table(st),
            trend_figure(st),
            targets_table(st),
            breaches_table(st),
            refused or "none",
        )


def create_flex_app(flex_dir: Path, interval_ms: int = 1000) -> Dash:
    """The Grid flex page on its own: the agent runs the twin; the header shows its facility and its clock."""
    app = standalone_app("grid flex (DSX Flex agent)", [layout()], interval_ms)
    register(app, Path(flex_dir))
    return app


def serve_flex(flex_dir: Path, host: str = "127.0.0.1", port: int = 8050, debug: bool = False) -> int:
    """``factory-twin dashboard --flex-state DIR``: serve the agent's page until interrupted (no twin here)."""
    sock = wsgi.listen(host, port)  # a port in use fails here
    app = create_flex_app(flex_dir)
    print(f"factory-twin dashboard: http://{host}:{port}/ (the flex agent's page, from {flex_dir})", flush=True)
    wsgi.run(app, sock, debug)
    return 0
