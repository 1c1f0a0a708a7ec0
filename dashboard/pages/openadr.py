"""OpenADR: the VEN's link to the utility, the events it takes part in, its import against their targets, and every
decision with its reason and the mapping it applied.

Reads the VEN's ``openadr-status.json`` (written atomically by :class:`links.openadr.ven.TwinVen` in its
``--state-dir``) from the one folder the server was given; nothing from the browser names a path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from factory_twin.dashboard.common import GRAPH_CONFIG, fmt, read_json, readable, table, waiting_figure
from factory_twin.links.openadr.ven import STATUS

PATH, TITLE = "/openadr", "OpenADR"


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("OpenADR 2.0b (the twin as a VEN)"),
            html.Div(id="oadr-link", role="status"),
            dcc.Graph(id="oadr-trend", config=GRAPH_CONFIG),
            html.H3("Events taken part in"),
            html.Div(id="oadr-events", className="scroll"),
            html.H3("Decisions (latest first)"),
            html.Div(id="oadr-decisions", className="scroll"),
        ]
    )


def read_status(folder: Path) -> dict | None:
    """The VEN's status file in ``folder``, or None when there is none (yet) or it is unreadable."""
    return read_json(folder, STATUS)


def _when(t: str | None) -> str:
    return (t or "until cancelled").replace("T", " ").replace("Z", "")


def _target(t: dict) -> str:
    what = f"DR depth {t['depth']:.0%}" if t["kind"] == "dr" else f"import <= {fmt(t['import_mw'], 3)} MW"
    return f"{what}, {_when(t['start'])} - {_when(t['end'])}"


def link_line(st: dict) -> html.Div:
    link = st["link"]
    ok = link["state"] == "registered"
    text = (
        f"VEN {st['ven_name']} · {st['facility']} · link {link['state']} since {_when(link['since'])}: "
        f"{link['detail']} · {st['reports_sent']} report samples sent"
    )
    problems = [html.Div(p, className="error") for p in link.get("problems", [])[-5:]]
    return html.Div([html.Div(text, className="message" if ok else "banner error"), *problems])


def events_table(st: dict) -> html.Table | html.Div:
    follow = {(r["event_id"], r["modification"]): r for r in st.get("follow", [])}
    rows = []
    for e in st["events"]:
        met = follow.get((e["event_id"], e["modification"]), {}).get("met_after_s")
        rows.append(
            [
                e["event_id"][:13],
                e["modification"],
                e["market_context"],
                fmt(e["baseline_mw"], 3),
                html.Div([html.Div(_target(t)) for t in e["targets"]]),
                fmt(e["ramp_s"], 0),
                "not yet" if met is None else fmt(met, 1),
            ]
        )
    if not rows:
        return html.Div("none: no event in force or scheduled", className="message")
    head = ["event", "mod.", "program", "baseline [MW]", "targets (UTC)", "ramp [s]", "met after [s]"]
    return table(head, rows, "oadr-events-table")


def decisions_table(st: dict) -> html.Table | html.Div:
    rows = [
        [
            _when(d["time"]),
            str(d["event_id"])[:13],
            d["modification"],
            d["status"],
            html.Span(d["opt"], className="ok" if d["opt"] == "optIn" else "error"),
            d["reason"],
            html.Div([html.Div(n) for n in d.get("mapping", [])]),
        ]
        for d in reversed(st["decisions"])
    ]
    if not rows:
        return html.Div("no event received yet", className="message")
    return table(["time (UTC)", "event", "mod.", "status", "opt", "reason", "mapping"], rows, "oadr-decisions-table")


def trend_figure(st: dict) -> go.Figure:
    h = st["history"]
    if not h:
        return waiting_figure("waiting for the twin's first plant step...")
    t = np.array([r[0].rstrip("Z") for r in h], dtype="datetime64[ms]")
    fig = go.Figure()
    fig.add_scatter(x=t, y=[r[1] for r in h], name="grid import", mode="lines")
    fig.add_scatter(x=t, y=[r[2] for r in h], name="import target", mode="lines", line=dict(dash="dash"))
    readable(fig, 0.001, *(tr.y for tr in fig.data), min_frac=0.05)
    fig.update_traces(hovertemplate="%{y:,.3f} MW")
    fig.update_layout(height=320, margin=dict(l=50, r=10, t=10, b=40), yaxis_title="MW", xaxis_title="UTC")
    fig.update_layout(legend=dict(orientation="h"))
    return fig


def register(app: Dash, openadr_dir: Path) -> None:
    @app.callback(
        Output("oadr-link", "children"),
        Output("oadr-trend", "figure"),
        Output("oadr-events", "children"),
        Output("oadr-decisions", "children"),
        Input("tick", "n_intervals"),
    )
    def _update(_n):
        st = read_status(openadr_dir)
        if st is None:
            msg = f"no VEN status in {openadr_dir} (start factory-twin openadr-ven ... --state-dir there)"
            return html.Div(msg, className="message"), waiting_figure("waiting for the VEN..."), None, None
        return link_line(st), trend_figure(st), events_table(st), decisions_table(st)


__all__ = ["PATH", "TITLE", "layout", "read_status", "register"]
