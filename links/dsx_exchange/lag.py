"""Lag on one clock: from a value's publication to its arrival in the shadow twin, in wall seconds.

A value's timestamp is the plant clock when it was published; the plant clock runs at the BMS's pace (``speed``
plant s per wall s; 1 at a site, any pace under ``emulate-bms --speed``) from an origin of its own. The pace is
the slope of the timestamps over the arrival times: first the median over pairs half the samples apart (robust to
a start-up backlog), then the line through the fastest value of each stretch of arrivals (the floor of the delays,
as network clock-skew estimates use it). A plant clock that is the wall clock (pace 1 within 0.1 %, stamps within a
minute of arrival: a site, ``--start now``) is read as it is; any other is placed on the wall clock by the fastest
value (the lag above it is reported, the transport floor not included).
"""

from __future__ import annotations

import numpy as np

PACE_TOL = 1e-3  # a pace within this of 1 is the wall clock's
WALL_CLOCK_S = 60.0  # stamps within this of arrival (at pace 1) are the wall clock's [s]
FLOOR_BINS = 20  # the pace is refined on the fastest value of each of this many stretches of arrival time


def publication_lag(arrived_s: np.ndarray, stamp_s: np.ndarray) -> np.ndarray:
    """Wall seconds from publication (``stamp_s``, plant clock [Unix s]) to arrival (``arrived_s``, wall [Unix s],
    in order); NaN while the pace cannot be measured (fewer than two distinct arrival times, a stopped clock)."""
    at, ts = np.asarray(arrived_s, float), np.asarray(stamp_s, float)
    h = at.size // 2
    dt = at[h:] - at[: at.size - h]
    ok = dt > 0
    pace = float(np.median((ts[h:] - ts[: at.size - h])[ok] / dt[ok])) if ok.any() else 0.0
    if not pace > 0:
        return np.full(at.size, np.nan)
    behind = at - ts
    if abs(pace - 1.0) <= PACE_TOL and -WALL_CLOCK_S <= behind.min() <= WALL_CLOCK_S:
        return behind
    # the fastest value of each stretch of arrivals lies on the floor: the line through them is the pace
    on_wall = at - ts / pace
    edges = np.searchsorted(at, np.linspace(at[0], at[-1], FLOOR_BINS + 1)[1:-1])
    floor = [
        a + int(np.argmin(part)) for a, part in zip([0, *edges], np.split(on_wall, edges), strict=True) if part.size
    ]
    if len(floor) >= 3:
        pace = 1.0 / np.polyfit(ts[floor] - ts[0], at[floor] - at[0], 1)[0]
        on_wall = at - ts / pace  # arrival less the publication on the wall clock, up to the plant clock's origin
    return on_wall - on_wall.min()


__all__ = ["publication_lag"]
