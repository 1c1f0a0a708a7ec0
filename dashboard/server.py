"""``serve``: start the live twin in its own process and the dashboard in this one.

Also the one controller factory (:func:`make_controller`) shared with the CLI; Dash is imported only
when :func:`serve` runs, so importing this module stays light.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

from factory_twin.twin.live import SNAPSHOT, load_snapshot, send_command, start_runner


def make_controller(name: str, facility, scenario, option: str = "controller"):
    """``uncapped`` | ``fixed:FRACTION`` | ``mpc`` -> a controller; ``ValueError`` naming ``option``
    (the CLI passes ``--controller``) otherwise."""
    from factory_twin.twin.controllers import FixedCap, Uncapped

    if name == "uncapped":
        return Uncapped(facility.tdp_w)
    if name.startswith("fixed:"):
        text = name.split(":", 1)[1]
        try:
            fraction = float(text)
        except ValueError:
            raise ValueError(f"{option}: fixed:FRACTION needs a number in (0, 1], got {text!r}") from None
        if not 0 < fraction <= 1:
            raise ValueError(f"{option}: fixed:FRACTION needs a fraction of TDP in (0, 1], got {text}")
        return FixedCap(facility.tdp_w, facility.min_cap_w, fraction)
    if name == "mpc":
        from factory_twin.optimization.mpc import MPCController

        return MPCController(facility, scenario)
    raise ValueError(f"{option}: expected uncapped, fixed:FRACTION or mpc, got {name!r}")


def build_twin(facility: str, scenario: str | None, controller: str):
    """Load the facility and scenario and build the twin (runs in the runner process)."""
    from factory_twin.twin import Twin, load_facility, load_scenario

    f = load_facility(facility)
    sc = load_scenario(scenario, f)
    return Twin(f, sc, controller=make_controller(controller, f, sc))


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
) -> int:
    """Run the twin at ``speed`` simulated s per wall s in a child process and serve the dashboard.

    ``folder`` holds the snapshot and the command files (a fresh temporary folder by default,
    removed on exit); ``studies_dir`` (default: the working directory) is the only place study
    files are read from.
    Binds 127.0.0.1 unless ``host`` says otherwise; Dash debug mode only when ``debug``.
    """
    if not speed > 0:
        raise ValueError(f"speed: must be > 0, got {speed!r}")
    if not controller.startswith(("uncapped", "fixed:", "mpc")):
        raise ValueError(f"controller: expected uncapped, fixed:FRACTION or mpc, got {controller!r}")
    own = folder is None
    run_dir = Path(tempfile.mkdtemp(prefix="factory-twin-live-") if own else folder)
    run_dir.mkdir(parents=True, exist_ok=True)
    proc, stop = start_runner(
        build_twin,
        {"facility": facility, "scenario": scenario, "controller": controller},
        run_dir,
        speed,
        controller,
    )
    try:
        from factory_twin.dashboard.app import create_app

        app = create_app(
            functools.partial(load_snapshot, run_dir / SNAPSHOT),
            functools.partial(send_command, run_dir),
            Path(studies_dir or Path.cwd()),
        )
        print(f"factory-twin dashboard: http://{host}:{port}/ (twin running in process {proc.pid})")
        app.run(host=host, port=port, debug=debug, use_reloader=False)
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
        if own:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


__all__ = ["build_twin", "make_controller", "serve"]
