"""Serving a dashboard: the listening socket is opened before any work starts (a port in use fails at
once, naming it), then waitress (a production WSGI server) serves it; Flask's development server only
in debug mode."""

from __future__ import annotations

import socket

WSGI_THREADS = 8  # waitress worker threads: callbacks in flight at once (20 tabs measured in bench_concurrency)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or ``ValueError`` naming the option (port range, port in use)."""
    if not 1 <= port <= 65535:
        raise ValueError(f"--port: must be within 1-65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise ValueError(f"--host: cannot resolve {host!r} ({e.strerror or e})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise ValueError(f"--port: cannot listen on {host}:{port} ({e.strerror or e}); choose another --port") from None
    return sock


def run(app, sock: socket.socket, debug: bool = False) -> None:
    """Serve the Dash ``app`` on ``sock`` until interrupted (Ctrl-C returns; the socket is closed), Flask's
    development server only when ``debug``."""
    try:
        if debug:  # Dash's debug mode needs Flask's development server; never the default
            host, port = sock.getsockname()[:2]
            sock.close()
            app.run(host=host, port=port, debug=True, use_reloader=False)
            return
        from waitress import serve

        serve(app.server, sockets=[sock], threads=WSGI_THREADS, _quiet=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


__all__ = ["listen", "run"]
