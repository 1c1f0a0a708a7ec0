"""Fast electrical engine: campus-1gw, 10 min at 10 ms (60,000 steps over 7,200 racks) with a 100,000-GPU
synchronous training job that starts at 60 s, unmitigated and with every layer (floor, shelf buffer, rack
battery, site BESS).

Usage: python bench/bench_grid.py [--facility campus-1gw] [--duration 10min] [--step 0.01]
Prints set-up time (facility load, twin start state), run wall time, peak RSS and the energy-book residual.
"""

from __future__ import annotations

import argparse
import resource
import time

from factory_twin.models.training_power import JobEvents
from factory_twin.optimization.studies.grid_study import mitigation_for
from factory_twin.twin.grid_dynamics.fast_electrical import StartState, TrainingJob, run_fast

from factory_twin import twin
from factory_twin.cli.options import add_duration


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--facility", default="campus-1gw")
    add_duration(ap, "length of the fast run", default="10min", old="--minutes")
    ap.add_argument("--step", type=float, default=0.01)
    a = ap.parse_args()
    t0 = time.perf_counter()
    f = twin.load_facility(a.facility)
    tw = twin.Twin(f, twin.load_scenario(None, f))
    tw.advance()
    start = StartState.from_twin(tw)
    setup = time.perf_counter() - t0
    job = [TrainingJob("sync-100k", 100_000, events=JobEvents(start_s=60.0))]
    steps = int(round(a.duration / a.step))
    print(f"{a.facility}: {f.n_racks:,} racks, {steps:,} steps of {a.step * 1e3:g} ms; set-up {setup:.1f} s")
    tdp = float(f.tdp_w.max())
    cases = (
        ("shelf buffer only", mitigation_for(tdp, 100_000, 0.0, 0.0, 0.0)),
        ("all layers", mitigation_for(tdp, 100_000, 0.9, 60e3, 30.0)),
    )
    for label, mit in cases:
        t1 = time.perf_counter()
        run = run_fast(f, start, job, mit, duration_s=a.duration, dt_s=a.step)
        wall = time.perf_counter() - t1
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"  {label}: wall {wall:.2f} s, peak RSS {rss:,.0f} MB, groups {run.dataset.attrs['groups']}, "
            f"energy book {run.dataset.attrs['energy_book_residual']:.1e}"
        )


if __name__ == "__main__":
    main()
