"""The twin connected to the plant: DSX Exchange telemetry in, a shadow twin that estimates and diagnoses,
guarded setpoint requests out.

:class:`Connector` composes the stages, each in its own module:

- :mod:`intake`: messages queued in paho's network thread, applied in order here: metadata builds the
  :class:`PointMap`, values land in the :class:`Readings` (internal units) and the :class:`History` once
  :mod:`gate` has judged them (the clock's window, :mod:`plausibility`, jumps); what is refused is booked in
  :mod:`rejections`;
- :mod:`clock`: the plant clock is the BMS's own (timestamps of known points, within a window; it follows the
  site's clock when enough points confirm a jump); every ``TICK_S`` of plant time, once every value stamped up
  to the tick has arrived, the shadow twin steps:
- :mod:`data_checks` (stale, quality, heartbeat, metadata), :mod:`sensor_checks` (the residual checks of
  :mod:`diagnosis`), :mod:`estimates` (Kalman estimates of each CDU's UA and each rack's coolant-side
  resistance), :mod:`process_faults` (pump, fouling), :mod:`shadow` (die temperatures, predicted CDU supply
  and valve), :mod:`outbound` (setpoint requests, heartbeats);
- :mod:`status`: ``DIR/status.json`` and ``DIR/state.json`` (estimates, filters, active alarms, requests), so a
  restart resumes; the history is ``DIR/history.duckdb``; alarms ``DIR/alarms.jsonl``; requests
  ``DIR/requests.jsonl``.
"""

from __future__ import annotations

import queue
import threading
import time as wall
from pathlib import Path

from factory_twin.links.dsx_exchange import status as _status
from factory_twin.links.dsx_exchange.clock import TICK_S, PlantClock
from factory_twin.links.dsx_exchange.data_checks import data_checks
from factory_twin.links.dsx_exchange.design import Design
from factory_twin.links.dsx_exchange.diagnosis import AlarmLog
from factory_twin.links.dsx_exchange.estimates import Estimates
from factory_twin.links.dsx_exchange.history import History
from factory_twin.links.dsx_exchange.intake import Intake
from factory_twin.links.dsx_exchange.outbound import Outbound, RequestGuard
from factory_twin.links.dsx_exchange.plausibility import Plausibility
from factory_twin.links.dsx_exchange.pointmap import Override, PointMap
from factory_twin.links.dsx_exchange.points import Catalog
from factory_twin.links.dsx_exchange.process_faults import ProcessFaults
from factory_twin.links.dsx_exchange.readings import Readings
from factory_twin.links.dsx_exchange.sensor_checks import SensorChecks, suspect_cdus
from factory_twin.links.dsx_exchange.shadow import Shadow
from factory_twin.links.mqtt import MqttClient
from factory_twin.twin.facility.assembly import Facility

BATCH_MIN, BATCH_WAIT_S = 1000, 0.01  # fewer queued than this: wait this long for more before applying
FLUSH_EVERY_S, STATE_EVERY_S = 1.0, 2.0  # history flushed, state and status saved this often [wall s]
# A stop (SIGINT, SIGTERM, --duration) is answered within STOP_S whatever the inbound rate: no tick runs after
# it (those due stay due in the saved state), nothing more is queued, what was queued is applied for at most
# DRAIN_S (the rest is counted as dropped), then the history is flushed and the state saved (~1 s at most).
STOP_S, DRAIN_S = 5.0, 2.0


class Connector:
    """The shadow twin beside the plant (see the module docstring)."""

    def __init__(
        self,
        facility: Facility,
        state_dir: Path,
        client: MqttClient,
        integration: str = "FactoryTwin",
        override: Override | None = None,
        guard: RequestGuard | None = None,
        requests: bool = True,
    ) -> None:
        f = self.f = facility
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cat = Catalog(f, integration)
        self.map = PointMap(self.cat, override)
        self.history = History(self.dir / "history.duckdb")
        self.alarms = AlarmLog(self.dir / "alarms.jsonl")
        self.design = Design.of(f)
        self.clock = PlantClock()
        self.readings = Readings(self.cat)
        self.limits = Plausibility(f, self.cat, self.design)
        self.intake = Intake(
            self.map, self.history, self.readings, self.alarms, self.clock, self.limits, self._advance_clock, self._jump
        )
        self.sensors = SensorChecks(f, self.map, self.alarms, self.design, self.readings)
        self.estimates = Estimates(f, self.map, self.design)
        self.process_faults = ProcessFaults(f, self.cat, self.alarms, self.design)
        self.shadow = Shadow(f, self.design)
        sp = float(f.spec.cooling.tcs.supply_setpoint_c)
        guard = guard or RequestGuard(sp, sp + 4.0)
        self.outbound = Outbound(f, self.cat, client, self.readings, self.alarms, guard, self.dir / "requests.jsonl")
        self.requests_enabled = requests
        self.client = client
        client.on_message = self.intake.on_message
        client.on_connect = self.intake.on_connect
        self.lock = threading.Lock()  # held while messages are applied; readers (the dashboard) take it too
        self.ticks = 0
        self.tick_s = 0.0  # CPU time in shadow-twin steps
        self.busy_s = 0.0  # CPU time applying messages (ticks included)
        self.main_cpu_s = 0.0  # CPU time of the thread that applies messages since run() (paho's is apart)
        self._cpu0 = wall.thread_time()
        self._last_flush = self._last_state = 0.0
        self._should_stop = lambda: False
        self.resumed = _status.load_state(self)

    # what the tests and benches read
    @property
    def now_ms(self) -> int:
        return self.clock.now_ms

    @property
    def meas(self) -> dict:
        return self.readings.meas

    @property
    def fast(self):
        return self.intake.fast

    @property
    def _inbox(self) -> queue.SimpleQueue:
        return self.intake.inbox

    @property
    def received(self) -> int:
        return self.intake.received

    @property
    def values_received(self) -> int:
        return self.intake.values_received

    @property
    def rejected(self) -> int:
        return self.intake.rejected

    @property
    def lag_s(self):
        return self.intake.lag_s

    def subscribe(self) -> None:
        """Metadata first (retained snapshot at QoS 0, see the contract README), then values."""
        self.client.subscribe("BMS/v1/PUB/Metadata/#", qos=0)
        self.client.subscribe("BMS/v1/PUB/Value/#", qos=0)

    def process(self, max_messages: int = 20_000, timeout_s: float = 0.2) -> int:
        """Apply queued messages (waits up to ``timeout_s`` for the first); returns how many."""
        try:
            item = self.intake.inbox.get(timeout=timeout_s)
        except queue.Empty:
            self._housekeeping()
            return 0
        if self.intake.inbox.qsize() < BATCH_MIN:  # a trickle: let a batch gather (per-batch costs, paho's thread)
            wall.sleep(BATCH_WAIT_S)
        t0 = wall.thread_time()
        with self.lock:
            n = self.intake.drain(item, max_messages)
        self.busy_s += wall.thread_time() - t0
        self._housekeeping()
        self.main_cpu_s = wall.thread_time() - self._cpu0
        return n

    def _advance_clock(self, ts: int) -> None:
        """Move the plant clock to ``ts``, running every tick whose values are complete (none once a stop is
        asked: they stay due)."""
        if not self.clock.started:
            self.readings.start(ts)
        for t_ms in self.clock.advance(ts):
            if self._should_stop():
                break
            self.tick(t_ms)

    def _jump(self, to_ms: int, points: tuple[str, ...]) -> None:
        """Follow the site's clock to a confirmed time (see :mod:`clock`); a jump back moves every timestamp
        kept with it. A jump not explained by a reconnect or a resume is alarmed (``clock_jump`` on the BMS)."""
        if not self.clock.started:
            self._advance_clock(to_ms)
            return
        d_ms, explained = to_ms - self.clock.now_ms, self.clock.regrace
        for t_ms in self.clock.jump(to_ms, points):
            if self._should_stop():
                break
            self.tick(t_ms)
        if d_ms < 0:
            self.readings.shift(d_ms)
            self.outbound.rebase(d_ms)
        if d_ms < 0 or not explained:
            self.alarms.clear(to_ms, "clock_jump", "BMS")
            self.alarms.raise_(to_ms, "BMS", "clock_jump", self.clock.jumps[-1].as_dict())

    def tick(self, t_ms: int) -> None:
        """One step of the shadow twin at plant time ``t_ms``."""
        t0 = wall.thread_time()
        self.ticks += 1
        data_checks(t_ms, self.readings, self.clock, self.alarms, self.map, self.intake.rejections.last)
        v = self.readings.views(t_ms)
        flagged = self.sensors.update(t_ms, v, self.process_faults.flow_loss)
        suspect = suspect_cdus(self.alarms, self.map, self.f)
        self.estimates.update(v, flagged, self.sensors.checks, suspect)
        self.process_faults.update(t_ms, v, self.estimates.ua, suspect)
        self.shadow.update(v, self.estimates)
        if self.requests_enabled:
            self.outbound.send_requests(t_ms, v, self.clock, suspect, self.shadow, self.estimates)
        self.outbound.heartbeats(t_ms)
        self.tick_s += wall.thread_time() - t0

    def _housekeeping(self, force: bool = False) -> None:
        if self.history.pending >= 50_000 or force or wall.time() - self._last_flush > FLUSH_EVERY_S:
            self.history.flush()
            self._last_flush = wall.time()
        if force or wall.time() - self._last_state > STATE_EVERY_S:
            self.save_state()
            self._last_state = wall.time()

    def status(self) -> dict:
        return _status.status(self)

    def view(self) -> dict:
        return _status.view(self)

    def save_state(self) -> None:
        _status.save_state(self)

    def close(self) -> None:
        self._housekeeping(force=True)
        self.history.close()
        self.alarms.close()
        self.outbound.close()

    def run(self, should_stop=lambda: False) -> dict:
        """Process messages until ``should_stop()``, then stop within :data:`STOP_S`; returns the final status."""
        self._cpu0 = wall.thread_time()
        self._should_stop = should_stop
        self.subscribe()
        while not should_stop():
            self.process()
        self.stop()
        st = self.status()
        self.close()
        return st

    def stop(self) -> None:
        """Queue nothing more, apply what is queued for at most :data:`DRAIN_S`, count the rest as dropped."""
        self._should_stop = lambda: True
        self.intake.close()
        t_end = wall.monotonic() + DRAIN_S
        while wall.monotonic() < t_end and self.process(max_messages=5000, timeout_s=0.0):
            pass
        try:
            while True:
                self.intake.inbox.get_nowait()
                self.intake.dropped_at_stop += 1
        except queue.Empty:
            pass


__all__ = ["TICK_S", "Connector", "RequestGuard"]
