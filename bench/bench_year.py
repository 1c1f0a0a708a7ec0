"""Year runs of campus-1gw: engine cost per day, seam error against the warm-up overlap, Dask scaling.

Usage: python bench/bench_year.py [engine] [seam] [scaling] [year] [--days 8] [--workers 2]

- engine:  serial cost of one simulated day at 1 s thermal step (hot-day-dr, and a mild October day);
           target <= 4 s per day
- seam:    the hardest seam we know (plant short of capacity at +4.5 K over the hot day, racks throttling):
           seam error for warm-ups of 2 to 30 min; bound 0.01 K
- scaling: ``--days`` one-day segments on 1 and on ``--workers`` local Dask workers, each on a started cluster
           (its start reported on its own, each worker warmed up by a small run first); speed-up (target >= 1.8x
           for 2), per-segment cost, and the year on 2 and on 64 workers projected from those costs
- year:    the real thing, ``simulate campus-1gw --duration 1y`` on ``--workers`` local workers (target
           <= 10 min for 2)

Wall times on a shared machine are noisy: every figure is printed with the CPU time of the process doing the
work (the engine is single-threaded, so CPU time is what a free core would take).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from factory_twin.twin.runs import segments
from factory_twin.twin.runs.cluster import dask_client

from factory_twin import twin

FACILITY = "campus-1gw"


def engine() -> None:
    f = twin.load_facility(FACILITY)
    sc = twin.load_scenario("hot-day-dr", f)
    twin.simulate(f, sc, duration="10min")  # imports and caches warm
    for label, start in (("hot day (hot-day-dr)", None), ("mild day (15 Oct)", "2026-10-15T00:00:00")):
        t0, c0 = time.perf_counter(), time.process_time()
        ds = twin.simulate(f, sc, start=start, duration="24h")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"engine {FACILITY} {label}, 24 h at 1 s / 20 s: wall {wall:.2f} s, CPU {cpu:.2f} s "
            f"(target <= 4 s: {'met' if min(wall, cpu) <= 4 else 'MISSED'}), "
            f"heat book {ds.attrs['heat_book_residual']:.1e}"
        )


def seam() -> None:
    f = twin.load_facility(FACILITY)
    sc = twin.load_scenario("hot-day-dr", f).with_changes(offset_k=4.5)
    with tempfile.TemporaryDirectory() as tmp:
        for overlap in ("2min", "5min", "10min", "20min", "30min"):
            plan = segments.plan_segments("2026-08-08T14:00:00", "1h", segment="30min", overlap=overlap)
            ds = segments.run_segments(f, sc, plan, Path(tmp) / f"{overlap}.nc", serial=True, force=True)
            e = ds.attrs["seam_error_max_k"]
            print(
                f"seam {FACILITY} +4.5 K, seam at 14:30, warm-up {overlap:>5}: seam error {e:.2e} K "
                f"({'within' if e <= segments.SEAM_TOLERANCE_K else 'OVER'} {segments.SEAM_TOLERANCE_K} K), "
                f"heat book {ds.attrs['heat_book_residual']:.1e}, "
                f"throttled GPUs max {float(ds.throttled_gpus.max()):.0f}"
            )


def _run(days: int, workers: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(cluster start s, run s on the started cluster, per-segment wall and CPU s) of ``days`` one-day
    segments on ``workers`` local workers; each worker imports and runs the engine once (a small campus for
    2 min) before the clock starts, so the segments measure the engine, not first-call costs."""
    f = twin.load_facility(FACILITY)
    sc = twin.load_scenario("hot-day-dr", f)
    plan = segments.plan_segments("2026-08-08T00:00:00", f"{days}d")
    t0 = time.perf_counter()
    with dask_client(workers=workers) as client, tempfile.TemporaryDirectory() as tmp:
        client.run(_warm_up)
        start_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        ds = segments.run_segments(f, sc, plan, Path(tmp) / "run.nc", scheduler=client.scheduler.address)
        wall = time.perf_counter() - t1
    return start_s, wall, ds.segment_wall_s.values, ds.segment_cpu_s.values


def _warm_up() -> None:
    from factory_twin import twin

    f = twin.load_facility("campus-100mw")
    twin.simulate(f, twin.load_scenario("hot-day-dr", f), duration="2min")


def scaling(days: int, workers: int) -> None:
    s1, w1, seg_w1, seg_c1 = _run(days, 1)
    sn, wn, seg_wn, seg_cn = _run(days, workers)
    print(
        f"scaling {FACILITY}, {days} one-day segments (30 min warm-up), on a started cluster: 1 worker {w1:.1f} s, "
        f"{workers} workers {wn:.1f} s: speed-up {w1 / wn:.2f}x (target >= 1.8x for 2: "
        f"{'met' if w1 / wn >= 1.8 else 'MISSED'}); cluster start {s1:.1f} s / {sn:.1f} s on its own "
        f"({(w1 + s1) / (wn + sn):.2f}x with it); load avg {os.getloadavg()[0]:.1f}"
    )
    seg = np.r_[seg_w1, seg_wn]
    cpu = np.r_[seg_c1, seg_cn]
    print(
        f"  per segment (1 day + 30 min): wall {seg.mean():.2f} s mean, {seg.max():.2f} s max; "
        f"CPU {cpu.mean():.2f} s mean, {cpu.max():.2f} s max; CPU / wall on {workers} workers "
        f"{seg_cn.sum() / seg_wn.sum():.2f} (1.00 when each worker has a core)"
    )
    per_day = cpu.mean()  # what a free core takes
    for n in (2, 64):
        rounds = math.ceil(365 / n)
        est = sn + rounds * per_day
        print(
            f"  year on {n} workers (projected from the CPU cost per segment): {rounds} rounds x {per_day:.2f} s "
            f"+ {sn:.1f} s start = {est / 60:.1f} min" + (" (target <= 10 min)" if n == 2 else "")
        )


def year(workers: int) -> None:
    f = twin.load_facility(FACILITY)
    sc = twin.load_scenario("hot-day-dr", f)
    plan = segments.plan_segments(sc.start, "1y")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ds = segments.run_segments(f, sc, plan, Path(tmp) / "year.nc", workers=workers)
        wall = time.perf_counter() - t0
    print(
        f"year {FACILITY} at 1 s on {workers} workers: {wall / 60:.1f} min (target <= 10 min for 2: "
        f"{'met' if wall <= 600 else 'MISSED'}), load avg {os.getloadavg()[0]:.1f}, "
        f"segment CPU {ds.segment_cpu_s.mean().item():.2f} s mean, "
        f"seam error max {ds.attrs['seam_error_max_k']:.1e} K, "
        f"heat book {ds.attrs['heat_book_residual']:.1e}, electric book {ds.attrs['electric_book_residual']:.1e}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("parts", nargs="*", default=["engine", "seam", "scaling"])
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    for part in a.parts:
        if part == "engine":
            engine()
        elif part == "seam":
            seam()
        elif part == "scaling":
            scaling(a.days, a.workers)
        elif part == "year":
            year(a.workers)
        else:
            ap.error(f"unknown part {part!r}")
