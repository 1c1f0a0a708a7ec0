"""The power-architecture study (issue 24): the same racks served by today's AC chain (``ac-2n``: MV/LV unit
substations, double-conversion UPS, 415 V busways, rack PSUs to 54 V) and by 800 VDC (``dc800-2n``: SST / MV
rectifier, 800 VDC board, DC busways with solid-state breakers, rack DC-DC), at 100 MW (campus-100mw) and 1 GW
(campus-1gw). Both chains are drawn from the templates of ``data/power_chains.toml`` on the site's own halls
(:func:`twin.facility.power_chains.with_chains`), so they differ only in what converts and distributes power.

One case is ``(facility, chain, part)``: ``part`` 1-12 is a twelfth of the year (730 h from the scenario's
start) at ``step``; ``part`` 0 is the design point. A year part evaluates the steady site model
(:mod:`twin.simulation.design`: rack totals, cooling at the ambient, every element of the one-line diagram with
every path closed) at each step, every busy GPU at its uncapped draw and the utilization and weather of the
scenario: quasi-steady, because converters and busways have no storage worth modelling at a 15 min step (the
cooling plant's thermal inertia moves energy between steps, not the year's sum). Per tier of the chain it books
the energy in and the energy lost:

    loss_tier = sum_t sum_{e in tier} loss_e(t) dt          in_tier = sum_t sum_{e in tier} P_in,e(t) dt
    eta_tier = 1 - loss_tier / in_tier                      eta_chain = prod_{tiers on the IT path} eta_tier

and closes the book ``grid = rack input + element losses + cooling`` at every step. The design case gives the
chain efficiency with every GPU at 100 / 50 / 25 % of TDP at design ambient, import and cooling-plant headroom
at TDP, the most loaded element on one path after the loss of the other (N-1), tokens per MWh at design and the
copper of the distribution (busways from the diagram's conductors, in-rack busbars at the busbar current
density; ``data/conductors.toml``) and the storage each chain needs to meet the grid's sub-second ramp and
oscillation rules for the default training wave (:mod:`optimization.studies.storage_sizing`: AC rack batteries,
800 VDC bus supercapacitor and battery).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np
import xarray as xr
from factory_twin.models.conductors import busbar_area_mm2, copper_mass_kg
from factory_twin.models.units import MW, S_PER_H

FACILITIES = ("campus-100mw", "campus-1gw")
PARTS = 12  # twelfths of a 365-day year
YEAR_H = 365 * 24
LOAD_POINTS = (1.0, 0.5, 0.25)  # GPU power as a fraction of TDP for the part-load efficiencies
# tiers of the one-line diagram, by the name suffix power_chains gives each element; "rack" is the racks' own
# converters (PSUs or DC-DC)
TIERS = {
    "feed": "utility feed",
    "main-tx": "main transformer 154/22.9 kV",
    "mv": "MV switchboard",
    "tx": "unit transformer 22.9 kV/415 V",
    "lv": "LV switchboard",
    "ups": "UPS (double conversion)",
    "bus": "415 V AC busway",
    "rect": "SST / MV rectifier to 800 VDC",
    "dcsb": "800 VDC board",
    "dcbus": "800 VDC busway",
    "rack": "rack PSU (AC) / DC-DC (800 V)",
    "mech": "mechanical transformers (cooling)",
}
IT_PATH = tuple(t for t in TIERS if t != "mech")
CONDUCTORS = {"busway": 4, "dc-busway": 2}  # per circuit: 3 phases + full neutral; + and - (power_chains [bus-j])


@lru_cache(maxsize=4)
def study_facility(facility: str, chain: str):
    """``facility`` (a built-in name or path) with every hall on ``chain``; cached per worker process."""
    from factory_twin.twin.facility.assembly import assemble, load_facility, rack_catalog
    from factory_twin.twin.facility.power_chains import with_chains

    f = load_facility(facility)
    catalog = rack_catalog()
    spec = with_chains(f.spec, catalog, {h.name: chain for h in f.spec.halls})
    return assemble(spec, catalog, f"{f.source} (every hall on {chain})")


def tier_of(topology, hall_names) -> np.ndarray:
    """The :data:`TIERS` key of every element of a diagram built by :mod:`twin.facility.power_chains`."""
    halls = "|".join(re.escape(h) for h in sorted(hall_names, key=len, reverse=True))
    pat = re.compile(rf"^(?:utility-.*|[A-Z]+-(?:{halls})-(?P<tier>[a-z-]+?)(?:-\d+)?)$")
    out = []
    for name in topology.names:
        m = pat.match(name)
        if m is None or (m["tier"] is not None and m["tier"] not in TIERS):
            raise ValueError(f"{name}: not an element of a power-chain template (twin.facility.power_chains)")
        out.append(m["tier"] or "feed")
    return np.array(out)


def tier_books(f, gpu_w: np.ndarray, dry_bulb_c, wet_bulb_c, types=None) -> dict[str, np.ndarray]:
    """Steady site model for per-GPU power ``gpu_w`` [W] (``[T, types]``): per tier the input and the losses
    ``[tiers, T]`` [W] (:data:`TIERS` order), rack DC, rack input, cooling and grid ``[T]`` [W]."""
    from factory_twin.twin.simulation import design

    types = types or design.rack_types(f)
    rt = design.rack_totals(f, gpu_w, types)
    cooling = np.asarray(design.cooling_power_w(f, rt.q_liquid_w, rt.q_air_w, dry_bulb_c, wet_bulb_c), float)
    red = design.reduced(f)
    x = np.moveaxis(np.asarray(rt.rack_in_w, float), -1, 0)
    in_w, loss_w, losses, grid = f.topology.flow_reduced(red, x, cooling)
    tier = tier_of(f.topology, f.hall_names)[red.rep]
    keys = list(TIERS)
    onehot = np.zeros((len(keys), red.rep.size))
    onehot[[keys.index(t) for t in tier], np.arange(red.rep.size)] = red.count
    t_in, t_loss = onehot @ in_w, onehot @ loss_w
    r = keys.index("rack")
    rack_in, rack_dc = np.asarray(rt.it_w, float), np.asarray(rt.rack_dc_w, float)
    t_in[r], t_loss[r] = rack_in, rack_in - rack_dc
    return {"in_w": t_in, "loss_w": t_loss, "losses_w": losses, "rack_dc_w": rack_dc, "rack_in_w": rack_in,
            "cooling_w": cooling, "grid_w": grid}  # fmt: skip


def chain_efficiency(in_e: np.ndarray, loss_e: np.ndarray) -> float:
    """Product of the IT-path tiers' efficiencies ``1 - loss / in`` (tiers the chain lacks count 1)."""
    keys = list(TIERS)
    eta = 1.0
    for t in IT_PATH:
        k = keys.index(t)
        if in_e[k] > 0:
            eta *= 1.0 - loss_e[k] / in_e[k]
    return float(eta)


def _year_times(scenario, part: int, step_s: float) -> np.ndarray:
    span = YEAR_H * S_PER_H // PARTS
    t0 = np.datetime64(scenario.start, "s") + np.timedelta64(int((part - 1) * span), "s")
    return t0 + (np.arange(int(span // step_s)) * step_s).astype("timedelta64[s]")


def year_part(facility: str, chain: str, part: int, step_s: float) -> dict[str, Any]:
    """Energy books of one twelfth of the year (see the module docstring) [MWh, currency, tokens]."""
    from factory_twin.twin import load_scenario
    from factory_twin.twin.simulation import design

    f = study_facility(facility, chain)
    sc = load_scenario(None, f)
    times = _year_times(sc, part, step_s)
    types = design.rack_types(f)
    r = types.rack
    u = np.stack([sc.utilization(c, times) for c in f.class_names], axis=1)[:, f.rack_class[r]]  # [T, types]
    db, wb = sc.ambient(times)
    gpu_w = u * f.demand_w[r] + (1 - u) * f.idle_w[r]
    b = tier_books(f, gpu_w, db, wb, types)
    residual = b["grid_w"] - (b["rack_in_w"] + b["losses_w"] + b["cooling_w"])
    h = step_s / S_PER_H
    price = sc.signals.at(times, "price_per_mwh")
    tps = np.array([w.tokens_per_s_per_gpu for w in f.spec.workloads])[f.rack_class[r]]
    tokens = float(np.sum(types.count * f.gpus[r] * u * tps)) * step_s
    losses = b["loss_w"].sum(axis=0)  # elements and rack converters
    return {
        "grid_mwh": float(b["grid_w"].sum()) * h / MW,
        "rack_dc_mwh": float(b["rack_dc_w"].sum()) * h / MW,
        "cooling_mwh": float(b["cooling_w"].sum()) * h / MW,
        "tier_in_mwh": b["in_w"].sum(axis=1) * h / MW,
        "tier_loss_mwh": b["loss_w"].sum(axis=1) * h / MW,
        "energy_cost": float(np.sum(b["grid_w"] * price)) * h / MW,
        "loss_cost": float(np.sum(losses * price)) * h / MW,
        "tokens": tokens,
        "peak_import_mw": float(b["grid_w"].max()) / MW,
        "import_limit_mw": float(np.min(sc.import_limit(times))),
        "hours": times.size * h,
        "book_residual": float(np.max(np.abs(residual)) / np.max(b["grid_w"])),
    }


def design_case(facility: str, chain: str) -> dict[str, Any]:
    """Design-point figures of the facility on ``chain`` (see the module docstring)."""
    from factory_twin.optimization.studies.storage_sizing import size_storage
    from factory_twin.twin.facility.power_chains import chain_templates
    from factory_twin.twin.scenario.weather import climate_normals
    from factory_twin.twin.simulation.conversion import design_figures
    from factory_twin.twin.simulation.design import rack_types

    f = study_facility(facility, chain)
    types = rack_types(f)
    normals = climate_normals().get(f.spec.site.climate, {})
    db, wb = normals.get("design_dry_bulb_c", 35.0), normals.get("design_wet_bulb_c", 27.0)
    eta = []
    for x in LOAD_POINTS:
        b = tier_books(f, x * f.tdp_w[types.rack][None, :], db, wb, types)
        eta.append(chain_efficiency(b["in_w"][:, 0], b["loss_w"][:, 0]))
    d = design_figures(f, f.hall_names[0])
    copper = copper_kg(f, chain_templates()[chain])
    return {
        "chain_efficiency_load": np.array(eta),
        "design_it_mw": d.it_mw,
        "design_grid_mw": d.grid_mw,
        "design_losses_mw": d.losses_mw,
        "design_import_headroom_mw": d.import_headroom_mw,
        "plant_headroom_mw": d.plant_headroom_mw,
        "n1_loading": d.n1_loading,
        "n1_element": d.n1_element,
        "tokens_per_mwh_design": d.tokens_per_mwh,
        "copper_busway_kg": copper[0],
        "copper_rack_kg": copper[1],
        **size_storage(facility, chain),
    }


def copper_kg(f, template: dict) -> tuple[float, float]:
    """Copper of the distribution [kg]: the busways of the diagram (conductor area x length x conductors per
    circuit) and the racks' busbars from their power conversion to the trays (the template's ``rack_bus_*``: two
    conductors at the busbar current density carrying the rack's power at TDP)."""
    from factory_twin.twin.facility.electrical import conductor_data

    cu = conductor_data()
    rho = cu["copper"]["density_kg_m3"]
    bus = sum(
        float(copper_mass_kg(el.conductor_mm2, el.length_m, CONDUCTORS[el.kind] * el.count, rho))
        for el in f.spec.topology.elements
        if el.kind in CONDUCTORS and el.conductor_mm2
    )
    rack_w = f.gpus * f.tdp_w + f.non_gpu_w
    area = busbar_area_mm2(rack_w / template["rack_bus_voltage_v"], cu["busbar"]["current_density_a_mm2"])
    rack = float(np.sum(copper_mass_kg(area, template["rack_bus_length_m"], 2, rho)))
    return bus, rack


def architecture_case(context: dict[str, Any], facility: str, chain: str, part: int, **params: Any) -> dict[str, Any]:
    """One case of the study (top level, picklable): ``part`` 0 the design point, 1-12 a twelfth of the year."""
    from factory_twin.twin.scenario.timeparse import seconds

    if part == 0:
        return design_case(facility, chain)
    step_s = seconds(context.get("options", {}).get("step", "15min"), "options.step")
    return year_part(facility, chain, int(part), step_s)


def check(study: dict[str, Any]) -> None:
    """Refuse unknown chains, facilities without halls to convert or parts outside 0-12, before any case runs."""
    from factory_twin.twin.facility.assembly import load_facility
    from factory_twin.twin.facility.power_chains import chains

    sweep = study.get("sweep", {})
    problems = [f"sweep.chain = {c!r}: unknown; known: {', '.join(chains())}" for c in sweep.get("chain", [])
                if c not in chains()]  # fmt: skip
    problems += [f"sweep.part = {p!r}: 0 (design) or 1-{PARTS}" for p in sweep.get("part", [])
                 if not isinstance(p, int) or not 0 <= p <= PARTS]  # fmt: skip
    for name in sweep.get("facility", []):
        try:
            load_facility(name)
        except (FileNotFoundError, ValueError) as e:
            problems.append(f"sweep.facility = {name!r}: {e}")
    if problems:
        raise ValueError("sweep: bad values, nothing was run\n  " + "\n  ".join(problems))


def label_dims(ds: xr.Dataset) -> xr.Dataset:
    """Name the array dims of the collected cases: ``tier`` (:data:`TIERS`) and ``load_point`` (fraction of TDP)."""
    ren = {f"{k}_dim0": d for k, d in (("tier_in_mwh", "tier"), ("tier_loss_mwh", "tier"),
                                       ("chain_efficiency_load", "load_point")) if f"{k}_dim0" in ds.dims}  # fmt: skip
    ds = ds.rename(ren)
    if "tier" in ds.dims:
        ds = ds.assign_coords(tier=list(TIERS))
    if "load_point" in ds.dims:
        ds = ds.assign_coords(load_point=list(LOAD_POINTS))
    return ds


SUMMARY_UNITS = {
    "year_grid_mwh": "MWh", "year_rack_dc_mwh": "MWh", "year_cooling_mwh": "MWh", "year_losses_mwh": "MWh",
    "year_tier_loss_mwh": "MWh", "year_tier_efficiency": "1", "year_chain_efficiency": "1", "year_energy_cost":
    "currency", "year_loss_cost": "currency", "year_tokens": "1", "year_tokens_per_mwh": "1/MWh",
    "year_peak_import_mw": "MW", "year_import_headroom_mw": "MW", "year_book_residual": "1", "copper_kg": "kg",
    "copper_value_usd": "USD",
}  # fmt: skip


def summarise(ds: xr.Dataset) -> xr.Dataset:
    """The year (parts 1-12 summed) and the design point (part 0) per facility and chain."""
    from factory_twin.twin.facility.electrical import conductor_data

    year = ds.sel(part=[p for p in ds.part.values if p != 0])
    design = ds.sel(part=0)
    loss = year.tier_loss_mwh.sum("part")
    tin = year.tier_in_mwh.sum("part")
    eta = (1 - loss / tin).where(tin > 0)
    grid = year.grid_mwh.sum("part")
    out = xr.Dataset(
        {
            "year_grid_mwh": grid,
            "year_rack_dc_mwh": year.rack_dc_mwh.sum("part"),
            "year_cooling_mwh": year.cooling_mwh.sum("part"),
            "year_losses_mwh": loss.sum("tier"),
            "year_tier_loss_mwh": loss,
            "year_tier_efficiency": eta,
            "year_chain_efficiency": eta.sel(tier=list(IT_PATH)).fillna(1.0).prod("tier"),
            "year_energy_cost": year.energy_cost.sum("part"),
            "year_loss_cost": year.loss_cost.sum("part"),
            "year_tokens": year.tokens.sum("part"),
            "year_tokens_per_mwh": year.tokens.sum("part") / grid,
            "year_peak_import_mw": year.peak_import_mw.max("part"),
            "year_import_headroom_mw": year.import_limit_mw.min("part") - year.peak_import_mw.max("part"),
            "year_book_residual": year.book_residual.max("part"),
            "copper_kg": design.copper_busway_kg + design.copper_rack_kg,
            "copper_value_usd": (design.copper_busway_kg + design.copper_rack_kg)
            * conductor_data()["copper"]["price_usd_per_t"]
            / 1e3,
        }
    )
    for k, u in SUMMARY_UNITS.items():
        out[k].attrs["units"] = u
    hours = year.hours.sum("part")
    if not bool(np.allclose(hours, YEAR_H)):
        out.attrs["warning"] = f"the year covers {float(hours.min()):,.0f} h, not {YEAR_H:,} (failed parts)"
    return out


def table_rows(ds: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the study's table: one column per facility and chain (collected and summarised ``ds``)."""
    cols = [(f, c) for f in ds.facility.values for c in ds.chain.values]
    cur = ds.attrs.get("currency", "KRW")

    def row(label: str, fn) -> list[str]:
        out = [label]
        for f, c in cols:
            try:
                out.append(fn(ds.sel(facility=f, chain=c)))
            except (KeyError, ValueError):
                out.append("–")
        return out

    def pct(x) -> str:
        return "–" if not np.isfinite(float(x)) else f"{float(x):.2%}"

    rows = [row(f"{TIERS[t]}: efficiency over the year", lambda d, t=t: pct(d.year_tier_efficiency.sel(tier=t)))
            for t in TIERS if t not in ("feed", "mv", "lv", "dcsb")]  # fmt: skip
    rows += [
        row("chain efficiency over the year (rack DC / IT-path input)", lambda d: pct(d.year_chain_efficiency)),
        *[row(f"chain efficiency, every GPU at {x:.0%} of TDP", lambda d, x=x: pct(at_design(d, "chain_efficiency_load")
              .sel(load_point=x))) for x in LOAD_POINTS],
        row("grid energy over the year [GWh]", lambda d: f"{float(d.year_grid_mwh) / 1e3:,.1f}"),
        row("rack DC energy [GWh]", lambda d: f"{float(d.year_rack_dc_mwh) / 1e3:,.1f}"),
        row("cooling energy [GWh]", lambda d: f"{float(d.year_cooling_mwh) / 1e3:,.1f}"),
        row("electrical losses [GWh]", lambda d: f"{float(d.year_losses_mwh) / 1e3:,.2f}"),
        row(f"cost of the losses [{cur} bn]", lambda d: f"{float(d.year_loss_cost) / 1e9:,.2f}"),
        row(f"energy cost [{cur} bn]", lambda d: f"{float(d.year_energy_cost) / 1e9:,.1f}"),
        row("copper: busways + in-rack busbars [t]", lambda d: f"{float(d.copper_kg) / 1e3:,.1f}"),
        row("copper metal value at the 2025 LME mean [USD M]", lambda d: f"{float(d.copper_value_usd) / 1e6:,.2f}"),
        row("peak import over the year [MW]", lambda d: f"{float(d.year_peak_import_mw):,.1f}"),
        row("import headroom: limit - peak over the year [MW]", lambda d: f"{float(d.year_import_headroom_mw):,.1f}"),
        row("import headroom at TDP, design ambient [MW]",
            lambda d: f"{float(at_design(d, 'design_import_headroom_mw')):,.1f}"),
        row("cooling plant headroom at design [MW]", lambda d: f"{float(at_design(d, 'plant_headroom_mw')):,.1f}"),
        row("N-1: most loaded element after losing a path, at TDP",
            lambda d: f"{float(at_design(d, 'n1_loading')):.0%} ({n1_name(d)})"),
        row("storage for the grid's sub-second rules: energy [MWh]",
            lambda d: f"{float(at_design(d, 'storage_energy_mwh')):,.3f}"),
        row("storage: power [MW]", lambda d: f"{float(at_design(d, 'storage_power_mw')):,.1f}"),
        row("storage: layers", lambda d: str(at_design(d, "storage_layers").values)),
        row("storage: battery time constant [s]", lambda d: f"{float(at_design(d, 'storage_battery_tau_s')):g}"),
        row("storage: rules met (value/limit)", lambda d: ("" if bool(at_design(d, "storage_compliant")) else
                                                            "MISSED: ") + str(at_design(d, "storage_rules").values)),
        row("storage: rules that bind (fail at the next shorter time constant)",
            lambda d: str(at_design(d, "storage_binding").values)),
        row("tokens per MWh over the year [1e6]", lambda d: f"{float(d.year_tokens_per_mwh) / 1e6:,.2f}"),
        row("energy book residual (max over steps)", lambda d: f"{float(d.year_book_residual):.1e}"),
    ]  # fmt: skip
    return ["", *[f"{f} {c}" for f, c in cols]], rows


def at_design(d: xr.Dataset, name: str) -> xr.DataArray:
    """A design-case variable (part 0) of the summarised ``d``."""
    return d[name].sel(part=0)


def n1_name(d: xr.Dataset) -> str:
    """The N-1 element's tier (the element names differ by hall and block)."""
    name = str(at_design(d, "n1_element").values).split(" after")[0]
    for key in sorted(TIERS, key=len, reverse=True):
        if re.search(rf"-{key}(?:-\d+)?$", name):
            return TIERS[key]
    return name


def markdown(ds: xr.Dataset) -> str:
    """The table as Markdown (docs/power-architecture.md and the CLI)."""
    head, rows = table_rows(ds)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
