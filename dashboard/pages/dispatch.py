"""Dispatch: the optimizer's plan against what happened, DR events and the what-if controls."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from factory_twin.dashboard.common import GRAPH_CONFIG, readable, times, waiting_figure
from factory_twin.models.units import S_PER_MIN
from factory_twin.twin.live.runner import COMMAND_BOUNDS, Snapshot, parse_command
from factory_twin.twin.scenario.grid_signals import DR_RAMP_S

PATH, TITLE = "/dispatch", "Dispatch"

# button id -> (command kind, {field: (input id, scale)}); scale 0.01 turns % into a fraction
CONTROLS: dict[str, tuple[str, dict[str, tuple[str, float]]]] = {
    "ctl-dr": (
        "dr_event",
        {
            "depth": ("ctl-dr-depth", 0.01),
            "duration_min": ("ctl-dr-duration", 1.0),
            "ramp_min": ("ctl-dr-ramp", 1.0),
            "notice_min": ("ctl-dr-notice", 1.0),
        },
    ),
    "ctl-limit": ("import_limit", {"import_limit_mw": ("ctl-limit-mw", 1.0)}),
    "ctl-offset": ("ambient_offset", {"offset_k": ("ctl-offset-k", 1.0)}),
    "ctl-workload": ("workload", {"level": ("ctl-workload-level", 0.01)}),
    "ctl-speed": ("speed", {"speed": ("ctl-speed-x", 1.0)}),
    "ctl-clear-dr": ("clear_dr_events", {}),
    "ctl-pause": ("pause", {}),
    "ctl-resume": ("resume", {}),
    "ctl-replan": ("replan", {}),
}
INPUTS = tuple(dict.fromkeys(i for _, fields in CONTROLS.values() for i, _ in fields.values()))
# input id -> (label, unit) as the page shows them; errors speak these, not the command's field names
LABELS = {
    "ctl-dr-depth": ("DR depth", "%"),
    "ctl-dr-duration": ("duration", "min"),
    "ctl-dr-ramp": ("ramp", "min"),
    "ctl-dr-notice": ("notice", "min"),
    "ctl-limit-mw": ("import limit", "MW"),
    "ctl-offset-k": ("ambient offset", "K"),
    "ctl-workload-level": ("utilization", "%"),
    "ctl-speed-x": ("speed", "x"),
}
DEFAULTS = {
    "ctl-dr-depth": "25",
    "ctl-dr-duration": "60",
    "ctl-dr-ramp": f"{DR_RAMP_S / S_PER_MIN:g}",
    "ctl-dr-notice": "0",
    "ctl-limit-mw": "",
    "ctl-offset-k": "0",
    "ctl-workload-level": "100",
    "ctl-speed-x": "60",
}


IN_FORCE = ("ctl-limit-mw", "ctl-offset-k", "ctl-speed-x")  # boxes that show what is in force when the page opens


def in_force(snap: Snapshot) -> dict[str, str]:
    """What the running twin has in force, in the page's units, for the boxes of :data:`IN_FORCE`: the import limit
    (whatever its source), the ambient offset, the speed."""
    m = snap.meta
    return {
        "ctl-limit-mw": f"{m['import_limit']['mw']:g}",
        "ctl-offset-k": f"{m['offset_k']:g}",
        "ctl-speed-x": f"{m['speed']:g}",
    }


def workload_in_force(snap: Snapshot, cls: str | None) -> tuple[str, str]:
    """(value, placeholder) of the utilization box for class ``cls``: its constant level in %, or empty with
    'profile' while the class follows its scenario profile."""
    level = snap.meta["workload"].get(cls) if cls else None
    return (f"{100 * level:g}", "") if level is not None else ("", "profile")


def _field(input_id: str) -> html.Label:
    label, unit = LABELS[input_id]
    return html.Label(
        [
            label,
            dcc.Input(id=input_id, type="text", value=DEFAULTS[input_id], debounce=False, className="field"),
            unit,
        ],
        className="inline",
    )


def _button(bid: str, text: str) -> html.Button:
    return html.Button(text, id=bid, n_clicks=0, className="btn")


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Dispatch"),
            dcc.Graph(id="disp-plan", config=GRAPH_CONFIG),
            html.Div(
                [
                    html.Div(
                        [
                            html.H3("What-if controls"),
                            html.Div(
                                [
                                    _field("ctl-dr-depth"),
                                    _field("ctl-dr-duration"),
                                    _field("ctl-dr-ramp"),
                                    _field("ctl-dr-notice"),
                                    _button("ctl-dr", "Trigger DR event"),
                                    _button("ctl-clear-dr", "Clear DR events"),
                                ],
                                className="controls",
                            ),
                            html.Div(
                                [
                                    _field("ctl-limit-mw"),
                                    _button("ctl-limit", "Set limit"),
                                    html.Span(id="disp-limit", className="message"),
                                ],
                                className="controls",
                            ),
                            html.Div(
                                [
                                    _field("ctl-offset-k"),
                                    _button("ctl-offset", "Set offset"),
                                ],
                                className="controls",
                            ),
                            html.Div(
                                [
                                    dcc.Dropdown(
                                        id="ctl-workload-class",
                                        clearable=False,
                                        className="dropdown",
                                    ),
                                    _field("ctl-workload-level"),
                                    _button("ctl-workload", "Set workload"),
                                ],
                                className="controls",
                            ),
                            html.Div(
                                [
                                    _field("ctl-speed-x"),
                                    _button("ctl-speed", "Set speed"),
                                    _button("ctl-pause", "Pause"),
                                    _button("ctl-resume", "Resume"),
                                    _button("ctl-replan", "Re-plan"),
                                ],
                                className="controls",
                            ),
                            html.Div(id="disp-msg", role="status"),
                        ],
                        className="half",
                    ),
                    html.Div(
                        [
                            html.H3("DR events"),
                            html.Div(id="disp-events"),
                            html.H3("Runner log"),
                            html.Div(id="disp-log", className="log"),
                        ],
                        className="half",
                    ),
                ],
                className="row",
            ),
        ]
    )


def _number(text: Any, name: str, scale: float) -> float:
    if text is None or not str(text).strip():
        raise ValueError(f"{name}: required")
    try:
        x = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{name}: must be a number, got {str(text).strip()!r}") from None
    return x * scale


def build_command(button: str, values: Mapping[str, Any], workload_class: str | None = None) -> dict[str, Any]:
    """The command for ``button`` from the text in the boxes; ``ValueError`` naming the field."""
    if button not in CONTROLS:
        raise ValueError(f"control: unknown button {button!r}")
    kind, fields = CONTROLS[button]
    cmd: dict[str, Any] = {"kind": kind}
    for name, (input_id, scale) in fields.items():
        cmd[name] = _number(values.get(input_id), LABELS[input_id][0], scale)
    if kind == "workload":
        cmd["workload_class"] = workload_class
    try:
        parse_command(cmd)
    except ValueError as e:
        raise ValueError(_in_page_units(str(e), kind, values)) from None
    return cmd


def _in_page_units(message: str, kind: str, values: Mapping[str, Any]) -> str:
    """A command's validation message in the page's labels and units (% fields in %, not fractions)."""
    fields = next(f for k, f in CONTROLS.values() if k == kind)
    name = message.split(":", 1)[0]
    if name in fields and name in COMMAND_BOUNDS.get(kind, {}) and "must be" in message:
        input_id, scale = fields[name]
        label, unit = LABELS[input_id]
        lo, hi, lo_open = COMMAND_BOUNDS[kind][name]
        lower = f"> {lo / scale:g}" if lo_open else f">= {lo / scale:g}"
        return f"{label}: must be {lower} and <= {hi / scale:g} {unit}, got {str(values.get(input_id)).strip()} {unit}"
    for field, (input_id, _) in fields.items():
        message = message.replace(field, LABELS[input_id][0])
    return message


def send(button: str, values: Mapping[str, Any], workload_class: str | None, sink) -> html.Div:
    """Build and send a command; a message for the page either way (bad input never leaves)."""
    try:
        cid = sink(build_command(button, values, workload_class))
    except ValueError as e:
        return html.Div(f"not sent: {e}", className="message error", id="disp-msg-error")
    return html.Div(f"sent {CONTROLS[button][0]} ({cid})", className="message ok")


def plan_figure(snap: Snapshot) -> go.Figure:
    """Import and plan history, the plan ahead, the limit and the DR targets [MW]."""
    x = times(snap["hist_time"])
    fig = go.Figure()
    fig.add_scatter(x=x, y=snap["hist_grid_import_mw"], name="import (actual)", line=dict(color="#1f4e79"))
    fig.add_scatter(x=x, y=snap["hist_plan_mw"], name="plan (as issued)", line=dict(color="#2e7d32", dash="dot"))
    if "plan_time" in snap.arrays:
        fig.add_scatter(
            x=times(snap["plan_time"]),
            y=snap["plan_grid_import_mw"],
            name="plan ahead",
            line=dict(color="#2e7d32", shape="hv"),
        )
    fig.add_scatter(
        x=x, y=snap["hist_import_limit_mw"], name="import limit", line=dict(color="#b00020", dash="dash", width=2)
    )
    fig.add_scatter(x=x, y=snap["hist_dr_target_mw"], name="DR target", line=dict(color="#e67e22"))
    if snap.get("dr_ahead_time") is not None and snap["dr_ahead_time"].size:
        fig.add_scatter(
            x=times(snap["dr_ahead_time"]),
            y=snap["dr_ahead_target_mw"],
            name="DR target ahead",
            line=dict(color="#e67e22", dash="dot"),
        )
    for ev in snap.meta["dr_events"]:
        fig.add_vrect(x0=ev["start"], x1=ev["end"], fillcolor="#e67e22", opacity=0.12, line_width=0)
    fig.add_vline(x=str(np.datetime64(snap.meta["time"], "s")), line_color="#666", line_width=1)
    readable(fig, 1.0, *(tr.y for tr in fig.data), min_frac=0.05)
    fig.update_traces(hovertemplate="%{y:,.1f} MW")
    fig.update_layout(
        title="Grid import: plan vs actual [MW]",
        yaxis_title="MW",
        height=380,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.15),
    )
    return fig


def events_table(snap: Snapshot) -> html.Table | html.Div:
    """The DR events: each one's own target (at the end of its ramp, now while it holds, its last second once over)
    on the one DR baseline, and which binds where events overlap (the tighter one, as the plan and the alarm)."""
    evs = snap.meta["dr_events"]
    if not evs:
        return html.Div("no DR events", className="message")
    now = np.datetime64(snap.meta["time"], "s")
    head = html.Tr([html.Th(h) for h in ("start", "end", "depth", "ramp", "baseline", "target", "state")])
    rows = []
    for ev in evs:
        start, end = np.datetime64(ev["start"], "s"), np.datetime64(ev["end"], "s")
        state = "upcoming" if now < start else ("active" if now < end else "over")
        if state != "over" and len(evs) > 1:
            state += ", binds" if ev["binding"] else ", looser (a tighter event binds)"
        rows.append(
            html.Tr(
                [
                    html.Td(ev["start"].replace("T", " ")),
                    html.Td(ev["end"].replace("T", " ")),
                    html.Td(f"{ev['depth']:.0%}"),
                    html.Td(f"{ev['ramp_min']:g} min"),
                    html.Td(f"{ev['baseline_mw']:.1f} MW"),
                    html.Td(f"{ev['target_mw']:.1f} MW"),
                    html.Td(state),
                ],
                className="dr-row",
            )
        )
    return html.Table([html.Thead(head), html.Tbody(rows)], className="table", id="disp-events-table")


def limit_in_force(snap: Snapshot) -> str:
    """The import limit in force and its source (what-if, grid signals, scenario, contract, grid target)."""
    lim = snap.meta["import_limit"]
    return f"in force: {lim['mw']:,.1f} MW ({lim['source']})"


def log(snap: Snapshot) -> list[html.Div]:
    return [
        html.Div(
            f"{m['time'].replace('T', ' ')}  {m['kind']}: {m['text']}",
            className="ok" if m["ok"] else "error",
        )
        for m in reversed(snap.meta["messages"])
    ]


def register(app: Dash, source, sink, studies_dir: Path) -> None:
    @app.callback(
        Output("disp-plan", "figure"),
        Output("disp-events", "children"),
        Output("disp-log", "children"),
        Output("disp-limit", "children"),
        Input("tick", "n_intervals"),
    )
    def _update(_n):
        snap = source()
        if snap is None:
            return waiting_figure(), no_update, no_update, no_update
        return plan_figure(snap), events_table(snap), log(snap), limit_in_force(snap)

    @app.callback(
        Output("ctl-workload-class", "options"),
        Output("ctl-workload-class", "value"),
        Input("tick", "n_intervals"),
        State("ctl-workload-class", "value"),
        State("ctl-workload-class", "options"),
    )
    def _classes(_n, value, options):
        snap = source()
        if snap is None or options == snap.meta["class_names"]:
            return no_update, no_update
        names = snap.meta["class_names"]
        return names, value if value in names else names[0]

    @app.callback(*[Output(i, "value") for i in IN_FORCE], Input("disp-plan", "id"))
    def _in_force(_id):
        """On opening the page: the boxes show what is in force (not the defaults)."""
        snap = source()
        if snap is None:
            return (no_update,) * len(IN_FORCE)
        values = in_force(snap)
        return tuple(values[i] for i in IN_FORCE)

    @app.callback(
        Output("ctl-workload-level", "value"),
        Output("ctl-workload-level", "placeholder"),
        Input("ctl-workload-class", "value"),
    )
    def _workload_in_force(cls):
        snap = source()
        return (no_update, no_update) if snap is None else workload_in_force(snap, cls)

    @app.callback(
        Output("disp-msg", "children"),
        *[Input(b, "n_clicks") for b in CONTROLS],
        *[State(i, "value") for i in INPUTS],
        State("ctl-workload-class", "value"),
        prevent_initial_call=True,
    )
    def _control(*args):
        button = ctx.triggered_id
        if button not in CONTROLS:
            return no_update
        values = dict(zip(INPUTS, args[len(CONTROLS) : len(CONTROLS) + len(INPUTS)], strict=True))
        return send(button, values, args[-1], sink)
