"""Duke headroom speed and the spread of the synthetic balancing area across seeds.

Usage: python bench/bench_headroom.py [--seeds 8] [--engine serial|dask] [--workers 2] [--out DIR]
Prints the time to build nine synthetic years, to evaluate r(L) at 10,000 loads and to solve the
four Duke budgets; then runs one case per seed through ``run_batch`` and prints headroom (% of
peak), load factor and mean event duration per seed with their mean and range.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from factory_twin.optimization.studies.balancing_area import synthetic_load
from factory_twin.optimization.studies.headroom import HeadroomBasis, headroom
from factory_twin.twin.runs.batch import collect, run_batch


def seed_case(seed: int) -> dict[str, np.ndarray | float]:
    """One batch case: headroom of the default synthetic balancing area for ``seed``."""
    ds = headroom(*synthetic_load(seed=seed))
    return {
        "headroom_pct": ds.headroom_pct_of_peak.values,
        "hours_per_year": ds.curtailed_hours_per_year.values,
        "event_h": ds.mean_event_duration_h.values,
        "load_factor": float(ds.load_factor),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--engine", default="serial")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()

    t0 = time.perf_counter()
    t, d = synthetic_load()
    t1 = time.perf_counter()
    basis = HeadroomBasis.from_load(t, d)
    basis.rate(np.linspace(1.0, 0.5 * basis.peak_mw, 10_000))
    t2 = time.perf_counter()
    headroom(t, d)
    t3 = time.perf_counter()
    print(
        f"{t.size} h: synthesize {t1 - t0:.2f} s, r(L) at 10,000 loads {t2 - t1:.2f} s, "
        f"4 budgets + statistics {t3 - t2:.2f} s"
    )

    out = a.out or tempfile.mkdtemp(prefix="bench_headroom_")
    t4 = time.perf_counter()
    run_batch(
        seed_case,
        [{"seed": s} for s in range(a.seeds)],
        out,
        engine=a.engine,
        workers=a.workers,
        resume=True,
    )
    ds = collect(out, {"seed": list(range(a.seeds))})
    print(f"{a.seeds} seeds on {a.engine}: {time.perf_counter() - t4:.1f} s -> {out}/results.nc")
    print("seed  headroom % of peak at 0.25/0.5/1/5 %   h/yr at 0.25/0.5/1 %   event h   LF")
    for s in range(a.seeds):
        r = ds.sel(seed=s)
        print(
            f"{s:4d}  {np.array2string(r.headroom_pct.values, precision=1):32s} "
            f"{np.array2string(r.hours_per_year.values[:3], precision=0):22s} "
            f"{np.array2string(r.event_h.values[:3], precision=1):16s} {float(r.load_factor):.3f}"
        )
    h = ds.headroom_pct.values
    fmt = lambda x: np.array2string(x, precision=1)  # noqa: E731
    print(f"mean {fmt(h.mean(0))} min {fmt(h.min(0))} max {fmt(h.max(0))}")
    print("Duke 22-BA: 10.2 13.2 16.9 28.9 % of peak")
    lf = ds.load_factor.values
    print(f"load factor mean {lf.mean():.3f}, {lf.min():.3f}-{lf.max():.3f} (Duke: 0.53, 0.43-0.61)")


if __name__ == "__main__":
    main()
