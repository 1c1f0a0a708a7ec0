"""DSX Flex benchmarks: a target's arrival to new caps in the twin; the Phoenix replay (issue 12).

``python bench/bench_flex.py latency [--facility campus-1gw] [--repeat 5]``: the twin runs under the flex
agent's MPC (default MPC settings: 2 h horizon at 1 min, re-plan every 5 min). Each repeat puts a signed
``grid.loadtarget.set.v1`` (a cut below the present load) on the agent's inbox, exactly where the MQTT
thread puts it, and times the next agent step: to the moment the twin holds new caps (verification, state,
the agent's cap reflex), to the MPC's re-planned caps, and to the end of that plant step; the MPC's own
build and solve seconds are printed beside.

``python bench/bench_flex.py phoenix [--depth 0.25 --depth 0.5]``: the SRP 2025-05-04 event through the agent
under a uniform cap, job-aware caps (the MPC), caps with pauses, and caps with pauses and resizing, at the
published 25 % cut and at a 50 % cut (below what the minimum caps draw); prints the Markdown comparison tables
of docs/flex.md.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def latency(facility: str, repeat: int) -> None:
    from factory_twin.links.dsx_flex import protocol as dx
    from factory_twin.links.dsx_flex.agent import FlexAgent
    from factory_twin.optimization.mpc import MPCController
    from factory_twin.twin.simulation.engine import Twin
    from joserfc.jwk import ECKey

    from factory_twin import twin

    f = twin.load_facility(facility)
    sc = twin.load_scenario("hot-day-dr", f)
    mpc = MPCController(f, sc)
    tw = Twin(f, sc, start="2026-08-08T10:00:00", controller=mpc)
    grid, own = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    agent = FlexAgent(tw, dx.TrustStore.bound("bench", grid), own, keep_published=False)
    for _ in range(3):  # warm up: first plans, imports
        agent.step()
    caps_at: list[float] = []
    original = mpc.__call__

    def timed(state, t):
        out = original(state, t)
        caps_at.append(time.perf_counter())
        return out

    tw.controller = timed
    timed.period_s = mpc.period_s  # the engine reads the controller's period
    print(f"{facility}: {f.n_racks} racks, {mpc.groups.n} dispatch groups")
    rows = []
    base = agent.measured_w()["main"]
    for k in range(repeat):
        level = base * (0.95 - 0.02 * k)
        ev = dx.loadtarget_event("bench", [dx.loadtarget_data(level)], grid, agent.now())
        t0 = time.perf_counter()
        agent.inbox.put((dx.loadtarget_topic("bench"), json.dumps(ev).encode(), t0))
        caps_at.clear()
        agent.step()
        t_step = time.perf_counter() - t0
        rec = mpc.log[-1]
        rows.append((agent.latency_s[-1], caps_at[0] - t0, t_step, rec.build_seconds, rec.solve_seconds))
        assert agent.state.limit_w("main", agent.now()) == level
        for _ in range(2):
            agent.step()
    a = np.array(rows)
    names = ("arrival -> new caps (reflex)", "arrival -> MPC caps", "arrival -> end of step", "MPC build", "MPC solve")
    for name, col in zip(names, a.T, strict=True):
        print(f"  {name:<30} median {np.median(col):.3f} s  max {col.max():.3f} s")


def phoenix(depths: list[float]) -> None:
    from factory_twin.links.dsx_flex.replay import POLICIES, run_phoenix, table

    from factory_twin import twin

    f = twin.load_facility("emerald-phoenix")
    sc = twin.load_scenario("srp-2025-05-04", f)
    for depth in depths:
        print(f"\n## cut {100 * depth:.0f} % below the pre-event average")
        results = []
        for p in POLICIES:
            cpu = time.process_time()
            results.append(run_phoenix(f, sc, p, depth=depth))
            r = results[-1]
            kw = f"pre-event {r.pre_event_kw:.2f} kW, hold target {r.hold_target_kw:.2f} kW"
            print(f"{r.policy}: {r.wall_s:.1f} s wall, {time.process_time() - cpu:.1f} s CPU, {kw}")
        if depth == 0.25:
            best = max(results, key=lambda r: r.weighted_window)
            caps = results[1]
            print(f"targets (issue 12): RMSE <= 1 % (caps {100 * caps.rmse_hold:.3f} %), floors met (caps "
                  f"{caps.floors_met()}), weighted window >= 0.95 (best {best.policy} "
                  f"{best.weighted_window:.3f}; field 0.91)")  # fmt: skip
        print(table(results))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["latency", "phoenix"])
    p.add_argument("--facility", default="campus-1gw")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--depth", type=float, action="append", help="phoenix: cut(s) to replay (default 0.25 and 0.5)")
    a = p.parse_args()
    latency(a.facility, a.repeat) if a.what == "latency" else phoenix(a.depth or [0.25, 0.5])
