"""Inbound messages: queued in paho's network thread, applied in order in the connector's thread.

Metadata builds the :class:`PointMap`; values land in the :class:`Readings` (internal units) and in the
:class:`History` (as received). Runs of values on mapped points take the batch path of :mod:`ingest`; the
rest (metadata, unknown points, malformed payloads) are handled one by one. A value stamped past the next
tick moves the plant clock, which runs the ticks now complete (``advance``) before the value is stored.
"""

from __future__ import annotations

import queue
import time as wall
from collections import deque
from collections.abc import Callable

import numpy as np
from factory_twin.links.dsx_exchange.clock import PlantClock
from factory_twin.links.dsx_exchange.contract import parse_value, value_topic
from factory_twin.links.dsx_exchange.diagnosis import AlarmLog
from factory_twin.links.dsx_exchange.history import History
from factory_twin.links.dsx_exchange.ingest import SlotTable, parse_batch
from factory_twin.links.dsx_exchange.pointmap import Mapped, PointMap
from factory_twin.links.dsx_exchange.readings import Readings
from factory_twin.twin.runs import strict_json

LAG_SAMPLE = 20  # one value in this many has its lag (wall now - value timestamp) recorded
CONNECT = "__connect__"  # queued by the client's on_connect: a (re)connect happened here in the stream

Message = tuple[str, bytes, float]  # topic, payload, wall time received


class Intake:
    """The queue and what applies it; counts messages, values and rejected payloads."""

    def __init__(
        self,
        pointmap: PointMap,
        history: History,
        readings: Readings,
        alarms: AlarmLog,
        clock: PlantClock,
        advance: Callable[[int], None],
    ) -> None:
        self.map, self.history, self.readings, self.alarms, self.clock = pointmap, history, readings, alarms, clock
        self.advance = advance  # moves the plant clock to a timestamp, running the ticks now complete
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.fast = SlotTable()  # value topics that take the batch path (mapped, with a history id)
        self.received = 0
        self.values_received = 0
        self.rejected = 0
        self.unmapped_values: dict[str, int] = {}
        self.pending: dict[str, tuple] = {}  # values that came before their metadata
        self.lag_s: deque[float] = deque(maxlen=100_000)
        self.lag_at: deque[float] = deque(maxlen=100_000)  # wall time each lag sample was taken

    # paho's network thread
    def on_connect(self) -> None:
        self.inbox.put((CONNECT, b"", wall.time()))

    def on_message(self, msg) -> None:
        self.inbox.put((msg.topic, msg.payload, wall.time()))

    # the connector's thread
    def drain(self, item: Message, max_messages: int) -> int:
        """Apply ``item`` and whatever is queued behind it, up to ``max_messages``; returns how many."""
        items = [item]
        get = self.inbox.get_nowait
        try:
            while len(items) < max_messages:
                items.append(get())
        except queue.Empty:
            pass
        # in arrival order: runs of values on known points in batches, everything else one by one
        fast, run = self.fast.slot, []
        for it in items:
            if it[0] in fast:
                run.append(it)
                continue
            if run:
                self._apply_values(run)
                run = []
            self._handle(*it)
        if run:
            self._apply_values(run)
        return len(items)

    def _apply_values(self, run: list[Message]) -> None:
        """A run of value messages on points in :attr:`fast`, with the effect of :meth:`_handle` on each."""
        parsed = parse_batch([it[1] for it in run]) if self.clock.started else None
        if parsed is None:  # a malformed payload among them: the careful path names it
            for it in run:
                self._handle(*it)
            return
        val, ts, quality = parsed
        n = len(run)
        slot = self.fast.slot
        slots = np.fromiter((slot[it[0]] for it in run), np.int64, n)
        recv_ms = (np.fromiter((it[2] for it in run), float, n) * 1000).astype(np.int64)
        grp, idx, scale, offset, pid = (c[slots] for c in self.fast.columns())
        self.received += n
        self.history.add_batch(pid, ts, val, quality, recv_ms)
        val = val * scale + offset
        a = 0
        while a < n:
            # a value stamped past the next tick runs that tick first (with everything before it stored)
            past = np.flatnonzero(ts[a:] > self.clock.next_tick_ms)
            b = a + int(past[0]) if past.size else n
            if b == a:
                self.advance(int(ts[a]))
                continue
            self.clock.observe(int(ts[a:b].max()))
            self.readings.store_many(grp[a:b], idx[a:b], ts[a:b], quality[a:b], val[a:b])
            count = self.values_received + np.arange(1, b - a + 1)
            sample = np.flatnonzero(count % LAG_SAMPLE == 0)
            if sample.size:
                now = wall.time()
                self.lag_s.extend((now - ts[a:b][sample] / 1000.0).tolist())
                self.lag_at.extend([now] * sample.size)
            self.values_received += b - a
            a = b

    def _handle(self, topic: str, payload: bytes, recv_wall: float) -> None:
        if topic == CONNECT:
            self.clock.reconnected()
            return
        self.received += 1
        parts = topic.split("/", 4)
        if len(parts) < 5 or parts[2] != "PUB":
            return
        point = parts[4]
        if parts[3] == "Metadata":
            self._metadata(point, payload)
        elif parts[3] == "Value":
            self._value(point, payload, recv_wall)

    def _metadata(self, point: str, payload: bytes) -> None:
        before = self.map.points.get(point)
        m = self.map.on_metadata(point, payload)
        if self.map.points.get(point) is not before:
            self.fast.drop(value_topic(point))
        if m is not None:
            self._mapped(point, m)
        elif not payload:
            m = self.map.withdrawn.get(point)
            if m is not None:
                self.readings.unmap(m)

    def _value(self, point: str, payload: bytes, recv_wall: float) -> None:
        try:
            d = strict_json.loads(payload)  # no NaN or infinite numbers
            value, ts, quality = d["value"], d["timestamp"], d["quality"]
            if type(ts) is not int or type(quality) is not int or not (value is None or type(value) in (float, int)):
                value, ts, quality = parse_value(payload)  # the careful path names what is wrong
        except (ValueError, KeyError, TypeError):
            self.unmapped_values[point] = self.unmapped_values.get(point, 0) + 1
            self.rejected += 1
            return
        self.values_received += 1
        m = self.map.points.get(point)
        pid = self.history.ids.get(point)
        if pid is None:
            pid = self.history.point_id(point, *((m.entity, m.signal, m.unit) if m else (None, None, None)))
        self.history.add(pid, ts, value, quality, int(recv_wall * 1000))
        if ts > self.clock.now_ms:
            self.advance(ts)
        if m is None:
            self.pending[point] = (value, ts, quality)
            if point not in self.map.raw:
                self.unmapped_values[point] = self.unmapped_values.get(point, 0) + 1
            return
        self.readings.store(m, value, ts, quality)
        if self.values_received % LAG_SAMPLE == 0:
            now = wall.time()
            self.lag_s.append(now - ts / 1000.0)  # sample time -> in the shadow twin
            self.lag_at.append(now)

    def _mapped(self, point: str, m: Mapped) -> None:
        self.readings.map(point, m, self.clock.now_ms)
        entity_id = self.map.cat.entity_ids(m.entity)[m.index]
        self.alarms.clear(self.clock.now_ms, "metadata_missing", entity_id, f"{m.entity}/{m.signal}")
        pend = self.pending.pop(point, None)
        if pend is not None:
            self.readings.store(m, *pend)
        # its values take the batch path from the first one on (start-up: 51,861 points at campus-1gw)
        pid = self.history.point_id(point, m.entity, m.signal, m.unit)
        self.fast.add(value_topic(point), self.readings.code[(m.entity, m.signal)], m.index, m.scale, m.offset, pid)


__all__ = ["CONNECT", "LAG_SAMPLE", "Intake"]
