"""Faults that open a path of the one-line diagram on purpose: ``feed-loss:NAME@TIME[+DURATION]``.

In a scenario TOML::

    [[faults]]
    kind = "feed-loss"                 # the element NAME opens (a feed, a transformer, a UPS, ...)
    element = "utility-A"
    at = "2026-08-08T14:00:00"         # local time
    duration_h = 0.5                   # optional: closes again after this long (default: stays open)

On the command line (``simulate --fault``) the same as ``feed-loss:utility-A@2026-08-08T14:00:00+30min``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from factory_twin.twin.scenario.timeparse import seconds
from pydantic import BaseModel, ConfigDict, Field

FAULT_KINDS = ("feed-loss",)


class FaultSpec(BaseModel):
    """One ``[[faults]]`` entry of a scenario file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    element: str = Field(min_length=1)
    at: str
    duration_h: Annotated[float, Field(gt=0)] | None = None


@dataclass(frozen=True)
class Fault:
    """Element ``element`` opens at ``at`` and, when ``until`` is given, closes again then (naive local times)."""

    kind: str
    element: str
    at: np.datetime64
    until: np.datetime64 | None = None

    def __str__(self) -> str:
        end = "" if self.until is None else f" until {self.until}"
        return f"{self.kind}:{self.element}@{self.at}{end}"


def fault_from_spec(spec: FaultSpec) -> Fault:
    """A :class:`Fault` from a scenario entry (``ValueError`` naming the field on a bad time)."""
    at = _time(spec.at, "at")
    until = None if spec.duration_h is None else at + np.timedelta64(round(spec.duration_h * 3600), "s")
    return Fault(spec.kind, spec.element, at, until)


def parse_fault(text: str) -> Fault:
    """``KIND:NAME@TIME[+DURATION]`` (e.g. ``feed-loss:utility-A@2026-08-08T14:00:00+30min``) -> :class:`Fault`."""
    kind, sep, rest = text.partition(":")
    name, at_sep, when = rest.rpartition("@")
    if not sep or not at_sep or not name or not when:
        raise ValueError(f"--fault: expected KIND:NAME@TIME[+DURATION], e.g. feed-loss:utility-A@2026-08-08T14:00, "
                         f"got {text!r}")  # fmt: skip
    if kind not in FAULT_KINDS:
        raise ValueError(f"--fault: kind must be one of {list(FAULT_KINDS)}, got {kind!r}")
    at_text, plus, dur = when.partition("+")
    at = _time(at_text, "--fault")
    until = at + np.timedelta64(round(seconds(dur, "--fault duration")), "s") if plus else None
    return Fault(kind, name, at, until)


def _time(text: str, key: str) -> np.datetime64:
    try:
        return np.datetime64(text, "s")
    except ValueError:
        raise ValueError(f"{key}: must be an ISO 8601 time like 2026-08-08T14:00:00, got {text!r}") from None
