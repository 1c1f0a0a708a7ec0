"""/metrics of the live twin: render + HTTP time per scrape, and a real Prometheus scraping it.

Usage: python bench/bench_scrape.py [--facility campus-100mw] [--series gpu] [--scrapes 5] [--no-prometheus]

For the facility (campus-100mw: 840 racks, 60,480 GPUs) and GPU series (``gpu``: one series per GPU, ``rack``: per
rack) it prints the one-off label build, then per scrape the wall time of ``GET /metrics`` on loopback with a new
twin state each time (so every scrape renders; target <= 2 s for campus-100mw per GPU), the body size and the number
of samples. Unless ``--no-prometheus``, Debian's Prometheus then scrapes the exporter every 5 s while the twin
steps, and its own ``scrape_duration_seconds`` (fetch + parse + store) and ``scrape_samples_scraped`` are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory

from factory_twin.links.prometheus.exporter import TwinMetrics
from factory_twin.twin.simulation.engine import Twin

from factory_twin import twin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from prometheus_server import Prometheus  # the tests' Prometheus runner
from support import free_port


def scrape_s(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - t0, len(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--facility", default="campus-100mw")
    ap.add_argument("--series", choices=("gpu", "rack"), default="gpu")
    ap.add_argument("--scrapes", type=int, default=5)
    ap.add_argument("--no-prometheus", action="store_true")
    a = ap.parse_args()

    f = twin.load_facility(a.facility)
    tw = Twin(f, twin.load_scenario(None, f))
    tw.advance()
    t0 = time.perf_counter()
    m = TwinMetrics(tw, port=free_port(), gpu_series=a.series)
    build = time.perf_counter() - t0
    n_gpus = int(f.gpus.sum())
    print(f"{a.facility}: {f.n_racks:,} racks, {n_gpus:,} GPUs; GPU series per {a.series}: "
          f"{m.exporter.dcgm.n_series:,} label sets built in {build:.2f} s")  # fmt: skip
    times = []
    for _ in range(a.scrapes):
        tw.advance()
        m.update()  # a new state: the scrape renders
        dt, size = scrape_s(m.server.url)
        times.append(dt)
    samples = 4 * m.exporter.dcgm.n_series
    print(f"GET /metrics, new state each time: median {statistics.median(times):.3f} s, max {max(times):.3f} s "
          f"({size / 1e6:.1f} MB, ~{samples:,} DCGM samples; target <= 2 s)")  # fmt: skip
    dt, _ = scrape_s(m.server.url)
    print(f"GET /metrics, same state (cached body): {dt:.3f} s")

    if not a.no_prometheus:
        stop = threading.Event()

        def step():  # the twin moves on while Prometheus scrapes: one new state per second
            while not stop.wait(1.0):
                tw.advance()
                m.update()

        stepper = threading.Thread(target=step, daemon=True)
        stepper.start()
        with TemporaryDirectory() as tmp:
            prom = Prometheus(Path(tmp), [m.server.url.split("/")[2]], interval_s=5.0)
            try:
                for _ in range(4):
                    prom.wait_scrape(60)
                    t = prom.api("targets")["activeTargets"][0]
                    n = prom.query("scrape_samples_scraped")
                    print(f"Prometheus (scrape every 5 s): {t['health']}, lastScrapeDuration "
                          f"{t['lastScrapeDuration']:.2f} s, {n[0][1] if n else float('nan'):,.0f} samples "
                          f"{t['lastError']}")  # fmt: skip
            finally:
                prom.stop()
                stop.set()
    m.close()


if __name__ == "__main__":
    main()
