"""Rolling day-ahead dispatch year of campus-1gw (issue 14 §3): 365 day-ahead plans (24 h at 5 min, per-hall
groups) on local Dask workers, streamed into one NetCDF.

Usage: python bench/bench_dispatch_year.py [--days 365] [--workers 2] [--serial-days 6]

Prints the serial CPU cost of one plan (after a warm-up plan), the cluster start on its own, the run on the
started cluster (target: 365 plans <= 2 min with 2 workers) and the projection from the CPU per plan. Wall
times on a shared machine are noisy: the load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from factory_twin.optimization import DispatchOptions, dispatch
from factory_twin.optimization.rolling import run_dispatch_year
from factory_twin.twin.runs.cluster import dask_client

from factory_twin import twin

FACILITY = "campus-1gw"
TARGET_S = 120.0


def load() -> str:
    return f"load avg {os.getloadavg()[0]:.1f}"


def _warm_up() -> None:
    f = twin.load_facility("campus-100mw")
    dispatch(f, twin.load_scenario("hot-day-dr", f), DispatchOptions(backend="highspy"), horizon="1h")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--serial-days", type=int, default=6)
    a = ap.parse_args()
    f = twin.load_facility(FACILITY)
    sc = twin.load_scenario("hot-day-dr", f)
    opts = DispatchOptions(backend="highspy")
    start = np.datetime64(sc.start, "D")
    dispatch(f, sc, opts, start=start)  # imports and caches warm
    cpu = []
    for k in range(1, a.serial_days + 1):
        c0 = time.process_time()
        dispatch(f, sc, opts, start=start + np.timedelta64(k, "D"))
        cpu.append(time.process_time() - c0)
    per_plan = float(np.mean(cpu))
    print(f"serial: one {FACILITY} day-ahead plan (24 h at 5 min): CPU {per_plan:.3f} s mean over {len(cpu)}, {load()}")
    t0 = time.perf_counter()
    with dask_client(workers=a.workers) as client:
        client.run(_warm_up)  # each worker imports and plans once before the clock
        start_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t1 = time.perf_counter()
            ds = run_dispatch_year(f, sc, opts, start, f"{a.days}d", Path(tmp) / "plans.nc",
                                   scheduler=client.scheduler.address)  # fmt: skip
            wall = time.perf_counter() - t1
    target = TARGET_S * a.days / 365
    print(
        f"{a.days} plans on {a.workers} workers: {wall:.1f} s (target <= {target:.0f} s for {a.days} plans with 2 "
        f"workers: {'met' if wall <= target else 'MISSED'}), cluster start {start_s:.1f} s on its own; "
        f"{ds.attrs['plans_optimal']}/{ds.attrs['plans']} optimal; worker CPU per plan "
        f"{float(ds.segment_cpu_s.mean()):.3f} s mean, {float(ds.segment_cpu_s.max()):.3f} s max; {load()}"
    )
    for n in (a.workers, 64):
        rounds = math.ceil(365 / n)
        print(
            f"  365 plans on {n} workers, projected from the serial CPU per plan: {rounds} x {per_plan:.3f} s = "
            f"{rounds * per_plan:.0f} s (+ cluster start)"
        )


if __name__ == "__main__":
    main()
