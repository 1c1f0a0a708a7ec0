"""Interconnection requirement sets and voltage-event fixtures: TOML files in ``data/grid_codes`` and
``data/grid_events`` (or the user's own), validated with pydantic; errors name the key.

A requirement set (engineering units: MW, MW/min, s, Hz, pu)::

    name = "my-utility"
    [[rules]]                   # any number; kind: ramp | peak_to_peak | band_amplitude | band_share | line_share
    name = "pp_5s"
    kind = "peak_to_peak"
    limit = 10.0                # MW (ramp: MW/min; band_share: share of AC variance; line_share: of total energy)
    window_s = 5.0
    band_hz = [0.1, 55.0]
    [ride_through]              # optional
    bands = [[0.0, 0.2, 0.15], [0.2, 0.5, 0.25]]    # v_low, v_high [pu), seconds to stay connected
    recovery_share = 0.9
    recovery_s = 2.0
    counter_allowed = false
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from factory_twin.models.poi_metrics import SPECTRAL, Rule
from factory_twin.models.ride_through import Dip, Protection
from factory_twin.twin.facility.spec import SpecError, Strict, describe_validation_error
from pydantic import Field, ValidationError, model_validator

from factory_twin import data

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]


class _Rule(Strict):
    name: str
    kind: Literal["ramp", "peak_to_peak", "band_amplitude", "band_share", "line_share"]
    limit: Pos
    window_s: NonNeg = 0.0
    averaging_s: NonNeg = 0.0
    band_hz: tuple[NonNeg, Pos] | None = None
    source: str = ""

    @model_validator(mode="after")
    def _fields_of_kind(self) -> _Rule:
        if self.kind in ("ramp", "peak_to_peak") and self.window_s <= 0:
            raise ValueError(f"window_s: rule kind {self.kind!r} needs window_s > 0")
        if self.kind in SPECTRAL and self.band_hz is None:
            raise ValueError(f"band_hz: rule kind {self.kind!r} needs band_hz = [low, high]")
        if self.band_hz is not None and not self.band_hz[0] < self.band_hz[1]:
            raise ValueError(f"band_hz: low must be < high, got {list(self.band_hz)}")
        if self.kind in ("band_share", "line_share") and self.limit > 1:
            raise ValueError(f"limit: a {self.kind} limit is a share in (0, 1], got {self.limit}")
        return self


class _RideThrough(Strict):
    bands: list[tuple[NonNeg, Pos, Annotated[float, Field(ge=0)]]] = Field(min_length=1)
    recovery_share: Annotated[float, Field(gt=0, le=1)] = 0.9
    recovery_s: Pos = 2.0
    counter_allowed: bool = True
    source: str = ""

    @model_validator(mode="after")
    def _band_order(self) -> _RideThrough:
        for lo, hi, _ in self.bands:
            if not lo < hi:
                raise ValueError(f"bands: v_low must be < v_high, got [{lo}, {hi}]")
        return self


class _RequirementFile(Strict):
    name: str
    description: str = ""
    rules: list[_Rule] = Field(default_factory=list)
    ride_through: _RideThrough | None = None

    @model_validator(mode="after")
    def _something(self) -> _RequirementFile:
        if not self.rules and self.ride_through is None:
            raise ValueError("rules: a requirement set needs [[rules]] or [ride_through]")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rules: rule names must be unique, got {names}")
        return self


@dataclass(frozen=True)
class RideThroughRequirement:
    """Ride-through bands ``(v_low, v_high, t_allow_s)``, recovery share within ``recovery_s``, counter rule."""

    bands: tuple[tuple[float, float, float], ...]
    recovery_share: float
    recovery_s: float
    counter_allowed: bool
    source: str


@dataclass(frozen=True)
class RequirementSet:
    """A named set of POI rules and an optional ride-through requirement."""

    name: str
    description: str
    rules: tuple[Rule, ...]
    ride_through: RideThroughRequirement | None
    source: str


def builtin_requirements() -> list[str]:
    """Names of the requirement sets shipped in ``data/grid_codes``."""
    return data.builtin("grid_codes")


def _read(name_or_path: str | Path, folder: str, builtins: list[str], what: str) -> tuple[dict, str]:
    p = Path(name_or_path)
    if not p.is_file() and str(name_or_path) in builtins:
        p = data.path(folder, f"{name_or_path}.toml")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(name_or_path)!r}: not a file and not a built-in ({', '.join(builtins)})")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8")), str(p)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(str(p), [("<toml>", str(e))]) from None


def load_requirements(name_or_path: str | Path) -> RequirementSet:
    """Load a built-in requirement set by name or a user TOML by path."""
    raw, source = _read(name_or_path, "grid_codes", builtin_requirements(), "requirement set")
    try:
        spec = _RequirementFile.model_validate(raw)
    except ValidationError as e:
        raise SpecError(source, [describe_validation_error(err) for err in e.errors()]) from None
    rules = tuple(
        Rule(r.name, r.kind, r.limit, r.window_s, r.averaging_s, tuple(r.band_hz) if r.band_hz else None, r.source)
        for r in spec.rules
    )
    rt = spec.ride_through
    ride = (
        RideThroughRequirement(
            tuple((lo, hi, t) for lo, hi, t in rt.bands),
            rt.recovery_share,
            rt.recovery_s,
            rt.counter_allowed,
            rt.source,
        )
        if rt
        else None
    )
    return RequirementSet(spec.name, spec.description, rules, ride, source)


# ----------------------------------------------------------------------------- voltage events
class _Protection(Strict):
    description: str = ""
    v_cease: Pos = 0.5
    t_cease_s: NonNeg = 0.01
    f_cease: Annotated[float, Field(ge=0, le=1)] = 1.0
    v_recon: Pos = 0.6
    t_recon_s: NonNeg = 0.05
    t_ramp_s: NonNeg = 1.0
    f_recon: Annotated[float, Field(ge=0, le=1)] = 1.0
    tv_s: NonNeg = 0.02
    v_count: Pos = 0.9
    count: Annotated[int, Field(ge=0)] = 0
    window_s: NonNeg = 60.0
    merge_s: NonNeg = 0.0


class _Event(Strict):
    name: str
    description: str = ""
    start_s: list[NonNeg] = Field(min_length=1)
    duration_ms: list[NonNeg]
    residual_pu: list[NonNeg]
    duration_s: Pos
    protection: dict[str, _Protection] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _lengths(self) -> _Event:
        if not len(self.start_s) == len(self.duration_ms) == len(self.residual_pu):
            raise ValueError("duration_ms: start_s, duration_ms and residual_pu must have the same length")
        return self


@dataclass(frozen=True)
class VoltageEvent:
    """A recorded sequence of dips and the protection settings to replay it with."""

    name: str
    description: str
    dips: tuple[Dip, ...]
    duration_s: float
    protections: dict[str, Protection]


def builtin_events() -> list[str]:
    """Names of the voltage-event fixtures shipped in ``data/grid_events``."""
    return data.builtin("grid_events")


def load_event(name_or_path: str | Path) -> VoltageEvent:
    """Load a built-in voltage-event fixture by name or a user TOML by path."""
    raw, source = _read(name_or_path, "grid_events", builtin_events(), "voltage event")
    try:
        ev = _Event.model_validate(raw)
    except ValidationError as e:
        raise SpecError(source, [describe_validation_error(err) for err in e.errors()]) from None
    dips = tuple(Dip(s, ms / 1e3, v) for s, ms, v in zip(ev.start_s, ev.duration_ms, ev.residual_pu, strict=True))
    prot = {k: Protection(**p.model_dump(exclude={"description"})) for k, p in ev.protection.items()}
    return VoltageEvent(ev.name, ev.description, dips, ev.duration_s, prot)


def recovery_time_s(online, t_s, clear_s: float, share: float) -> float:
    """Seconds after ``clear_s`` until the online share first reaches ``share`` again (inf if never)."""
    ok = (np.asarray(t_s) >= clear_s) & (np.asarray(online) >= share)
    return float(np.asarray(t_s)[ok][0] - clear_s) if ok.any() else math.inf
