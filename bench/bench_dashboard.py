"""Dashboard costs on campus-1gw: snapshot -> figures, first page load, and whether the runner keeps up.

Usage: python bench/bench_dashboard.py [--facility campus-1gw] [--controller mpc] [--sim-min 15]
Prints (1) server-side time from reading a snapshot to JSON-ready figures for each page (target
<= 300 ms), (2) first page load in headless Chromium until the first graph is drawn (target <= 3 s;
skipped without /usr/bin/chromium or playwright), (3) the speed the runner can sustain with the
controller re-planning every 5 simulated minutes (target >= 60x).
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from factory_twin.dashboard.pages import cooling, dispatch, overview, racks
from factory_twin.dashboard.server import build_twin
from factory_twin.twin.live.runner import SNAPSHOT, LiveRunner, load_snapshot
from plotly.utils import PlotlyJSONEncoder

CHROMIUM = "/usr/bin/chromium"


def figures_ms(path: Path, repeat: int = 5) -> dict[str, float]:
    """Best-of-``repeat`` ms per page: load the snapshot, build its figures, serialize to JSON."""
    enc = PlotlyJSONEncoder()
    pages = {
        "overview": lambda s: overview.update(s),
        "cooling": lambda s: cooling.update(s),
        "racks": lambda s: (racks.floor_figure(s, "die_temp_c"), *racks.rack_detail(s, 0)),
        "dispatch": lambda s: (dispatch.plan_figure(s), dispatch.events_table(s), dispatch.log(s)),
    }
    out = {}
    for name, build in pages.items():
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            snap = load_snapshot(path, rack_history=name == "racks")
            parts = build(snap)
            enc.encode([p.to_plotly_json() if hasattr(p, "to_plotly_json") else p for p in parts])
            best = min(best, time.perf_counter() - t0)
        out[name] = best * 1e3
    return out


def runner_speed(facility: str, controller: str, sim_min: float, folder: Path) -> tuple[float, LiveRunner]:
    """Simulated seconds per wall second over ``sim_min`` minutes, re-plans and snapshots included."""
    tw = build_twin(facility, None, controller)
    runner = LiveRunner(tw, folder, controller_name=controller)
    runner.step()
    n = int(sim_min * 60 / tw.plant_dt)
    t0 = time.perf_counter()
    for k in range(n):
        runner.step()
        if k % 3 == 0:  # a snapshot every 30 simulated s = every 0.5 wall s at 60x
            runner.publish()
    return sim_min * 60 / (time.perf_counter() - t0), runner


def first_load_s(facility: str, controller: str) -> float | None:
    """Wall seconds from navigation to the first drawn graph, against ``serve`` on a free port."""
    if not Path(CHROMIUM).exists() or importlib.util.find_spec("playwright") is None:
        return None
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tempfile.mkdtemp(prefix="bench-dash-")
    code = (
        f"from factory_twin.dashboard.server import serve; serve(facility={facility!r}, port={port}, "
        f"controller={controller!r}, folder={run!r})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            snap = load_snapshot(Path(run) / SNAPSHOT)
            if snap is not None and snap.meta["now"] is not None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                    break
                except OSError:
                    pass
            time.sleep(0.2)
        with sync_playwright() as p:
            b = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = b.new_page()
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#ov-sankey .main-svg .sankey", timeout=30000)
            dt = time.perf_counter() - t0
            b.close()
        return dt
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--facility", default="campus-1gw")
    ap.add_argument("--controller", default="mpc")
    ap.add_argument("--sim-min", type=float, default=15.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        speed, runner = runner_speed(a.facility, a.controller, a.sim_min, Path(d))
        f = runner.twin.f
        size = (Path(d) / SNAPSHOT).stat().st_size / 1e6
        print(f"{a.facility}: {f.n_racks} racks, {f.n_cdus} CDUs, controller {a.controller}")
        print(
            f"  runner: {speed:,.0f}x sustainable over {a.sim_min:g} simulated min "
            f"({'keeps' if speed >= 60 else 'does NOT keep'} --speed 60); snapshot {size:.1f} MB"
        )
        for page, ms in figures_ms(Path(d) / SNAPSHOT).items():
            print(f"  snapshot -> figures + JSON, {page}: {ms:.0f} ms")
    load = first_load_s(a.facility, a.controller)
    print(f"  first page load: {f'{load:.2f} s' if load is not None else 'skipped (no chromium/playwright)'}")


if __name__ == "__main__":
    main()
