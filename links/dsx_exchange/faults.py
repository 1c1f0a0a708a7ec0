"""Faults the BMS emulator can inject, parsed from ``KIND:TARGET[:VALUE]@START``.

Sensor faults act on one point ``ENTITY/SIGNAL`` (e.g. ``hall-a-r03-07/return_c``):

- ``bias:POINT:OFFSET`` adds OFFSET (engineering units of the point) to the reading;
- ``drift:POINT:RATE`` adds RATE per hour since the start;
- ``stuck:POINT`` freezes the reading at its value at the start (still republished every 100 s);
- ``dropout:POINT`` stops publishing the point;
- ``badquality:POINT`` publishes the point with quality 0;
- ``nometa:POINT`` withdraws the point's retained metadata (an empty retained message) and stops
  republishing it, while values go on.

Process faults act on a CDU ``ENTITY``:

- ``fouling:CDU:FRACTION`` the heat exchanger's UA falls by FRACTION (0-1);
- ``pump:CDU[:REMAINING]`` the secondary (TCS) pump trips: lead pump speed reads 0 %, the loop's flow falls
  to REMAINING of design (default 0.5: the standby pump runs on a degraded bypass).

Faults of the BMS's clock act on the whole site (``BMS``) or one point's controller (``ENTITY/SIGNAL``):

- ``clock:BMS:SECONDS`` stamps every value (and the heartbeat) SECONDS later than the plant time: a clock
  that jumps (positive) or runs back (negative) at START; on ``ENTITY/SIGNAL`` only that point's;
- ``epoch:BMS:FACTOR`` sends every timestamp in Unix ms x FACTOR (0.001: seconds, 1000: microseconds).

START is a duration after the emulation starts (``30s``, ``10min``, ``1h``; default 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from factory_twin.twin.scenario.timeparse import seconds

SENSOR_KINDS = ("bias", "drift", "stuck", "dropout", "badquality", "nometa")
PROCESS_KINDS = ("fouling", "pump")
CLOCK_KINDS = ("clock", "epoch")
NEEDS_VALUE = {"bias", "drift", "fouling", "clock", "epoch"}


@dataclass(frozen=True)
class Fault:
    kind: str
    entity: str
    signal: str | None
    value: float | None
    start_s: float

    @property
    def point(self) -> str:
        return f"{self.entity}/{self.signal}" if self.signal else self.entity

    def __str__(self) -> str:
        v = "" if self.value is None else f":{self.value:g}"
        return f"{self.kind}:{self.point}{v}@{self.start_s:g}s"


def parse_fault(spec: str) -> Fault:
    """Parse one ``--fault`` value; ValueError naming the option and what is wrong."""
    text, _, start = spec.partition("@")
    start_s = 0.0 if not start or start.strip() in ("0", "0s") else seconds(start, f"--fault {spec!r} start")
    parts = text.split(":")
    kind = parts[0].strip().lower()
    kinds = SENSOR_KINDS + PROCESS_KINDS + CLOCK_KINDS
    if kind not in kinds:
        raise ValueError(f"--fault {spec!r}: kind must be one of {', '.join(kinds)}")
    if len(parts) < 2 or not parts[1]:
        raise ValueError(f"--fault {spec!r}: no target (ENTITY/SIGNAL for sensor faults, a CDU id for process faults)")
    target = parts[1].strip()
    value = None
    if len(parts) > 2:
        try:
            value = float(parts[2])
        except ValueError:
            raise ValueError(f"--fault {spec!r}: value must be a number, got {parts[2]!r}") from None
    if kind in NEEDS_VALUE and value is None:
        raise ValueError(f"--fault {spec!r}: {kind} needs a value (KIND:TARGET:VALUE)")
    if kind in CLOCK_KINDS:
        if kind == "epoch" and (target != "BMS" or not value > 0):
            raise ValueError(f"--fault {spec!r}: epoch acts on BMS with a factor > 0 (0.001: s, 1000: us)")
        if target == "BMS":
            return Fault(kind, "BMS", None, value, start_s)
    if kind in SENSOR_KINDS + CLOCK_KINDS:
        entity, sep, signal = target.rpartition("/")
        if not sep or not entity or not signal:
            raise ValueError(f"--fault {spec!r}: sensor faults target ENTITY/SIGNAL, e.g. hall-a-r01-01/return_c")
        return Fault(kind, entity, signal, value, start_s)
    if kind == "fouling" and not 0 < value < 1:
        raise ValueError(f"--fault {spec!r}: fouling fraction must be in (0, 1), got {value:g}")
    if kind == "pump":
        value = 0.5 if value is None else value
        if not 0 < value < 1:
            raise ValueError(f"--fault {spec!r}: remaining flow fraction must be in (0, 1), got {value:g}")
    return Fault(kind, target, None, value, start_s)


__all__ = ["CLOCK_KINDS", "PROCESS_KINDS", "SENSOR_KINDS", "Fault", "parse_fault"]
