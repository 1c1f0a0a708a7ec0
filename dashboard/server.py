"""``serve``: start the live twin in its own process and the dashboard in this one.

Dash is imported only when :func:`serve` runs, so importing this module stays light.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from factory_twin.dashboard import wsgi
from factory_twin.optimization.controllers import make_controller
from factory_twin.twin.live.runner import (
    RUNNER_ERROR,
    SNAPSHOT,
    load_snapshot,
    send_command,
    start_groups,
    start_runner,
)


def build_twin(facility: str, scenario: str | None, controller: str):
    """Load the facility and scenario and build the twin (runs in the runner process)."""
    from factory_twin.twin import Twin, load_facility, load_scenario

    f = load_facility(facility)
    sc = load_scenario(scenario, f)
    return Twin(f, sc, controller=make_controller(controller, f, sc))


def check_setup(facility: str, scenario: str | None, controller: str, steering: Sequence[Mapping[str, Any]] = ()):
    """Load the facility and scenario, build the controller and apply the ``steering`` commands here, before
    anything starts, so that an unknown name or a refused group fails at start with its error (the runner process
    would only fail in the background); return the facility."""
    from factory_twin.twin import load_facility, load_scenario

    f = load_facility(facility)
    make_controller(controller, f, load_scenario(scenario, f))
    start_groups(f, steering)
    return f


class Runner:
    """The runner process seen from the server: alive or why it stopped, restartable; commands are refused
    while it is not running."""

    def __init__(
        self, build_kwargs: dict, folder: Path, speed: float, controller_name: str, steering: Sequence[Mapping] = ()
    ):
        self.build_kwargs, self.folder, self.speed, self.name = build_kwargs, folder, speed, controller_name
        self.steering = tuple(steering)  # the groups at start, again at a restart
        self._lock = threading.Lock()
        self.proc = self.stop_event = None
        self.start()

    def start(self) -> None:
        with self._lock:
            (self.folder / RUNNER_ERROR).unlink(missing_ok=True)
            self.proc, self.stop_event = start_runner(
                build_twin, self.build_kwargs, self.folder, self.speed, self.name, self.steering
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def error(self) -> str | None:
        """Why the runner is not running (None while it runs)."""
        if self.alive():
            return None
        try:
            return (self.folder / RUNNER_ERROR).read_text()
        except OSError:
            code = self.proc.exitcode if self.proc is not None else None
            return f"the runner process exited (exit code {code})"

    def restart(self) -> None:
        """Start a new runner when the present one has stopped (no effect while it runs)."""
        if not self.alive():
            self.start()

    def send(self, command: Mapping[str, Any]) -> str:
        if not self.alive():
            raise ValueError(f"the twin is not running ({self.error()}); restart it first")
        return send_command(self.folder, command)

    def close(self) -> None:
        if self.proc is None:
            return
        self.stop_event.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


class LatestSnapshot:
    """The snapshot source of the callbacks: the file is read once per published version (its inode changes
    with every atomic replace) and shared by every session's callbacks (snapshot arrays are read-only)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._cache: dict[bool, Any] = {}

    def version(self) -> tuple[int, int, int] | None:
        """Identity of the published snapshot file (None before the first)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def __call__(self, rack_history: bool = False):
        key = self.version()
        if key is None:
            return None
        with self._lock:
            if key != self._key:
                self._key, self._cache = key, {}
            snap = self._cache.get(rack_history)
        if snap is None:
            snap = load_snapshot(self.path, rack_history=rack_history)
            with self._lock:
                if self._key == key:
                    self._cache[rack_history] = snap
        return snap


def share_tick_responses(server, source: LatestSnapshot) -> None:
    """Answer identical tick callbacks once per snapshot version.

    Every tab polls the same callbacks each second; a tick callback is a pure function of its inputs and
    the snapshot (the app holds no state), so requests that differ only in the tick counter get the bytes
    of the first answer while the snapshot is unchanged. Clicks, typed inputs and the runner banner (which
    reads the runner process) are never shared.
    """
    from flask import Response, g, request

    cache: dict = {"version": None, "answers": {}}
    lock = threading.Lock()

    @server.before_request
    def _shared():
        if request.method != "POST" or not request.path.endswith("_dash-update-component"):
            return None
        body = request.get_json(silent=True) or {}
        if body.get("changedPropIds") != ["tick.n_intervals"] or "runner-" in str(body.get("output")):
            return None  # the runner banner reads the process, not the snapshot: never shared
        inputs = [i for i in body.get("inputs", []) if i.get("id") != "tick"]
        key = json.dumps([body.get("output"), inputs, body.get("state")], sort_keys=True)
        version = source.version()
        with lock:
            if cache["version"] != version:
                cache["version"], cache["answers"] = version, {}
            answer = cache["answers"].get(key)
        if answer is not None:
            return Response(answer, mimetype="application/json")
        g.shared_key = (version, key)
        return None

    @server.after_request
    def _keep(resp):
        shared = g.pop("shared_key", None)
        if shared is not None and resp.status_code == 200:
            with lock:
                if cache["version"] == shared[0]:
                    cache["answers"][shared[1]] = resp.get_data()
        return resp


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds serve(): the runner stops and the live folder is removed


def serve(
    facility: str = "campus-100mw",
    scenario: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8050,
    speed: float = 60.0,
    controller: str = "mpc",
    debug: bool = False,
    studies_dir: str | Path | None = None,
    folder: str | Path | None = None,
    openadr_dir: str | Path | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    gpu_series: str = "gpu",
    steering: Sequence[Mapping[str, Any]] = (),
) -> int:
    """Run the twin at ``speed`` simulated s per wall s in a child process and serve the dashboard.

    ``folder`` holds the snapshot and the command files (a fresh temporary folder by default,
    removed on exit); ``studies_dir`` (default: the working directory) is the only place study
    files are read from; ``openadr_dir`` (an OpenADR VEN's ``--state-dir``) adds the OpenADR page (a flex agent's
    page is served on its own: :func:`dashboard.pages.flex.serve_flex`). Binds 127.0.0.1 unless ``host`` says
    otherwise; Dash debug mode only when ``debug``. ``metrics_port`` also serves the twin's Prometheus metrics at
    ``http://metrics_host:metrics_port/metrics`` (GPU series per GPU, or per rack with ``gpu_series="rack"``;
    docs/links.md). ``steering``: ``resource_group``/``power_policy`` commands the twin's steering starts with
    (:func:`twin.live.runner.start_groups`; checked here first).
    """
    if not speed > 0:
        raise ValueError(f"speed: must be > 0, got {speed!r}")
    f = check_setup(facility, scenario, controller, steering)
    metrics = None
    if metrics_port is not None:  # a bad option or a port in use fails here, before the twin starts
        from factory_twin.links.prometheus.exporter import MetricsServer

        if gpu_series not in ("gpu", "rack"):
            raise ValueError(f"gpu series: must be 'gpu' or 'rack', got {gpu_series!r}")
        metrics = MetricsServer(lambda: None, metrics_host, metrics_port)
    sock = wsgi.listen(host, port)  # a port in use fails here, before the twin starts
    own = folder is None
    run_dir = Path(tempfile.mkdtemp(prefix="factory-twin-live-") if own else folder)
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    runner = None
    try:
        from factory_twin.dashboard.app import create_app

        runner = Runner(
            {"facility": facility, "scenario": scenario, "controller": controller}, run_dir, speed, controller, steering
        )
        source = LatestSnapshot(run_dir / SNAPSHOT)
        app = create_app(
            source,
            runner.send,
            Path(studies_dir or Path.cwd()),
            runner=runner,
            openadr_dir=openadr_dir,
            facility=facility,
        )
        share_tick_responses(app.server, source)
        if metrics is not None:
            from factory_twin.dashboard.metrics import SnapshotMetrics

            metrics.render = SnapshotMetrics(f, source, gpu_series)
            metrics.start()
            print(f"factory-twin metrics: {metrics.url}", flush=True)
        print(f"factory-twin dashboard: http://{host}:{port}/ (twin running in process {runner.proc.pid})", flush=True)
        wsgi.run(app, sock, debug)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if metrics is not None:
            metrics.close()
        if runner is not None:
            runner.close()
        if own:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


__all__ = ["Runner", "build_twin", "check_setup", "serve"]
