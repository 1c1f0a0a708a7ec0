"""The power-architecture study's year at 100 MW on 2 Dask workers (issue 24; target <= 5 min end to end).

``factory-twin study power-architecture`` restricted to campus-100mw: both chains (AC and 800 VDC), the design
point and the twelve parts of the year at 15 min, on ``--workers`` local workers through the study runner (the
same code path as the CLI: cluster start, facility builds per worker, checkpoints, collect, summary, report).
Prints the wall time end to end, the cases' summed and largest time, the load average, and the chain efficiencies
and losses it found. ``--all`` runs 1 GW too (the whole built-in study).

    python bench/bench_power_architecture.py [--workers 2] [--step 15min] [--all]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from factory_twin.optimization.studies.power_architecture import markdown
from factory_twin.optimization.studies.runner import load_study, run_study

TARGET_S = 300.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--step", default="15min")
    ap.add_argument("--all", action="store_true", help="both sizes (the whole built-in study)")
    a = ap.parse_args()
    study = load_study("power-architecture")
    study["options"]["step"] = a.step
    if not a.all:
        study["sweep"]["facility"] = ["campus-100mw"]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ds = run_study(study, Path(tmp) / "out", workers=a.workers, progress=False)
        wall = time.perf_counter() - t0
    ok = int((ds.status == 0).sum())
    sizes = ", ".join(str(f) for f in ds.facility.values)
    print(
        f"power-architecture ({sizes}; 2 chains; design + 12 parts at {a.step}) on {a.workers} workers: "
        f"{wall:.1f} s end to end (target <= {TARGET_S:.0f} s: {'met' if wall <= TARGET_S else 'MISSED'}); "
        f"{ok}/{ds.status.size} cases ok; cases {float(ds.elapsed_s.sum()):.1f} s summed, "
        f"{float(ds.elapsed_s.max()):.1f} s the longest; load avg {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(markdown(ds))


if __name__ == "__main__":
    main()
