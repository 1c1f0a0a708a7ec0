"""Durations written the way engineers write them: ``"24h"``, ``"5min"``, ``"90s"``, ``"2d"``, ``"1y"`` (365 days)
or seconds; the twin's local times written with their zone (:func:`site_time`)."""

from __future__ import annotations

import re
import warnings

import numpy as np
from factory_twin.models.units import S_PER_H, S_PER_MIN

UNITS = {"s": 1.0, "sec": 1.0, "min": S_PER_MIN, "m": S_PER_MIN, "h": S_PER_H, "hr": S_PER_H, "d": 24 * S_PER_H}
UNITS["y"] = 365 * UNITS["d"]  # a year of 365 days (the typical-year weather has no 29 February)
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


def seconds(value: str | float | int, name: str = "duration") -> float:
    """Parse ``value`` to seconds; raise ``ValueError`` naming ``name`` when it is not a positive duration."""
    if isinstance(value, int | float):
        result = float(value)
    else:
        m = _PATTERN.match(str(value).lower())
        if not m or m.group(2) not in UNITS | {"": 1.0}:
            raise ValueError(f"{name}: expected a duration like 24h, 5min, 1s, 2d or 1y, got {value!r}")
        result = float(m.group(1)) * UNITS.get(m.group(2), 1.0)
        if not m.group(2):
            warnings.warn(
                f"{name}: {value!r} has no unit and is read as {result:g} s ({result / S_PER_H:g} h); "
                f"write {m.group(1)}h for hours or {m.group(1)}min for minutes",
                stacklevel=2,
            )
    if not result > 0 or result != result:
        raise ValueError(f"{name}: must be > 0, got {value!r}")
    return result


def utc_offset(utc_offset_h: float) -> str:
    """ISO 8601 offset of a site ``utc_offset_h`` hours from UTC: ``-07:00``, ``+05:30``, ``+00:00``."""
    minutes = int(round(utc_offset_h * 60))
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def site_time(t, utc_offset_h: float) -> str:
    """A twin local time (naive: the site's standard time) as ISO 8601 seconds with the site's offset, e.g.
    ``2026-12-05T03:29:30-07:00``: every time the project prints or writes carries its zone."""
    return f"{np.datetime64(t, 's')}{utc_offset(utc_offset_h)}"
