"""The steering loop: the controller's caps to the BMCs, one step at a time (see :mod:`steer` for the push).

Every ``step_s`` wall seconds: read the service's clock (this renews the BMCs' control lease), start the
controller in a worker thread when it is due at that simulated time (``controller.period_s``), push the
latest caps it returned (the same cap to every GPU of a rack), and read ``sweep`` nodes back. Losing the
service (a failed clock read) or finding a node changed behind steering's back makes the next push rewrite
every node. The controller sees only what steering knows: the time, the scenario and the caps in force;
measured power and import are NaN (the MPC then plans on its forecast, without feedback).
"""

from __future__ import annotations

import asyncio
import contextlib
import time as wall
from collections.abc import Callable

import numpy as np
from factory_twin.links.redfish.steer import LimitPusher, PushReport, SteerState
from factory_twin.twin.scenario.timeparse import site_time
from factory_twin.twin.simulation.controllers import Command, Controller, TwinState
from redfish.aio.exceptions import RedfishError


def blind_state(facility, scenario, time: np.datetime64, caps_w: np.ndarray) -> TwinState:
    """The twin state a controller gets from steering: time, scenario, the caps in force, NaN measurements."""
    nan_r, nan_c = np.full(facility.n_racks, np.nan), np.full(facility.n_cdus, np.nan)
    nan = float("nan")
    return TwinState(time, nan_r, caps_w.copy(), nan_r, nan_c, nan, nan, nan, nan, nan, scenario)


async def run_steering(
    pusher: LimitPusher,
    controller: Controller,
    facility,
    scenario,
    step_s: float = 1.0,
    sweep: int = 64,
    until: Callable[[np.datetime64 | None], bool] | None = None,
    stop: asyncio.Event | None = None,
    on_push: Callable[[PushReport], None] | None = None,
    on_step: Callable[[SteerState], None] | None = None,
) -> SteerState:
    """Steer until ``stop`` is set or ``until(simulated time, None while the service does not answer)`` is true;
    ``on_push`` gets every push that wrote something, ``on_step`` the state after every step."""
    st: SteerState = pusher.state
    lay = pusher.layout
    stop = stop or asyncio.Event()
    caps = facility.tdp_w.copy()
    offset_h = facility.spec.site.utc_offset_h  # times shown carry the site's zone
    want: np.ndarray | None = None
    pending: asyncio.Task | None = None
    next_call: np.datetime64 | None = None
    last_now: np.datetime64 | None = None
    lost = False
    while not stop.is_set():
        t0 = wall.monotonic()
        st.steps += 1
        try:
            now = await pusher.clock()
        except (RedfishError, KeyError, IndexError, ValueError) as e:
            if st.connected or not lost:
                st.note_error(f"lost the service: {e or type(e).__name__}")
            st.connected, lost = False, True
            now = None
        if now is not None:
            if lost:  # the BMCs may have fallen back meanwhile: rewrite everything
                pusher.forget()
                st.resyncs += 1
                lost = False
            st.connected, st.last_contact, st.sim_time = True, wall.time(), site_time(now, offset_h)
            if last_now is not None and now < last_now:  # the service restarted
                next_call = None
                pusher.forget()
                st.resyncs += 1
            last_now = now
            if pending is None and (next_call is None or now >= next_call):
                state = blind_state(facility, scenario, now, caps)
                pending = asyncio.create_task(asyncio.to_thread(controller, state, now))
                next_call = now + np.timedelta64(int(round(controller.period_s)), "s")
                st.controller_calls += 1
            if pending is not None and pending.done():
                task, pending = pending, None
                try:
                    command: Command = task.result()
                    caps = np.asarray(command.gpu_cap_w, float)
                    want = caps[lay.gpu_rack]
                except Exception as e:  # a failed controller call keeps the limits in force
                    when = site_time(now, offset_h)
                    st.note_error(f"the controller failed at {when}: {e!r}; the limits in force are kept")
            if want is not None:
                rep = await pusher.push(want, deadline_s=step_s, sim_time=site_time(now, offset_h))
                if rep.writes and on_push is not None:
                    on_push(rep)
            if sweep and await pusher.sweep(sweep):
                st.note_error("a node's limit changed behind steering's back: rewriting every node")
                pusher.forget()
                st.resyncs += 1
        if on_step is not None:
            on_step(st)
        if until is not None and until(now):
            break
        await _wait(stop, step_s - (wall.monotonic() - t0))
    if pending is not None:
        await pending
    return st


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


__all__ = ["blind_state", "run_steering"]
