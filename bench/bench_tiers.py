"""The dispatch LP with every tier of the one-line diagram and N-1 rows (issue 21): campus-1gw, 24 h at 5 min, build
+ solve; and the warm MPC re-plan (2 h at 1 min) carrying the same rows.

Targets: build + solve <= 5 s; one warm re-plan <= 0.05 s. Run ``python bench/bench_tiers.py [--facility campus-1gw]
[--replans 12]``. "build" is everything before HiGHS (forecast, tier rows, problem, matrix), measured wall to wall
around ``dispatch`` minus HiGHS's own solve time. The first plan of a facility also reduces its diagram to classes
of identical elements (once per routing, cached for the process): printed apart. Figures depend on the load of the
shared machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from bench_mpc_warm import replans  # one re-plan loop for both benches (run from the repository root)
from factory_twin.optimization.dispatch import dispatch
from factory_twin.optimization.options import DispatchOptions

from factory_twin import twin


def plan(f, sc, **kw) -> tuple[float, float, float, object]:
    """(wall s, build s, solve s, plan) of one day-ahead plan."""
    t0 = time.perf_counter()
    ds = dispatch(f, sc, DispatchOptions(horizon="24h", step="5min", backend="highspy", **kw))
    wall = time.perf_counter() - t0
    return wall, wall - ds.attrs["solve_seconds"], ds.attrs["solve_seconds"], ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--facility", default="campus-1gw")
    ap.add_argument("--replans", type=int, default=12)
    a = ap.parse_args()
    f = twin.load_facility(a.facility)
    sc = twin.load_scenario("hot-day-dr", f)
    t = f.topology
    print(f"{a.facility}: {t.n} elements, {f.n_racks} racks, load avg {os.getloadavg()[0]:.1f}", flush=True)
    first = plan(f, sc, n_minus_1=True)
    print(f"first plan with tiers + N-1 (includes reducing the diagram, once per process): wall {first[0]:.2f} s",
          flush=True)  # fmt: skip
    for label, kw in (("no tier rows", {"tiers": False}), ("tiers", {}), ("tiers + N-1", {"n_minus_1": True})):
        runs = [plan(f, sc, **kw) for _ in range(3)]
        wall, build, solve, ds = min(runs, key=lambda r: r[0])
        p_rows = ds.attrs.get("tier_rows", "")
        print(
            f"24 h @ 5 min, {label}: build {build:.2f} s + solve {solve:.2f} s = {wall:.2f} s (target <= 5 s), "
            f"{ds.attrs['status']}, throughput {float(ds.throughput.mean()):.4f} {p_rows}; "
            f"load avg {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    for label, kw in (("no tier rows", {"tiers": False}), ("tiers + N-1", {"n_minus_1": True})):
        report_replans(label, np.array(replans(f, sc, a.replans, True, "highspy", **kw)))


def report_replans(label: str, r: np.ndarray) -> None:
    later = r[1:][r[1:, 3] > 0]
    print(
        f"MPC re-plan 2 h @ 1 min, {label}, warm: median wall {np.median(later[:, 0]):.3f} s "
        f"(target <= 0.05 s), p90 {np.percentile(later[:, 0], 90):.3f} s, "
        f"LP build {np.median(later[:, 1]) * 1e3:.1f} ms, "
        f"solve {np.median(later[:, 2]) * 1e3:.1f} ms over {len(later)}/{len(r) - 1} warm re-plans; "
        f"first (cold) {r[0, 0]:.2f} s; load avg {os.getloadavg()[0]:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
