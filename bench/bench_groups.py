"""Resource groups at run time (issue 22, item 1): what a group change costs the live twin and the Power page.

    python bench/bench_groups.py [--facility campus-1gw] [--changes 10]

Prints, as JSON: the runner applying a ``resource_group`` command and publishing the snapshot meta
(``runner_apply_ms``), the steering panel's allocation of an unchanged snapshot (``allocation_ms_median``) and of a
snapshot whose groups changed (``changed_allocation_ms_median``: the controller's bounds and cells rebuilt once, then
the allocation), the controller built once (``controller_build_s``) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from factory_twin import twin


def bench(f, changes: int) -> dict:
    from factory_twin.dashboard.steering_panel import SnapshotSteering
    from factory_twin.twin.live.runner import LiveRunner, Snapshot

    runner = LiveRunner(twin.Twin(f, twin.load_scenario(None, f)), tempfile.mkdtemp())
    runner.step()
    w0 = time.perf_counter()
    steer = SnapshotSteering(f)
    build_s = time.perf_counter() - w0
    group = runner.groups.names[0]
    steer(runner.snapshot())
    same, changed, apply = [], [], []
    for k in range(changes):
        snap = runner.snapshot()
        w0 = time.perf_counter()
        steer(Snapshot(snap.meta, snap.arrays))  # a new snapshot, the same groups: no rebuild
        same.append(time.perf_counter() - w0)
        w0 = time.perf_counter()
        assert runner.apply({"kind": "resource_group", "group": group, "guarantee_w": 600.0 + 10 * (k + 1)})
        snap = runner.snapshot()
        apply.append(time.perf_counter() - w0)
        w0 = time.perf_counter()
        steer(snap)
        changed.append(time.perf_counter() - w0)
    assert steer.rebuilds == changes
    return {"gpus": int(f.gpus.sum()), "groups": runner.groups.n, "controller_build_s": build_s,
            "runner_apply_ms": 1e3 * float(np.median(apply)),
            "allocation_ms_median": 1e3 * float(np.median(same)),
            "changed_allocation_ms_median": 1e3 * float(np.median(changed)),
            "changed_allocation_ms_max": 1e3 * max(changed), "load": os.getloadavg()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--facility", default="campus-1gw")
    p.add_argument("--changes", type=int, default=10)
    a = p.parse_args()
    print(json.dumps(bench(twin.load_facility(a.facility), a.changes), indent=1))


if __name__ == "__main__":
    main()
