"""The gate every value passes one by one before it is taken (the batch path of :mod:`intake` takes only runs
it would let through unchanged):

1. its timestamp inside the plant clock's window (:mod:`clock`); one outside is held and, on a known point,
   votes for its time: confirmed, the clock follows (``jump``) and the held values are judged again; else it
   is quarantined once the clock has moved :data:`clock.HOLD_S` on;
2. a good value on a mapped point plausible in its stated unit (``out_of_range``, :mod:`plausibility`);
3. a liquid temperature that jumps further than the loop can move held for the point's next value: taken with
   it if that confirms the step, else rejected as an ``outlier``.

What passes goes to ``take`` (mapped points) or ``keep_unmapped`` (points without metadata: stored, never
moving the clock); what does not is booked in :class:`Rejections`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from factory_twin.links.dsx_exchange.clock import HEARTBEAT_LOSS_S, HOLD_S, LEAD_S, JumpVotes, PlantClock
from factory_twin.links.dsx_exchange.contract import GOOD
from factory_twin.links.dsx_exchange.plausibility import Plausibility
from factory_twin.links.dsx_exchange.pointmap import Mapped
from factory_twin.links.dsx_exchange.readings import Readings
from factory_twin.links.dsx_exchange.rejections import Rejections

MAX_HELD = 200_000  # values held for the clock's verdict at most (the oldest is quarantined beyond)


@dataclass
class Held:
    """A parsed value on its way in: held while outside the clock's window, or while a jump waits for the
    point's next value."""

    point: str
    m: Mapped | None
    value: float | None
    ts: int
    quality: int
    recv_ms: int
    clock_ms: int = 0  # the plant clock when it was held


class Gate:
    """Judges values; keeps those held for a verdict (:attr:`held` by arrival, :attr:`spikes` by point)."""

    def __init__(
        self,
        clock: PlantClock,
        readings: Readings,
        limits: Plausibility,
        rejections: Rejections,
        take: Callable[[Held], None],
        keep_unmapped: Callable[[Held], None],
        jump: Callable[[int, tuple[str, ...]], None],
    ) -> None:
        self.clock, self.readings, self.limits, self.rejections = clock, readings, limits, rejections
        self.take, self.keep_unmapped, self.jump = take, keep_unmapped, jump
        self.held: deque[Held] = deque()  # outside the clock's window, waiting for its verdict
        self.votes = JumpVotes()
        self.spikes: dict[str, Held] = {}  # by point: a jump waiting for the point's next value

    def judge(self, h: Held, confirmed: bool = False) -> None:
        """Judge one parsed value against the clock's window, its plausible range and its last value."""
        clock = self.clock
        outside = not clock.started or clock.offset(h.ts) != 0
        if h.m is None:  # a point without (or before) its metadata never moves the clock
            if clock.started and outside:
                self._hold(h, vote=False)
            else:
                self.keep_unmapped(h)
            return
        if outside and not confirmed:
            self._hold(h, vote=True)
            return
        lo, hi, jump = self.limits.of(h.m.entity, h.m.signal, h.m.index)
        x = None if h.value is None else h.value * h.m.scale + h.m.offset
        if x is None or h.quality != GOOD:
            self.take(h)
            return
        if x < lo or x > hi:
            plaus = f"{(lo - h.m.offset) / h.m.scale:.6g} to {(hi - h.m.offset) / h.m.scale:.6g}"
            why = f"{h.value:g} {h.m.unit or ''} outside the plausible {plaus}"
            self.rejections.reject(h.point, "out_of_range", h.recv_ms, h.ts, h.value, h.quality, why)
            return
        if np.isfinite(jump):
            self._judge_jump(h, x, jump)
            return
        self.take(h)

    def _judge_jump(self, h: Held, x: float, jump: float) -> None:
        """A liquid temperature far from its last value is held for the point's next value."""
        m = h.m
        prior = self.spikes.pop(h.point, None)
        if prior is not None:
            px = prior.value * m.scale + m.offset
            if abs(x - px) <= jump:  # the next value confirms the step
                self.take(prior)
                self.take(h)
                return
            why = f"{prior.value:g} {m.unit or ''}: the next value {h.value:g} did not confirm it"
            self.rejections.reject(prior.point, "outlier", prior.recv_ms, prior.ts, prior.value, prior.quality, why)
        last = self.readings[(m.entity, m.signal)].value[m.index]
        if np.isfinite(last) and abs(x - last) > jump:
            self.spikes[h.point] = h
            return
        self.take(h)

    def _hold(self, h: Held, vote: bool) -> None:
        h.clock_ms = self.clock.now_ms
        self.held.append(h)
        if len(self.held) > MAX_HELD:
            self._quarantine(self.held.popleft())
        if not vote:
            return
        verdict = self.votes.add(h.point, h.ts, self._required_voter())
        if verdict is not None:
            self._follow(*verdict)

    def _required_voter(self) -> str | None:
        """The BMS heartbeat's point while it is alive (a jump must carry it), else None."""
        hb = self.readings[("bms", "heartbeat_ms")]
        alive = hb.mapped[0] and hb.ts[0] > 0 and self.clock.now_ms - hb.ts[0] <= HEARTBEAT_LOSS_S * 1000
        return hb.points[0] if alive and self.clock.started else None

    def _follow(self, to_ms: int, points: tuple[str, ...]) -> None:
        """Enough points agree on a time outside the window: the clock follows; the held values are judged
        again (those that agree are taken in arrival order, the rest quarantined or taken in the new window)."""
        held, self.held = list(self.held), deque()
        self.votes.clear()
        self.jump(to_ms, points)
        voters = set(points)
        span = 3 * LEAD_S * 1000
        for h in held:
            if h.m is not None and h.point in voters and abs(h.ts - to_ms) <= span:
                self.judge(h, confirmed=True)
            elif self.clock.offset(h.ts) == 0:
                self.judge(h)
            else:
                self._quarantine(h)

    def expire(self) -> None:
        """Quarantine held values the clock has moved :data:`HOLD_S` past without confirming them."""
        limit = self.clock.now_ms - HOLD_S * 1000
        while self.held and self.held[0].clock_ms < limit:
            h = self.held.popleft()
            self.votes.forget(h.point, h.ts)
            self._quarantine(h)

    def _quarantine(self, h: Held) -> None:
        self.rejections.quarantine(h.point, h.ts, self.clock.now_ms, h.value, h.quality, h.recv_ms)


__all__ = ["MAX_HELD", "Gate", "Held"]
