"""The twin connected to the plant: DSX Exchange telemetry in, a shadow twin that estimates and diagnoses,
guarded setpoint requests out.

:class:`Connector` composes the stages, each in its own module:

- :mod:`intake`: messages queued in paho's network thread, applied in order here: metadata builds the
  :class:`PointMap`, values land in the :class:`Readings` (internal units) and the :class:`History`;
- :mod:`clock`: the plant clock is the BMS's own (value timestamps); every ``TICK_S`` of plant time, once
  every value stamped up to the tick has arrived, the shadow twin steps:
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
        self.intake = Intake(self.map, self.history, self.readings, self.alarms, self.clock, self._advance_clock)
        self.sensors = SensorChecks(f, self.map, self.alarms, self.design)
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
        """Move the plant clock to ``ts``, running every tick whose values are complete."""
        if not self.clock.started:
            self.readings.start(ts)
        for t_ms in self.clock.advance(ts):
            self.tick(t_ms)

    def tick(self, t_ms: int) -> None:
        """One step of the shadow twin at plant time ``t_ms``."""
        t0 = wall.thread_time()
        self.ticks += 1
        data_checks(t_ms, self.readings, self.clock, self.alarms, self.map)
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
        """Process messages until ``should_stop()``; returns the final status."""
        self._cpu0 = wall.thread_time()
        self.subscribe()
        while not should_stop():
            self.process()
        while self.process(timeout_s=0.05):
            pass
        st = self.status()
        self.close()
        return st


__all__ = ["TICK_S", "Connector", "RequestGuard"]
