"""Serving the Redfish ASGI app: uvicorn (httptools parser, uvloop event loop), HTTPS unless told otherwise.

Why uvicorn: DSP0266 needs TLS for Basic auth and sessions, and waitress has none (it expects a TLS proxy in
front). Of the servers that terminate TLS themselves, measured on this project's 2-core machine with the
emulated campus-100mw (``bench/bench_redfish.py``): cheroot (CherryPy's threaded WSGI server) spent 0.34 ms
of CPU per request, mostly in its pure-Python request reading; uvicorn 0.17 ms. It keeps connections alive,
sets TCP_NODELAY, and is bound to 127.0.0.1 unless told otherwise. The socket is bound before the server
thread starts, so a port in use fails at once, naming it. With ``tls_ca`` clients must also present a
certificate that CA signed (mutual TLS), besides their Redfish credentials.
"""

from __future__ import annotations

import importlib.util
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

KEEP_ALIVE_S = 30  # idle keep-alive connections are closed after this [s]


def parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port); ``ValueError`` naming ``option``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{option}: expected HOST:PORT such as 127.0.0.1:8443, got {text!r}")
    return host, int(port)


class Server:
    """The app served on ``host:port`` in a background thread; :meth:`stop` ends it."""

    def __init__(
        self,
        app: Callable,
        host: str,
        port: int,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_ca: Path | None = None,
        option: str = "--listen",
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if tls_ca is not None and tls_cert is None:
            raise ValueError("--tls-ca: client certificates need HTTPS (--tls-cert/--tls-key)")
        for name, p in (("--tls-cert", tls_cert), ("--tls-key", tls_key), ("--tls-ca", tls_ca)):
            if p is not None and not Path(p).is_file():
                raise FileNotFoundError(f"{name}: no such file {p}")
        self.https = tls_cert is not None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise ValueError(f"{option}: cannot listen on {host}:{port} ({e.strerror or e})") from None
        fast = importlib.util.find_spec("uvloop") is not None and importlib.util.find_spec("httptools") is not None
        config = uvicorn.Config(
            app,
            interface="asgi3",
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            ssl_ca_certs=str(tls_ca) if tls_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls_ca else ssl.CERT_NONE,
            loop="uvloop" if fast else "asyncio",
            http="httptools" if fast else "h11",
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="redfish-http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the Redfish server did not start on {host}:{port}")
            time.sleep(0.01)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        host = self.sock.getsockname()[0]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


__all__ = ["Server", "parse_listen"]
