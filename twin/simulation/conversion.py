"""The hall conversion what-if: one hall rebuilt with another rack generation on another power chain
(:func:`twin.facility.power_chains.convert_hall`), and what it does to the site at its design point.

``HALL:RACK_TYPE[:CHAIN]`` (e.g. ``hall-B:vr-nvl72``, chain ``dc800-2n`` by default) names a conversion on the
command line (``simulate``, ``optimize``, ``validate --convert-hall``) and in the live twin's command path. The
comparison is the steady site model (:mod:`twin.simulation.design`) with every GPU at TDP at the site's design
ambient: IT power, grid import against the connection's limit, heat against the cooling plant's capacity, losses,
the hall's chain efficiency (rack DC over what the hall's own elements take from the site), the most loaded
element, and tokens per MWh at that point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models.units import MW
from factory_twin.twin.facility.assembly import Facility, assemble, rack_catalog
from factory_twin.twin.facility.power_chains import chains, convert_hall, hall_only, hall_racks
from factory_twin.twin.scenario.weather import climate_normals
from factory_twin.twin.simulation import design


@dataclass(frozen=True)
class Conversion:
    """A parsed ``HALL:RACK_TYPE[:CHAIN]``."""

    hall: str
    rack_type: str
    chain: str = "dc800-2n"

    def __str__(self) -> str:
        return f"{self.hall}:{self.rack_type}:{self.chain}"


def parse_conversion(text: str, option: str = "--convert-hall") -> Conversion:
    """``HALL:RACK_TYPE[:CHAIN]`` -> :class:`Conversion`; ``ValueError`` naming ``option`` and what is wrong."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"{option}: expected HALL:RACK_TYPE[:CHAIN], e.g. hall-B:vr-nvl72, got {text!r}")
    catalog = rack_catalog()
    if parts[1] not in catalog:
        raise ValueError(f"{option}: unknown rack type {parts[1]!r}; known: {', '.join(sorted(catalog))}")
    if len(parts) == 3 and parts[2] not in chains():
        raise ValueError(f"{option}: unknown chain {parts[2]!r}; known: {', '.join(chains())}")
    return Conversion(*parts)


def converted(f: Facility, conv: Conversion) -> Facility:
    """``f`` with the conversion applied (a new :class:`Facility`; ``ValueError`` names what stops it)."""
    catalog = rack_catalog()
    spec = convert_hall(f.spec, catalog, conv.hall, conv.rack_type, conv.chain)
    return assemble(spec, catalog, f"{f.source} ({conv})")


@dataclass(frozen=True)
class DesignFigures:
    """One facility at its design point (every GPU at TDP, design ambient, every path closed) [MW unless stated]."""

    it_mw: float
    grid_mw: float
    limit_mw: float
    losses_mw: float
    cooling_mw: float
    heat_mw: float
    plant_capacity_mw: float
    hall_racks: int
    hall_it_mw: float
    hall_efficiency: float
    top_element: str
    top_loading: float
    n1_element: str
    n1_loading: float
    tokens_per_mwh: float

    @property
    def import_headroom_mw(self) -> float:
        return self.limit_mw - self.grid_mw

    @property
    def plant_headroom_mw(self) -> float:
        return self.plant_capacity_mw - self.heat_mw


def design_figures(f: Facility, hall: str) -> DesignFigures:
    """:class:`DesignFigures` of ``f`` with ``hall`` as the hall of interest."""
    normals = climate_normals().get(f.spec.site.climate, {})
    db, wb = normals.get("design_dry_bulb_c", 35.0), normals.get("design_wet_bulb_c", 27.0)
    sp = design.steady_point(f, f.tdp_w, db, wb)
    rt = design.rack_totals(f, f.tdp_w)
    flow = design.grid_flow(f, rt, sp.cooling_w)
    in_hall = hall_racks(f.spec, hall)
    rack_dc = f.gpus * f.tdp_w + f.non_gpu_w
    own = hall_only(f.topology, in_hall) if f.topology.explicit else np.zeros(f.topology.n, bool)
    hall_in = float(rt.rack_in_w[in_hall].sum() + flow.loss_w[own].sum())
    feeding = np.asarray(f.topology.racks_below()[:, in_hall].sum(axis=1)).ravel() > 0  # every element above the hall
    loading = np.where(feeding, f.topology.loading(flow.in_w) / f.topology.derate, 0.0)
    top = int(np.argmax(loading))
    n1_name, n1 = _worst_path_loss(f, rt.rack_in_w, float(sp.cooling_w), feeding)
    plant = design._plant(f)
    cap = plant.capacity_w(db, wb, float(f.c_fws_max_w_k.sum()))
    tokens = float(np.sum(f.gpus * np.array([w.tokens_per_s_per_gpu for w in f.spec.workloads])[f.rack_class]))
    return DesignFigures(
        it_mw=float(sp.it_w) / MW,
        grid_mw=float(sp.grid_w) / MW,
        limit_mw=f.spec.grid.import_limit_mw,
        losses_mw=float(sp.losses_w) / MW,
        cooling_mw=float(sp.cooling_w) / MW,
        heat_mw=float(sp.q_liquid_w) / MW,
        plant_capacity_mw=float(cap) / MW,
        hall_racks=int(in_hall.sum()),
        hall_it_mw=float(rack_dc[in_hall].sum()) / MW,
        hall_efficiency=float(rack_dc[in_hall].sum()) / hall_in,
        top_element=f.topology.names[top],
        top_loading=float(loading[top]),
        n1_element=n1_name,
        n1_loading=n1,
        tokens_per_mwh=tokens * 3600.0 / (float(sp.grid_w) / MW),
    )


def _worst_path_loss(f: Facility, rack_in_w: np.ndarray, mech_w: float, among: np.ndarray) -> tuple[str, float]:
    """The most loaded of the elements ``among`` (of its continuous limit) after the loss of a whole path (every
    element labelled with it open), over the paths; ("", 0) without paths."""
    topo = f.topology
    worst = ("", 0.0)
    for label in sorted({p for p in topo.path if p}):
        closed = np.array([p != label for p in topo.path])
        rt = topo.routing(closed)
        fl = topo.flow(rt, rack_in_w, mech_w)
        load = np.where(rt.energized & among, topo.loading(fl.in_w) / topo.derate, 0.0)
        e = int(np.argmax(load))
        if load[e] > worst[1]:
            worst = (f"{topo.names[e]} after losing path {label}", float(load[e]))
    return worst


def comparison_rows(before: DesignFigures, after: DesignFigures) -> list[tuple[str, str, str]]:
    """(label, before, after) rows of the what-if for the CLI and the dashboard."""

    def mw(x: float) -> str:
        return f"{x:,.1f}"

    return [
        ("racks in the hall", f"{before.hall_racks:,}", f"{after.hall_racks:,}"),
        ("hall rack power at TDP [MW]", mw(before.hall_it_mw), mw(after.hall_it_mw)),
        ("hall chain efficiency (rack DC / hall input)", f"{before.hall_efficiency:.2%}",
         f"{after.hall_efficiency:.2%}"),
        ("campus IT at TDP [MW]", mw(before.it_mw), mw(after.it_mw)),
        ("design grid import [MW]", mw(before.grid_mw), mw(after.grid_mw)),
        ("import headroom to the limit [MW]", mw(before.import_headroom_mw), mw(after.import_headroom_mw)),
        ("heat to the cooling plant [MW]", mw(before.heat_mw), mw(after.heat_mw)),
        ("cooling plant headroom at design ambient [MW]", mw(before.plant_headroom_mw), mw(after.plant_headroom_mw)),
        ("electrical losses [MW]", mw(before.losses_mw), mw(after.losses_mw)),
        ("most loaded element feeding the hall (of its limit)", f"{before.top_element} {before.top_loading:.0%}",
         f"{after.top_element} {after.top_loading:.0%}"),
        ("most loaded on one path (N-1)", f"{before.n1_element} {before.n1_loading:.0%}",
         f"{after.n1_element} {after.n1_loading:.0%}"),
        ("tokens per MWh at design [1e6]", f"{before.tokens_per_mwh / 1e6:,.1f}", f"{after.tokens_per_mwh / 1e6:,.1f}"),
    ]  # fmt: skip


def workload_notes(before: Facility, after: Facility, hall: str) -> list[str]:
    """Workload classes the converted hall kept although its GPU changed: their tokens per GPU were set for the
    old GPU (define ``<class>-rubin`` classes, as campus-1gw-mixed does, to give the new one its own)."""
    k = list(before.hall_names).index(hall)
    old, new = before.spec.halls[k], after.spec.halls[k]
    catalog = rack_catalog()
    if catalog[old.rack_type]["gpu_model"] == catalog[new.rack_type]["gpu_model"]:
        return []
    gpu = catalog[old.rack_type]["gpu_model"]
    kept = sorted(set(old.workloads) & set(new.workloads))
    return [f"{hall} keeps workload class {c!r}, whose tokens per GPU were set for {gpu}" for c in kept]


@dataclass(frozen=True)
class WhatIf:
    """The hall conversion compared at the design point: the facility after it, the figures before and after, the
    (label, before, after) rows and the warnings (workload classes kept across GPUs, targets missed)."""

    conversion: Conversion
    after_facility: Facility
    before: DesignFigures
    after: DesignFigures
    rows: list[tuple[str, str, str]]
    warnings: list[str]


def what_if(f: Facility, conv: Conversion) -> WhatIf:
    """:class:`WhatIf` of ``conv`` on ``f`` (the CLI's ``validate --convert-hall`` and the dashboard's Power page)."""
    g = converted(f, conv)
    b, a = design_figures(f, conv.hall), design_figures(g, conv.hall)
    return WhatIf(conv, g, b, a, comparison_rows(b, a), [*workload_notes(f, g, conv.hall), *warnings_for(a)])


def warnings_for(after: DesignFigures) -> list[str]:
    """What the converted site misses at its design point (never a silent wrong result)."""
    out = []
    if after.import_headroom_mw < 0:
        out.append(f"design grid import {after.grid_mw:,.1f} MW exceeds the import limit {after.limit_mw:,.1f} MW "
                   f"by {-after.import_headroom_mw:,.1f} MW: the dispatch caps the GPUs at full load")  # fmt: skip
    if after.plant_headroom_mw < 0:
        out.append(f"heat {after.heat_mw:,.1f} MW exceeds the cooling plant's capacity at design ambient "
                   f"({after.plant_capacity_mw:,.1f} MW)")  # fmt: skip
    if after.top_loading > 1.0:
        out.append(f"{after.top_element} carries {after.top_loading:.0%} of its continuous limit at design")
    if after.n1_loading > 1.0:
        out.append(f"{after.n1_element}: {after.n1_loading:.0%} of its continuous limit at design (N-1: the dispatch "
                   "caps the GPUs to ride a path loss through, optimize --n-minus-1)")  # fmt: skip
    return out
