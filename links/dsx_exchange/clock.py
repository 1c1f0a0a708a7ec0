"""The plant clock and the shadow twin's tick schedule.

The plant clock is the BMS's own: value timestamps [Unix ms]. The shadow twin steps every :data:`TICK_S` of
plant time, once every value stamped up to the tick has arrived (a value stamped past it has). After a
reconnect or a resume the data checks wait a grace period counted from the first value after the gap.
"""

from __future__ import annotations

from collections.abc import Iterator

from factory_twin.links.dsx_exchange.contract import HEARTBEAT_S, REPUBLISH_S

TICK_S = 10.0  # shadow-twin step [s of plant time]
TICK_MS = int(TICK_S * 1000)
STALE_S = 2 * REPUBLISH_S  # contract: republished every 100 s; stale past twice that
HEARTBEAT_LOSS_S = 3 * HEARTBEAT_S
GRACE_S = REPUBLISH_S + 2 * TICK_S  # everything has been republished once this long after a (re)start


class PlantClock:
    """Plant time seen so far, the next tick due, and the data checks' grace after a gap."""

    def __init__(self) -> None:
        self.now_ms = 0  # the latest plant time seen
        self.first_ms = 0  # the first (0: none yet)
        self.next_tick_ms = 0
        self.grace_until_ms = 0
        self.regrace = False  # the grace after a reconnect or resume starts with the next clock step

    @property
    def started(self) -> bool:
        return bool(self.first_ms)

    def reconnected(self) -> None:
        """A reconnect: no stale verdicts until the BMS has republished everything."""
        if self.now_ms:
            self.regrace = True

    def in_grace(self, t_ms: int) -> bool:
        return t_ms < self.grace_until_ms

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

    def state(self) -> dict:
        return {"now_ms": int(self.now_ms), "first_ms": int(self.first_ms), "next_tick_ms": int(self.next_tick_ms)}

    def restore(self, s: dict) -> None:
        """Resume from :meth:`state`: the same grace as after a reconnect."""
        self.now_ms, self.first_ms, self.next_tick_ms = s["now_ms"], s["first_ms"], s["next_tick_ms"]
        self.regrace = bool(self.now_ms)


__all__ = ["GRACE_S", "HEARTBEAT_LOSS_S", "STALE_S", "TICK_MS", "TICK_S", "PlantClock"]
