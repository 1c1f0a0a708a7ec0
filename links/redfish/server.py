"""Serving the Redfish WSGI app: cheroot (CherryPy's production HTTP server), HTTPS unless told otherwise.

cheroot rather than waitress because DSP0266 needs TLS for Basic auth and sessions and waitress has none
(it expects a TLS proxy in front); cheroot terminates TLS itself (Python's ``ssl``, TLS 1.2 or later), keeps
connections alive and sets TCP_NODELAY, with a pool of worker threads. Measured against the alternatives in
``bench/bench_redfish.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

DEFAULT_THREADS = 16


def parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port); ``ValueError`` naming ``option``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{option}: expected HOST:PORT such as 127.0.0.1:8443, got {text!r}")
    return host, int(port)


class Server:
    """A running cheroot server in a background thread; :meth:`stop` ends it."""

    def __init__(
        self,
        app: Callable,
        host: str,
        port: int,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        for option, p in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
            if p is not None and not Path(p).is_file():
                raise FileNotFoundError(f"{option}: no such file {p}")
        self.https = tls_cert is not None
        self.server = wsgi.Server((host, port), app, numthreads=threads, server_name="factory-twin-redfish")
        if self.https:
            self.server.ssl_adapter = BuiltinSSLAdapter(str(tls_cert), str(tls_key))
        self.server.prepare()  # binds now: a busy port fails here, not in the thread
        self.thread = threading.Thread(target=self.server.serve, name="redfish-http", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.bind_addr[1]

    @property
    def url(self) -> str:
        host = self.server.bind_addr[0]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(timeout=10)


__all__ = ["DEFAULT_THREADS", "Server", "parse_listen"]
