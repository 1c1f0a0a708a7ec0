"""Study throughput: 100 day-ahead dispatch scenarios of campus-100mw, serial vs dask workers.

Each scenario is one day (24 h at 5 min) from a different start day with a random ambient offset
and price scale (seeded). Reports scenarios per minute serial and on ``--workers`` dask processes,
the speed-up, and the scheduler overhead per task as a share of the solve time (wall time on the
cluster x workers - summed task time, over the summed task time). Not part of the test run::

    python bench/bench_study.py [--n 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from factory_twin.optimization.studies.runner import run_case
from factory_twin.twin.runs.batch import collect, run_batch


def cases(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    opts = {"horizon": "24h", "step": "5min", "backend": "highspy"}
    ctx = {"facility": "campus-100mw", "scenario": "hot-day-dr", "options": opts, "labels": {}}
    days = np.datetime64("2026-08-08") + np.arange(n) % 60
    return [
        {"analysis": "sweep", "context": ctx, "start": f"{d}T00:00:00", "dr_depth": 0.0,
         "offset_k": round(float(rng.uniform(-3, 3)), 3), "price_scale": round(float(rng.uniform(0.5, 2)), 3)}
        for d in days
    ]  # fmt: skip


def timed(engine: str, todo: list[dict], root: Path, scheduler: str | None = None) -> tuple[float, float]:
    out = root / engine
    t0 = time.perf_counter()
    run_batch(run_case, todo, out, engine=engine, scheduler=scheduler, progress=False)
    wall = time.perf_counter() - t0
    ds = collect(out)
    assert (ds.status == 0).all(), ds.error.values
    return wall, float(ds.elapsed_s.sum())


def warm() -> None:
    """Load the model once in this process (facility, scenario, CoolProp tables)."""
    run_case(**cases(1)[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    todo = cases(a.n)
    root = Path(tempfile.mkdtemp(prefix="bench_study_"))
    from distributed import Client, LocalCluster
    from factory_twin.twin.runs.cluster import ONE_THREAD_ENV

    try:
        warm()  # both engines are timed warm: start-up is reported on its own
        ser, ser_task = timed("serial", todo, root)
        t0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=a.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env=ONE_THREAD_ENV,
        )
        client = Client(cluster)
        client.run(warm)
        startup = time.perf_counter() - t0
        par, par_task = timed("dask", todo, root, scheduler=cluster.scheduler_address)
        client.close()
        cluster.close()
    finally:
        shutil.rmtree(root)
    print(f"{a.n} day-ahead scenarios (24 h at 5 min), campus-100mw")
    print(f"serial          : {ser:7.1f} s  {60 * a.n / ser:6.1f} scenarios/min  (task mean {ser_task / a.n:.2f} s)")
    print(f"dask x{a.workers}         : {par:7.1f} s  {60 * a.n / par:6.1f} scenarios/min  "
          f"(task mean {par_task / a.n:.2f} s; cluster start + model load once: {startup:.1f} s)")  # fmt: skip
    print(f"speed-up        : {ser / par:.2f}x")
    over = (par * a.workers - par_task) / par_task
    print(f"overhead/task   : {100 * over:.1f} % of task time (scheduling, transfer, checkpoint writes)")
    print(f"end to end      : {ser / (par + startup):.2f}x including the one-off start-up")


if __name__ == "__main__":
    main()
