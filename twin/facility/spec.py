"""Facility specification: the TOML schema, validated with pydantic.

Engineering units at this edge (MW, MWh, kW, degC, L/min, m3); :mod:`twin.facility.assembly` converts to SI.
Unknown keys are errors; every error is reported with its key path and the rule it broke.
"""

from __future__ import annotations

import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

from factory_twin.twin.facility.steering_spec import SteeringSpec
from factory_twin.twin.facility.topology_spec import TopologySpec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Frac = Annotated[float, Field(ge=0, le=1)]
Eff = Annotated[float, Field(gt=0, le=1)]
PosInt = Annotated[int, Field(gt=0)]
MAX_RACKS = 1_000_000  # ~140 GW of NVL72 racks: more is a typing slip (a 1 GW campus has ~7,200)


class SpecError(ValueError):
    """A facility or scenario file broke one or more rules; ``errors`` lists ``(key.path, message)``."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {path}: {msg}" for path, msg in errors)
        super().__init__(f"{source}: {len(errors)} error(s)\n{lines}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(Strict):
    name: str
    climate: str = Field(description="built-in climate name (data/climate/normals.toml) or path to an EPW file")
    latitude_deg: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude_deg: Annotated[float, Field(ge=-180, le=180)] | None = None
    utc_offset_h: Annotated[float, Field(ge=-14, le=14)] = Field(
        0.0, description="local standard time minus UTC [h]: maps the twin's local times to the grid's UTC times"
    )


class Transformer(Strict):
    count: PosInt
    rating_mva: Pos
    no_load_loss_kw: NonNeg
    load_loss_kw: NonNeg = Field(description="load (copper) loss at rated current")


class Ups(Strict):
    modules: PosInt
    module_rating_mw: Pos
    c0: NonNeg = Field(description="no-load loss, per unit of rating")
    c1: NonNeg = Field(description="proportional loss coefficient")
    c2: NonNeg = Field(description="square-law loss coefficient")


class Busway(Strict):
    rating_mw: Pos
    loss_fraction_at_rating: Annotated[float, Field(ge=0, lt=0.2)]


class Psu(Strict):
    load_points: list[Frac] = [0.1, 0.2, 0.5, 1.0]
    efficiencies: list[Eff] = [0.90, 0.94, 0.96, 0.91]

    @model_validator(mode="after")
    def _same_length(self) -> Psu:
        if len(self.load_points) != len(self.efficiencies) or len(self.load_points) < 2:
            raise ValueError("load_points and efficiencies must have the same length (>= 2)")
        if any(b <= a for a, b in pairwise(self.load_points)):
            raise ValueError("load_points must be strictly increasing")
        return self


class Bess(Strict):
    energy_mwh: Pos
    power_mw: Pos
    eta_charge: Eff = 0.922
    eta_discharge: Eff = 0.922
    soc_min: Frac = 0.1
    soc_max: Frac = 0.9
    soc_initial: Frac = 0.5

    @model_validator(mode="after")
    def _soc_order(self) -> Bess:
        if not self.soc_min < self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min}) must be < soc_max ({self.soc_max})")
        if not self.soc_min <= self.soc_initial <= self.soc_max:
            raise ValueError(f"soc_initial ({self.soc_initial}) must lie in [soc_min, soc_max]")
        return self


class Feed(Strict):
    """A metered supply of the site for grid load targets (DSX Flex ``feed_tag``), e.g. one substation
    transformer. The feed carries ``share`` of the power at its ``meter``: the grid import, or the campus GPU
    power (a cluster metered at its GPUs, as in the Emerald field test)."""

    tag: str
    power_minimum_mw: NonNeg
    power_maximum_mw: Pos
    default_constraint_mw: Pos = Field(description="constraint when no load target is active")
    share: Annotated[float, Field(gt=0, le=1)] | None = Field(None, description="default: equal shares")
    meter: Literal["grid", "gpu"] = "grid"

    @model_validator(mode="after")
    def _order(self) -> Feed:
        if not self.power_minimum_mw <= self.default_constraint_mw <= self.power_maximum_mw:
            raise ValueError("need power_minimum_mw <= default_constraint_mw <= power_maximum_mw")
        return self


class Grid(Strict):
    """Grid connection and, without a ``[topology]``, the aggregate power chain (transformers, UPS, busway: the
    degenerate one-line diagram, see :mod:`twin.facility.topology`)."""

    import_limit_mw: Pos
    ramp_limit_mw_per_min: Pos
    power_factor: Annotated[float, Field(gt=0, le=1)] = 0.95
    transformer: Transformer | None = None
    ups: Ups | None = None
    busway: Busway | None = None
    psu: Psu = Psu()
    bess: Bess | None = None
    feeds: list[Feed] = Field(default_factory=list, description="feeds for grid load targets (default: one 'main')")

    @model_validator(mode="after")
    def _feeds(self) -> Grid:
        tags = [f.tag for f in self.feeds]
        if len(set(tags)) != len(tags):
            raise ValueError(f"feeds: tags must be unique, got {tags}")
        return self


class Hall(Strict):
    name: str
    rack_type: str
    cdus: PosInt
    racks_per_cdu: PosInt
    workloads: dict[str, Frac] = Field(description="share of the hall's CDUs per workload class")
    thermal_r_spread: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.0, description="relative standard deviation of die-to-coolant resistance across racks (seeded)"
    )
    psu_curve: str | None = Field(
        None,
        description="the racks' power conversion: a curve of data/converters.toml (e.g. 'dcdc-800v-50v' for racks on "
        "800 VDC); default the facility's grid.psu (AC)",
    )

    @model_validator(mode="after")
    def _shares(self) -> Hall:
        total = sum(self.workloads.values())
        if not self.workloads or abs(total - 1.0) > 1e-6:
            raise ValueError(f"workload shares must sum to 1, got {total:g}")
        return self


class Tcs(Strict):
    fluid: str = "MPG-25%"
    flow_l_min_per_kw: Pos = 1.5
    supply_setpoint_c: Annotated[float, Field(ge=10, le=60)]
    loop_volume_l: Pos = Field(description="return-leg volume of one CDU loop (plug-flow delay)")
    pump_head_m: Pos
    pump_efficiency: Eff
    max_rise_k: Pos | None = Field(
        None,
        description="largest TCS return-minus-supply rise a CDU may carry (its flow limit: heat <= C_tcs x rise); "
        "none: no limit",
    )


class CduFouling(Strict):
    """Heat exchangers of some CDUs of a hall that lost part of their UA (fouling, scaling)."""

    hall: str
    cdus: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, description="CDU indices within the hall, from 0")
    ua_fraction: Annotated[float, Field(gt=0, le=1)] = Field(description="remaining UA over the clean design UA")


class Cdu(Strict):
    capacity_kw: Pos
    design_approach_k: Pos = Field(description="TCS supply minus facility-water supply at design load")
    fws_flow_ratio: Pos = Field(description="facility-water over TCS heat-capacity rate at full valve")
    ua_flow_exponent: Annotated[float, Field(ge=0, le=1)] = 0.8
    arrangement: Literal[
        "counterflow", "parallel", "crossflow_unmixed", "crossflow_cmax_mixed", "crossflow_cmin_mixed"
    ] = "counterflow"
    fouling: list[CduFouling] = Field(default_factory=list, description="degraded CDU heat exchangers")


class FacilityWater(Strict):
    fluid: str = "water"
    supply_setpoint_c: Annotated[float, Field(ge=5, le=50)]
    return_volume_m3: Pos = Field(description="pipe volume from the halls back to the plant")
    pump_head_m: Pos
    pump_efficiency: Eff


class DryCooler(Strict):
    capacity_mw: Pos = Field(description="heat rejected at design approach and full fan speed")
    design_approach_k: Pos = Field(description="fluid outlet minus dry bulb at design capacity")
    fan_power_kw_per_mw: NonNeg = Field(description="fan power per MW rejected at full speed")


class Evaporative(Strict):
    design_approach_k: Pos = Field(description="fluid outlet minus wet bulb at design capacity")
    water_l_per_kwh: NonNeg = Field(description="make-up water per kWh of heat rejected evaporatively")
    fan_power_kw_per_mw: NonNeg = 0.0


class Chiller(Strict):
    capacity_mw: Pos
    carnot_fraction: Annotated[float, Field(gt=0, lt=1)]
    evap_approach_k: NonNeg = 2.0
    cond_approach_k: NonNeg = 5.0


class AirCooling(Strict):
    cop: Pos = Field(description="air-side heat removed per unit of electric power (fans + chiller share)")


class Plant(Strict):
    dry_cooler: DryCooler
    evaporative: Evaporative | None = None
    chiller: Chiller | None = None


class Cooling(Strict):
    tcs: Tcs
    cdu: Cdu
    facility_water: FacilityWater
    plant: Plant
    air: AirCooling


class Pause(Strict):
    """A job may stop and resume: it checkpoints (``checkpoint_s`` at ``checkpoint_gpu_w`` per GPU), idles,
    and restarts (``restart_s`` at ``restart_gpu_w``) before it works again; no throughput meanwhile."""

    checkpoint_s: NonNeg = Field(description="time to write the checkpoint after the job stops computing")
    checkpoint_gpu_w: NonNeg = Field(description="mean draw per GPU while checkpointing")
    restart_s: NonNeg = Field(description="time from resuming to the first useful step (load, initialize)")
    restart_gpu_w: NonNeg = Field(description="mean draw per GPU while restarting")


class Resize(Strict):
    """A job may run on a share of its GPUs (the rest idle at idle draw); throughput scales linearly with
    the GPUs it runs on (each keeps its per-GPU throughput at the cap: data-parallel replicas). GPUs that
    rejoin spend ``rejoin_s`` at ``rejoin_gpu_w`` before they work."""

    min_share: Annotated[float, Field(gt=0, le=1)] = Field(description="smallest share of its GPUs it runs on")
    rejoin_s: NonNeg = Field(description="time a rejoining GPU needs before it works (state load, re-shard)")
    rejoin_gpu_w: NonNeg = Field(description="mean draw per rejoining GPU meanwhile")


class Workload(Strict):
    name: str
    curve: str = Field(description="power-throughput curve name in data/gpu_curves.toml")
    tokens_per_s_per_gpu: Pos = Field(description="at the uncapped draw")
    value_per_mtok: NonNeg = Field(description="value of a million tokens in the scenario currency")
    flex_tier: Frac = Field(description="largest average throughput loss allowed over the window")
    flex_window_h: Pos = 6.0
    min_cap_fraction: Frac | None = Field(None, description="overrides the rack type's minimum cap / TDP")
    drawn_power: Literal["cap", "fit"] = Field(
        "cap",
        description="power drawn under a cap: 'cap' draws min(uncapped draw, cap); 'fit' the curve's fitted "
        "mean draw below the cap (models.gpu.DrawnPower; A100 curves)",
    )
    pause: Pause | None = Field(None, description="the job may be paused (checkpoint and restart costs)")
    resize: Resize | None = Field(None, description="the job may run on a share of its GPUs")


class OpenADR(Strict):
    """How the twin, as an OpenADR 2.0b VEN (``factory-twin openadr-ven``, links.openadr), reads a utility's events:
    the site's stated mapping of each signal to a DR event or an import target."""

    simple_levels: dict[int, Frac] = Field(
        default_factory=dict,
        description="SIMPLE signal level (1-3) -> DR depth, the share of the baseline import shed; level 0 sheds "
        "nothing; events at a level not listed are opted out of",
    )
    capacity_mw: Pos | None = Field(
        None,
        description="import that LOAD_CONTROL x-loadControlCapacity 1.0 stands for (default: grid.import_limit_mw)",
    )
    dispatch_unit: Literal["W", "kW", "MW"] | None = Field(
        None, description="unit of LOAD_DISPATCH values when the event's signal states none (its itemBase)"
    )
    ramp_min: NonNeg | None = Field(
        None,
        description="ramp to an event's target when the event states no x-eiRampUp (default: the DR ramp of the "
        "scenarios, twin.scenario.grid_signals.DR_RAMP_S, 15 min)",
    )
    keep_flex_floors: bool = Field(
        True,
        description="opt out of events below what the jobs' flex floors allow (false: opt in and let the jobs go "
        "below their floors, as far as the minimum caps allow)",
    )
    market_contexts: list[str] = Field(
        default_factory=list, description="DR programs (market contexts) the site takes part in; empty: any"
    )
    grid_hz: Literal[50, 60] = Field(description="nominal grid frequency at the meter (the reports' powerAttributes)")
    meter_voltage_kv: Pos = Field(description="nominal voltage at the meter (the reports' powerAttributes)")

    @field_validator("simple_levels")
    @classmethod
    def _levels(cls, levels: dict[int, float]) -> dict[int, float]:
        bad = sorted(k for k in levels if k not in (1, 2, 3))
        if bad:
            raise ValueError(f"SIMPLE levels are 1, 2 and 3 (0 is normal operation), got {bad}")
        depths = [levels[k] for k in sorted(levels)]
        if any(b < a for a, b in pairwise(depths)):
            raise ValueError("a higher level must not shed less")
        return levels


class FacilitySpec(Strict):
    name: str
    description: str = ""
    site: Site
    grid: Grid
    halls: list[Hall] = Field(min_length=1)
    cooling: Cooling
    workloads: list[Workload] = Field(min_length=1)
    openadr: OpenADR | None = Field(None, description="OpenADR 2.0b event mapping (optional)")
    topology: TopologySpec | None = Field(None, description="the one-line diagram (default: the aggregate chain)")
    steering: SteeringSpec = Field(default_factory=SteeringSpec, description="power policy and resource groups")


AGGREGATE_CHAIN = ("transformer", "ups", "busway")


def parse_facility(text: str, source: str, rack_types: set[str]) -> FacilitySpec:
    """Parse and validate facility TOML text; raise :class:`SpecError` listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(source, [("<toml>", str(e))]) from None
    try:
        spec = FacilitySpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(source, [describe_validation_error(err) for err in e.errors()]) from None
    errors = cross_check(spec, rack_types)
    if errors:
        raise SpecError(source, errors)
    return spec


def cross_check(spec: FacilitySpec, rack_types: set[str]) -> list[tuple[str, str]]:
    """Rules that span keys: names that refer to other entries."""
    errors = []
    names = [w.name for w in spec.workloads]
    if len(set(names)) != len(names):
        errors.append(("workloads", f"workload names must be unique, got {names}"))
    hall_names = [h.name for h in spec.halls]
    if len(set(hall_names)) != len(hall_names):
        errors.append(("halls", f"hall names must be unique, got {hall_names}"))
    racks = sum(h.cdus * h.racks_per_cdu for h in spec.halls)
    if racks > MAX_RACKS:
        errors.append(("halls", f"{racks:,} racks (cdus x racks_per_cdu) is implausible, above {MAX_RACKS:,}"))
    for i, hall in enumerate(spec.halls):
        if hall.rack_type not in rack_types:
            errors.append(
                (f"halls.{i}.rack_type", f"unknown rack type {hall.rack_type!r}; known: {sorted(rack_types)}")
            )
        for w in hall.workloads:
            if w not in names:
                errors.append((f"halls.{i}.workloads.{w}", f"no workload named {w!r}; defined: {names}"))
    chain = [k for k in AGGREGATE_CHAIN if getattr(spec.grid, k) is not None]
    if spec.topology is None:
        errors += [(f"grid.{k}", "required key is missing (or give a [topology])") for k in AGGREGATE_CHAIN
                   if k not in chain]  # fmt: skip
    else:
        errors += [(f"grid.{k}", "the [topology] replaces the aggregate chain: remove this table") for k in chain]
    groups = [g.name for g in spec.steering.groups]
    if len(set(groups)) != len(groups):
        errors.append(("steering.groups", f"group names must be unique, got {groups}"))
    for i, g in enumerate(spec.steering.groups):
        if g.workload is not None and g.workload not in names:
            errors.append((f"steering.groups.{i}.workload", f"no workload named {g.workload!r}; defined: {names}"))
    halls = {h.name: h for h in spec.halls}
    for i, foul in enumerate(spec.cooling.cdu.fouling):
        key = f"cooling.cdu.fouling.{i}"
        if foul.hall not in halls:
            errors.append((f"{key}.hall", f"no hall named {foul.hall!r}; defined: {hall_names}"))
        elif max(foul.cdus) >= halls[foul.hall].cdus:
            n = halls[foul.hall].cdus
            errors.append((f"{key}.cdus", f"hall {foul.hall!r} has CDUs 0..{n - 1}, got {max(foul.cdus)}"))
    return errors


def describe_validation_error(err: dict) -> tuple[str, str]:
    """Turn one pydantic error into ``(key.path, 'rule, got value')``."""
    path = ".".join(str(p) for p in err["loc"]) or "<root>"
    ctx = err.get("ctx") or {}
    rules = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "extra_forbidden": "unknown key (check the spelling)",
        "missing": "required key is missing",
    }
    kind = err["type"]
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
    msg = rules[kind].format(**ctx) if kind in rules else err["msg"].removeprefix("Value error, ")
    if kind not in ("missing", "extra_forbidden") and "input" in err:
        msg += f", got {err['input']!r}"
    return path, msg


def read_text(path: Path) -> str:
    """Read a spec file with a clear error when it is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"facility file not found: {path}")
    return path.read_text(encoding="utf-8")
