"""Warm-started MPC (issue 14 §1): one re-plan of campus-1gw (2 h at 1 min, per-hall groups) warm vs
cold, and a closed-loop campus-1gw day with a re-plan every 5 min.

Targets: one warm re-plan <= 0.2 s; closed-loop 24 h <= 60 s. Run: ``python bench/bench_mpc_warm.py
[--duration 24h] [--replans 12] [--no-closed-loop]``. A re-plan's wall time includes the forecast, the
problem, the LP update and the plan Dataset; ``solve`` is HiGHS alone. Figures depend on the load of
the (shared) machine: run it when it is quiet, and print ``os.getloadavg()`` with the figures.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from factory_twin.models.units import S_PER_H
from factory_twin.optimization import MPC_OPTIONS, MPCController
from factory_twin.twin.simulation.controllers import TwinState

from factory_twin import twin
from factory_twin.cli.options import add_duration


def replans(f, sc, n: int, warm: bool, backend: str, **options) -> list[tuple[float, float, float, bool]]:
    """(wall s, build s, solve s, warm) of ``n`` re-plans 5 min apart from 2.5 h before the DR event,
    the measured import drifting (other ``DispatchOptions`` in ``options``)."""
    opts = MPC_OPTIONS.updated(backend=backend, **options)
    mpc = MPCController(f, sc, opts, warm_start=warm)
    t0 = sc.dr_events[0].start - np.timedelta64(150, "m")
    out = []
    for k in range(n):
        t = t0 + np.timedelta64(300 * k, "s")
        imp = np.nan if k == 0 else mpc.plan.grid_import_w[0] * (1 - 0.002 * k)
        s = TwinState(t, f.demand_w, f.tdp_w, np.full(f.n_racks, 60.0), np.full(f.n_cdus, 35.0), 32.0, imp,
                      np.nan, np.nan, 0.0)  # fmt: skip
        w0 = time.perf_counter()
        mpc(s, t)
        r = mpc.log[-1]
        out.append((time.perf_counter() - w0, r.build_seconds, r.solve_seconds, r.warm))
    return out


def closed_loop(f, sc, duration_s: float, warm: bool) -> None:
    mpc = MPCController(f, sc, MPC_OPTIONS.updated(backend="highspy"), replan_every="5min", warm_start=warm)
    t0 = time.perf_counter()
    ds = twin.simulate(f, sc, duration=duration_s, step="1s", plant_step="20s", record_every="60s", controller=mpc)
    wall = time.perf_counter() - t0
    plan_s = sum(r.build_seconds + r.solve_seconds for r in mpc.log)
    w = mpc.warm
    print(
        f"closed loop {f.spec.name} {duration_s / S_PER_H:g} h, MPC every 5 min, {'warm' if warm else 'cold'}: "
        f"wall {wall:.1f} s "
        f"(target <= 60 s for 24 h), {len(mpc.log)} re-plans, LP build+solve {plan_s:.1f} s, "
        f"warm/cold LPs {w.warm if w else 0}/{w.cold if w else len(mpc.log)}, "
        f"energy {float(ds.grid_import_mw.sum()) / 60:,.1f} MWh, load avg {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--facility", default="campus-1gw")
    ap.add_argument("--replans", type=int, default=12)
    add_duration(ap, "closed-loop run length", default="24h", old="--hours")
    ap.add_argument("--no-closed-loop", action="store_true")
    ap.add_argument("--cold-loop", action="store_true", help="also run the closed loop with cold re-plans")
    a = ap.parse_args()
    f = twin.load_facility(a.facility)
    sc = twin.load_scenario("hot-day-dr", f)
    for warm, backend in ((False, "auto"), (False, "highspy"), (True, "highspy")):
        r = np.array(replans(f, sc, a.replans, warm, backend))
        later = r[1:]  # the first re-plan is always cold
        kept = later[later[:, 3] > 0] if warm else later
        print(
            f"{a.facility} re-plan 2 h @ 1 min, per-hall, {'warm' if warm else 'cold'} ({backend}): median wall "
            f"{np.median(kept[:, 0]):.3f} s (target <= 0.2 s), LP build {np.median(kept[:, 1]) * 1e3:.1f} ms, "
            f"solve {np.median(kept[:, 2]) * 1e3:.1f} ms over {len(kept)} re-plans"
            + (f" ({int(later[:, 3].sum())}/{len(later)} warm)" if warm else "")
            + f"; load avg {os.getloadavg()[0]:.1f} (shared machine)",
            flush=True,
        )
    if not a.no_closed_loop:
        for warm in (True, False) if a.cold_loop else (True,):
            closed_loop(f, sc, a.duration, warm)


if __name__ == "__main__":
    main()
