"""Inbound messages: queued in paho's network thread, applied in order in the connector's thread.

Metadata builds the :class:`PointMap`; values land in the :class:`Readings` (internal units) and in the
:class:`History` (as received). Runs of plain values on mapped points take the batch path of :mod:`ingest`;
a run with anything unusual in it, and everything else (metadata, unknown points), is handled one by one: the
payload must be a value envelope in strict JSON with a finite value (else ``malformed`` / ``non_finite``) and
a Unix time (in ms; s, us and ns are converted and counted), then the :class:`Gate` judges it (the clock's
window, its plausible range, a jump).

Only values on mapped points move the plant clock; a value stamped past the next tick runs the ticks now
complete (``advance``) before it is stored. Rejected values go to the history's ``rejected`` table and are
counted by point (:class:`Rejections`).
"""

from __future__ import annotations

import queue
import time as wall
from collections import deque
from collections.abc import Callable

import numpy as np
from factory_twin.links.dsx_exchange.clock import LAG_S, LEAD_S, PlantClock
from factory_twin.links.dsx_exchange.contract import GOOD, parse_value, timestamp_ms, value_topic
from factory_twin.links.dsx_exchange.diagnosis import AlarmLog
from factory_twin.links.dsx_exchange.gate import Gate, Held
from factory_twin.links.dsx_exchange.history import History
from factory_twin.links.dsx_exchange.ingest import SlotTable, parse_batch
from factory_twin.links.dsx_exchange.plausibility import Plausibility
from factory_twin.links.dsx_exchange.pointmap import Mapped, PointMap
from factory_twin.links.dsx_exchange.readings import Readings
from factory_twin.links.dsx_exchange.rejections import Rejections
from factory_twin.twin.runs.strict_json import NonFiniteError

LAG_SAMPLE = 20  # one value in this many has its lag (wall now - value timestamp) recorded
CONNECT = "__connect__"  # queued by the client's on_connect: a (re)connect happened here in the stream
MS_RANGE = (10**11, 10**14)  # a timestamp in Unix ms (1973-5138): the batch path takes only these

Message = tuple[str, bytes, float]  # topic, payload, wall time received


class Intake:
    """The queue and what applies it; counts messages and values taken, and what was not (:attr:`rejections`)."""

    def __init__(
        self,
        pointmap: PointMap,
        history: History,
        readings: Readings,
        alarms: AlarmLog,
        clock: PlantClock,
        limits: Plausibility,
        advance: Callable[[int], None],
        jump: Callable[[int, tuple[str, ...]], None],
    ) -> None:
        self.map, self.history, self.readings, self.alarms, self.clock = pointmap, history, readings, alarms, clock
        self.limits = limits
        self.advance = advance  # moves the plant clock to a timestamp, running the ticks now complete
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.fast = SlotTable()  # value topics that take the batch path (mapped, with a history id)
        self.received = 0
        self.values_received = 0
        self.rejections = Rejections(history)
        self.gate = Gate(clock, readings, limits, self.rejections, self._apply, self._store_unmapped, jump)
        self.pending: dict[str, tuple] = {}  # values that came before their metadata
        self.lag_s: deque[float] = deque(maxlen=100_000)
        self.lag_at: deque[float] = deque(maxlen=100_000)  # wall time each lag sample was taken
        self.closed = False  # after a stop: nothing more is queued
        self.dropped_at_stop = 0

    @property
    def rejected(self) -> int:
        return self.rejections.total

    # paho's network thread
    def on_connect(self) -> None:
        if not self.closed:
            self.inbox.put((CONNECT, b"", wall.time()))

    def on_message(self, msg) -> None:
        if self.closed:
            self.dropped_at_stop += 1
            return
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

    def close(self) -> int:
        """Stop queueing (a stop was asked); returns how many messages are still queued."""
        self.closed = True
        return self.inbox.qsize()

    def _apply_values(self, run: list[Message]) -> None:
        """A run of value messages on points in :attr:`fast`, with the effect of :meth:`_handle` on each."""
        parsed = parse_batch([it[1] for it in run]) if self.clock.started else None
        if parsed is None:  # a malformed payload among them: the careful path names it
            self._careful(run)
            return
        val, ts, quality = parsed
        n = len(run)
        slot = self.fast.slot
        slots = np.fromiter((slot[it[0]] for it in run), np.int64, n)
        grp, idx, scale, offset, pid, lo, hi, jump = (c[slots] for c in self.fast.columns())
        internal = val * scale + offset
        if not self._plain(ts, quality, internal, grp, idx, lo, hi, jump, run):
            self._careful(run)
            return
        recv_ms = (np.fromiter((it[2] for it in run), float, n) * 1000).astype(np.int64)
        self.received += n
        self.history.add_batch(pid, ts, val, quality, recv_ms)
        a = 0
        while a < n:
            # a value stamped past the next tick runs that tick first (with everything before it stored)
            past = np.flatnonzero(ts[a:] > self.clock.next_tick_ms)
            b = a + int(past[0]) if past.size else n
            if b == a:
                due = self.clock.next_tick_ms
                self.advance(int(ts[a]))
                if self.clock.next_tick_ms != due:
                    continue
                b = n  # stopping: no more ticks run, the rest is stored
            self.clock.observe(int(ts[a:b].max()))
            self.readings.store_many(grp[a:b], idx[a:b], ts[a:b], quality[a:b], internal[a:b])
            count = self.values_received + np.arange(1, b - a + 1)
            sample = np.flatnonzero(count % LAG_SAMPLE == 0)
            if sample.size:
                now = wall.time()
                self.lag_s.extend((now - ts[a:b][sample] / 1000.0).tolist())
                self.lag_at.extend([now] * sample.size)
            self.values_received += b - a
            a = b
        self.gate.expire()

    def _plain(self, ts, quality, internal, grp, idx, lo, hi, jump, run) -> bool:
        """Nothing in the run needs judging one by one: timestamps in ms inside the clock's window as it moves
        through the run, good values plausible, no liquid temperature whose values (the stored one and the
        run's) spread wider than its jump rule, no point with a value held."""
        if ts.min() < MS_RANGE[0] or ts.max() >= MS_RANGE[1]:
            return False
        ref = np.maximum.accumulate(np.concatenate(([self.clock.now_ms], ts[:-1])))
        if ((ts - ref) > LEAD_S * 1000).any() or ((ref - ts) > LAG_S * 1000).any():
            return False
        good = quality == GOOD
        with np.errstate(invalid="ignore"):
            if (good & ((internal < lo) | (internal > hi))).any():
                return False
            judged = np.flatnonzero(good & np.isfinite(jump) & np.isfinite(internal))
        if judged.size and self._spread(grp[judged], idx[judged], internal[judged], jump[judged]):
            return False
        if self.gate.spikes:
            topics = {value_topic(p) for p in self.gate.spikes}
            return not any(it[0] in topics for it in run)
        return True

    def _spread(self, grp, idx, x, jump) -> bool:
        """Whether any point's values here, with its stored one, spread wider than its jump rule (then no
        order of judging them one by one can find a jump: the run is plain)."""
        key = grp.astype(np.int64) << 32 | idx
        u, first, inv = np.unique(key, return_index=True, return_inverse=True)
        top, bottom = np.full(u.size, -np.inf), np.full(u.size, np.inf)
        np.maximum.at(top, inv, x)
        np.minimum.at(bottom, inv, x)
        stored = np.full(u.size, np.nan)
        g_u, i_u = grp[first], idx[first]
        for code in np.unique(g_u):
            sel = g_u == code
            stored[sel] = self.readings.by_code[code].value[i_u[sel]]
        return bool((np.fmax(top, stored) - np.fmin(bottom, stored) > jump[first]).any())

    def _careful(self, run: list[Message]) -> None:
        for it in run:
            self._handle(*it)

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
            self._value(topic, point, payload, int(recv_wall * 1000))

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

    def _value(self, topic: str, point: str, payload: bytes, recv_ms: int) -> None:
        try:
            value, ts, quality = parse_value(payload)
        except NonFiniteError:
            self.rejections.reject(point, "non_finite", recv_ms, detail=payload.decode("utf-8", "replace"))
            return
        except (ValueError, UnicodeDecodeError) as e:
            self.rejections.reject(point, "malformed", recv_ms, detail=f"{e}: {payload[:200]!r}")
            return
        norm = timestamp_ms(ts)
        if norm is None:
            self.rejections.reject(point, "timestamp", recv_ms, None, value, quality, f"{ts} is no Unix time")
            return
        ts, unit = norm
        if unit != "ms":
            self.rejections.epoch(point, unit)
        self.gate.judge(Held(point, self.map.points.get(point), value, ts, quality, recv_ms))

    def _apply(self, h: Held) -> None:
        """Take a judged value on a mapped point: history, the plant clock, the readings."""
        m = h.m
        self.values_received += 1
        pid = self.history.ids.get(h.point)
        if pid is None:
            pid = self.history.point_id(h.point, m.entity, m.signal, m.unit)
        self.history.add(pid, h.ts, h.value, h.quality, h.recv_ms)
        if h.ts > self.clock.now_ms:
            self.advance(h.ts)
            self.gate.expire()
        self.readings.store(m, h.value, h.ts, h.quality)
        if self.values_received % LAG_SAMPLE == 0:
            now = wall.time()
            self.lag_s.append(now - h.ts / 1000.0)  # sample time -> in the shadow twin
            self.lag_at.append(now)

    def _store_unmapped(self, h: Held) -> None:
        self.values_received += 1
        pid = self.history.ids.get(h.point)
        if pid is None:
            pid = self.history.point_id(h.point)
        self.history.add(pid, h.ts, h.value, h.quality, h.recv_ms)
        self.pending[h.point] = (h.value, h.ts, h.quality)
        if h.point not in self.map.raw:
            self.rejections.unknown_value(h.point)

    def _mapped(self, point: str, m: Mapped) -> None:
        self.readings.map(point, m, self.clock.now_ms)
        entity_id = self.map.cat.entity_ids(m.entity)[m.index]
        self.alarms.clear(self.clock.now_ms, "metadata_missing", entity_id, f"{m.entity}/{m.signal}")
        pend = self.pending.pop(point, None)
        if pend is not None and (not self.clock.started or self.clock.offset(pend[1]) == 0):
            self.readings.store(m, *pend)
        # its values take the batch path from the first one on (start-up: 51,861 points at campus-1gw)
        pid = self.history.point_id(point, m.entity, m.signal, m.unit)
        code = self.readings.code[(m.entity, m.signal)]
        limits = self.limits.of(m.entity, m.signal, m.index)
        self.fast.add(value_topic(point), code, m.index, m.scale, m.offset, pid, limits)


__all__ = ["CONNECT", "LAG_SAMPLE", "Intake"]
