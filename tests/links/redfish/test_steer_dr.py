"""Steering through a demand-response event: the MPC's caps go over Redfish to the emulated BMCs, and the
emulated twin's grid import follows the event's target (as the MPC steering the twin directly makes it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from factory_twin.links.redfish.credentials import Credentials
from factory_twin.links.redfish.steer import Connection, LimitPusher, SteerState
from factory_twin.links.redfish.steering import run_steering
from factory_twin.optimization.controllers import make_controller
from factory_twin.twin.scenario.grid_signals import DREvent
from factory_twin.twin.simulation.meters import grid_import_w
from factory_twin.twin.simulation.targets import REL_TOL

from factory_twin import twin

BENCH = Path(__file__).parents[2] / "data" / "redfish-bench.toml"  # 10 NVL72 racks, 180 nodes
T = "2026-08-08T"
START, ANNOUNCED, EVENT, RAMPED, STOP = (np.datetime64(T + h) for h in ("15:48", "15:50", "16:00", "16:10", "16:30"))
REPLAN_S = 300  # the MPC re-plans every 5 min: a cap for a new target can come that much after it


@pytest.mark.slow
def test_steer_drives_the_twin_through_a_dr_event(bmc_factory, capsys):
    f = twin.load_facility(BENCH)
    event = DREvent(EVENT, duration_s=40 * 60, depth=0.25, ramp_s=600, notice_s=600)
    sc = twin.load_scenario("hot-day-dr", f).with_changes(dr_events=(event,))
    bmc = bmc_factory(f, scenario=sc, speed=120.0, start=str(START))
    record: list[tuple[np.datetime64, float, float]] = []
    bmc.emu.on_step.append(
        lambda r: record.append((bmc.emu.twin.time, grid_import_w(r) / 1e6, float(bmc.emu.twin.cap.mean())))
    )
    pushed: list[np.ndarray] = []

    async def steer():
        conn = await Connection.open(bmc.url, Credentials("steer", "steer-password-1", ca_file=bmc.cert), 8, 5)
        try:
            pusher = LimitPusher(conn.client, bmc.emu.layout, SteerState(bmc.url), concurrency=8)
            await pusher.discover()
            on_push = lambda rep: pushed.append(bmc.emu.limits.effective_w())  # noqa: E731
            return await run_steering(
                pusher,
                make_controller("mpc", f, sc),
                f,
                sc,
                until=lambda t: t is not None and t >= STOP,
                on_push=on_push,
            )
        finally:
            await conn.close()

    state = asyncio.run(steer())
    t = np.array([r[0] for r in record])
    imp = np.array([r[1] for r in record])
    cap = np.array([r[2] for r in record])
    assert state.refused_total == 0 and state.failed_total == 0 and not state.errors
    assert len(pushed) >= 2  # at least the first caps and one of the event
    baseline = imp[np.searchsorted(t, ANNOUNCED)]
    target = (1 - event.depth) * baseline
    before = t < ANNOUNCED
    assert np.all(cap[before] == 1200.0)  # nothing capped before the event is known
    held = t >= RAMPED + np.timedelta64(REPLAN_S, "s")
    assert held.sum() > 60
    assert np.all(imp[held] <= target * (1 + REL_TOL)), (imp[held].max(), target)
    assert imp[held].mean() > 0.9 * target  # it follows the target, not far below it
    assert cap[held].max() < 1000.0
    with capsys.disabled():
        print(
            f"\nDR over Redfish: baseline {baseline:.3f} MW, target {target:.3f} MW, held import "
            f"{imp[held].min():.3f}-{imp[held].max():.3f} MW, caps {cap[held].min():.0f}-{cap[held].max():.0f} W, "
            f"{len(pushed)} pushes, {state.requests} requests"
        )
