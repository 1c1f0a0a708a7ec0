"""Dispatch benchmarks: build and solve seconds and peak memory.

Cases: campus-100mw and campus-1gw over 24 h at 5 min (hot-day-dr scenario), and one MPC re-plan of
campus-100mw (2 h at 1 min). Run: ``python bench/bench_dispatch.py [--solver simplex|ipx|pdlp]
[--backend auto|pyomo|highspy] [--grouping hall|cdu]``. Each case runs in a fresh process so that
the
peak resident memory (``ru_maxrss``) belongs to that case alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time

CASES = (
    ("campus-100mw", "24h", "5min", None),
    ("campus-1gw", "24h", "5min", None),
    ("campus-100mw", "2h", "1min", "event"),
)


def _run(args: tuple, out: mp.Queue) -> None:
    facility, horizon, step, start, solver, backend, grouping = args
    import numpy as np
    from factory_twin.optimization import MPC_OPTIONS, DispatchOptions, MPCController, dispatch
    from factory_twin.twin.simulation.controllers import TwinState

    from factory_twin import twin

    t0 = time.perf_counter()
    f = twin.load_facility(facility)
    sc = twin.load_scenario("hot-day-dr", f)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if start is None:
        opts = DispatchOptions(horizon=horizon, step=step, solver=solver, backend=backend, grouping=grouping)
        plan = dispatch(f, sc, opts)
        a, groups = plan.attrs, plan.sizes["group"]
    else:  # one MPC re-plan, as the controller runs it inside the twin
        opts = MPC_OPTIONS.updated(horizon=horizon, step=step, solver=solver, backend=backend, grouping=grouping)
        mpc = MPCController(f, sc, opts)
        t = sc.dr_events[0].start - np.timedelta64(30, "m")  # a re-plan just before the DR event
        state = TwinState(
            t,
            f.demand_w,
            f.tdp_w,
            np.full(f.n_racks, 60.0),
            np.full(f.n_cdus, 35.0),
            32.0,
            np.nan,
            np.nan,
            np.nan,
            0.0,
        )
        mpc(state, t)
        rec = mpc.log[-1]
        a = {
            "status": rec.status,
            "backend": backend,
            "prepare_seconds": np.nan,
            "build_seconds": rec.build_seconds,
            "solve_seconds": rec.solve_seconds,
        }
        groups = mpc.groups.n
    total = time.perf_counter() - t0
    out.put(
        {
            "case": f"{facility} {horizon}@{step}" + (" MPC re-plan" if start else ""),
            "groups": groups,
            "status": a["status"],
            "prepare_s": round(a["prepare_seconds"], 2),
            "build_s": round(a["build_seconds"], 2),
            "solve_s": round(a["solve_seconds"], 2),
            "total_s": round(total, 2),
            "load_s": round(load_s, 2),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solver", default="simplex")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--grouping", default="hall")
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    for facility, horizon, step, start in CASES:
        q = ctx.Queue()
        p = ctx.Process(target=_run, args=((facility, horizon, step, start, a.solver, a.backend, a.grouping), q))
        p.start()
        p.join()
        print(
            json.dumps(q.get() if not q.empty() else {"case": facility, "error": p.exitcode}),
            flush=True,
        )


if __name__ == "__main__":
    main()
