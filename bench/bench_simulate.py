"""Engine speed and memory: campus-1gw and campus-100mw, 24 h at a 1 s thermal step.

Usage: python bench/bench_simulate.py [--duration 24h] [--facility campus-1gw]
Prints wall time, real-time factor, peak RSS and the energy-book residuals.
"""

from __future__ import annotations

import argparse
import resource
import time

from factory_twin.models.units import S_PER_H

from factory_twin import twin
from factory_twin.cli.options import add_duration


def run(facility: str, duration_s: float, step: str, plant_step: str) -> None:
    f = twin.load_facility(facility)
    sc = twin.load_scenario("hot-day-dr", f)
    t0 = time.perf_counter()
    ds = twin.simulate(f, sc, duration=duration_s, step=step, plant_step=plant_step, record_every="60s")
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{facility}: {f.n_racks} racks, {f.n_cdus} CDUs, {duration_s / S_PER_H:g} h at step {step} / "
        f"plant {plant_step}: "
        f"wall {wall:.1f} s, {duration_s / wall:,.0f}x real time, peak RSS {rss:,.0f} MB, "
        f"heat book {ds.attrs['heat_book_residual']:.1e}, electric book {ds.attrs['electric_book_residual']:.1e}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--facility", action="append")
    add_duration(ap, "simulated time", default="24h", old="--hours")
    ap.add_argument("--step", default="1s")
    ap.add_argument("--plant-step", default="20s")
    a = ap.parse_args()
    for name in a.facility or ["campus-100mw", "campus-1gw"]:
        run(name, a.duration, a.step, a.plant_step)
