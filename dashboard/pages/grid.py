"""Grid: the campus's grid intake at 10 ms for the next minutes, from the live twin's present state.

A what-if on the fast electrical engine (:mod:`twin.grid_dynamics.fast_electrical`): start, stop or keep running a large
synchronous training job with the chosen mitigation, and see the power at the point of interconnection, its
spectrum against the requirement's bands, peak-to-peak and ramp meters against their limits, the storage
charge, and (on request) the NERC 2024 dip sequence under a protection setting. The facility is the live
twin's (a built-in name); the start state (per-rack GPU power and caps, cooling load, BESS charge) is the
latest snapshot's.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update
from factory_twin.dashboard.common import GRAPH_CONFIG, card, fmt, readable, time_panels, waiting_figure
from factory_twin.models.poi_metrics import amplitude_spectrum, compliance
from factory_twin.models.ride_through import ride_through, voltage_series
from factory_twin.models.training_power import JobEvents
from factory_twin.models.units import J_PER_MWH, MW
from factory_twin.twin.grid_dynamics.fast_electrical import (
    StartState,
    TrainingJob,
    mitigation_defaults,
    run_fast,
    training_racks,
)
from factory_twin.twin.grid_dynamics.grid_codes import builtin_requirements, load_event, load_requirements
from factory_twin.twin.live.runner import Snapshot

PATH, TITLE = "/grid", "Grid"
WINDOW_S, STEP_S, EVENT_AT_S = 120.0, 0.01, 30.0  # what-if window, step, when the job starts or stops
EVENT = "nerc-2024-07-10"
ACTIONS = {"start": "start the job", "stop": "stop the job", "run": "job running"}
MITIGATIONS = {"floor": "GPU smoothing", "battery": "rack battery", "bess": "site BESS"}
SPECTRUM_MAX_HZ = 10.0
IDLE = waiting_figure("press 'Run what-if' (the first run loads the facility)")


def layout() -> html.Div:
    prot = list(load_event(EVENT).protections)
    return html.Div(
        [
            html.H2("Grid intake (10 ms what-if)"),
            html.Div(
                [
                    html.Label(
                        [
                            "Job GPUs",
                            dcc.Input(
                                id="grid-gpus", type="number", min=1, step=1, value=20000, className="field stepped"
                            ),
                        ],
                        className="inline",
                    ),
                    dcc.Dropdown(
                        id="grid-action",
                        options=[{"label": v, "value": k} for k, v in ACTIONS.items()],
                        value="start",
                        clearable=False,
                        className="dropdown",
                    ),
                    dcc.Checklist(
                        id="grid-mit",
                        options=[{"label": v, "value": k} for k, v in MITIGATIONS.items()],
                        value=[],
                        inline=True,
                        className="inline",
                    ),
                    dcc.Dropdown(
                        id="grid-req",
                        options=power_rule_sets(),
                        value="ercot-draft",
                        clearable=False,
                        className="dropdown",
                    ),
                    html.Button("Run what-if", id="grid-run", n_clicks=0, className="btn"),
                ],
                className="controls",
            ),
            html.Div(
                [
                    dcc.Dropdown(id="grid-prot", options=prot, value=prot[0], clearable=False, className="dropdown"),
                    html.Button("Apply voltage dip (NERC 2024)", id="grid-dip", n_clicks=0, className="btn"),
                ],
                className="controls",
            ),
            html.Div(id="grid-msg", className="message"),
            html.Div(id="grid-dip-msg", className="message"),
            html.Div(id="grid-meters", className="kpis"),
            html.Div(
                [
                    dcc.Graph(id="grid-power", figure=IDLE, config=GRAPH_CONFIG, className="half"),
                    dcc.Graph(id="grid-spectrum", figure=IDLE, config=GRAPH_CONFIG, className="half"),
                ],
                className="row",
            ),
            html.Div(
                [
                    dcc.Graph(id="grid-soc", figure=IDLE, config=GRAPH_CONFIG, className="half"),
                    dcc.Graph(id="grid-ride", figure=IDLE, config=GRAPH_CONFIG, className="half"),
                ],
                className="row",
            ),
        ]
    )


def power_rule_sets() -> list[str]:
    """Built-in requirement sets with POI power rules (ride-through-only sets are replayed separately)."""
    return [n for n in builtin_requirements() if load_requirements(n).rules]


@functools.cache
def _facility(name: str):
    from factory_twin.twin import load_facility

    return load_facility(name)


def start_state(snap: Snapshot) -> StartState:
    """The fast run's start from a snapshot: per-rack GPU power and caps, cooling load, BESS charge."""
    now = snap.meta["now"]
    return StartState(
        np.asarray(snap["rack_gpu_power_w"], float),
        np.asarray(snap["rack_gpu_cap_w"], float),
        float(now["cooling_power_mw"]) * MW,
        float(now.get("bess_soc_mwh", 0.0)) * J_PER_MWH,
    )


def what_if(f, start: StartState, gpus: int, action: str, mitigations: list[str]):
    """Fast run of the window: the job starts, stops or keeps running at ``EVENT_AT_S``."""
    from factory_twin.optimization.studies.grid_study import mitigation_for

    events = {
        "start": JobEvents(start_s=EVENT_AT_S),
        "stop": JobEvents(stop_s=EVENT_AT_S),
        "run": JobEvents(),
    }[action]
    sweep = mitigation_defaults()["sweep"]
    mit = mitigation_for(
        float(f.tdp_w.max()),
        gpus,
        max(sweep["floor_fraction"]) if "floor" in mitigations else 0.0,
        max(sweep["rack_battery_j_per_gpu"]) if "battery" in mitigations else 0.0,
        max(sweep["bess_tau_s"]) if "bess" in mitigations else 0.0,
    )
    d = mitigation_defaults()["job"]
    job = TrainingJob("what-if", gpus, d["period_s"], d["duty"], d["edge_s"], events=events)
    return run_fast(f, start, [job], mit, WINDOW_S, STEP_S)


def meters(verdicts) -> list[html.Div]:
    """One card per rule: value against limit, red when over."""
    return [
        card(
            f"{v.rule.name} / limit",
            f"{fmt(v.value, 2)} / {v.rule.limit:g} {v.rule.units}",
            alarm=not v.ok,
            id=f"grid-meter-{i}",
        )
        for i, v in enumerate(verdicts)
    ]


def power_figure(ds) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=ds.time.values, y=ds.poi_mw.values, name="POI", mode="lines")
    fig.add_scatter(
        x=ds.time.values, y=ds.site_mw.values, name="before site BESS", mode="lines", line={"width": 1, "dash": "dot"}
    )
    readable(fig, 1.0, ds.poi_mw.values, ds.site_mw.values)
    fig.update_traces(hovertemplate="%{y:,.2f} MW")
    fig.update_layout(
        title="Power at the point of interconnection (10 ms)",
        xaxis_title="s from now",
        yaxis_title="MW",
        height=340,
        margin={"t": 40, "b": 40},
    )
    return fig


def spectrum_figure(ds, rules) -> go.Figure:
    f, a = amplitude_spectrum(ds.poi_mw.values * MW, float(ds.attrs["dt_s"]))
    keep = (f > 0) & (f <= SPECTRUM_MAX_HZ)
    fig = go.Figure()
    fig.add_scatter(x=f[keep], y=a[keep] / MW, name="amplitude", mode="lines")
    for r in rules:
        if r.band_hz:
            fig.add_vrect(
                x0=r.band_hz[0],
                x1=min(r.band_hz[1], SPECTRUM_MAX_HZ),
                opacity=0.1,
                line_width=0,
                fillcolor="orange",
                annotation_text=r.name,
            )
        if r.kind == "band_amplitude":
            fig.add_hline(y=r.limit, line_dash="dash", line_color="red")
    fig.update_layout(
        title="Spectrum with the requirement's bands",
        xaxis_title="Hz",
        yaxis_title="MW (peak)",
        yaxis_type="log",
        height=340,
        margin={"t": 40, "b": 40},
    )
    return fig


def soc_figure(ds) -> go.Figure:
    """Site BESS state of charge [%] and rack storage [MJ], each in its own panel."""
    soc = np.isfinite(ds.bess_soc.values).any()
    fig = time_panels(["BESS SOC [%]", "rack storage [MJ]"] if soc else ["rack storage [MJ]"])
    if soc:
        fig.add_scatter(x=ds.time.values, y=100 * ds.bess_soc.values, name="site BESS SOC", mode="lines",
                        hovertemplate="%{y:.2f} %", row=1, col=1)  # fmt: skip
        readable(fig, 1.0, 100 * ds.bess_soc.values, row=1)
    row = 2 if soc else 1
    fig.add_scatter(x=ds.time.values, y=ds.rack_store_mj.values, name="rack storage", mode="lines",
                    hovertemplate="%{y:,.1f} MJ", row=row, col=1)  # fmt: skip
    readable(fig, 1.0, ds.rack_store_mj.values, min_frac=0.05, row=row)
    fig.update_xaxes(title_text="s from now", row=row, col=1)
    fig.update_layout(title="Storage charge", height=340, margin={"t": 40, "b": 40})
    return fig


def ride_figure(site_mw: float, protection: str) -> tuple[go.Figure, str]:
    """The NERC 2024 dips under one protection setting: MW online over time."""
    ev = load_event(EVENT)
    t = np.arange(0.0, ev.duration_s, 1e-3)
    r = ride_through(t, voltage_series(t, ev.dips), ev.protections[protection])
    k = 20
    fig = go.Figure()
    fig.add_scatter(x=t[::k], y=r.online[::k] * site_mw, name="MW online", mode="lines")
    readable(fig, 1.0, r.online * site_mw, min_frac=0.05)
    fig.update_layout(
        title=f"NERC 2024 dips, protection {protection}",
        xaxis_title="s",
        yaxis_title="MW",
        height=340,
        margin={"t": 40, "b": 40},
    )
    lost = site_mw * (1 - r.online[-1])
    latched = "" if math.isnan(r.latch_s) else f", latched to backup at {r.latch_s:.2f} s"
    return fig, (
        f"voltage dip at {fmt(site_mw, 0)} MW: {protection}: {fmt(lost, 0)} MW still off after {ev.duration_s:g} s"
        f"{latched}"
    )


def register(app: Dash, source, sink, **_: Any) -> None:
    @app.callback(
        Output("grid-msg", "children"),
        Output("grid-msg", "className"),
        Output("grid-meters", "children"),
        Output("grid-power", "figure"),
        Output("grid-spectrum", "figure"),
        Output("grid-soc", "figure"),
        Input("grid-run", "n_clicks"),
        State("grid-gpus", "value"),
        State("grid-action", "value"),
        State("grid-mit", "value"),
        State("grid-req", "value"),
        prevent_initial_call=True,  # a what-if costs seconds: only on request
    )
    def _run(_clicks, gpus, action, mitigations, req_name):
        snap = source()
        keep = (no_update,) * 4  # a bad entry leaves the last what-if on screen
        if snap is None or snap.meta["now"] is None:
            return "waiting for the twin...", "message", *keep
        try:
            f = _facility(snap.meta["facility"])
        except (FileNotFoundError, ValueError):
            return (
                f"the Grid page needs a built-in facility; the twin runs {snap.meta['facility']!r}",
                "message error",
                *keep,
            )
        if not isinstance(gpus, int | float) or gpus < 1:
            return "Job GPUs: enter a whole number >= 1", "message error", *keep
        gpus = int(gpus)
        free = int(f.gpus[training_racks(f)].sum())
        if gpus > free:
            return f"Job GPUs: {gpus:,} > {free:,} GPUs on training racks", "message error", *keep
        reqs = load_requirements(req_name)
        ds = what_if(f, start_state(snap), gpus, action, mitigations or []).dataset
        verdicts = compliance(list(reqs.rules), ds.poi_mw.values * MW, float(ds.attrs["dt_s"]))
        ok = all(v.ok for v in verdicts)
        msg = f"{ACTIONS[action]}: {gpus:,} GPUs at {EVENT_AT_S:g} s; {'all rules met' if ok else 'limit exceeded'}"
        return (
            msg,
            "message ok" if ok else "message error",
            meters(verdicts),
            power_figure(ds),
            spectrum_figure(ds, reqs.rules),
            soc_figure(ds),
        )

    @app.callback(
        Output("grid-dip-msg", "children"),
        Output("grid-ride", "figure"),
        Input("grid-dip", "n_clicks"),
        State("grid-prot", "value"),
        prevent_initial_call=True,
    )
    def _dip(_clicks, protection):
        snap = source()
        if snap is None or snap.meta["now"] is None:
            return "waiting for the twin...", no_update
        fig, text = ride_figure(float(snap.meta["now"]["grid_import_mw"]), protection)
        return text, fig
