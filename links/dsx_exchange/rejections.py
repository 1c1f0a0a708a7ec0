"""The book of what was received and not taken, by point and reason, for ``status.json`` and the exit line;
each value itself goes to the history's ``rejected`` table.

Reasons: ``malformed`` (not a value envelope in strict JSON), ``non_finite`` (``NaN``, ``Infinity``, beyond
float range), ``out_of_range`` (not plausible in the point's stated unit, :mod:`plausibility`), ``outlier``
(a jump its next value did not confirm), ``timestamp`` (no plausible Unix time, or stamped outside the plant
clock's window and not confirmed, :mod:`clock`). Also counted: values on points with no metadata (by name),
and timestamps sent in another epoch unit than ms (converted).
"""

from __future__ import annotations

from collections import Counter, deque

from factory_twin.links.dsx_exchange.history import History

REASONS = ("malformed", "non_finite", "out_of_range", "outlier", "timestamp")
LISTED = 50  # points named in a report (the most affected first)
RECENT = 20  # quarantined timestamps listed with their offsets


class Rejections:
    """Counts by point and reason, the latest quarantined timestamps, epoch units seen, unknown points."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.by_point: dict[str, Counter] = {}
        self.totals: Counter = Counter()
        self.quarantined: deque[dict] = deque(maxlen=RECENT)
        self.epoch_units: Counter = Counter()
        self.epoch_points: dict[str, set[str]] = {}
        self.unknown: dict[str, int] = {}  # values on points with no metadata at all
        self.last: dict[str, dict] = {}  # by point: the latest value not taken, with why (for the data checks)

    def reject(
        self,
        point: str,
        reason: str,
        recv_ms: int,
        ts_ms: int | None = None,
        value: float | None = None,
        quality: int | None = None,
        detail: str = "",
    ) -> None:
        self.by_point.setdefault(point, Counter())[reason] += 1
        self.totals[reason] += 1
        self.history.add_rejected(point, ts_ms, value, quality, recv_ms, reason, detail)
        self.last[point] = {"reason": reason, "ts_ms": ts_ms, "value": value, "detail": detail}

    def quarantine(self, point: str, ts_ms: int, clock_ms: int, value, quality, recv_ms: int) -> None:
        """A value stamped outside the clock's window that nothing confirmed."""
        offset_s = (ts_ms - clock_ms) / 1000
        self.quarantined.append({"point": point, "ts_ms": int(ts_ms), "offset_s": offset_s, "clock_ms": int(clock_ms)})
        self.reject(point, "timestamp", recv_ms, ts_ms, value, quality, f"{offset_s:+.0f} s from the plant clock")

    def epoch(self, point: str, unit: str) -> None:
        self.epoch_units[unit] += 1
        pts = self.epoch_points.setdefault(unit, set())
        if len(pts) < LISTED:
            pts.add(point)

    def unknown_value(self, point: str) -> None:
        self.unknown[point] = self.unknown.get(point, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def report(self, mapped: set[str] | dict) -> dict:
        """Bounded lists: the :data:`LISTED` most affected points, the :data:`RECENT` latest quarantined."""
        worst = sorted(self.by_point.items(), key=lambda kv: -sum(kv[1].values()))[:LISTED]
        unknown = {p: n for p, n in self.unknown.items() if p not in mapped}
        return {
            "total": self.total,
            "by_reason": {r: self.totals.get(r, 0) for r in REASONS},
            "points_count": len(self.by_point),
            "points": {p: dict(c) for p, c in worst},
            "quarantined_recent": list(self.quarantined),
            "epoch_units": dict(self.epoch_units),
            "epoch_unit_points": {u: sorted(p) for u, p in self.epoch_points.items()},
            "unknown_points_count": len(unknown),
            "unknown_points": dict(sorted(unknown.items(), key=lambda kv: -kv[1])[:LISTED]),
        }


__all__ = ["REASONS", "Rejections"]
