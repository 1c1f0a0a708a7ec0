"""Power: the site's one-line diagram, live. Every element (feed, transformer, switchboard, UPS, busway, PDU) coloured
by its loading with its headroom in kW, open and tripped elements shown, an element's recent load on click, and the
what-if "lose a feed" (or close an element again) through the runner's command path; and the hall conversion
what-if (a hall rebuilt with another rack generation on another power chain, compared at the design point as
``factory-twin validate --convert-hall`` prints it; docs/power-topology.md); and what MaxLPS steering would allocate
now, per tier and per resource group (:mod:`dashboard.steering_panel`), under the resource groups and the policy
bundle in force, which a form changes at run time (the runner's ``resource_group`` and ``power_policy`` commands; its
reply shown beside it).

Readable at 1 GW (campus-1gw: 3,652 elements): the diagram is an icicle from the site (left) to the racks' busways
(right), shown to a chosen depth (collapse by level); clicking a box zooms into its branch and selects it. Boxes are
sized by the elements below them, not by load, so an open path keeps its place; a box too small for its label keeps
its colour and hover.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from factory_twin.dashboard.common import GRAPH_CONFIG, card, fmt, readable, table, times, waiting_figure
from factory_twin.dashboard.steering_panel import SnapshotSteering, group_table, tier_rows, tier_table, warnings
from factory_twin.models.units import MW
from factory_twin.twin.facility.steering_spec import POLICIES
from factory_twin.twin.live.runner import GROUP_FIELDS, Snapshot, parse_command
from plotly.colors import sample_colorscale

PATH, TITLE = "/power", "Power"
SITE = "site"
DEPTHS = {2: "feeds", 3: "2 levels", 4: "3 levels", 5: "4 levels", 99: "all"}
OPEN_COLOR, SITE_COLOR = "#8c959f", "#ffffff"
LOADING_SCALE = "RdYlGn_r"  # green (idle) -> yellow -> red at the rating
LOADING_TOP = 1.2  # loadings at or above 120 % take the scale's last colour
EVENTS_SHOWN = 12


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Power: the one-line diagram"),
            html.Div(id="power-kpis", className="kpis"),
            html.Div(
                [
                    html.Span("show", className="inline"),
                    dcc.RadioItems(
                        id="power-depth",
                        value=3,
                        inline=True,
                        options=[{"label": v, "value": k} for k, v in DEPTHS.items()],
                    ),
                    html.Label(
                        [
                            "element",
                            dcc.Dropdown(id="power-element", clearable=False, className="dropdown", searchable=True),
                        ],
                        className="inline",
                    ),
                    html.Button("Lose it (what-if)", id="power-open-btn", n_clicks=0, className="btn"),
                    html.Button("Close it again", id="power-close-btn", n_clicks=0, className="btn"),
                    html.Span(id="power-msg", className="message"),
                ],
                className="controls",
            ),
            dcc.Graph(id="power-tree", config=GRAPH_CONFIG, style={"minHeight": "480px"}),
            steering_layout(),
            conversion_layout(),
            html.Div(
                [
                    html.Div(
                        [html.H3("Open paths and trips"), html.Div(id="power-events", className="scroll")],
                        className="third",
                    ),
                    html.Div(
                        [
                            html.Div(id="power-detail"),
                            dcc.Graph(id="power-history", config=GRAPH_CONFIG, style={"height": "340px"}),
                        ],
                        className="twothirds",
                    ),
                ],
                className="row",
            ),
        ]
    )


STEERING_TEXT = (
    "What per-GPU power steering (MaxLPS, docs/maxlps.md) would allocate now, from this snapshot: every GPU's demand "
    "(what its work would draw at no cap), every element's load and continuous limit, the import limit in force. "
    "Per element: its budget and load at its input; the budget on the GPU power through it; the GPU limits steering "
    "allocates through it; the GPUs' demand through it. Binding (in bold): its budget cut a guarantee or a request. "
    "Per resource group: "
    "satisfaction is the mean over the group's GPUs of min(limit, demand) / demand, as nvPAX reports it (at most "
    "100 %). The twin itself runs the controller it was started with. The form changes a resource group and the "
    "policy in force: a box left empty keeps that setting (a group on the rack type's default, min cap or TDP, shows "
    "it empty); the tables follow at the next snapshot."
)
TIER_HEAD = ["element", "budget MW", "load MW", "GPU budget MW", "GPU allocation MW", "GPU demand MW", ""]
GROUP_HEAD = ["resource group", "priority", "guarantee W/GPU", "max W/GPU", "GPUs", "demand MW", "allocation MW",
              "satisfaction"]  # fmt: skip
# the form's boxes: id -> (label, command field, unit, placeholder when the group has the rack type's default)
GROUP_BOXES = {
    "power-group-priority": ("priority", "priority", "", ""),
    "power-group-guarantee": ("guarantee", "guarantee_w", "W/GPU", "min cap"),
    "power-group-max": ("max", "max_w", "W/GPU", "TDP"),
}
TIER_ROWS = 12  # rows of the tier table: the site, then the binding and most loaded elements at the chosen depth


def steering_layout() -> html.Div:
    """The steering section: what it shows, then the tables (filled by the tick)."""
    return html.Div(
        [
            html.H3("Steering (MaxLPS): budget, allocation and demand per tier and per resource group"),
            html.Div(STEERING_TEXT, className="message", id="power-steer-text"),
            steering_form(),
            html.Div(id="power-steering"),
        ],
        className="steering",
    )


def steering_form() -> html.Div:
    """A resource group's priority, guarantee and maximum and the policy bundle, in force in the runner: boxes filled
    with what is in force when a group is chosen (empty: the rack type's default), Apply, the runner's reply."""
    boxes = [
        html.Label([label, dcc.Input(id=i, type="text", value="", placeholder=hint, debounce=False, className="field"),
                    unit], className="inline")
        for i, (label, _, unit, hint) in GROUP_BOXES.items()
    ]  # fmt: skip
    return html.Div(
        [
            html.Label(
                ["resource group", dcc.Dropdown(id="power-group", clearable=False, className="dropdown")],
                className="inline",
            ),
            *boxes,
            html.Label(
                [
                    "policy",
                    dcc.Dropdown(id="power-policy", options=list(POLICIES), clearable=False, className="dropdown"),
                ],
                className="inline",
            ),
            html.Button("Apply", id="power-group-apply", n_clicks=0, className="btn"),
            html.Span(id="power-group-msg", role="status"),
            dcc.Store(id="power-group-sent"),
        ],
        className="controls",
        id="power-group-form",
    )


def group_in_force(snap: Snapshot | None, name: Any) -> dict[str, tuple[str, str]] | None:
    """(value, placeholder) of each box of :data:`GROUP_BOXES` for group ``name`` as in force (``meta["steering"]``),
    None when the snapshot has no such group."""
    st = snap.meta.get("steering") if snap is not None else None
    row = next((g for g in st["groups"] if g["name"] == name), None) if st else None
    if row is None:
        return None
    return {
        i: ("" if row[field] is None else f"{row[field]:g}", hint) for i, (_, field, _, hint) in GROUP_BOXES.items()
    }


def steering_commands(snap: Snapshot | None, group: Any, boxes: dict[str, Any], policy: Any) -> list[dict]:
    """The commands of the form: the group's non-empty boxes that differ from what is in force (``resource_group``)
    and the policy when it differs (``power_policy``); checked (``ValueError`` in the page's words)."""
    st = snap.meta.get("steering") if snap is not None else None
    if st is None:
        raise ValueError("the twin has no resource groups (yet)")
    names = tuple(g["name"] for g in st["groups"])
    raw = {"kind": "resource_group", "group": group}
    raw |= {GROUP_BOXES[i][1]: v for i, v in boxes.items() if isinstance(v, str) and v.strip()}
    cmds = []
    try:
        cmd = parse_command(raw, group_names=names)
        row = next(g for g in st["groups"] if g["name"] == group)
        changed = [k for k in GROUP_FIELDS if k in cmd and cmd[k] != row[k]]
        if changed:
            cmds.append({k: v for k, v in cmd.items() if k not in GROUP_FIELDS or k in changed})
        if policy != st["policy"]:
            cmds.append(parse_command({"kind": "power_policy", "policy": policy}))
    except ValueError as e:
        text = str(e)
        for label, field, _, _ in GROUP_BOXES.values():
            text = text.replace(field, label)
        raise ValueError(text) from None
    if not cmds:
        raise ValueError(f"nothing to change: {group} and the policy are as in force")
    return cmds


def steering_reply(snap: Snapshot | None, sent: dict | None) -> html.Span | str:
    """The form's message: what was not sent and why, or the runner's reply to the commands sent (accepted, or the
    reason it refused them), or that it is awaited."""
    if not sent:
        return ""
    if sent.get("error"):
        return html.Span(f"not sent: {sent['error']}", className="error", id="power-group-error")
    messages = {m["id"]: m for m in snap.meta.get("messages", [])} if snap is not None else {}
    got = [messages.get(i) for i in sent["ids"]]
    if any(m is None for m in got):
        return html.Span("sent, waiting for the twin's reply", className="message")
    refused = [m["text"] for m in got if not m["ok"]]
    if refused:
        return html.Span(f"refused: {'; '.join(refused)}", className="error", id="power-group-error")
    return html.Span(f"accepted: {'; '.join(m['text'] for m in got)}", className="ok")


def steering_view(steer: SnapshotSteering, snap: Snapshot, depth: int) -> list:
    """The steering tables for ``snap`` at the page's ``depth`` (site = 1, feeds = 2)."""
    s = steer(snap)
    tab = tier_table(steer.ctl, snap, s)
    rows, n = tier_rows(tab, depth - 2, TIER_ROWS)
    mw = [tab[k] / MW for k in ("limit_w", "load_w", "gpu_budget_w", "allocation_w", "demand_w")]
    tiers = [
        [html.B(str(tab["name"][i])) if tab["binding"][i] else str(tab["name"][i]), *(fmt(float(x[i]), 2) for x in mw),
         html.Span("binding", className="error") if tab["binding"][i] else "–"]
        for i in rows.tolist()
    ]  # fmt: skip
    groups = [
        [g.name, str(g.priority), fmt(g.guarantee_w, 0), fmt(g.max_w, 0), f"{g.gpus:,}", fmt(g.demand_w / MW, 2),
         fmt(g.allocation_w / MW, 2), fmt(100 * g.satisfaction, 1, "%")]
        for g in group_table(steer.ctl, s)
    ]  # fmt: skip
    warn = warnings(s)
    n_bind = int(np.count_nonzero(tab["binding"]))
    policy = steer.ctl.groups.policy
    static = "" if policy == "MaxLPS" else " (its GPUs would hold static limits; shown: what MaxLPS would allocate)"
    return [
        html.Div(
            f"policy {policy}{static} · "
            f"allocation at {snap.meta['time'].replace('T', ' ')} for {s.m.gpu_demand_w.size:,} GPUs in "
            f"{1e3 * s.compute_s:,.0f} ms · {n_bind} binding · {len(rows) - 1} of {n} elements at this depth shown "
            "(binding first, then the most loaded)",
            className="message",
            id="power-steer-summary",
        ),
        html.Ul([html.Li(w) for w in warn], className="message error", id="power-steer-warnings")
        if warn
        else html.Div("every guarantee fits", className="message ok", id="power-steer-warnings"),
        html.Div([table(TIER_HEAD, tiers, "power-steer-tiers"), table(GROUP_HEAD, groups, "power-steer-groups")]),
    ]


@lru_cache(maxsize=2)
def _steering(facility: str) -> SnapshotSteering:
    """The steering controller of the dashboard's facility (built once: 0.16 s on campus-1gw, bench_steering panel)."""
    return SnapshotSteering(_facility(facility))


def register_steering(app: Dash, source, facility: str | None) -> None:
    """The steering section's tick callback for the facility the dashboard runs (a name or the path it was given)."""

    @app.callback(Output("power-steering", "children"), Input("tick", "n_intervals"), Input("power-depth", "value"))
    def _steer(_n, depth):
        if facility is None:
            return html.Div("steering needs the facility the dashboard was started with", className="error")
        snap = source()
        if not has_diagram(snap):
            return html.Div("no one-line diagram yet", className="message")
        try:
            return steering_view(_steering(facility), snap, int(depth) if depth in DEPTHS else 3)
        except ValueError as e:
            return html.Div(f"steering: {e}", className="message")


CHAINS = {"dc800-2n": "800 VDC", "ac-2n": "AC (UPS, 415 V)"}


def conversion_layout() -> html.Div:
    """The hall conversion what-if: hall, rack type, chain, a button and the comparison."""
    return html.Div(
        [
            html.H3("Hall conversion (what-if at the design point)"),
            html.Div(
                [
                    html.Label(
                        ["hall", dcc.Dropdown(id="power-conv-hall", clearable=False, className="dropdown")],
                        className="inline",
                    ),
                    html.Label(
                        ["rack type", dcc.Dropdown(id="power-conv-rack", clearable=False, className="dropdown")],
                        className="inline",
                    ),
                    html.Span("chain", className="inline"),
                    dcc.RadioItems(
                        id="power-conv-chain",
                        value="dc800-2n",
                        inline=True,
                        options=[{"label": v, "value": k} for k, v in CHAINS.items()],
                    ),
                    html.Button("Compare", id="power-conv-btn", n_clicks=0, className="btn"),
                ],
                className="controls",
            ),
            dcc.Loading(html.Div(id="power-conv-result", className="conversion")),
        ],
        id="power-conv",
    )


@lru_cache(maxsize=8)
def conversion_figures(facility: str, text: str):
    """:func:`twin.simulation.conversion.what_if` of ``HALL:RACK_TYPE:CHAIN`` on the dashboard's facility (cached:
    the design point does not change while the twin runs)."""
    from factory_twin.twin.simulation.conversion import parse_conversion, what_if

    return what_if(_facility(facility), parse_conversion(text, "hall conversion"))


@lru_cache(maxsize=2)
def _facility(facility: str):
    from factory_twin.twin import load_facility

    return load_facility(facility)


def conversion_result(facility: str | None, hall: Any, rack: Any, chain: Any) -> html.Div:
    """The comparison table (label, before, after) and the warnings, or the reason there is none."""
    if facility is None:
        return html.Div("the hall conversion needs the facility the dashboard was started with", className="error")
    if not all(isinstance(x, str) and x for x in (hall, rack, chain)):
        return html.Div("choose a hall, a rack type and a chain", className="message")
    try:
        w = conversion_figures(facility, f"{hall}:{rack}:{chain}")
    except ValueError as e:
        return html.Div(str(e), className="error", id="power-conv-error")
    rows = [[label, before, after] for label, before, after in w.rows]
    return html.Div(
        [
            html.Div(
                f"{_facility(facility).spec.name}: {w.conversion}, every GPU at TDP, design ambient",
                id="power-conv-title",
                className="message",
            ),
            table(["", "before", "after"], rows, "power-conv-table"),
            html.Ul([html.Li(t) for t in w.warnings], id="power-conv-warnings", className="message error")
            if w.warnings
            else html.Div("no target missed at the design point", className="message ok", id="power-conv-warnings"),
        ]
    )


def has_diagram(snap: Snapshot | None) -> bool:
    return snap is not None and "el_name" in snap.arrays


def first_parents(snap: Snapshot) -> np.ndarray:
    """The parent shown for each element in the tree: its first parent (A/B racks hang below both paths, elements
    have one parent in the diagrams this draws; a second one is named in the hover), -1 for a feed."""
    n = snap["el_name"].size
    parent = np.full(n, -1)
    child, par = snap["edge_child"], snap["edge_parent"]
    for c, p in zip(child[::-1].tolist(), par[::-1].tolist(), strict=True):  # the first listed parent wins
        parent[c] = p
    return parent


def state_of(snap: Snapshot) -> np.ndarray:
    """Per element: ``"open"`` (opened or tripped), ``"dead"`` (closed, no energized parent) or ``"on"``."""
    closed, energized = np.asarray(snap["el_closed"], bool), np.asarray(snap["el_energized"], bool)
    return np.where(~closed, "open", np.where(energized, "on", "dead"))


def element_colors(loading: np.ndarray, state: np.ndarray) -> list[str]:
    """Colour per element: the loading scale where it carries power, grey where it is open or without power."""
    x = np.clip(np.nan_to_num(loading), 0.0, LOADING_TOP) / LOADING_TOP
    cols = sample_colorscale(LOADING_SCALE, x.tolist())
    return [c if s == "on" else OPEN_COLOR for c, s in zip(cols, state, strict=True)]


def tree_figure(snap: Snapshot, depth: int) -> go.Figure:
    """The one-line diagram as an icicle from the site down to ``depth`` levels (site = level 1)."""
    names = [str(x) for x in snap["el_name"]]
    parent = first_parents(snap)
    state = state_of(snap)
    load, limit = np.asarray(snap["el_load_kw"], float), np.asarray(snap["el_limit_kw"], float)
    loading, head = np.asarray(snap["el_loading"], float), np.asarray(snap["el_headroom_kw"], float)
    kind, path, racks = snap["el_kind"], snap["el_path"], snap["el_racks"]
    text = [
        ("OPEN" if s == "open" else "no power") if s != "on" else f"{q:.0%} · {h:,.0f} kW free"
        for s, q, h in zip(state, loading, head, strict=True)
    ]
    hover = [
        f"<b>{n}</b> ({k}{', path ' + p if p else ''})<br>load {lo:,.0f} kW of {li:,.0f} kW continuous<br>"
        f"loading {q:.1%} of rating · headroom {h:,.0f} kW<br>{r:,} racks below · {s}"
        for n, k, p, lo, li, q, h, r, s in zip(names, kind, path, load, limit, loading, head, racks, state, strict=True)
    ]
    fig = go.Figure(
        go.Icicle(
            ids=[SITE, *names],
            labels=[snap.meta["facility"], *names],
            parents=["", *[names[p] if p >= 0 else SITE for p in parent]],
            text=[f"{int(np.size(snap['rack_powered'])):,} racks", *text],
            hovertext=["the site", *hover],
            hoverinfo="text",
            texttemplate="<b>%{label}</b> · %{text}",
            marker=dict(colors=[SITE_COLOR, *element_colors(loading, state)], line=dict(width=1, color="#ffffff")),
            maxdepth=depth,
            tiling=dict(orientation="h"),
            pathbar=dict(visible=True),
            sort=False,
        )
    )
    over = int(np.sum((state == "on") & (head < 0)))
    fig.update_layout(
        title=f"Loading by element (green idle, red at rating; grey open) · {over} above the continuous limit",
        height=tree_height(snap, depth),
        margin=dict(l=10, r=10, t=40, b=10),
        uniformtext=dict(minsize=9, mode="hide"),
    )
    return fig


def tree_height(snap: Snapshot, depth: int) -> int:
    """Pixels for the tree: 24 px for each box of the deepest level shown (a line of 9-10 pt text) plus the title,
    within 480-1,400 px."""
    shown = int(np.sum(np.asarray(snap["el_depth"]) == min(depth - 2, int(np.max(snap["el_depth"])))))
    return int(np.clip(24 * shown + 80, 480, 1400))


def kpis(snap: Snapshot) -> list[html.Div]:
    state = state_of(snap)
    on = state == "on"
    loading, head = np.asarray(snap["el_loading"], float), np.asarray(snap["el_headroom_kw"], float)
    names = snap["el_name"]
    i = int(np.argmax(np.where(on, loading, -np.inf))) if on.any() else 0
    j = int(np.argmin(np.where(on, head, np.inf))) if on.any() else 0
    dark = int(np.size(snap["rack_powered"]) - np.count_nonzero(snap["rack_powered"]))
    trips = sum(e["kind"] == "trip" for e in snap.meta.get("power_events", []))
    return [
        card("highest loading", f"{loading[i]:.0%} {names[i]}", alarm=bool(loading[i] > 1.0), id="power-kpi-loading"),
        card(
            "least headroom",
            f"{fmt(float(head[j]), 0, 'kW')} {names[j]}",
            alarm=bool(head[j] < 0),
            id="power-kpi-headroom",
        ),
        card(
            "open elements", str(int(np.sum(state == "open"))), alarm=bool(np.any(state == "open")), id="power-kpi-open"
        ),
        card("breaker trips", str(trips), alarm=trips > 0, id="power-kpi-trips"),
        card("racks dark", f"{dark:,}", alarm=dark > 0, id="power-kpi-dark"),
    ]


def events_table(snap: Snapshot) -> html.Table | html.Div:
    """Open elements first (what opened them and when), then the latest events, newest first."""
    events = snap.meta.get("power_events", [])
    names, state = snap["el_name"], state_of(snap)
    last = {e["element"]: e for e in events if e["kind"] in ("opened", "trip")}
    rows = [
        [html.B(str(names[e])), "open", last.get(str(names[e]), {}).get("time", "–").replace("T", " "),
         last.get(str(names[e]), {}).get("detail", "")]
        for e in np.flatnonzero(state == "open")
    ]  # fmt: skip
    rows += [
        [e["element"], e["kind"], e["time"].replace("T", " "), e["detail"]]
        for e in reversed(events[-EVENTS_SHOWN:])
        if e["kind"] not in ("opened", "trip") or e["element"] not in last
    ]
    if not rows:
        return html.Div("every path closed, no trips", className="message ok", id="power-events-none")
    return table(["element", "event", "time", "detail"], rows, "power-events-table")


def history_figure(snap: Snapshot, e: int) -> go.Figure:
    """Recent load of element ``e`` against its continuous limit and rating [kW]."""
    name = str(snap["el_name"][e])
    fig = go.Figure()
    if snap["el_hist_time"].size:
        x = times(snap["el_hist_time"])
        y = np.asarray(snap["el_hist_load_kw"][:, e], float)
        lim, rating = float(snap["el_limit_kw"][e]), float(snap["el_rating_kw"][e])
        fig.add_scatter(x=x, y=y, name="load", hovertemplate="%{y:,.0f} kW")
        fig.add_scatter(x=x[[0, -1]], y=[lim, lim], name="continuous limit", mode="lines",
                        line=dict(color="#b00020", dash="dash"), hovertemplate="%{y:,.0f} kW")  # fmt: skip
        if rating != lim:
            fig.add_scatter(x=x[[0, -1]], y=[rating, rating], name="rating", mode="lines",
                            line=dict(color="#5b6673", dash="dot"), hovertemplate="%{y:,.0f} kW")  # fmt: skip
        readable(fig, 10.0, y, lim, min_frac=0.05)
        fig.update_yaxes(title_text="kW")
    fig.update_layout(title=f"{name}: recent load", height=320, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))  # fmt: skip
    return fig


def element_detail(snap: Snapshot, e: int) -> html.Div:
    facts = [
        ("element", str(snap["el_name"][e])),
        ("kind", str(snap["el_kind"][e])),
        ("path", str(snap["el_path"][e]) or "–"),
        ("state", str(state_of(snap)[e])),
        ("load", fmt(float(snap["el_load_kw"][e]), 0, "kW")),
        ("continuous limit", fmt(float(snap["el_limit_kw"][e]), 0, "kW")),
        ("headroom", fmt(float(snap["el_headroom_kw"][e]), 0, "kW")),
        ("racks below", f"{int(snap['el_racks'][e]):,}"),
    ]
    return html.Div([html.Span([html.B(f"{k}: "), v, "  "]) for k, v in facts], id="power-detail-facts")


def element_index(snap: Snapshot, name: Any) -> int | None:
    if not isinstance(name, str):
        return None
    hits = np.flatnonzero(snap["el_name"] == name)
    return int(hits[0]) if hits.size else None


def element_options(snap: Snapshot) -> list[str]:
    """The dropdown: every feed first (the usual what-if), then every other element."""
    names = [str(x) for x in snap["el_name"]]
    feeds = set(np.flatnonzero(first_parents(snap) < 0).tolist())
    return [names[i] for i in sorted(feeds)] + [n for i, n in enumerate(names) if i not in feeds]


def send(kind: str, element: Any, names: set[str], sink) -> html.Span:
    """Send an open/close command for ``element``; the outcome as a message."""
    try:
        cmd = parse_command({"kind": kind, "element": element}, element_names=names)
        sink(cmd)
    except ValueError as e:
        return html.Span(str(e), className="error")
    verb = "lose" if kind == "open_element" else "close"
    return html.Span(f"sent: {verb} {element}", className="ok")


def register_conversion(app: Dash, facility: str | None) -> None:
    """The hall conversion's callbacks for the facility the dashboard runs (a name or the path it was given)."""

    @app.callback(
        Output("power-conv-hall", "options"),
        Output("power-conv-hall", "value"),
        Output("power-conv-rack", "options"),
        Output("power-conv-rack", "value"),
        Input("power-conv-hall", "id"),
    )
    def _choices(_id):
        from factory_twin.twin.facility.assembly import rack_catalog

        if facility is None:
            return [], None, [], None
        halls = list(_facility(facility).hall_names)
        racks = sorted(rack_catalog())
        return halls, halls[-1], racks, "vr-nvl72" if "vr-nvl72" in racks else racks[0]

    @app.callback(
        Output("power-conv-result", "children"),
        Input("power-conv-btn", "n_clicks"),
        State("power-conv-hall", "value"),
        State("power-conv-rack", "value"),
        State("power-conv-chain", "value"),
        prevent_initial_call=True,
    )
    def _compare(_n, hall, rack, chain):
        return conversion_result(facility, hall, rack, chain)


def register(app: Dash, source, sink, studies_dir: Path) -> None:
    @app.callback(
        Output("power-tree", "figure"),
        Output("power-kpis", "children"),
        Output("power-events", "children"),
        Input("tick", "n_intervals"),
        Input("power-depth", "value"),
    )
    def _update(_n, depth):
        snap = source()
        if not has_diagram(snap):
            return waiting_figure("no one-line diagram yet"), no_update, no_update
        return tree_figure(snap, int(depth) if depth in DEPTHS else 3), kpis(snap), events_table(snap)

    @app.callback(
        Output("power-element", "options"),
        Output("power-element", "value"),
        Input("tick", "n_intervals"),
        Input("power-tree", "clickData"),
        State("power-element", "value"),
        State("power-element", "options"),
    )
    def _elements(_n, click, value, options):
        snap = source()
        if not has_diagram(snap):
            return no_update, no_update
        names = element_options(snap)
        if ctx.triggered_id == "power-tree" and click and click.get("points"):
            picked = click["points"][0].get("id")
            if picked in names:
                return no_update if options == names else names, picked
        return keep_choice(names, value, options)

    @app.callback(
        Output("power-detail", "children"),
        Output("power-history", "figure"),
        Input("tick", "n_intervals"),
        Input("power-element", "value"),
    )
    def _history(_n, value):
        snap = source()
        if not has_diagram(snap):
            return no_update, waiting_figure()
        e = element_index(snap, value)
        if e is None:
            return html.Div("click an element for its history", className="message"), waiting_figure("no element")
        return element_detail(snap, e), history_figure(snap, e)

    @app.callback(
        Output("power-msg", "children"),
        Input("power-open-btn", "n_clicks"),
        Input("power-close-btn", "n_clicks"),
        State("power-element", "value"),
        prevent_initial_call=True,
    )
    def _command(_open, _close, element):
        snap = source()
        if not has_diagram(snap):
            return html.Span("the twin is not running yet", className="error")
        kind = "open_element" if ctx.triggered_id == "power-open-btn" else "close_element"
        return send(kind, element, {str(x) for x in snap["el_name"]}, sink)

    register_steering_form(app, source, sink)


def keep_choice(names: list[str], value: Any, options: Any) -> tuple:
    """A dropdown of ``names``: its (options, value), ``no_update`` where nothing changed; the chosen value is kept
    while it is still one of the names, else the first is chosen."""
    if options == names and value in names:
        return no_update, no_update
    return names, value if value in names else names[0]


def register_steering_form(app: Dash, source, sink) -> None:
    """The steering form's callbacks: the groups and policy in force, Apply, the runner's reply."""

    @app.callback(
        Output("power-group", "options"),
        Output("power-group", "value"),
        Output("power-policy", "value"),
        Input("tick", "n_intervals"),
        State("power-group", "value"),
        State("power-group", "options"),
        State("power-policy", "value"),
    )
    def _groups(_n, value, options, policy):
        snap = source()
        st = snap.meta.get("steering") if snap is not None else None
        if st is None:
            return no_update, no_update, no_update
        names = [g["name"] for g in st["groups"]]
        in_force = st["policy"] if policy is None else no_update  # the page's choice is kept once made
        return *keep_choice(names, value, options), in_force

    boxes = list(GROUP_BOXES)

    @app.callback(
        *[Output(i, "value") for i in boxes],
        *[Output(i, "placeholder") for i in boxes],
        Input("power-group", "value"),
    )
    def _fill(name):
        shown = group_in_force(source(), name)
        if shown is None:
            return (no_update,) * (2 * len(boxes))
        return *(shown[i][0] for i in boxes), *(shown[i][1] for i in boxes)

    @app.callback(
        Output("power-group-sent", "data"),
        Input("power-group-apply", "n_clicks"),
        State("power-group", "value"),
        *[State(i, "value") for i in boxes],
        State("power-policy", "value"),
        prevent_initial_call=True,
    )
    def _apply(_n, group, *rest):
        try:
            cmds = steering_commands(source(), group, dict(zip(boxes, rest[:-1], strict=True)), rest[-1])
            return {"ids": [sink(c) for c in cmds]}
        except ValueError as e:
            return {"error": str(e)}

    @app.callback(
        Output("power-group-msg", "children"),
        Input("tick", "n_intervals"),
        Input("power-group-sent", "data"),
    )
    def _reply(_n, sent):
        return steering_reply(source(), sent)
