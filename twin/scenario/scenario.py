"""Scenarios: weather, grid signals, demand-response events and workload demand over time.

A scenario TOML (all keys optional; paths relative to the file)::

    name = "hot-day-dr"
    start = "2026-08-07T00:00:00"        # local time
    [weather]
    climate = "facility"                  # the site's climate, a built-in name, or an .epw path
    offset_k = 0.0                        # what-if: dry and wet bulb + offset
    [grid]
    signals = "builtin:kr-smp"            # or a CSV path (see twin.scenario.grid_signals)
    import_limit_mw = 110.0               # overrides the facility's contracted limit (precedence below)
    carbon_price_per_t = 0.0
    [[grid.dr_events]]
    start = "2026-08-07T16:00:00"
    duration_h = 3.0
    depth = 0.25
    ramp_min = 15.0
    notice_min = 60.0
    [workload.training]                   # utilization = share of the class's GPUs busy
    profile = "constant"                  # or "diurnal"
    level = 1.0
    oscillation_depth = 0.0               # sub-minute training power swing, share of busy power
    oscillation_period_s = 30.0
    [workload.inference]                  # or profile = "plateaus", plateaus = [[0, 0.6], [8, 1.0], [20, 0.8]]
    profile = "diurnal"
    min = 0.5
    max = 0.95
    peak_hour = 14.0
    [[faults]]                            # a path of the one-line diagram opens (twin.scenario.faults)
    kind = "feed-loss"
    element = "utility-A"
    at = "2026-08-07T14:00:00"

The import limit in force is resolved once, when the scenario is built and again whenever a what-if
replaces a field (:class:`ImportLimit`, ``Scenario.import_limit_in_force``). Precedence, highest first:

1. a what-if on the built scenario (``what_if_import_limit_mw``: the dashboard's import-limit control, a
   study case's ``import_limit_mw``);
2. the grid-signals CSV's ``import_limit_mw`` column (a time series);
3. the scenario file's ``[grid] import_limit_mw``;
4. the facility's contracted ``[grid] import_limit_mw``.

Grid load targets on the ``grid`` meter (DSX Flex) tighten whichever is in force (the minimum of both).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from factory_twin.models.units import S_PER_H, S_PER_MIN
from factory_twin.twin.facility.spec import SpecError, describe_validation_error
from factory_twin.twin.scenario.faults import Fault, FaultSpec, fault_from_spec
from factory_twin.twin.scenario.grid_signals import (
    DR_NOTICE_S,
    DR_RAMP_S,
    DREvent,
    GridSignals,
    daily_signals,
    read_signals_csv,
)
from factory_twin.twin.scenario.weather import Weather, load_weather
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from factory_twin import data

Frac = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkloadProfile(_Strict):
    """Utilization of a class over time: constant or a diurnal cosine; optional training oscillation."""

    profile: Literal["constant", "diurnal", "plateaus"] = "constant"
    level: Frac = 1.0
    plateaus: list[tuple[Annotated[float, Field(ge=0, lt=24)], Frac]] = Field(
        default_factory=list, description="(hour of day, level) steps, held until the next one (wraps)"
    )
    min: Frac = 0.5
    max: Frac = 0.95
    peak_hour: Annotated[float, Field(ge=0, lt=24)] = 14.0
    oscillation_depth: Frac = 0.0
    oscillation_period_s: Annotated[float, Field(gt=0)] = 30.0
    oscillation_duty: Annotated[float, Field(gt=0, lt=1)] = 0.7

    @model_validator(mode="after")
    def _plateaus(self) -> WorkloadProfile:
        hours = [h for h, _ in self.plateaus]
        if self.profile == "plateaus" and not hours:
            raise ValueError("profile 'plateaus' needs plateaus = [[hour, level], ...]")
        if any(b <= a for a, b in pairwise(hours)):
            raise ValueError(f"plateaus: hours must increase, got {hours}")
        return self

    def utilization(self, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
        """Share of the class's GPUs that are busy [-]."""
        if self.profile == "constant":
            return np.full(np.shape(times), self.level)
        hour = (np.asarray(times, "datetime64[s]") - np.asarray(times, "datetime64[D]")).astype(float) / S_PER_H
        if self.profile == "plateaus":
            hours = np.array([h for h, _ in self.plateaus])
            levels = np.array([v for _, v in self.plateaus])
            return levels[np.searchsorted(hours, hour, side="right") - 1]  # index -1 wraps to the last plateau
        mid, half = (self.max + self.min) / 2, (self.max - self.min) / 2
        return mid + half * np.cos(2 * np.pi * (hour - self.peak_hour) / 24.0)

    def power_factor(self, seconds: NDArray[np.float64]) -> NDArray[np.float64]:
        """Multiplier on busy-GPU power at ``seconds`` (epoch seconds, float, sub-second resolution):
        1 in compute phases, ``1 - oscillation_depth`` in communication phases (a square wave)."""
        if self.oscillation_depth == 0:
            return np.ones(np.shape(seconds))
        phase = np.mod(np.asarray(seconds, float), self.oscillation_period_s) / self.oscillation_period_s
        return np.where(phase < self.oscillation_duty, 1.0, 1.0 - self.oscillation_depth)


class _DR(_Strict):
    start: str
    duration_h: float
    depth: float
    ramp_min: float = DR_RAMP_S / S_PER_MIN
    notice_min: float = DR_NOTICE_S / S_PER_MIN


class ScenarioWeather(_Strict):
    climate: str = "facility"
    offset_k: Annotated[float, Field(ge=-30, le=30)] = 0.0


class ScenarioGrid(_Strict):
    signals: str = "builtin:kr-smp"
    currency: str = "KRW"
    import_limit_mw: Annotated[float, Field(gt=0)] | None = None
    carbon_price_per_t: Annotated[float, Field(ge=0)] = 0.0
    dr_events: list[_DR] = []


class ScenarioSpec(_Strict):
    name: str = "default"
    description: str = ""
    start: str = "2026-08-07T00:00:00"
    weather: ScenarioWeather = ScenarioWeather()
    grid: ScenarioGrid = ScenarioGrid()
    workload: dict[str, WorkloadProfile] = {}
    faults: list[FaultSpec] = []


@dataclass(frozen=True)
class GridTarget:
    """A grid load target in force: power at ``meter`` (``"grid"`` import or campus ``"gpu"`` power) at most
    ``limit_mw`` over ``[start, end)`` (naive local times; ``end`` None: until replaced)."""

    start: np.datetime64
    end: np.datetime64 | None
    limit_mw: float
    meter: Literal["grid", "gpu"] = "grid"

    def limit_at(self, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
        """``limit_mw`` where the target is in force at ``times``, inf elsewhere."""
        t = np.asarray(times, "datetime64[s]")
        on = t >= self.start
        if self.end is not None:
            on &= t < self.end
        return np.where(on, self.limit_mw, np.inf)


IMPORT_LIMIT_SOURCES = ("what-if", "grid signals", "scenario", "contract")  # precedence, highest first
GRID_TARGET = "grid target"  # the source when a DSX Flex target on the grid meter is tighter


@dataclass(frozen=True, eq=False)
class ImportLimit:
    """The import limit in force at the point of interconnection and where it comes from (one of
    :data:`IMPORT_LIMIT_SOURCES`): a constant ``limit_mw`` [MW], or the ``signals`` whose
    ``import_limit_mw`` column is in force (``limit_mw`` None)."""

    source: str
    limit_mw: float | None
    signals: GridSignals | None = None

    def at(self, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
        """The limit [MW] at ``times``."""
        if self.signals is not None:
            return self.signals.at(times, "import_limit_mw")
        return np.full(np.shape(times), self.limit_mw, dtype=float)

    def describe(self) -> str:
        """For people: ``"95 MW (what-if)"``, ``"time series (grid signals)"``."""
        value = "time series" if self.limit_mw is None else f"{self.limit_mw:g} MW"
        return f"{value} ({self.source})"


def resolve_import_limit(
    what_if_mw: float | None, signals: GridSignals, scenario_mw: float | None, contract_mw: float | None
) -> ImportLimit | None:
    """The import limit in force by the module docstring's precedence; None when nothing sets one (a scenario
    built without a facility). A what-if must be finite and > 0 [MW]."""
    if what_if_mw is not None:
        if not (np.isfinite(what_if_mw) and what_if_mw > 0):
            raise ValueError(f"import_limit_mw: a what-if must be finite and > 0 MW, got {what_if_mw!r}")
        return ImportLimit("what-if", float(what_if_mw))
    if signals.import_limit_mw is not None:
        return ImportLimit("grid signals", None, signals)
    if scenario_mw is not None:
        return ImportLimit("scenario", float(scenario_mw))
    if contract_mw is not None:
        return ImportLimit("contract", float(contract_mw))
    return None


@dataclass(frozen=True, eq=False)
class Scenario:
    """Everything time-varying that drives a run. Times are naive local ``datetime64[s]``.

    ``contract_import_limit_mw`` is the facility's contracted limit (set by :func:`build_scenario`);
    ``what_if_import_limit_mw`` an override set on the built scenario; ``import_limit_in_force`` the
    limit resolved from them, the grid signals and ``spec.grid.import_limit_mw`` (module docstring), again
    on every :meth:`with_changes`.
    """

    name: str
    start: np.datetime64
    weather: Weather
    signals: GridSignals
    workload: dict[str, WorkloadProfile]
    dr_events: tuple[DREvent, ...] = ()
    offset_k: float = 0.0
    carbon_price_per_t: float = 0.0
    spec: ScenarioSpec = field(default_factory=ScenarioSpec)
    grid_targets: tuple[GridTarget, ...] = ()  # load targets from the grid (DSX Flex agent)
    contract_import_limit_mw: float | None = None
    what_if_import_limit_mw: float | None = None
    import_limit_in_force: ImportLimit | None = field(init=False, repr=False)
    faults: tuple[Fault, ...] = ()  # paths of the one-line diagram opened on purpose

    def __post_init__(self) -> None:
        limit = resolve_import_limit(
            self.what_if_import_limit_mw, self.signals, self.spec.grid.import_limit_mw, self.contract_import_limit_mw
        )
        object.__setattr__(self, "import_limit_in_force", limit)

    def ambient(self, times: NDArray[np.datetime64]) -> tuple[NDArray, NDArray]:
        """Dry and wet bulb [degC] at ``times`` including the what-if offset."""
        return self.weather.at(times, self.offset_k)

    def import_limit(self, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
        """Import limit [MW] at ``times``: the one in force (``import_limit_in_force``), tightened by grid
        targets on the grid meter."""
        base = self._limit().at(times)
        return np.minimum(base, self.target_limit(times, "grid")) if self.grid_targets else base

    def import_limit_now(self, time: np.datetime64) -> tuple[float, str]:
        """(limit [MW], source) in force at ``time``: the source is :data:`GRID_TARGET` where a grid target
        is tighter than the resolved limit."""
        t = np.array([np.datetime64(time, "s")])
        base, target = float(self._limit().at(t)[0]), float(self.target_limit(t, "grid")[0])
        return (target, GRID_TARGET) if target < base else (base, self._limit().source)

    def _limit(self) -> ImportLimit:
        if self.import_limit_in_force is None:
            raise ValueError(
                f"scenario {self.name!r}: no import limit (build it for a facility: load_scenario(path, facility))"
            )
        return self.import_limit_in_force

    def check_facility(self, facility) -> None:
        """``ValueError`` when this scenario was built for a facility with another contracted import limit
        (its limit in force was resolved against that contract)."""
        want, have = facility.spec.grid.import_limit_mw, self.contract_import_limit_mw
        if have != want:
            built = "without a facility" if have is None else f"for a contracted import limit of {have:g} MW"
            raise ValueError(
                f"scenario {self.name!r}: built {built}, the facility {facility.spec.name!r} has {want:g} MW; "
                "build the scenario for this facility (load_scenario(path, facility))"
            )

    def target_limit(self, times: NDArray[np.datetime64], meter: str) -> NDArray[np.float64]:
        """Tightest grid load target on ``meter`` at ``times`` [MW] (inf where none is in force)."""
        out = np.full(np.shape(times), np.inf)
        for g in self.grid_targets:
            if g.meter == meter:
                out = np.minimum(out, g.limit_at(times))
        return out

    def dr_depth(self, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
        """Required reduction fraction of the baseline at ``times`` (largest over overlapping events)."""
        out = np.zeros(np.shape(times))
        for ev in self.dr_events:
            out = np.maximum(out, ev.depth_at(times))
        return out

    def utilization(self, cls: str, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
        return self.workload.get(cls, WorkloadProfile()).utilization(times)

    def with_changes(self, **changes) -> Scenario:
        """A copy with fields replaced (what-if: ``offset_k``, ``what_if_import_limit_mw``, ``dr_events``...);
        the import limit in force is resolved again."""
        return replace(self, **changes)


def builtin_scenarios() -> list[str]:
    return data.builtin("scenarios")


def load_scenario(path: str | Path | None, facility) -> Scenario:
    """Load a scenario TOML (a path or a built-in name), or the defaults when ``path`` is None."""
    if path is None:
        return build_scenario(ScenarioSpec(), facility, None, "<defaults>")
    p = Path(path)
    if not p.is_file() and str(path) in builtin_scenarios():
        p = data.path("scenarios", f"{path}.toml")
    if not p.is_file():
        raise FileNotFoundError(f"scenario file not found: {p} (built-in: {', '.join(builtin_scenarios())})")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SpecError(str(p), [("<toml>", str(e))]) from None
    try:
        spec = ScenarioSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(str(p), [describe_validation_error(err) for err in e.errors()]) from None
    return build_scenario(spec, facility, p.parent, str(p))


def build_scenario(spec: ScenarioSpec, facility, base_dir: Path | None, source: str) -> Scenario:
    """Resolve a validated scenario spec against a facility (its climate, workload classes)."""
    errors: list[tuple[str, str]] = []
    start = _time(spec.start, "start", errors)
    unknown = sorted(set(spec.workload) - set(facility.class_names))
    if unknown:
        errors.append(("workload", f"unknown workload class(es) {unknown}; facility has {list(facility.class_names)}"))
    events = []
    for i, ev in enumerate(spec.grid.dr_events):
        t = _time(ev.start, f"grid.dr_events.{i}.start", errors)
        try:
            events.append(
                DREvent(t, ev.duration_h * S_PER_H, ev.depth, ev.ramp_min * S_PER_MIN, ev.notice_min * S_PER_MIN)
            )
        except ValueError as e:
            errors.append((f"grid.dr_events.{i}", str(e)))
    faults = []
    for i, fs in enumerate(spec.faults):
        try:
            faults.append(fault_from_spec(fs))
        except ValueError as e:
            errors.append((f"faults.{i}.at", str(e).partition(": ")[2]))
    names = set(facility.topology.names)
    errors += [(f"faults.{i}.element", f"no element {fs.element!r} in the facility's one-line diagram")
               for i, fs in enumerate(spec.faults) if fs.element not in names]  # fmt: skip
    if errors:
        raise SpecError(source, errors)
    climate = facility.spec.site.climate if spec.weather.climate == "facility" else spec.weather.climate
    weather = load_weather(climate, base_dir)
    _ = weather.wet_bulb_c  # computed once here, not inside a timed run
    sig = spec.grid.signals
    if sig.startswith("builtin:"):
        signals = daily_signals(sig.removeprefix("builtin:"), start - np.timedelta64(1, "D"), 400)
    else:
        p = Path(sig)
        signals = read_signals_csv(p if p.is_absolute() or base_dir is None else base_dir / p, spec.grid.currency)
    return Scenario(
        spec.name,
        start,
        weather,
        signals,
        dict(spec.workload),
        tuple(events),
        spec.weather.offset_k,
        spec.grid.carbon_price_per_t,
        spec,
        contract_import_limit_mw=facility.spec.grid.import_limit_mw,
        faults=tuple(faults),
    )


def _time(text: str, key: str, errors: list) -> np.datetime64:
    try:
        return np.datetime64(text, "s")
    except ValueError:
        errors.append((key, f"must be an ISO 8601 time like 2026-08-07T16:00:00, got {text!r}"))
        return np.datetime64("NaT", "s")
