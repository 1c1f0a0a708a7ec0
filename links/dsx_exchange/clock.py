"""The plant clock and the shadow twin's tick schedule.

The plant clock is the BMS's own time: the timestamps of values on known (mapped) points, the BMS heartbeat
among them [Unix ms; a timestamp sent in s, us or ns is converted by its magnitude, see
:func:`contract.timestamp_ms`]. Values on unknown points never move it. The shadow twin steps every
:data:`TICK_S` of plant time, once a value stamped past the tick has arrived.

The clock's window: a value stamped at most :data:`LEAD_S` ahead of the clock moves it there (a bounded
step); one at most :data:`LAG_S` behind is taken as a late value. A value outside the window is held and
votes for its time (:class:`JumpVotes`): when :data:`CONFIRM_POINTS` distinct known points agree on a time
(the BMS heartbeat among them while it is alive), the site's clock has really moved (a clock correction
forward or backward, a gap after a reconnect or a restart) and the clock follows; a value nobody confirms
while the clock moves on :data:`HOLD_S` is quarantined and reported with its point and offset. A jump
forward runs the ticks in between only up to :data:`CATCH_UP_TICKS` (beyond, the clock skips them); every
jump, like a reconnect or a resume, starts a grace period for the data checks counted from the new time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from factory_twin.links.dsx_exchange.contract import HEARTBEAT_S, REPUBLISH_S

TICK_S = 10.0  # shadow-twin step [s of plant time]
TICK_MS = int(TICK_S * 1000)
STALE_S = 2 * REPUBLISH_S  # contract: republished every 100 s; stale past twice that
HEARTBEAT_LOSS_S = 3 * HEARTBEAT_S
GRACE_S = REPUBLISH_S + 2 * TICK_S  # everything has been republished once this long after a (re)start
LEAD_S = 60.0  # a value stamped up to this far ahead moves the clock: a few plant steps of a BMS [estimate]
LAG_S = STALE_S  # a value stamped up to this far behind is still taken (it would be stale beyond)
CONFIRM_POINTS = 3  # distinct known points agreeing on a time outside the window move the clock there
HOLD_S = 3 * HEARTBEAT_S  # an outside value unconfirmed while the clock moves this far is quarantined
CATCH_UP_TICKS = 120  # a confirmed jump forward runs at most this many ticks in between (20 min of plant time)


@dataclass(frozen=True)
class Jump:
    """The clock followed the site's: from one plant time to another [Unix ms], confirmed by ``points``."""

    from_ms: int
    to_ms: int
    points: tuple[str, ...]
    ticks_skipped: int

    def as_dict(self) -> dict:
        return {
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "offset_s": (self.to_ms - self.from_ms) / 1000,
            "points": list(self.points),
            "ticks_skipped": self.ticks_skipped,
        }


class PlantClock:
    """Plant time seen so far, the next tick due, the data checks' grace after a gap, and the jumps made."""

    def __init__(self) -> None:
        self.now_ms = 0  # the latest plant time seen
        self.first_ms = 0  # the first (0: none yet)
        self.next_tick_ms = 0
        self.grace_until_ms = 0
        self.regrace = False  # the grace after a reconnect or resume starts with the next clock step
        self.jumps: list[Jump] = []

    @property
    def started(self) -> bool:
        return bool(self.first_ms)

    def reconnected(self) -> None:
        """A reconnect: no stale verdicts until the BMS has republished everything."""
        if self.now_ms:
            self.regrace = True

    def in_grace(self, t_ms: int) -> bool:
        return t_ms < self.grace_until_ms

    def offset(self, ts_ms: int) -> int:
        """Where ``ts_ms`` falls against the window: 0 inside, +1 ahead of it, -1 behind it."""
        if ts_ms - self.now_ms > LEAD_S * 1000:
            return 1
        if self.now_ms - ts_ms > LAG_S * 1000:
            return -1
        return 0

    def observe(self, ts_ms: int) -> None:
        """Values stamped up to ``ts_ms`` (not past the next tick) have arrived."""
        self.now_ms = max(self.now_ms, ts_ms)

    def advance(self, ts_ms: int) -> Iterator[int]:
        """Move the clock to ``ts_ms``; yields every tick now complete, in order (the caller runs each)."""
        if not self.first_ms:
            self.first_ms = ts_ms
            self.next_tick_ms = (ts_ms // TICK_MS + 1) * TICK_MS
        if self.regrace:
            # counted from the plant time of the data that came after the gap, not from before it: what the
            # broker queued while connect was away may be lost (clean session), and the plant clock jumps
            self.grace_until_ms = ts_ms + int(GRACE_S * 1000)
            self.regrace = False
        self.now_ms = ts_ms
        while self.next_tick_ms < ts_ms:
            yield self.next_tick_ms
            self.next_tick_ms += TICK_MS

    def jump(self, to_ms: int, points: tuple[str, ...]) -> Iterator[int]:
        """Follow the site's clock to ``to_ms`` (confirmed by ``points``); yields the ticks to run (a jump
        forward of at most :data:`CATCH_UP_TICKS`; none for a longer one or a jump back)."""
        if not self.started:
            yield from self.advance(to_ms)
            return
        from_ms = self.now_ms
        due = (to_ms - 1 - self.next_tick_ms) // TICK_MS + 1 if to_ms > self.next_tick_ms else 0
        skipped = due if (to_ms < from_ms or due > CATCH_UP_TICKS) else 0
        self.jumps.append(Jump(int(from_ms), int(to_ms), points, int(skipped)))
        self.regrace = True
        if to_ms < from_ms or skipped:
            self.first_ms += to_ms - from_ms if to_ms < from_ms else 0
            self.now_ms = to_ms
            self.next_tick_ms = (to_ms // TICK_MS + 1) * TICK_MS
            self.grace_until_ms = to_ms + int(GRACE_S * 1000)
            self.regrace = False
            return
        yield from self.advance(to_ms)

    def state(self) -> dict:
        return {"now_ms": int(self.now_ms), "first_ms": int(self.first_ms), "next_tick_ms": int(self.next_tick_ms)}

    def restore(self, s: dict) -> None:
        """Resume from :meth:`state`: the same grace as after a reconnect."""
        self.now_ms, self.first_ms, self.next_tick_ms = s["now_ms"], s["first_ms"], s["next_tick_ms"]
        self.regrace = bool(self.now_ms)


class JumpVotes:
    """Values stamped outside the clock's window, by time bin of :data:`LEAD_S`: enough distinct points agreeing
    on a time (within about a bin of each other) confirm it."""

    def __init__(self) -> None:
        self.bins: dict[int, dict[str, int]] = {}  # bin -> point -> its earliest timestamp there

    def add(self, point: str, ts_ms: int, required: str | None = None) -> tuple[int, tuple[str, ...]] | None:
        """A vote; when confirmed (with ``required`` among the points, if given), the time to follow (the
        latest agreeing timestamp: the others are then late values inside the window) and the points."""
        b = ts_ms // int(LEAD_S * 1000)
        votes = self.bins.setdefault(b, {})
        votes[point] = min(ts_ms, votes.get(point, ts_ms))
        near: dict[str, int] = {}
        for k in (b - 1, b, b + 1):
            for p, t in self.bins.get(k, {}).items():
                near[p] = min(t, near.get(p, t))
        if len(near) < CONFIRM_POINTS or (required is not None and required not in near):
            return None
        return max(near.values()), tuple(sorted(near))

    def clear(self) -> None:
        self.bins.clear()

    def forget(self, point: str, ts_ms: int) -> None:
        """Withdraw a vote (its value was quarantined)."""
        votes = self.bins.get(ts_ms // int(LEAD_S * 1000))
        if votes is not None and votes.get(point) == ts_ms:
            del votes[point]


__all__ = [
    "CATCH_UP_TICKS",
    "CONFIRM_POINTS",
    "GRACE_S",
    "HEARTBEAT_LOSS_S",
    "HOLD_S",
    "LAG_S",
    "LEAD_S",
    "STALE_S",
    "TICK_MS",
    "TICK_S",
    "Jump",
    "JumpVotes",
    "PlantClock",
]
