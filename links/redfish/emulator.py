"""The facility's BMCs, emulated: a running twin behind one Redfish service.

The twin advances at ``speed`` simulated seconds per wall second, one plant step at a time. Its controller is
the BMCs' limits: at every plant step the per-GPU limits in force (:class:`limits.LimitTable`) reduce to the
per-rack caps the engine applies (:func:`layout.rack_caps_w`), so a written limit acts from the next plant
step. After each step the readings every resource shows are computed as arrays (per node and per GPU) and
published as one immutable :class:`documents.Readings`.

Watchdog (loss of control). The principal (session, or Basic user) whose limit write was accepted last holds a
lease. Any authenticated request it makes renews the lease (a steering client's clock read each step is
enough); when the lease goes ``watchdog_s`` wall seconds without one, or its session is deleted (the
controller logged out) or expires, every GPU falls back to the safe idle policy (``fallback``: ``min`` =
AllowableMin, ``default`` = DefaultSetPoint; ControlMode Automatic), as a node does when DPS deactivates its
topology and unsets its policy. The lease is then vacant until the next accepted write.
"""

from __future__ import annotations

import logging
import threading
import time as wall
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from factory_twin.links.redfish.auth import Account, Principal, Session, SessionStore
from factory_twin.links.redfish.documents import Documents, Readings
from factory_twin.links.redfish.layout import NodeLayout, gpu_power_w, rack_caps_w
from factory_twin.links.redfish.limits import FALLBACKS, LimitTable
from factory_twin.links.redfish.service import RedfishService
from factory_twin.twin.facility.assembly import Facility
from factory_twin.twin.scenario.scenario import Scenario
from factory_twin.twin.scenario.timeparse import site_time
from factory_twin.twin.simulation.controllers import Command, TwinState
from factory_twin.twin.simulation.engine import Twin
from factory_twin.twin.simulation.meters import PlantStepResult

log = logging.getLogger(__name__)
MAX_CATCH_UP_STEPS = 50  # plant steps taken at most per pacing tick; beyond, the twin falls behind the wall
TICK_S = 0.05  # pacing and watchdog resolution [wall s]


@dataclass
class BmcLimits:
    """The twin's controller: the per-rack caps the BMCs' per-GPU limits amount to, at every plant step."""

    facility: Facility
    layout: NodeLayout
    limits: LimitTable
    period_s: float
    _cache: tuple[int, np.ndarray] | None = field(default=None, repr=False)
    plan = None  # plans nothing (twin.simulation.controllers.Controller)
    replans = False

    def caps_w(self) -> np.ndarray:
        changes = self.limits.changes
        if self._cache is None or self._cache[0] != changes:
            self._cache = (changes, rack_caps_w(self.facility, self.layout, self.limits.effective_w()))
        return self._cache[1]

    def __call__(self, state: TwinState, time: np.datetime64) -> Command:
        return Command(self.caps_w().copy())


@dataclass(frozen=True)
class Fallback:
    """One loss of control: when (wall and simulated), why, and how many GPUs changed."""

    wall_time: float
    sim_time: str
    reason: str
    gpus: int


class BmcEmulator:
    """A twin and the Redfish service that shows and steers it (see the module docstring).

    ``app`` is the WSGI application; :meth:`run` paces the twin until ``stop`` is set (call it in a thread,
    or use :meth:`start`/:meth:`stop`).
    """

    def __init__(
        self,
        facility: Facility,
        scenario: Scenario,
        accounts: dict[str, Account],
        speed: float = 1.0,
        start: str | None = None,
        plant_step_s: float = 1.0,
        watchdog_s: float = 30.0,
        fallback: str = "min",
        session_timeout_s: float = 600.0,
        allow_http_auth: bool = False,
    ) -> None:
        if not speed > 0 or not np.isfinite(speed):
            raise ValueError(f"--speed: must be a finite number > 0, got {speed!r}")
        if not watchdog_s > 0 or not np.isfinite(watchdog_s):
            raise ValueError(f"--watchdog: must be > 0 s, got {watchdog_s!r}")
        if fallback not in FALLBACKS:
            raise ValueError(f"--fallback: expected one of {', '.join(FALLBACKS)}, got {fallback!r}")
        self.f = facility
        self.speed = float(speed)
        self.watchdog_s = float(watchdog_s)
        self.fallback_policy = fallback
        self.layout = NodeLayout.of(facility)
        self.limits = LimitTable(self.layout)
        self.controller = BmcLimits(facility, self.layout, self.limits, plant_step_s)
        # the BMCs apply a written limit at once (hardware); keeping the facility's ramp is the steering side's job
        self.twin = Twin(facility, scenario, start, min(1.0, plant_step_s), plant_step_s, self.controller, False)
        self.docs = Documents(self.layout)
        self.sessions = SessionStore(accounts, session_timeout_s)
        self.sessions.on_close.append(self._session_closed)
        self._lease_lock = threading.Lock()
        self.holder: str | None = None  # principal key of the lease holder
        self.holder_seen = 0.0
        self.fallbacks: list[Fallback] = []
        self.last: PlantStepResult | None = None
        self.on_step: list[Callable[[PlantStepResult], None]] = []  # called after each plant step (e.g. recorders)
        self.readings = self._publish()
        self.app = RedfishService(
            self.docs,
            self.limits,
            self.sessions,
            lambda: self.readings,
            on_request=self._seen,
            on_write=self._wrote,
            allow_http_auth=allow_http_auth,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.behind_s = 0.0  # how far the twin trails the paced clock [simulated s], at the last tick

    # ------------------------------------------------------------------ twin
    def _publish(self) -> Readings:
        f, lay = self.f, self.layout
        gpu_w = gpu_power_w(f, lay, self.twin.gpu_power_w, self.limits.effective_w())
        node_w = lay.per_node_sum(gpu_w) + (f.non_gpu_w * f.gpus_per_node / f.gpus)[lay.node_rack]
        return Readings(self.twin.time, node_w, gpu_w, self.twin.t_die[lay.gpu_rack])

    def step(self) -> PlantStepResult:
        """Advance the twin one plant step and publish its readings."""
        self.last = self.twin.advance()
        self.readings = self._publish()
        for cb in self.on_step:
            cb(self.last)
        return self.last

    def run(self, stop: threading.Event | None = None, until_s: float = np.inf) -> None:
        """Pace the twin at ``speed`` and run the watchdog until ``stop`` (or :meth:`stop`) is set; the twin
        stops advancing after ``until_s`` simulated seconds (the service keeps answering)."""
        stop = stop or self._stop
        dt = self.twin.plant_dt
        wall0, sim0 = wall.monotonic(), self.twin.time
        while not stop.is_set():
            self.check_watchdog()
            due = self.speed * (wall.monotonic() - wall0)
            done = float((self.twin.time - sim0) / np.timedelta64(1, "s"))
            for _ in range(MAX_CATCH_UP_STEPS):
                if done + dt > min(due, until_s):
                    break
                self.step()
                done += dt
            self.behind_s = max(0.0, due - done - dt) if done + dt <= until_s else 0.0
            wait = (done + dt - due) / self.speed if done + dt <= until_s else TICK_S
            stop.wait(min(max(wait, 0.0), TICK_S))

    def start(self, until_s: float = np.inf) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(None, until_s), name="bmc-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ------------------------------------------------------------------ watchdog
    def _wrote(self, principal: Principal) -> None:
        with self._lease_lock:
            if self.holder != principal.key:
                log.info("redfish: %s now holds the control lease", principal.key)
            self.holder, self.holder_seen = principal.key, wall.monotonic()

    def _seen(self, principal: Principal) -> None:
        if principal.key == self.holder:
            with self._lease_lock:
                if principal.key == self.holder:
                    self.holder_seen = wall.monotonic()

    def _session_closed(self, session: Session) -> None:
        if self.holder == f"session:{session.id}":
            self.lose_control(f"the controlling session {session.id} was closed")

    def check_watchdog(self) -> None:
        """Fall back when the lease holder has been silent for longer than the watchdog time."""
        self.sessions.expire()  # an expired controlling session falls back through _session_closed
        if self.holder is not None and wall.monotonic() - self.holder_seen > self.watchdog_s:
            self.lose_control(f"no request from {self.holder} for {self.watchdog_s:g} s")

    def lose_control(self, reason: str) -> None:
        """Apply the safe idle policy now and vacate the lease."""
        with self._lease_lock:
            if self.holder is None:
                return
            self.holder = None
        n = self.limits.fallback(self.fallback_policy)
        event = Fallback(wall.time(), site_time(self.twin.time, self.twin.f.spec.site.utc_offset_h), reason, n)
        self.fallbacks.append(event)
        log.warning("redfish: loss of control (%s): %d GPUs to the %s idle policy", reason, n, self.fallback_policy)


__all__ = ["BmcEmulator", "BmcLimits", "Fallback"]
