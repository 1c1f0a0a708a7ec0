"""The plant as measured, with the shadow twin beside it: ``factory-twin dashboard --connect URL``.

A :class:`links.dsx_exchange.connect.Connector` runs in a background thread of this process (its own MQTT client,
history and alarm log under ``--state-dir``); the page reads :meth:`Connector.view` copies every second:
point health (mapped, stale, bad quality, unmapped), each CDU's supply temperature and valve measured
and predicted, the UA estimates, the racks' return temperatures measured against predicted, the active
alarms (filterable by entity) and the setpoint requests with their acknowledgement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from factory_twin.dashboard import wsgi
from factory_twin.dashboard.common import GRAPH_CONFIG, axis_ticks, card, fmt, readable, standalone_app
from factory_twin.links.dsx_exchange.status import points_parts

ViewSource = Callable[[], dict]


def create_plant_app(view: ViewSource, interval_ms: int = 1000) -> Dash:
    app = standalone_app(
        "plant (DSX Exchange)",
        [
            html.Div(id="kpis", className="kpis"),
            html.Div(
                [
                    html.Div(
                        [
                            html.H3("CDU supply temperature: measured vs predicted"),
                            dcc.Graph(id="cdu-graph", config=GRAPH_CONFIG, style={"height": "auto"}),
                        ],
                        className="half",
                    ),
                    html.Div(
                        [
                            html.H3("Rack return temperature: measured vs predicted"),
                            dcc.Graph(id="rack-graph", config=GRAPH_CONFIG, style={"height": "auto"}),
                        ],
                        className="half",
                    ),
                ],
                className="row",
            ),
            html.H3("Active alarms"),
            html.Div(
                [
                    html.Label("entity", htmlFor="alarm-filter"),
                    dcc.Input(
                        id="alarm-filter",
                        type="text",
                        placeholder="e.g. hall-a-cdu09",
                        debounce=False,
                        className="field wide",
                    ),
                ],
                className="controls inline",
            ),
            html.Div(id="alarms"),
            html.H3("Setpoint requests"),
            html.Div(id="requests"),
        ],
        interval_ms,
    )

    @app.callback(
        Output("status", "children"),
        Output("kpis", "children"),
        Output("cdu-graph", "figure"),
        Output("rack-graph", "figure"),
        Output("alarms", "children"),
        Output("requests", "children"),
        Input("tick", "n_intervals"),
        Input("alarm-filter", "value"),
    )
    def _refresh(_n, entity_filter):
        v = view()
        st, h = v["status"], v["health"]
        t = np.datetime64(int(st["plant_time_ms"]), "ms").astype("datetime64[s]") if st["plant_time_ms"] else None
        link = "connected" if st["connected"] else f"NOT CONNECTED: {st['broker_error']}; retrying"
        status = (
            f"plant time {str(t).replace('T', ' ') if t is not None else '–'} · {link} · "
            f"blind {st['blind_s']:.0f} s · {st['messages']:,} messages"
        )
        alarms = st["active_alarms"]
        reqs = st["requests"]
        kpis = kpi_cards(st, h)
        needle = (entity_filter or "").strip()
        shown = [a for a in alarms if needle in a["entity"]] if needle else alarms
        return (
            status,
            kpis,
            _cdu_figure(v["cdu"]),
            _rack_figure(v["rack"]),
            alarm_table(shown, no_data(st)),
            _request_table(reqs),
        )

    return app


KPIS = (("points mapped", "kpi-mapped"), ("stale", "kpi-stale"), ("bad quality", "kpi-bad"),
        ("unmapped", "kpi-unmapped"), ("active alarms", "kpi-alarms"), ("lowest UA / design", "kpi-ua"),
        ("hottest die (est.)", "kpi-die"))  # fmt: skip


def no_data(st: dict) -> str | None:
    """Why the page has no live plant data (never connected, no value yet, or the broker lost), else None."""
    if not st["values"]:
        return f"no data from the plant yet{': ' + st['broker_error'] if st['broker_error'] else ''}"
    if not st["connected"]:
        return f"no fresh data: {st['broker_error']}; the figures are the last received"
    return None


def kpi_cards(st: dict, h: dict) -> list[html.Div]:
    """Point health and the plant's key figures from the connector's status ``st`` and health counts ``h``; the
    mapped points as connect's exit line counts them (``status()["points"]``). Without any plant data every figure
    reads "–" (no healthy-looking zeros, no design UA shown as an estimate)."""
    alarms = st["active_alarms"]
    if not st["values"]:
        return [card(label, "–", id=i, note="no data") for label, i in KPIS]
    return [
        card("points mapped", f"{st['points']['mapped']:,}", id="kpi-mapped", note=points_parts(st["points"])),
        card("stale", f"{h['stale']:,}", alarm=h["stale"] > 0, id="kpi-stale"),
        card("bad quality", f"{h['bad_quality']:,}", alarm=h["bad_quality"] > 0, id="kpi-bad"),
        card("unmapped", f"{h['unmapped']:,}", alarm=h["unmapped"] > 0, id="kpi-unmapped"),
        card("active alarms", f"{len(alarms)}", alarm=bool(alarms), id="kpi-alarms"),
        card("lowest UA / design", fmt(st["ua_ratio_min"], 3), id="kpi-ua"),
        card("hottest die (est.)", fmt(st["max_die_c"], 1, "°C"), id="kpi-die"),
    ]


def _cdu_figure(c: dict) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=c["id"], y=c["supply_measured_c"], mode="markers", name="measured", marker_size=7)
    fig.add_scatter(
        x=c["id"],
        y=c["supply_predicted_c"],
        mode="markers",
        name="predicted (est. UA)",
        marker_symbol="x",
        marker_size=7,
    )
    readable(fig, 1.0, c["supply_measured_c"], c["supply_predicted_c"])
    fig.update_traces(hovertemplate="CDU %{x}: %{y:.2f} °C")
    # a CDU id per tick, upright text down from the axis, the margin grown to hold the longest (a fixed 40 px cut
    # "hall-a-cdu01" to "hal" and "u01")
    fig.update_xaxes(tickangle=-90, automargin=True)
    fig.update_layout(height=380, margin=dict(l=50, r=10, t=30, b=40), yaxis_title="°C",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0))  # fmt: skip
    return fig


def _rack_figure(r: dict) -> go.Figure:
    m, p = np.asarray(r["return_measured_c"], float), np.asarray(r["return_predicted_c"], float)
    fig = go.Figure()
    ok = np.isfinite(m) & np.isfinite(p)
    fig.add_scatter(x=p[ok], y=m[ok], mode="markers", name="racks", marker_size=4)
    if ok.any():
        lo, hi = float(min(m[ok].min(), p[ok].min())), float(max(m[ok].max(), p[ok].max()))
        fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="measured = predicted", line_dash="dot")
        ticks = axis_ticks([lo, hi], 1.0)
        fig.update_xaxes(**ticks)
        fig.update_yaxes(**ticks)
    fig.update_layout(
        height=320,
        margin=dict(l=50, r=10, t=10, b=40),
        xaxis_title="predicted °C",
        yaxis_title="measured °C",
        legend_orientation="h",
    )
    return fig


def alarm_table(alarms: list[dict], no_data: str | None = None) -> html.Table | html.Div:
    if not alarms and no_data:  # nothing to judge the plant by: not "no alarm"
        return html.Div(no_data, className="message error", id="no-data")
    if not alarms:
        return html.Div("no active alarm", className="message ok", id="no-alarms")
    rows = [
        html.Tr(
            [
                html.Td(str(np.datetime64(a["time_ms"], "ms").astype("datetime64[s]")).replace("T", " ")),
                html.Td(a["entity"]),
                html.Td(a["kind"]),
                html.Td(a["point"] or ""),
            ],
            className="alarm-row",
        )
        for a in sorted(alarms, key=lambda a: a["time_ms"], reverse=True)[:200]
    ]
    head = html.Tr([html.Th("time"), html.Th("entity"), html.Th("kind"), html.Th("point")])
    return html.Table([html.Thead(head), html.Tbody(rows)], className="table", id="alarm-table")


def request_state(r: dict) -> str:
    """What ``requests.jsonl`` last said of a CDU's request (``state``); for a request saved without it, what its
    fields say (withheld once no longer active, whatever an earlier acknowledgement)."""
    if r.get("state"):
        return r["state"]
    if not r.get("active"):
        return "withheld"
    return "acknowledged" if r.get("acked_ms") else "waiting"


def _request_table(reqs: dict) -> html.Table | html.Div:
    if not reqs:
        return html.Div("no request sent", className="message", id="no-requests")
    rows = []
    for cdu, r in sorted(reqs.items()):
        state = request_state(r)
        since = r.get("state_ms") or r.get("acked_ms") or r.get("sent_ms")
        when = str(np.datetime64(int(since), "ms").astype("datetime64[s]")).replace("T", " ") if since else "–"
        value = fmt(r.get("value"), 2, "°C") + ("" if r.get("active") else " (last sent, not in force)")
        cls = "req-row" + (" withheld" if state.startswith("withheld") else "")
        rows.append(html.Tr([html.Td(cdu), html.Td(value), html.Td(state), html.Td(when)], className=cls))
    head = html.Tr([html.Th("CDU"), html.Th("supply request"), html.Th("state"), html.Th("since")])
    return html.Table([html.Thead(head), html.Tbody(rows)], className="table", id="request-table")


def serve_connected(connector, host: str = "127.0.0.1", port: int = 8050, debug: bool = False) -> int:
    """Run ``connector`` in a background thread and serve the plant page until interrupted."""
    sock = wsgi.listen(host, port)  # a port in use fails here, before connecting
    stop = threading.Event()
    worker = threading.Thread(target=connector.run, args=(stop.is_set,), name="connect", daemon=True)
    connector.client.start(wait_s=None)
    worker.start()
    app = create_plant_app(connector.view)
    print(f"factory-twin dashboard: http://{host}:{port}/ (the plant from {connector.client.config.url})", flush=True)
    threading.Thread(target=connector.client.notice_unreachable, args=("dashboard",), daemon=True).start()
    try:
        wsgi.run(app, sock, debug)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        stop.set()
        worker.join(30)
        connector.client.stop()
    return 0


__all__ = ["create_plant_app", "serve_connected"]
