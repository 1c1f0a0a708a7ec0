"""``/metrics`` for the live twin: the exposition text of :class:`Readings` and the HTTP endpoint that serves it.

:class:`Exporter` renders one facility's readings (the DCGM families per GPU or per rack, then the facility's:
``factory_twin_info``, the simulated time, active alarms per source, every meter, the CDUs and any further
element families). :class:`MetricsServer` answers ``GET /metrics`` (and ``HEAD``) on a loopback port unless told
otherwise, nothing else (404), from a callable that returns the body; a failing callable answers 500 with its
error. :class:`TwinMetrics` ties both to a twin stepped in the exporting process: call :meth:`TwinMetrics.update`
after each plant step (``steer`` and ``openadr-ven`` do).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from factory_twin.links.prometheus.dcgm import DcgmSeries, GpuSeries
from factory_twin.links.prometheus.exposition import CONTENT_TYPE, family, labels, number
from factory_twin.links.prometheus.facility import PREFIX, cdu_families, cdu_label_sets, render_meters
from factory_twin.links.prometheus.readings import Readings
from factory_twin.models.units import S_PER_H

log = logging.getLogger("factory_twin.prometheus")


class Exporter:
    """The exposition text of one facility's :class:`Readings` (label sets rendered once, here)."""

    def __init__(self, f, gpu_series: GpuSeries = "gpu"):
        self.dcgm = DcgmSeries(f, gpu_series)
        self.cdu_labels = cdu_label_sets(f)
        self.utc_offset_s = f.spec.site.utc_offset_h * S_PER_H  # the twin keeps the site's local standard time

    def render(self, r: Readings) -> bytes:
        info = labels({"facility": r.facility, "scenario": r.scenario, "controller": r.controller})
        t = float(np.datetime64(r.time, "s").astype(np.int64)) - self.utc_offset_s  # local -> Unix time
        alarms = [(labels({"source": k}), number(v)) for k, v in r.alarms.items()]
        clock = [("", number(t))]
        parts = [
            family(PREFIX + "info", "gauge", "the twin: facility, scenario, controller", [(info, "1")]),
            family(PREFIX + "simulated_time_seconds", "gauge", "the twin's clock as Unix time [s, UTC]", clock),
            family(PREFIX + "alarms", "gauge", "active alarms, by source (as the dashboard shows them)", alarms),
            render_meters(r.meters, r.currency),
            *(x.render() for x in cdu_families(self.cdu_labels, *_cdu_columns(r))),
            *(x.render() for x in r.elements),
        ]
        return self.dcgm.render(r.gpus) + "".join(parts).encode()


def _cdu_columns(r: Readings) -> tuple:
    c = r.cdus
    return c.supply_c, c.return_c, c.q_w, c.at_capacity


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall per scrape)
    server: _Server

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            return self._send(404, b"only /metrics is served here\n", "text/plain; charset=utf-8", body)
        try:
            payload = self.server.render()
        except Exception as e:  # the scrape fails visibly (up == 0, lastError) and the process keeps running
            log.exception("rendering /metrics failed")
            return self._send(500, f"{type(e).__name__}: {e}\n".encode(), "text/plain; charset=utf-8", body)
        if payload is None:
            return self._send(503, b"the twin has not stepped yet\n", "text/plain; charset=utf-8", body)
        self._send(200, payload, CONTENT_TYPE, body)

    def _send(self, code: int, payload: bytes, ctype: str, body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the scraper gave up (its scrape_timeout)
                log.warning("the scraper closed the connection before /metrics was sent (%d bytes)", len(payload))

    def log_message(self, format: str, *args) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    render: Callable[[], bytes | None]


class MetricsServer:
    """Serve ``render()`` (bytes, or None before there is anything to show) at ``http://host:port/metrics``."""

    def __init__(self, render: Callable[[], bytes | None], host: str = "127.0.0.1", port: int = 9400):
        self._server = _Server((host, port), _Handler)
        self._server.render = render
        self._thread: threading.Thread | None = None

    @property
    def render(self) -> Callable[[], bytes | None]:
        return self._server.render

    @render.setter
    def render(self, fn: Callable[[], bytes | None]) -> None:
        self._server.render = fn

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/metrics"

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


class TwinMetrics:
    """``/metrics`` of a twin stepped in this process: :meth:`update` after each plant step copies what a scrape
    shows; scrapes render the latest copy (once per update). ``alarms()`` gives active alarm counts by source.
    ``server``: a bound :class:`MetricsServer` to serve from (else one on ``host:port``)."""

    def __init__(
        self,
        twin,
        host: str = "127.0.0.1",
        port: int = 9400,
        gpu_series: GpuSeries = "gpu",
        controller: str = "",
        alarms: Callable[[], Mapping[str, int]] | None = None,
        server: MetricsServer | None = None,
    ):
        self.twin, self.controller, self.alarms = twin, controller, alarms
        self.exporter = Exporter(twin.f, gpu_series)
        self._lock = threading.Lock()
        self._readings: Readings | None = None
        self._body: bytes | None = None
        self.server = server or MetricsServer(self.render, host, port)
        self.server.render = self.render
        self.server.start()

    def update(self) -> None:
        r = Readings.from_twin(self.twin, self.controller, self.alarms() if self.alarms else None)
        with self._lock:
            self._readings, self._body = r, None

    def render(self) -> bytes | None:
        with self._lock:
            r, body = self._readings, self._body
        if body is None and r is not None:
            body = self.exporter.render(r)
            with self._lock:
                if self._readings is r:
                    self._body = body
        return body

    def close(self) -> None:
        self.server.close()


__all__ = ["Exporter", "MetricsServer", "TwinMetrics"]
