"""OpenADR 2.0b events (as openleadr parses them) -> what they ask of the twin, by the facility's stated mapping.

Every number is checked before it can act (finite, in its range, in known units); an event that cannot be mapped
raises :class:`UnmappableError` with the reason the VEN opts out with. Mapping (``[openadr]`` of the facility file,
:class:`twin.facility.spec.OpenADR`):

==========================================  =======================================================================
signal (name / type)                        target of each interval
==========================================  =======================================================================
``SIMPLE`` / ``level`` 0-3                  DR event of depth ``simple_levels[level]`` (level 0: none)
``LOAD_CONTROL`` / ``x-loadControlCapacity``  import <= value x ``capacity_mw`` (value in [0, 1])
``LOAD_CONTROL`` / ``x-loadControlPercentOffset``  import <= baseline x (1 + value / 100) (value in [-100, 100])
``LOAD_DISPATCH`` / ``setpoint``            import <= value (units: the signal's itemBase, else ``dispatch_unit``)
``LOAD_DISPATCH`` / ``delta``               import <= baseline + value (negative: shed)
==========================================  =======================================================================

The baseline is the DR baseline of :mod:`twin.simulation.targets` when the event arrives: the counterfactual
uncapped import (not the meter, which an event already in force has curtailed). Intervals follow one another
from the active period's start when they carry no start of their own; an interval of zero duration lasts until the
event is cancelled. The ramp (``x-eiRampUp``, else ``ramp_min``) precedes the start: the target holds from the start.
Other signals are ignored with a note; an event with no supported signal is opted out of. A test event
(``testEvent``) is read and answered but sets no target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from factory_twin.models.units import KW, MW, S_PER_MIN
from factory_twin.twin.scenario.grid_signals import DR_RAMP_S

STATUSES = ("far", "near", "active", "completed", "cancelled")
SCALES = {"none": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}  # SI scale codes (siScaleCode) a power may use
UNITS_W = {"W": 1.0, "kW": KW, "MW": MW}
PLAUSIBLE_IMPORT = 10.0  # a setpoint or delta beyond this many times the import limit: wrong units, refused
MAX_EVENT = timedelta(days=31)  # longer intervals or ramps, or starts further ahead: refused as implausible


class UnmappableError(ValueError):
    """The event cannot be acted on; ``str(e)`` is the reason given for opting out."""


@dataclass(frozen=True)
class Target:
    """What one interval asks: a DR depth [-] or an import limit [W] from ``start`` to ``end`` (UTC; None: until
    cancelled)."""

    kind: Literal["dr", "import"]
    value: float
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Mapped:
    """One event (one modification of it) as the twin takes it."""

    event_id: str
    modification: int
    status: str
    market_context: str
    ramp_s: float  # [s] of wall time before each target's start
    targets: tuple[Target, ...]
    notes: tuple[str, ...]  # how each signal was read


def map_event(event: dict[str, Any], cfg, import_limit_w: float, baseline_w: float, now: datetime) -> Mapped:
    """Read an openleadr event dict under the facility's ``[openadr]`` settings ``cfg``."""
    d = _get(event, "event_descriptor", dict)
    event_id = str(_get(d, "event_id", (str, int)))
    mod = _get(d, "modification_number", int)
    status = _get(d, "event_status", str)
    if mod < 0 or status not in STATUSES:
        raise UnmappableError(f"event {event_id}: modification_number {mod!r} or event_status {status!r} is not valid")
    context = str(d.get("market_context") or "")
    if cfg.market_contexts and context not in cfg.market_contexts:
        programs = ", ".join(cfg.market_contexts)
        raise UnmappableError(f"program {context!r} is not one the site takes part in ({programs})")
    ap = _get(event, "active_period", dict)
    start = _when(_get(ap, "dtstart", datetime), "active_period.dtstart", now)
    ramp = ap.get("ramp_up")
    default_ramp_s = DR_RAMP_S if cfg.ramp_min is None else cfg.ramp_min * S_PER_MIN
    ramp_s = default_ramp_s if ramp is None else _span(ramp, "active_period.x-eiRampUp", zero_ok=True)
    signals = _get(event, "event_signals", list)
    targets: list[Target] = []
    notes: list[str] = []
    for i, sig in enumerate(signals):
        name, kind = sig.get("signal_name"), sig.get("signal_type")
        read = _READERS.get((name, kind))
        if read is None:
            notes.append(f"signal {i} {name}/{kind}: not supported, ignored")
            continue
        t0 = start
        for j, iv in enumerate(_get(sig, "intervals", list)):
            where = f"event_signals.{i}.intervals.{j}"
            span = _span(_get(iv, "duration", timedelta), f"{where}.duration", zero_ok=True)
            t = _when(iv["dtstart"], f"{where}.dtstart", now) if iv.get("dtstart") is not None else t0
            end = t + timedelta(seconds=span) if span > 0 else None
            value = _number(iv.get("signal_payload"), f"{where}.signal_payload")
            target, note = read(value, sig, cfg, import_limit_w, baseline_w, where)
            notes.append(f"signal {i} {name}/{kind} interval {j}: {note}")
            if target is not None:
                targets.append(Target(target[0], target[1], t, end))
            if end is None:
                break
            t0 = end
    if not any(_READERS.get((s.get("signal_name"), s.get("signal_type"))) for s in signals):
        raise UnmappableError("no supported signal (" + "; ".join(notes or ["the event has no signal"]) + ")")
    if d.get("test_event"):  # OpenADR: a test event is answered, not acted on
        return Mapped(event_id, mod, status, context, ramp_s, (), ("test event: answered, not acted on", *notes))
    return Mapped(event_id, mod, status, context, ramp_s, tuple(targets), tuple(notes))


# ---------------------------------------------------------------------------------------- signal readers
def _simple(v, sig, cfg, limit_w, base_w, where):
    if v != round(v) or not 0 <= v <= 3:
        raise UnmappableError(f"{where}: a SIMPLE level is 0, 1, 2 or 3, got {v:g}")
    level = int(v)
    if level == 0:
        return None, "level 0 (normal operation): no target"
    if level not in cfg.simple_levels:
        raise UnmappableError(f"SIMPLE level {level}: the facility states no depth for it ([openadr] simple_levels)")
    depth = cfg.simple_levels[level]
    return ("dr", depth), f"level {level} -> DR depth {depth:.0%} of the baseline {base_w / MW:.3f} MW"


def _capacity(v, sig, cfg, limit_w, base_w, where):
    if not 0 <= v <= 1:
        raise UnmappableError(f"{where}: x-loadControlCapacity is a fraction in [0, 1], got {v:g}")
    cap_w = cfg.capacity_mw * MW if cfg.capacity_mw is not None else limit_w
    return ("import", v * cap_w), f"capacity {v:g} x {cap_w / MW:.3f} MW -> import <= {v * cap_w / MW:.3f} MW"


def _percent(v, sig, cfg, limit_w, base_w, where):
    if not -100 <= v <= 100:
        raise UnmappableError(f"{where}: x-loadControlPercentOffset is a percentage in [-100, 100], got {v:g}")
    w = base_w * (1 + v / 100)
    return ("import", w), f"{v:+g} % of the baseline {base_w / MW:.3f} MW -> import <= {w / MW:.3f} MW"


def _setpoint(v, sig, cfg, limit_w, base_w, where):
    w = v * _unit_w(sig, cfg, where)
    if not 0 < w <= PLAUSIBLE_IMPORT * limit_w:
        raise UnmappableError(f"{where}: setpoint {w / MW:g} MW is outside (0, {PLAUSIBLE_IMPORT * limit_w / MW:g}] MW")
    return ("import", w), f"setpoint -> import <= {w / MW:.3f} MW"


def _delta(v, sig, cfg, limit_w, base_w, where):
    d = v * _unit_w(sig, cfg, where)
    if abs(d) > PLAUSIBLE_IMPORT * limit_w:
        raise UnmappableError(f"{where}: delta {d / MW:g} MW is beyond +-{PLAUSIBLE_IMPORT * limit_w / MW:g} MW")
    w = base_w + d
    if w <= 0:
        raise UnmappableError(f"{where}: delta {d / MW:g} MW leaves {w / MW:g} MW of import from {base_w / MW:.3f} MW")
    return ("import", w), f"delta {d / MW:+.3f} MW on the baseline {base_w / MW:.3f} MW -> import <= {w / MW:.3f} MW"


_READERS = {
    ("SIMPLE", "level"): _simple,
    ("simple", "level"): _simple,
    ("LOAD_CONTROL", "x-loadControlCapacity"): _capacity,
    ("LOAD_CONTROL", "x-loadControlPercentOffset"): _percent,
    ("LOAD_DISPATCH", "setpoint"): _setpoint,
    ("LOAD_DISPATCH", "delta"): _delta,
}


def _unit_w(sig: dict, cfg, where: str) -> float:
    """W per unit of a LOAD_DISPATCH value: the signal's itemBase (real power in W with an SI scale), else the
    facility's ``dispatch_unit``."""
    m = sig.get("measurement")
    if m:
        unit, scale = m.get("unit"), m.get("scale") or "none"
        if unit not in UNITS_W or scale not in SCALES:
            raise UnmappableError(f"{where}: units {scale} x {unit} are not a power this VEN reads (W, kW, MW)")
        return UNITS_W[unit] * SCALES[scale]
    if cfg.dispatch_unit is None:
        raise UnmappableError(f"{where}: the signal states no units and the facility no [openadr] dispatch_unit")
    return UNITS_W[cfg.dispatch_unit]


# ---------------------------------------------------------------------------------------- checks
def _get(d: dict, key: str, types):
    if not isinstance(d, dict) or key not in d or not isinstance(d[key], types) or isinstance(d[key], bool):
        raise UnmappableError(f"{key}: missing or not a {getattr(types, '__name__', types)}")
    return d[key]


def _number(x, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise UnmappableError(f"{where}: must be a finite number, got {x!r}")
    return float(x)


def _span(x, where: str, zero_ok: bool = False) -> float:
    if not isinstance(x, timedelta):
        raise UnmappableError(f"{where}: must be a duration, got {x!r}")
    s = x.total_seconds()
    if s < 0 or (s == 0 and not zero_ok) or x > MAX_EVENT:
        raise UnmappableError(f"{where}: {x} is outside [0, {MAX_EVENT}]")
    return s


def _when(t, where: str, now: datetime) -> datetime:
    if not isinstance(t, datetime) or t.tzinfo is None:
        raise UnmappableError(f"{where}: must be a time with its zone, got {t!r}")
    if abs(t - now) > MAX_EVENT:
        raise UnmappableError(f"{where}: {t.isoformat()} is more than {MAX_EVENT.days} days from now")
    return t.astimezone(UTC)


__all__ = ["Mapped", "Target", "UnmappableError", "map_event"]
