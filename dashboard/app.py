"""The Dash app factory: a shell (header, navigation, ticking interval) and one module per page.

Callbacks only read snapshots through ``snapshot_source`` and send operator commands through
``command_sink``; the app holds no mutable state of its own, so any number of workers can serve it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, dcc, html
from factory_twin.dashboard.common import status_text
from factory_twin.dashboard.pages import cooling, dispatch, overview, racks, studies
from factory_twin.twin.live import Snapshot

PAGES = (overview, cooling, racks, dispatch, studies)
SnapshotSource = Callable[..., Snapshot | None]  # source(rack_history=False) -> latest snapshot or None
CommandSink = Callable[[Mapping[str, Any]], str]  # sink(command) -> id; ValueError when invalid


def create_app(
    snapshot_source: SnapshotSource,
    command_sink: CommandSink,
    studies_dir: str | Path = ".",
    interval_ms: int = 1000,
) -> Dash:
    """Build the dashboard.

    Parameters
    ----------
    snapshot_source : callable
        ``snapshot_source(rack_history=False)`` returns the latest
        :class:`twin.live.Snapshot` or None.
    command_sink : callable
        Receives an operator command dict (see :mod:`twin.live`); returns its id or raises
        ValueError.
    studies_dir : path
        The only folder the Studies page may open NetCDF files from.
    interval_ms : int
        Refresh period of the live pages [ms].
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
    nav = [
        dcc.Link(p.TITLE, href=p.PATH, className="nav-link", id=f"nav-{p.__name__.rsplit('.', 1)[-1]}") for p in PAGES
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
            html.Main(id="page", className="page"),
        ]
    )
    routes = {p.PATH: p for p in PAGES}

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def _route(path: str | None):
        page = routes.get(path or "/")
        return page.layout() if page else html.Div(f"no page at {path}", className="message error")

    @app.callback(Output("status", "children"), Input("tick", "n_intervals"))
    def _status(_n):
        return status_text(snapshot_source())

    for p in PAGES:
        p.register(app, snapshot_source, command_sink, studies_dir=Path(studies_dir))
    return app


__all__ = ["PAGES", "create_app"]
