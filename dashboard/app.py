"""The Dash app factory: a shell (header, navigation, ticking interval) and one module per page.

Callbacks only read snapshots through ``snapshot_source`` and send operator commands through
``command_sink``; the app holds no mutable state of its own, so any number of workers can serve it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, ctx, dcc, html, no_update
from factory_twin.dashboard.common import status_text, target_alarm
from factory_twin.dashboard.pages import cooling, dispatch, grid, openadr, overview, power, racks, studies
from factory_twin.twin.live.runner import Snapshot

PAGES = (overview, cooling, racks, power, dispatch, grid, studies)
SnapshotSource = Callable[..., Snapshot | None]  # source(rack_history=False) -> latest snapshot or None
CommandSink = Callable[[Mapping[str, Any]], str]  # sink(command) -> id; ValueError when invalid


def create_app(
    snapshot_source: SnapshotSource,
    command_sink: CommandSink,
    studies_dir: str | Path = ".",
    interval_ms: int = 1000,
    runner: Any = None,
    openadr_dir: str | Path | None = None,
    facility: str | None = None,
) -> Dash:
    """Build the dashboard.

    Parameters
    ----------
    snapshot_source : callable
        ``snapshot_source(rack_history=False)`` returns the latest
        :class:`twin.live.runner.Snapshot` or None.
    command_sink : callable
        Receives an operator command dict (see :mod:`twin.live.runner`); returns its id or raises
        ValueError.
    studies_dir : path
        The only folder the Studies page may open NetCDF files from.
    interval_ms : int
        Refresh period of the live pages [ms].
    runner : object, optional
        The runner process handle (``alive()``, ``error()``, ``restart()``): when it has stopped, a banner
        on every page says why and offers a restart.
    openadr_dir : path, optional
        An OpenADR VEN's state folder: adds the OpenADR page, which reads its status file there.
    facility : str, optional
        The facility the twin runs (built-in name or the path it was given): the Power page's hall conversion
        what-if loads it (without it the what-if says so).
    """
    app = Dash(
        __name__,
        use_pages=False,
        assets_folder=str(Path(__file__).with_name("assets")),
        serve_locally=True,
        suppress_callback_exceptions=True,
        title="factory-twin",
        update_title=None,
    )
    pages = PAGES + ((openadr,) if openadr_dir is not None else ())
    nav = [
        dcc.Link(p.TITLE, href=p.PATH, className="nav-link", id=f"nav-{p.__name__.rsplit('.', 1)[-1]}") for p in pages
    ]
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            dcc.Interval(id="tick", interval=interval_ms),
            html.Header(
                [
                    html.Span("factory-twin", className="brand"),
                    html.Nav(nav),
                    html.Span(id="status", className="status"),
                ],
                className="header",
            ),
            html.Div(
                [
                    html.Span(id="runner-error"),
                    html.Button("Restart the twin", id="runner-restart", n_clicks=0, className="btn"),
                ],
                id="runner-banner",
                className="banner error",
                style={"display": "none"},
                role="alert",
            ),
            html.Div(id="target-alarm", role="alert"),
            html.Main(id="page", className="page"),
        ]
    )
    routes = {p.PATH: p for p in pages}

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def _route(path: str | None):
        page = routes.get(path or "/")
        return page.layout() if page else html.Div(f"no page at {path}", className="message error")

    @app.callback(Output("status", "children"), Output("target-alarm", "children"), Input("tick", "n_intervals"))
    def _status(_n):
        snap = snapshot_source()
        return status_text(snap), target_alarm(snap)

    @app.callback(
        Output("runner-banner", "style"),
        Output("runner-error", "children"),
        Input("tick", "n_intervals"),
        Input("runner-restart", "n_clicks"),
    )
    def _runner(_n, clicks):
        if runner is None:
            return no_update, no_update
        if ctx.triggered_id == "runner-restart" and clicks:
            runner.restart()
        error = runner.error()
        if error is None:
            return {"display": "none"}, ""
        return {"display": "flex"}, f"The twin has stopped: {error}"

    for p in PAGES:
        p.register(app, snapshot_source, command_sink, studies_dir=Path(studies_dir))
    power.register_conversion(app, facility)
    power.register_steering(app, snapshot_source, facility)
    if openadr_dir is not None:
        openadr.register(app, Path(openadr_dir))
    return app


__all__ = ["PAGES", "create_app"]
