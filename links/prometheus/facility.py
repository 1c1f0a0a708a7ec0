"""Facility metrics: every meter of :mod:`twin.simulation.meters` under ``factory_twin_<quantity>_<unit>``.

Names follow Prometheus' conventions (https://prometheus.io/docs/practices/naming/): a ``factory_twin_`` prefix, the
quantity, then the unit in base units, plural (``_watts``, ``_joules``, ``_celsius``, ``_ratio``, ``_grams``; carbon
intensity in ``_grams_per_kilowatt_hour``, the grid's customary unit); counts carry no unit. Values are the meters'
(the interval means of the latest plant step, or the twin's state at its end) converted from the meters' engineering
units; prices and costs keep the scenario's currency as a ``currency`` label. The table :data:`NAMES` lists every
meter; a meter added to ``meters.METERS`` without an entry here fails the package's test, so nothing is left out
silently.

Per-element families take label sets: the CDUs (``hall``, ``cdu`` = ``<hall>-cdu<row:02d>``, as
:mod:`twin.facility.nodes` and the BMS name them) with their supply and return temperatures, heat and whether they
are at capacity.
Further element families (tier loading per transformer, UPS or busway, once the topology work defines it as a meter
over elements) are :class:`Labelled` families passed in ``Readings.elements``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from factory_twin.links.prometheus.exposition import family, header, labels, number
from factory_twin.models.units import J_PER_MWH, KG_PER_T, KW, MJ, MW, S_PER_H
from factory_twin.twin.facility.nodes import cdu_names
from factory_twin.twin.simulation.meters import METERS

PREFIX = "factory_twin_"
G_PER_KG = 1e3

#: meter units -> (Prometheus unit suffix, factor from the meter's value)
UNITS: dict[str, tuple[str, float]] = {
    "MW": ("watts", MW),
    "MWh": ("joules", J_PER_MWH),
    "MJ": ("joules", MJ),
    "J": ("joules", 1.0),
    "degC": ("celsius", 1.0),
    "1": ("ratio", 1.0),
    "s-1": ("per_second", 1.0),
    "kg": ("grams", G_PER_KG),
    "kg s-1": ("grams_per_second", G_PER_KG),
    "t h-1": ("grams_per_second", KG_PER_T * G_PER_KG / S_PER_H),
    "kg MWh-1": ("grams_per_kilowatt_hour", G_PER_KG * KW / MW),
    "currency": ("", 1.0),
    "currency MWh-1": ("per_megawatt_hour", 1.0),
}
#: meter -> quantity part of the metric name
NAMES: dict[str, str] = {
    "grid_import_mw": "grid_import",
    "it_power_mw": "it_power",
    "losses_mw": "power_chain_losses",
    "cooling_power_mw": "cooling_power",
    "bess_power_mw": "bess_power",
    "heat_rejected_mw": "heat_rejected",
    "liquid_heat_mw": "liquid_heat",
    "air_heat_mw": "air_heat",
    "pue": "pue",
    "throughput": "throughput",
    "tokens_per_s": "tokens",
    "throttled_gpus": "throttled_gpus",
    "racks_dark": "racks_dark",
    "tier_loading_max": "one_line_loading_max",
    "tier_headroom_min_mw": "one_line_headroom_min",
    "gpu_power_mw": "gpu_power",
    "psu_loss_mw": "psu_losses",
    "rack_other_mw": "rack_other_power",
    "ppue_cooling": "ppue_cooling",
    "ppue_electrical": "ppue_electrical",
    "energy_per_token_j": "energy_per_token",
    "cost_per_mtok": "cost_per_million_tokens",
    "carbon_kg_per_mtok": "carbon_per_million_tokens",
    "carbon_t_per_h": "carbon_emissions",
    "fws_supply_c": "facility_water_supply_temperature",
    "fws_return_c": "facility_water_return_temperature",
    "dry_bulb_c": "ambient_dry_bulb_temperature",
    "wet_bulb_c": "ambient_wet_bulb_temperature",
    "bess_soc_mwh": "bess_stored_energy",
    "import_limit_mw": "import_limit",
    "price_per_mwh": "energy_price",
    "carbon_kg_per_mwh": "grid_carbon_intensity",
    "dr_depth": "dr_depth",
    "dr_baseline_mw": "dr_baseline",
    "dr_target_mw": "dr_target",
    "fan_power_mw": "heat_rejection_fan_power",
    "chiller_power_mw": "chiller_power",
    "water_use_kg_s": "water_use",
    "stored_heat_mj": "stored_heat",
    "plant_heat_mw": "plant_heat",
    "plant_load_mw": "plant_load",
    "rejection_capacity_mw": "heat_rejection_capacity",
}
COUNTS = frozenset({"throttled_gpus", "racks_dark"})  # unit "1" but a count, not a ratio: no unit suffix
#: series the live runner adds to the meters (twin.live.runner.RUNNER_SERIES): units, long name, name
RUNNER = {
    "plan_mw": ("MW", "grid import the controller's plan expects now", "planned_grid_import"),
}


@dataclass(frozen=True)
class Labelled:
    """A gauge family over elements: one label set and one value [its unit] per element."""

    name: str  # without the prefix, with its unit suffix
    help: str
    label_sets: Sequence[Mapping[str, object]]
    values: Sequence[float]

    def render(self) -> str:
        vals = np.asarray(self.values, float).tolist()
        rows = ((labels(lab), number(v)) for lab, v in zip(self.label_sets, vals, strict=True))
        return family(PREFIX + self.name, "gauge", self.help, rows)


def meter_metric(name: str) -> tuple[str, float, str, bool]:
    """(metric name, factor from the meter's value, help text, whether it carries a currency label)."""
    if name in RUNNER:
        units, long_name, stem = RUNNER[name]
    else:
        units, long_name, stem = METERS[name].units, METERS[name].long_name, NAMES[name]
    suffix, factor = UNITS[units]
    if name in COUNTS:
        suffix = ""
    metric = PREFIX + "_".join(x for x in (stem, suffix) if x)
    return metric, factor, f"{long_name} [{suffix or 'count'}]", units.startswith("currency")


def render_meters(values: Mapping[str, float], currency: str) -> str:
    """One gauge family per meter in ``values`` (names of ``METERS`` or the runner's series)."""
    out = []
    for name, v in values.items():
        metric, factor, text, has_currency = meter_metric(name)
        lab = labels({"currency": currency}) if has_currency else ""
        x = float(v) * factor if v is not None else float("nan")
        out.append(header(metric, "gauge", text) + f"{metric}{lab} {number(x)}\n")
    return "".join(out)


def cdu_label_sets(f) -> list[dict[str, str]]:
    """``hall`` and ``cdu`` (:func:`twin.facility.nodes.cdu_names`, as the BMS names it) of every CDU."""
    return [{"hall": f.hall_names[h], "cdu": c} for h, c in zip(f.cdu_hall.tolist(), cdu_names(f), strict=True)]


def cdu_families(label_sets, supply_c, return_c, q_w, at_capacity) -> list[Labelled]:
    """The CDU families (technology cooling loop side)."""
    return [
        Labelled("cdu_supply_temperature_celsius", "TCS supply temperature leaving the CDU", label_sets, supply_c),
        Labelled("cdu_return_temperature_celsius", "TCS return temperature at the CDU", label_sets, return_c),
        Labelled("cdu_heat_watts", "heat the CDU moves from its TCS loop to the facility water", label_sets, q_w),
        Labelled(
            "cdu_at_capacity",
            "1 while the CDU cannot hold its TCS supply setpoint (its facility-water valve fully open)",
            label_sets,
            np.asarray(at_capacity, float),
        ),
    ]


__all__ = ["NAMES", "PREFIX", "RUNNER", "UNITS", "Labelled", "cdu_families", "cdu_label_sets", "meter_metric"]
