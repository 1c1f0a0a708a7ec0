"""The measurement layer: every reported campus quantity, defined once.

The engine reports the interval means of each plant step as a :class:`PlantStepResult` (raw books in W
and tokens/s); :class:`IntervalMean` averages them over a record interval. A :class:`Reading` pairs such
a mean with the twin's state and the grid signals at the end of the interval, and each :data:`METERS`
entry turns a reading into one number in engineering units, with its units and long name. The recorder
(fixed-length Dataset), the live runner (ring buffer and the snapshot's ``now`` values), ``TwinState``
and the CLI summary all read these definitions; nothing else re-derives them. Ratios (PUE, pPUE, energy
and cost per token) come from :mod:`factory_twin.models.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
from factory_twin.models import metrics
from factory_twin.models.units import J_PER_MWH, KG_PER_T, KW, MJ, MW, S_PER_H
from factory_twin.twin.simulation.targets import dr_over


@dataclass
class PlantStepResult:
    """Interval means over one plant step [W unless stated] (the engine's raw meter books); ``tier_in_w`` and
    ``tier_loss_w`` hold the load and losses of every element of the one-line diagram [W] (``[n_elements]``)."""

    gpu_w: float
    rack_dc_w: float
    it_w: float
    losses_w: float
    cooling_w: float
    grid_w: float  # at the meter, before the BESS
    bess_w: float  # > 0 discharging into the site
    q_liquid_w: float
    q_air_w: float
    q_rejected_w: float
    tokens_per_s: float
    tokens_uncapped_per_s: float
    throttled_gpus: float
    racks_dark: float = 0.0  # racks with every path to them open
    tier_in_w: np.ndarray | None = None
    tier_loss_w: np.ndarray | None = None


TIER_FIELDS = ("tier_in_w", "tier_loss_w")
STEP_FIELDS = tuple(fl.name for fl in fields(PlantStepResult) if fl.name not in TIER_FIELDS)


class PowerBooks(Protocol):
    """What the power meters read: a :class:`PlantStepResult` or any steady point with these fields [W]."""

    it_w: Any
    losses_w: Any
    cooling_w: Any
    grid_w: Any
    bess_w: Any


def grid_import_w(s: PowerBooks) -> Any:
    """Power imported at the point of interconnection [W]: the meter flow net of the BESS."""
    return s.grid_w - s.bess_w


def pue(s: PowerBooks) -> Any:
    """PUE of the site: grid before the BESS over IT (metrics.pue; NaN without IT load)."""
    return metrics.pue(s.grid_w, s.it_w)


def throughput(s: PlantStepResult) -> float:
    """Token throughput relative to uncapped at the same demand (1 when nothing is demanded)."""
    return s.tokens_per_s / s.tokens_uncapped_per_s if s.tokens_uncapped_per_s else 1.0


class IntervalMean:
    """Running mean of plant-step results (the one-line diagram's element books included) and of per-rack GPU
    power over one record interval."""

    def __init__(self, n_racks: int):
        self._sum = dict.fromkeys(STEP_FIELDS, 0.0)
        self._tier: dict[str, np.ndarray] = {}
        self._gpu = np.zeros(n_racks)
        self.count = 0

    def add(self, r: PlantStepResult, gpu_power_w: np.ndarray) -> None:
        for k in STEP_FIELDS:
            self._sum[k] += getattr(r, k)
        for k in TIER_FIELDS:
            v = getattr(r, k)
            if v is not None:
                self._tier[k] = self._tier[k] + v if k in self._tier else v.copy()
        self._gpu += gpu_power_w
        self.count += 1

    def mean(self) -> PlantStepResult:
        tier = {k: v / self.count for k, v in self._tier.items()}
        return PlantStepResult(**{k: v / self.count for k, v in self._sum.items()}, **tier)

    def gpu_power_w(self) -> np.ndarray:
        """Mean power per GPU of each rack over the interval [W]."""
        return self._gpu / self.count

    def reset(self) -> None:
        self._sum = dict.fromkeys(STEP_FIELDS, 0.0)
        self._tier = {}
        self._gpu[:] = 0.0
        self.count = 0


@dataclass(frozen=True)
class GridNow:
    """Grid signals and limits in force at one time; the DR baseline (NaN while no event asks for a reduction) and
    target (NaN but past an event's ramp): :func:`twin.simulation.targets.dr_over`."""

    import_limit_mw: float
    price_per_mwh: float
    carbon_kg_per_mwh: float
    dr_depth: float
    dr_baseline_mw: float = math.nan
    dr_target_mw: float = math.nan

    @classmethod
    def at(cls, twin: Any) -> GridNow:
        return cls.over(twin, np.array([twin.time]))[0]

    @classmethod
    def over(cls, twin: Any, times: np.ndarray) -> list[GridNow]:
        """The signals in force at each of ``times`` under the twin's scenario (one lookup per signal); the DR
        baseline from ``twin.dr_baseline_mw`` (:func:`twin.simulation.targets.dr_baseline_mw`)."""
        sc = twin.scenario
        columns = (
            sc.import_limit(times),
            sc.signals.at(times, "price_per_mwh"),
            sc.signals.at(times, "carbon_kg_per_mwh"),
            *dr_over(sc, twin.dr_baseline_mw, times),
        )
        return [cls(*map(float, row)) for row in zip(*columns, strict=True)]


@dataclass(frozen=True)
class Reading:
    """Inputs of the meters: interval means, the twin at the end of the interval, its grid signals.

    The power meters read only ``step``, so a steady point with the :class:`PowerBooks` fields and no
    twin serves too (the design point).
    """

    step: PlantStepResult | PowerBooks
    twin: Any
    grid: GridNow | None

    @classmethod
    def of(cls, step: PlantStepResult, twin: Any, grid: GridNow | None = None) -> Reading:
        """The reading of ``step`` at the twin's present time (``grid``: its signals, if known)."""
        return cls(step, twin, grid or GridNow.at(twin))


@dataclass(frozen=True)
class Meter:
    """One reported quantity: units, long name, formula over a :class:`Reading`, and whether the
    simulation Dataset records it (the live runner keeps every meter)."""

    units: str
    long_name: str
    read: Callable[[Reading], float]
    recorded: bool = True


def _plant_capacity_mw(tw: Any) -> float:
    return float(tw.plant.capacity_w(*tw.ambient, tw.c_fws_total, tw.fws_setpoint_c)) / MW


def _plant_load_mw(tw: Any) -> float:
    return max(tw.c_fws_total * (tw.fws_return_c - tw.fws_setpoint_c), 0.0) / MW


def _tier(r: Reading, what: str) -> float:
    """Campus reduction of the one-line diagram's element meters (NaN before the first step)."""
    tin = r.step.tier_in_w
    if tin is None:
        return math.nan
    topo = r.twin.f.topology
    if what == "loading":
        return float(np.max(topo.loading(tin)))
    return float(np.min(topo.headroom_w(tin))) / MW


def _import_w(r: Reading) -> float:
    return grid_import_w(r.step)


def _per_token(r: Reading, per: Callable[..., Any], *factor: float) -> float:
    """A per-token metric of the grid import (NaN while the site exports: no import to attribute)."""
    p = _import_w(r)
    return float(per(p, *factor, r.step.tokens_per_s)) if p >= 0 else math.nan


METERS: dict[str, Meter] = {
    # interval means of the engine's books
    "grid_import_mw": Meter(
        "MW", "power imported at the point of interconnection (after BESS)", lambda r: _import_w(r) / MW
    ),
    "it_power_mw": Meter("MW", "IT power at the rack inputs (PSU inputs)", lambda r: r.step.it_w / MW),
    "losses_mw": Meter("MW", "transformer + UPS + busway losses", lambda r: r.step.losses_w / MW),
    "cooling_power_mw": Meter(
        "MW", "pumps, heat-rejection fans, chiller and air cooling", lambda r: r.step.cooling_w / MW
    ),
    "bess_power_mw": Meter("MW", "BESS power into the site (> 0 discharging)", lambda r: r.step.bess_w / MW),
    "heat_rejected_mw": Meter(
        "MW",
        "heat rejected in total: the plant (facility water) and the air system",
        lambda r: r.step.q_rejected_w / MW,
    ),
    "liquid_heat_mw": Meter("MW", "heat delivered to the technology cooling loops", lambda r: r.step.q_liquid_w / MW),
    "air_heat_mw": Meter("MW", "heat removed by the air system", lambda r: r.step.q_air_w / MW),
    "pue": Meter("1", "power usage effectiveness (grid before BESS / IT)", lambda r: float(pue(r.step))),
    "throughput": Meter("1", "token throughput relative to uncapped at the same demand", lambda r: throughput(r.step)),
    "tokens_per_s": Meter("s-1", "tokens produced per second", lambda r: r.step.tokens_per_s),
    "throttled_gpus": Meter("1", "GPUs held by the thermal throttle (interval mean)", lambda r: r.step.throttled_gpus),
    "racks_dark": Meter(
        "1", "racks without power: every path to them open (interval mean)", lambda r: r.step.racks_dark, False
    ),
    "tier_loading_max": Meter(
        "1",
        "highest loading (load over rating) of an element of the one-line diagram",
        lambda r: _tier(r, "loading"),
        False,
    ),
    "tier_headroom_min_mw": Meter(
        "MW",
        "smallest headroom (continuous limit minus load) of an element of the one-line diagram",
        lambda r: _tier(r, "headroom"),
        False,
    ),
    "gpu_power_mw": Meter("MW", "GPU power", lambda r: r.step.gpu_w / MW, recorded=False),
    "psu_loss_mw": Meter(
        "MW", "PSU losses (IT meter minus rack DC)", lambda r: (r.step.it_w - r.step.rack_dc_w) / MW, recorded=False
    ),
    "rack_other_mw": Meter(
        "MW", "rack DC loads other than GPUs", lambda r: (r.step.rack_dc_w - r.step.gpu_w) / MW, recorded=False
    ),
    "ppue_cooling": Meter(
        "1",
        "partial PUE of cooling (IT + cooling) / IT",
        lambda r: float(metrics.ppue(r.step.it_w, r.step.cooling_w)),
        recorded=False,
    ),
    "ppue_electrical": Meter(
        "1",
        "partial PUE of the power chain (IT + losses) / IT",
        lambda r: float(metrics.ppue(r.step.it_w, r.step.losses_w)),
        recorded=False,
    ),
    "energy_per_token_j": Meter(
        "J",
        "grid import per token",
        lambda r: _per_token(r, metrics.energy_per_token_j),
        recorded=False,
    ),
    "cost_per_mtok": Meter(
        "currency",
        "electricity cost per million tokens at the present price",
        lambda r: _per_token(r, metrics.cost_per_mtok, r.grid.price_per_mwh),
        recorded=False,
    ),
    "carbon_kg_per_mtok": Meter(
        "kg",
        "CO2 per million tokens at the present grid intensity",
        lambda r: _per_token(r, metrics.carbon_per_mtok, r.grid.carbon_kg_per_mwh),
        recorded=False,
    ),
    "carbon_t_per_h": Meter(
        "t h-1",
        "CO2 emission rate of the grid import",
        lambda r: r.grid.carbon_kg_per_mwh * _import_w(r) / MW / KG_PER_T,
        recorded=False,
    ),
    # the twin's state and the grid signals at the end of the interval
    "fws_supply_c": Meter("degC", "facility water supply temperature", lambda r: r.twin.fws_supply_c),
    "fws_return_c": Meter("degC", "facility water return temperature at the plant", lambda r: r.twin.fws_return_c),
    "dry_bulb_c": Meter("degC", "ambient dry bulb", lambda r: r.twin.ambient[0]),
    "wet_bulb_c": Meter("degC", "ambient wet bulb", lambda r: r.twin.ambient[1]),
    "bess_soc_mwh": Meter("MWh", "BESS stored energy", lambda r: r.twin.bess_energy_j / J_PER_MWH),
    "import_limit_mw": Meter("MW", "import limit at the point of interconnection", lambda r: r.grid.import_limit_mw),
    "price_per_mwh": Meter("currency MWh-1", "energy price", lambda r: r.grid.price_per_mwh),
    "carbon_kg_per_mwh": Meter("kg MWh-1", "grid carbon intensity", lambda r: r.grid.carbon_kg_per_mwh),
    "dr_depth": Meter("1", "demand-response reduction required (fraction of baseline)", lambda r: r.grid.dr_depth),
    "dr_baseline_mw": Meter(
        "MW",
        "demand-response baseline: the counterfactual uncapped import (NaN outside DR events)",
        lambda r: r.grid.dr_baseline_mw,
    ),
    "dr_target_mw": Meter(
        "MW",
        "demand-response target (1 - depth) x baseline, the tightest of the events past their ramp (NaN elsewhere)",
        lambda r: r.grid.dr_target_mw,
    ),
    "fan_power_mw": Meter("MW", "dry and evaporative cooler fan power", lambda r: r.twin.rejection.fan_w / MW),
    "chiller_power_mw": Meter("MW", "chiller trim power", lambda r: r.twin.rejection.chiller_w / MW),
    "water_use_kg_s": Meter("kg s-1", "evaporative make-up water", lambda r: r.twin.rejection.water_kg_s),
    "stored_heat_mj": Meter(
        "MJ", "heat held in racks, pipes and loops (0 degC reference)", lambda r: r.twin.stored_heat_j() / MJ
    ),
    "plant_heat_mw": Meter(
        "MW",
        "heat rejected by the plant from the facility water (excludes the air system)",
        lambda r: float(r.twin.rejection.q_w) / MW,
        recorded=False,
    ),
    "plant_load_mw": Meter(
        "MW",
        "heat the plant must reject to return the facility water at its supply setpoint",
        lambda r: _plant_load_mw(r.twin),
        recorded=False,
    ),
    "rejection_capacity_mw": Meter(
        "MW",
        "plant heat-rejection capacity at the present ambient and supply setpoint (Plant.capacity_w)",
        lambda r: _plant_capacity_mw(r.twin),
        recorded=False,
    ),
}
RECORDED = tuple(k for k, m in METERS.items() if m.recorded)
#: Recorded as well when the facility has its own one-line diagram (``[topology]``).
TOPOLOGY_RECORDED = ("racks_dark", "tier_loading_max", "tier_headroom_min_mw")


@dataclass(frozen=True)
class TierMeter:
    """A per-element quantity of the one-line diagram: units, long name, formula over the topology and the interval
    means of element loads and losses [W] (``[n_elements]`` or ``[..., n_elements]``)."""

    units: str
    long_name: str
    read: Callable[[Any, np.ndarray, np.ndarray], np.ndarray]


TIER_METERS: dict[str, TierMeter] = {
    "tier_load_kw": TierMeter("kW", "power into the element (its load; 0 when open)", lambda t, i, lo: i / KW),
    "tier_loss_kw": TierMeter("kW", "losses of the element (its kind's loss model)", lambda t, i, lo: lo / KW),
    "tier_loading": TierMeter(
        "1", "load over rating (apparent power over kVA for kVA-rated elements)", lambda t, i, lo: _last(t.loading, i)
    ),
    "tier_headroom_kw": TierMeter(
        "kW", "continuous limit (rating x continuous derate) minus load", lambda t, i, lo: _last(t.headroom_w, i) / KW
    ),
}


def _last(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Apply a per-element function of the topology (elements first) to ``x`` with elements last."""
    return np.moveaxis(fn(np.moveaxis(x, -1, 0)), 0, -1)


def tier_read(topology: Any, step: PlantStepResult | PowerBooks) -> dict[str, np.ndarray]:
    """Every :data:`TIER_METERS` value per element for interval means ``step`` (empty before the first step)."""
    if getattr(step, "tier_in_w", None) is None:
        return {}
    return {k: m.read(topology, step.tier_in_w, step.tier_loss_w) for k, m in TIER_METERS.items()}


# units of the per-period figures of a recorded run (period_totals)
PERIOD_UNITS = {"grid_energy_mwh": "MWh", "it_energy_mwh": "MWh", "pue": "1", "water_t": "t", "cost": "currency",
         "tokens": "1", "cost_per_mtok": "currency", "hours_throttled": "h", "throttled_gpu_hours": "h"}  # fmt: skip


def period_totals(ds: Any) -> dict[str, float]:
    """Energies and sums of one period of a recorded run (the whole run or one month): ratios are ratios of
    the period's energies (PUE at the utility meter; cost per million tokens at the import-weighted price)."""
    h = float(ds.attrs["record_s"]) / S_PER_H
    grid = float(ds.grid_import_mw.sum()) * h  # after the BESS
    meter = float((ds.grid_import_mw + ds.bess_power_mw).sum()) * h  # at the utility meter, before the BESS
    it = float(ds.it_power_mw.sum()) * h
    cost = float((ds.grid_import_mw * ds.price_per_mwh).sum()) * h
    tokens = float(ds.tokens_per_s.sum()) * h * S_PER_H
    hours = ds.time.size * h
    mean_import_w = grid * MW / hours if hours else 0.0
    price = cost / grid if grid else 0.0  # import-weighted price: mean power x this price = the period's cost
    return {
        "grid_energy_mwh": grid,
        "it_energy_mwh": it,
        "pue": float(metrics.pue(meter, it)),
        "water_t": float(ds.water_use_kg_s.sum()) * h * S_PER_H / KG_PER_T,
        "cost": cost,
        "tokens": tokens,
        "cost_per_mtok": float(metrics.cost_per_mtok(mean_import_w, price, tokens / (hours * S_PER_H)))
        if hours
        else np.nan,
        "hours_throttled": float((ds.throttled_gpus > 0).sum()) * h,
        "throttled_gpu_hours": float(ds.throttled_gpus.sum()) * h,
    }


def read(reading: Reading, names: Iterable[str] = METERS) -> dict[str, float]:
    """The value of each named meter for ``reading``."""
    return {k: METERS[k].read(reading) for k in names}


def attrs(name: str) -> dict[str, str]:
    """xarray attributes of meter ``name``."""
    m = METERS[name]
    return {"units": m.units, "long_name": m.long_name}
