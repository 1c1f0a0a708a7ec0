"""Power chain templates (``data/power_chains.toml``): a hall's one-line diagram on the AC chain or on 800 VDC, a
campus's whole diagram, and the what-if that converts one hall to another rack generation and chain.

A template scales its ratings with the racks it feeds: an element's rating is its ``*_ratio`` times the nameplate
input of its racks (:func:`rack_input_kw`: the rack converters' input with every GPU at TDP). Below each path's
MV switchboard a hall gets, per block of ``block_cdus`` CDU rows:

* ``ac-2n``: unit transformer -> LV switchboard -> UPS -> one 415 V busway per row -> racks (AC PSUs);
* ``dc800-2n``: SST / MV rectifier -> 800 VDC board -> one DC busway per row (solid-state breakers) -> racks
  (DC-DC, the template's ``rack_psu_curve``).

Busway conductors are sized at the busbar current density of ``data/conductors.toml`` for their rated current,
so their I^2 R follows from the conductor (:mod:`models.conductors`). :func:`convert_hall` replaces the elements
that feed only the hall by the new chain under the same MV switchboards: the rest of the site, the mechanical
loads and the grid connection stay as they were.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache

import numpy as np
from factory_twin.models.conductors import busbar_area_mm2, line_current_a
from factory_twin.models.power import psu_input_w
from factory_twin.twin.facility.electrical import conductor_data, converter_curve
from factory_twin.twin.facility.spec import FacilitySpec, Hall, cross_check
from factory_twin.twin.facility.topology import compile_topology, explode_topology
from factory_twin.twin.facility.topology_spec import Element, MechanicalLoad, TopologySpec

from factory_twin import data

PATHS = ("A", "B")


@cache
def chain_templates() -> dict:
    """``data/power_chains.toml`` (sources in the file)."""
    with data.path("power_chains.toml").open("rb") as f:
        return tomllib.load(f)


def chains() -> tuple[str, ...]:
    """Names of the hall chain templates."""
    return tuple(k for k in chain_templates() if k != "site")


def _template(chain: str) -> dict:
    if chain not in chains():
        raise ValueError(f"chain: unknown power chain {chain!r}; known: {', '.join(chains())}")
    return chain_templates()[chain]


def psu_curve_of(chain: str) -> str | None:
    """The rack converter curve a chain's racks take (None: the facility's AC ``grid.psu``)."""
    return _template(chain).get("rack_psu_curve")


def rack_input_kw(spec: FacilitySpec, rack: dict, psu_curve: str | None) -> float:
    """Nameplate input of one rack [kW]: its converters' input with every GPU at TDP (the chain's sizing basis)."""
    dc_w = rack["gpus"] * rack["gpu_tdp_w"] + rack["non_gpu_w"]
    if psu_curve is None:
        x, eta = spec.grid.psu.load_points, spec.grid.psu.efficiencies
    else:
        c = converter_curve(psu_curve)
        x, eta = c.load, c.efficiency
    return float(psu_input_w(dc_w, rack["psu_count"] * rack["psu_rating_w"], x, eta)) / 1e3


def _blocks(rows: int, block_cdus: int) -> int:
    """Blocks of a hall: the largest block size up to the template's that divides the rows evenly."""
    size = max(d for d in range(1, block_cdus + 1) if rows % d == 0)
    return rows // size


def _conductor_mm2(rating_kw: float, voltage_v: float, dc: bool, pf: float) -> float:
    i = line_current_a(rating_kw * 1e3, voltage_v, "dc" if dc else "ac3", 1.0 if dc else pf)
    return round(float(busbar_area_mm2(i, conductor_data()["busbar"]["current_density_a_mm2"])), 1)


def hall_elements(
    spec: FacilitySpec, hall: Hall, rack: dict, chain: str, parents: dict[str, list[str]]
) -> list[Element]:
    """The chain ``chain`` of ``hall`` (racks of type ``rack``) below ``parents`` (per path label: the elements that
    feed it, e.g. the path's MV switchboard)."""
    t = _template(chain)
    pf = spec.grid.power_factor
    row_kw = hall.racks_per_cdu * rack_input_kw(spec, rack, t.get("rack_psu_curve"))
    n_blocks = _blocks(hall.cdus, t["block_cdus"])
    block_kw = row_kw * hall.cdus / n_blocks
    dc = chain != "ac-2n"
    bus_kw = round(t["busway_ratio"] * row_kw, 1)
    bus = {
        "racks": [hall.name],
        "continuous_derate": t["busway_derate"],
        "voltage_v": t["busway_voltage_v"],
        "length_m": t["busway_length_m"],
        "conductor_mm2": _conductor_mm2(bus_kw, t["busway_voltage_v"], dc, pf),
        "protection": t["busway_protection"],
    }
    if dc:
        levels = [
            ("rect", "rectifier", n_blocks, {"rating_kw": round(t["rectifier_ratio"] * block_kw, 1),
             "units": t["rectifier_units"], "curve": t["rectifier_curve"], "protection": t["rectifier_protection"]}),
            ("dcsb", "dc-switchboard", n_blocks, {"rating_kw": round(t["board_ratio"] * block_kw, 1),
             "protection": t["board_protection"]}),
            ("dcbus", "dc-busway", hall.cdus, {"rating_kw": bus_kw, **bus}),
        ]  # fmt: skip
    else:
        kva = round(t["tx_ratio"] * block_kw / pf, 1)
        levels = [
            ("tx", "transformer", n_blocks, {"rating_kva": kva, "no_load_loss_kw": round(t["tx_no_load_pu"] * kva, 3),
             "load_loss_kw": round(t["tx_load_pu"] * kva, 3),
             "protection": chain_templates()["site"]["transformer_protection"]}),
            ("lv", "switchboard", n_blocks, {"rating_kva": round(t["lv_ratio"] * block_kw / pf, 1),
             "protection": t["lv_protection"]}),
            ("ups", "ups", n_blocks, {"rating_kw": round(t["ups_ratio"] * block_kw, 1), "units": t["ups_units"],
             "c0": t["ups_c0"], "c1": t["ups_c1"], "c2": t["ups_c2"], "protection": t["ups_protection"]}),
            ("bus", "busway", hall.cdus, {"rating_kva": round(bus_kw / pf, 1), **bus}),
        ]  # fmt: skip
    out = []
    for path, ps in parents.items():
        up = ps
        for suffix, kind, count, kw in levels:
            name = f"{path}-{hall.name}-{suffix}-{{i}}"
            out.append(Element(name=name, kind=kind, count=count, parents=up, path=path,
                               redundancy=f"{hall.name}-{suffix}-{{i}}", **kw))  # fmt: skip
            up = [name]
    return out


def campus_topology(spec: FacilitySpec, catalog: dict[str, dict], chain_of: dict[str, str]) -> TopologySpec:
    """A 2N diagram of the whole campus: per path, utility feeds (one per ``halls_per_feed`` halls); per hall and path
    a main transformer, an MV switchboard, the mechanical transformers and the hall's chain ``chain_of[hall]``;
    each hall's cooling share on its mechanical transformers (shares by the halls' nameplate input)."""
    site = chain_templates()["site"]
    pf = spec.grid.power_factor
    hall_kw = {
        h.name: h.cdus * h.racks_per_cdu * rack_input_kw(spec, catalog[h.rack_type], psu_curve_of(chain_of[h.name]))
        for h in spec.halls
    }
    groups = [spec.halls[k : k + site["halls_per_feed"]] for k in range(0, len(spec.halls), site["halls_per_feed"])]
    els: list[Element] = []
    for path in PATHS:
        for g, group in enumerate(groups, 1):
            feed = f"utility-{path}{g}"
            kva = round(site["feed_ratio"] * sum(hall_kw[h.name] for h in group) / pf, -2)
            els.append(Element(name=feed, kind="feed", rating_kva=kva, redundancy=f"utility{g}", path=path,
                               protection=site["feed_protection"]))  # fmt: skip
            for h in group:
                tag = f"{path}-{h.name}"
                kva = round(site["main_tx_ratio"] * hall_kw[h.name] / pf, -2)
                mech = round(site["mech_ratio"] * hall_kw[h.name], -1)
                els += [
                    Element(name=f"{tag}-main-tx", kind="transformer", parents=[feed], rating_kva=kva,
                            no_load_loss_kw=round(site["main_tx_no_load_pu"] * kva, 1),
                            load_loss_kw=round(site["main_tx_load_pu"] * kva, 1), redundancy=f"{h.name}-main-tx",
                            path=path, protection=site["transformer_protection"]),
                    Element(name=f"{tag}-mv", kind="switchboard", parents=[f"{tag}-main-tx"], rating_kva=kva,
                            redundancy=f"{h.name}-mv", path=path, protection=site["mv_protection"]),
                    Element(name=f"{tag}-mech", kind="transformer", parents=[f"{tag}-mv"], rating_kva=mech,
                            units=site["mech_units"], no_load_loss_kw=round(site["mech_no_load_pu"] * mech / 4, 3),
                            load_loss_kw=round(site["mech_load_pu"] * mech / 4, 3), redundancy=f"{h.name}-mech",
                            path=path, protection=site["transformer_protection"]),
                ]  # fmt: skip
    for h in spec.halls:
        els += hall_elements(spec, h, catalog[h.rack_type], chain_of[h.name], {p: [f"{p}-{h.name}-mv"] for p in PATHS})
    total = sum(hall_kw.values())
    shares = [hall_kw[h.name] / total for h in spec.halls]
    shares[-1] = 1.0 - sum(shares[:-1])
    mech = [MechanicalLoad(name=f"cooling-{h.name}", share=s, parents=[f"{p}-{h.name}-mech" for p in PATHS])
            for h, s in zip(spec.halls, shares, strict=True)]  # fmt: skip
    return TopologySpec(name=f"{spec.name} ({', '.join(sorted(set(chain_of.values())))})", elements=els,
                        mechanical=mech)  # fmt: skip


def with_chains(spec: FacilitySpec, catalog: dict[str, dict], chain_of: dict[str, str]) -> FacilitySpec:
    """``spec`` with its halls on the chains ``chain_of`` (every hall named): the halls' rack converters and the
    campus diagram of :func:`campus_topology` (the aggregate chain tables dropped)."""
    missing = sorted({h.name for h in spec.halls} - set(chain_of))
    if missing:
        raise ValueError(f"chain_of: no chain for halls {missing}")
    halls = [h.model_copy(update={"psu_curve": psu_curve_of(chain_of[h.name])}) for h in spec.halls]
    s = spec.model_copy(update={"halls": halls})
    grid = s.grid.model_copy(update={"transformer": None, "ups": None, "busway": None})
    return _checked(s.model_copy(update={"grid": grid, "topology": campus_topology(s, catalog, chain_of)}), catalog)


def convert_hall(
    spec: FacilitySpec,
    catalog: dict[str, dict],
    hall: str,
    rack_type: str,
    chain: str = "dc800-2n",
    workloads: dict[str, float] | None = None,
) -> FacilitySpec:
    """What-if: hall ``hall`` rebuilt with ``rack_type`` racks on ``chain`` inside the same building and grid
    connection. The hall keeps its CDUs; racks per CDU become the most its CDUs can cool (at most as many as
    before); workloads default to the hall's classes, each replaced by ``<class>-rubin`` where the facility defines
    one (tokens per GPU differ by generation). The elements that feed only this hall are replaced by ``chain``
    under the same parents (its MV switchboards). ``ValueError`` names what stops it."""
    names = [h.name for h in spec.halls]
    if hall not in names:
        raise ValueError(f"hall: no hall named {hall!r}; halls: {', '.join(names)}")
    if rack_type not in catalog:
        raise ValueError(f"rack type: unknown {rack_type!r}; known: {', '.join(sorted(catalog))}")
    if spec.topology is None:
        raise ValueError(f"{spec.name}: converting one hall needs a [topology] (the aggregate chain feeds all racks "
                         "alike); see docs/power-topology.md")  # fmt: skip
    k = names.index(hall)
    old = spec.halls[k]
    rack = catalog[rack_type]
    heat_kw = (rack["gpus"] * rack["gpu_tdp_w"] + rack["non_gpu_w"]) * rack["liquid_fraction"] / 1e3
    per_cdu = min(old.racks_per_cdu, math.floor(spec.cooling.cdu.capacity_kw / heat_kw))
    if per_cdu < 1:
        raise ValueError(f"{rack_type}: one rack ({heat_kw:.0f} kW to liquid) exceeds a CDU's capacity "
                         f"({spec.cooling.cdu.capacity_kw:g} kW)")  # fmt: skip
    classes = {w.name for w in spec.workloads}
    wl = workloads or {(f"{c}-rubin" if f"{c}-rubin" in classes else c): s for c, s in old.workloads.items()}
    new = old.model_copy(update={"rack_type": rack_type, "racks_per_cdu": per_cdu, "workloads": wl,
                                 "psu_curve": psu_curve_of(chain)})  # fmt: skip
    topo = compile_topology(spec)
    in_hall = hall_racks(spec, hall)
    exclusive = hall_only(topo, in_hall)
    shared = np.unique(topo.rack_edge_parent[in_hall[topo.rack_edge_rack] & ~exclusive[topo.rack_edge_parent]])
    if shared.size:
        raise ValueError(f"{hall}: its racks hang from elements that also feed other halls or cooling "
                         f"({', '.join(topo.names[e] for e in shared[:3])}): convert the diagram by hand")  # fmt: skip
    parents: dict[str, list[str]] = {}
    for e in np.flatnonzero(exclusive):
        for p in topo.parents(e):
            if not exclusive[p]:
                label = topo.path[e] or "A"
                parents.setdefault(label, [])
                if topo.names[p] not in parents[label]:
                    parents[label].append(topo.names[p])
    exploded = explode_topology(spec)
    keep = [el for i, el in enumerate(exploded.elements) if not exclusive[i]]
    halls = [*spec.halls[:k], new, *spec.halls[k + 1 :]]
    s = spec.model_copy(update={"halls": halls})
    topo_spec = exploded.model_copy(update={"elements": keep + hall_elements(s, new, rack, chain, parents)})
    return _checked(s.model_copy(update={"topology": topo_spec}), catalog)


def hall_racks(spec: FacilitySpec, hall: str) -> np.ndarray:
    """Boolean over the facility's racks: those of hall ``hall``."""
    offsets = np.cumsum([0] + [h.cdus * h.racks_per_cdu for h in spec.halls])
    k = [h.name for h in spec.halls].index(hall)
    out = np.zeros(int(offsets[-1]), bool)
    out[offsets[k] : offsets[k + 1]] = True
    return out


def hall_only(topo, racks: np.ndarray) -> np.ndarray:
    """Boolean over the elements of ``topo``: those that feed some of ``racks`` and nothing else (no other rack, no
    mechanical load below them): the chain that belongs to those racks alone."""
    below = topo.racks_below()
    has_rack = np.asarray(below.sum(axis=1)).ravel() > 0
    outside = np.asarray(below[:, ~racks].sum(axis=1)).ravel() > 0
    return has_rack & ~outside & ~_above_mechanical(topo)


def _above_mechanical(topo) -> np.ndarray:
    """Elements with a mechanical load on them or below them."""
    mark = np.zeros(topo.n, bool)
    mark[topo.mech_edge_parent] = True
    for lv in topo.levels:  # from the racks up: a marked element marks its parents
        for e in lv[mark[lv]].tolist():
            mark[topo.parents(e)] = True
    return mark


def _checked(spec: FacilitySpec, catalog: dict[str, dict]) -> FacilitySpec:
    """Re-validate a spec built in code (pydantic rules and the cross-key checks of a file)."""
    from factory_twin.twin.facility.spec import SpecError

    s = FacilitySpec.model_validate(spec.model_dump(exclude_none=False))
    errors = cross_check(s, set(catalog))
    if errors:
        raise SpecError(spec.name, errors)
    return s
