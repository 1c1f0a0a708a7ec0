"""Assembly: a validated facility spec compiled into SI numpy arrays over racks and CDUs.

Racks are numbered hall by hall, CDU by CDU; ``rack_cdu``/``rack_hall``/``rack_class`` map each rack to
its CDU, hall and workload class, so every per-rack quantity is one array and every aggregation is one
``np.bincount``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from factory_twin.models.cooling import ntu_from_effectiveness
from factory_twin.models.fluids import Coolant
from factory_twin.models.gpu import DrawnPower, ThroughputCurve
from factory_twin.models.units import KW, M3_S_PER_L_MIN, MW
from factory_twin.twin.facility.curves import load_curve, load_drawn
from factory_twin.twin.facility.electrical import converter_curve
from factory_twin.twin.facility.spec import FacilitySpec, SpecError, parse_facility, read_text
from factory_twin.twin.facility.topology import Topology, compile_topology
from numpy.typing import NDArray

from factory_twin import data

RACK_FIELDS = (
    "gpus",
    "gpus_per_node",
    "gpu_tdp_w",
    "gpu_idle_w",
    "gpu_min_cap_w",
    "non_gpu_w",
    "liquid_fraction",
    "psu_count",
    "psu_rating_w",
    "r_die_plate_k_w",
    "r_plate_coolant_k_w",
    "c_die_j_k",
    "c_plate_j_k",
    "t_max_c",
    "throttle_hysteresis_k",
)

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]


def rack_catalog() -> dict[str, dict]:
    """Rack types from ``data/racks.toml`` (sources in that file)."""
    with data.path("racks.toml").open("rb") as f:
        return tomllib.load(f)


def builtin_facilities() -> list[str]:
    """Names of the reference facilities shipped in ``data/facilities``."""
    return data.builtin("facilities")


@dataclass(frozen=True, eq=False)
class Facility:
    """A facility ready to simulate: the spec plus SI arrays over racks (``rack_*``) and CDUs (``cdu_*``)."""

    spec: FacilitySpec
    source: str
    class_names: tuple[str, ...]
    hall_names: tuple[str, ...]
    curves: tuple[ThroughputCurve, ...]
    drawn: tuple[DrawnPower | None, ...]  # per class: fitted draw under a cap, None = draw min(demand, cap)
    # racks
    rack_hall: IntArray
    rack_cdu: IntArray
    rack_class: IntArray
    rack_row: IntArray
    rack_slot: IntArray
    gpus: Array
    gpus_per_node: Array  # GPUs per compute node (one host, BMC and DCGM exporter; data/racks.toml [nodes])
    tdp_w: Array
    idle_w: Array
    min_cap_w: Array
    demand_w: Array
    non_gpu_w: Array
    liquid_fraction: Array
    psu_count: Array
    psu_rating_w: Array
    r_die_plate_k_w: Array
    r_plate_coolant_k_w: Array
    c_die_j_k: Array
    c_plate_j_k: Array
    t_max_c: Array
    throttle_hysteresis_k: Array
    rack_m_dot_kg_s: Array
    # CDUs
    cdu_hall: IntArray
    cdu_class: IntArray
    c_tcs_w_k: Array
    c_fws_max_w_k: Array
    cdu_ua_nom_w_k: Array  # at nominal flows, with cooling.cdu.fouling applied
    cdu_design_q_w: Array
    tcs_v_dot_m3_s: Array
    tcs: Coolant
    fws: Coolant
    topology: Topology  # the one-line diagram (twin.facility.topology), the aggregate chain by default
    # rack power conversion: curve per rack (index into psu_curves: (load points, efficiencies)); curve 0 is the
    # facility's grid.psu, others the halls' psu_curve (data/converters.toml)
    psu_curve: IntArray
    psu_curves: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]

    @property
    def n_racks(self) -> int:
        return self.rack_cdu.size

    @property
    def n_cdus(self) -> int:
        return self.cdu_hall.size

    @cached_property
    def design_gpu_w(self) -> Array:
        """GPU power per rack at the classes' uncapped draw [W]."""
        return self.gpus * self.demand_w

    @cached_property
    def rack_design_w(self) -> Array:
        """Rack DC power at full GPU TDP [W] (nameplate; the sizing basis for flows and CDUs)."""
        return self.gpus * self.tdp_w + self.non_gpu_w

    @cached_property
    def non_gpu_liquid_w(self) -> Array:
        """Non-GPU power per rack whose heat goes to the liquid [W]: the rack's liquid-captured share of its
        nameplate beyond the GPUs (the GPUs' heat always goes through their cold plates)."""
        return (self.liquid_fraction * self.rack_design_w - self.gpus * self.tdp_w).clip(0.0, self.non_gpu_w)

    def drawn_w(self, cap_w: Array, racks: IntArray | None = None) -> Array:
        """Mean power drawn per busy GPU under per-rack caps ``cap_w`` [W]: ``min(demand_w, cap)``, or the
        class's fitted draw (:class:`models.gpu.DrawnPower`) where its workload sets ``drawn_power = "fit"``.
        With ``racks``, ``cap_w[i]`` is a cap on a GPU of rack ``racks[i]`` (e.g. one cap per GPU)."""
        r = slice(None) if racks is None else racks
        demand, tdp, cls = self.demand_w[r], self.tdp_w[r], self.rack_class[r]
        out = np.minimum(demand, cap_w)
        for i, d in enumerate(self.drawn):
            if d is not None:
                idx = cls == i
                out[idx] = d.drawn(np.asarray(cap_w, float)[idx] / tdp[idx]) * tdp[idx]
        return out

    def cap_for_drawn_w(self, drawn_w: Array) -> Array:
        """Per-rack caps [W] under which busy GPUs draw ``drawn_w`` [W] (inverse of :meth:`drawn_w`; a draw
        at or above the uncapped draw gives TDP)."""
        out = np.where(drawn_w >= self.demand_w * (1 - 1e-9), self.tdp_w, drawn_w)
        for i, d in enumerate(self.drawn):
            if d is not None:
                idx = self.rack_class == i
                out[idx] = d.cap_for(np.asarray(drawn_w, float)[idx] / self.tdp_w[idx]) * self.tdp_w[idx]
        return out

    def psu_efficiency(self, load_fraction: Array) -> Array:
        """Efficiency of each rack's converter at ``load_fraction`` of its rating [-] (one value per rack)."""
        out = np.empty(self.n_racks)
        for k, (x, eta) in enumerate(self.psu_curves):
            sel = self.psu_curve == k
            out[sel] = np.interp(np.asarray(load_fraction, float)[sel], x, eta)
        return out

    def summary(self) -> dict[str, float]:
        """Headline numbers: racks, GPUs, CDUs, IT MW at TDP."""
        return {
            "racks": self.n_racks,
            "cdus": self.n_cdus,
            "gpus": int(self.gpus.sum()),
            "it_design_mw": float(self.rack_design_w.sum() / MW),
        }


def load_facility(name_or_path: str | Path) -> Facility:
    """Load a built-in facility by name (``campus-100mw``, ``campus-1gw``) or a TOML file by path."""
    p = Path(name_or_path)
    if p.suffix != ".toml" and str(name_or_path) in builtin_facilities():
        p = data.path("facilities", f"{name_or_path}.toml")
    elif not p.is_file():
        raise FileNotFoundError(
            f"facility {str(name_or_path)!r}: not a file and not a built-in name ({', '.join(builtin_facilities())})"
        )
    catalog = rack_catalog()
    spec = parse_facility(read_text(p), str(p), set(catalog))
    climate = Path(spec.site.climate)
    if climate.suffix.lower() == ".epw" and not climate.is_absolute():  # relative to the spec file, not the CWD
        site = spec.site.model_copy(update={"climate": str(p.parent.resolve() / climate)})
        spec = spec.model_copy(update={"site": site})
    return assemble(spec, catalog, str(p))


def assemble(spec: FacilitySpec, catalog: dict[str, dict], source: str = "<spec>") -> Facility:
    """Compile a validated spec into arrays; design checks raise :class:`SpecError` naming the key."""
    topology = compile_topology(spec, source)
    class_names = tuple(w.name for w in spec.workloads)
    curves = tuple(load_curve(w.curve) for w in spec.workloads)
    drawn = tuple(load_drawn(w.curve) if w.drawn_power == "fit" else None for w in spec.workloads)
    pairs = enumerate(zip(spec.workloads, drawn, strict=True))
    no_fit = [(i, w) for i, (w, d) in pairs if d is None and w.drawn_power == "fit"]
    if no_fit:
        raise SpecError(
            source,
            [(f"workloads.{i}.drawn_power", f"curve {w.curve!r} has no drawn-power fit; use 'cap'") for i, w in no_fit],
        )
    cdu_hall, cdu_class = _place_cdus(spec, class_names)
    racks_per_cdu = np.array([spec.halls[h].racks_per_cdu for h in cdu_hall])
    rack_cdu = np.repeat(np.arange(cdu_hall.size), racks_per_cdu)
    rack_hall = cdu_hall[rack_cdu]
    rack_class = cdu_class[rack_cdu]
    first_in_hall = np.array([np.flatnonzero(cdu_hall == h)[0] for h in range(len(spec.halls))])
    rack_row = rack_cdu - first_in_hall[rack_hall]
    rack_slot = np.arange(rack_cdu.size) - np.searchsorted(rack_cdu, rack_cdu)

    types = [catalog[spec.halls[h].rack_type] for h in rack_hall]
    r = {k: np.array([t[k] for t in types], dtype=float) for k in RACK_FIELDS}
    spread = _resistance_spread(spec, rack_hall)
    r["r_die_plate_k_w"] *= spread
    r["r_plate_coolant_k_w"] *= spread
    x_min = np.array([max(c.x_min, w.min_cap_fraction or 0.0) for c, w in zip(curves, spec.workloads, strict=True)])
    min_cap_w = np.maximum(r["gpu_min_cap_w"], x_min[rack_class] * r["gpu_tdp_w"])
    demand_w = np.array([c.x_demand for c in curves])[rack_class] * r["gpu_tdp_w"]

    cool = spec.cooling
    tcs, fws = Coolant(cool.tcs.fluid), Coolant(cool.facility_water.fluid)
    design_w = r["gpus"] * r["gpu_tdp_w"] + r["non_gpu_w"]
    rack_v_dot = _rack_flow_l_min(spec, types, design_w, source) * M3_S_PER_L_MIN
    psu_names = [None, *sorted({h.psu_curve for h in spec.halls if h.psu_curve is not None})]
    psu_curves = tuple(
        (tuple(spec.grid.psu.load_points), tuple(spec.grid.psu.efficiencies)) if n is None else
        (tuple(converter_curve(n).load), tuple(converter_curve(n).efficiency)) for n in psu_names
    )  # fmt: skip
    psu_curve = np.array([psu_names.index(spec.halls[h].psu_curve) for h in range(len(spec.halls))])[rack_hall]
    rack_m_dot = rack_v_dot * tcs.rho_kg_m3(cool.tcs.supply_setpoint_c)
    n_cdu = cdu_hall.size
    tcs_v_dot = np.bincount(rack_cdu, rack_v_dot, n_cdu)
    c_tcs = np.bincount(rack_cdu, rack_m_dot, n_cdu) * tcs.cp_j_kgk(cool.tcs.supply_setpoint_c)
    cdu_q = np.bincount(rack_cdu, design_w * r["liquid_fraction"], n_cdu)
    c_fws = cool.cdu.fws_flow_ratio * c_tcs
    ua = _design_ua(spec, cdu_q, c_tcs, c_fws, source) * _ua_fraction(spec, cdu_hall)
    return Facility(
        spec=spec,
        source=source,
        class_names=class_names,
        hall_names=tuple(h.name for h in spec.halls),
        curves=curves,
        drawn=drawn,
        rack_hall=rack_hall,
        rack_cdu=rack_cdu,
        rack_class=rack_class,
        rack_row=rack_row,
        rack_slot=rack_slot,
        gpus=r["gpus"],
        gpus_per_node=r["gpus_per_node"],
        tdp_w=r["gpu_tdp_w"],
        idle_w=r["gpu_idle_w"],
        min_cap_w=min_cap_w,
        demand_w=demand_w,
        non_gpu_w=r["non_gpu_w"],
        liquid_fraction=r["liquid_fraction"],
        psu_count=r["psu_count"],
        psu_rating_w=r["psu_rating_w"],
        r_die_plate_k_w=r["r_die_plate_k_w"],
        r_plate_coolant_k_w=r["r_plate_coolant_k_w"],
        c_die_j_k=r["c_die_j_k"],
        c_plate_j_k=r["c_plate_j_k"],
        t_max_c=r["t_max_c"],
        throttle_hysteresis_k=r["throttle_hysteresis_k"],
        rack_m_dot_kg_s=rack_m_dot,
        cdu_hall=cdu_hall,
        cdu_class=cdu_class,
        c_tcs_w_k=c_tcs,
        c_fws_max_w_k=c_fws,
        cdu_ua_nom_w_k=ua,
        cdu_design_q_w=cdu_q,
        tcs_v_dot_m3_s=tcs_v_dot,
        tcs=tcs,
        fws=fws,
        topology=topology,
        psu_curve=psu_curve,
        psu_curves=psu_curves,
    )


def _rack_flow_l_min(spec: FacilitySpec, types: list[dict], design_w: Array, source: str) -> Array:
    """Coolant flow per rack [L/min]: the rack type's own flow law at the TCS supply temperature where it has one,
    ``Q = (flow_a / (flow_t_ref_c - T_supply))^flow_exponent`` (data/racks.toml [vr-flow]), else the facility's
    ``tcs.flow_l_min_per_kw`` x the rack's nameplate."""
    tcs = spec.cooling.tcs
    out = tcs.flow_l_min_per_kw * design_w / KW
    for i, ty in enumerate(types):
        if "flow_a" not in ty:
            continue
        gap = ty["flow_t_ref_c"] - tcs.supply_setpoint_c
        if gap <= 0:
            raise SpecError(
                source,
                [
                    (
                        "cooling.tcs.supply_setpoint_c",
                        f"{tcs.supply_setpoint_c:g} degC is beyond the "
                        f"rack flow law of {ty['description']!r} (valid below {ty['flow_t_ref_c']:g} degC)",
                    )
                ],
            )
        out[i] = (ty["flow_a"] / gap) ** ty["flow_exponent"]
    return out


def _resistance_spread(spec: FacilitySpec, rack_hall: IntArray) -> Array:
    """Per-rack multiplier on the die-to-coolant resistance: lognormal with mean 1 and the hall's relative
    standard deviation ``thermal_r_spread`` (cold-plate and TIM manufacturing spread), seeded by hall index
    so a facility file always gives the same floor."""
    out = np.ones(rack_hall.size)
    for h, hall in enumerate(spec.halls):
        idx = np.flatnonzero(rack_hall == h)
        if hall.thermal_r_spread > 0:
            s2 = np.log1p(hall.thermal_r_spread**2)
            out[idx] = np.random.default_rng(h).lognormal(-s2 / 2, np.sqrt(s2), idx.size)
    return out


def _place_cdus(spec: FacilitySpec, class_names: tuple[str, ...]) -> tuple[IntArray, IntArray]:
    """Assign whole CDUs to workload classes by the hall's shares (largest remainder, contiguous)."""
    halls, classes = [], []
    for h, hall in enumerate(spec.halls):
        shares = np.array([hall.workloads.get(c, 0.0) for c in class_names])
        exact = shares * hall.cdus
        counts = np.floor(exact).astype(int)
        counts[np.argsort(counts - exact)[: hall.cdus - counts.sum()]] += 1
        halls.append(np.full(hall.cdus, h))
        classes.append(np.repeat(np.arange(len(class_names)), counts))
    return np.concatenate(halls), np.concatenate(classes)


def _ua_fraction(spec: FacilitySpec, cdu_hall: IntArray) -> Array:
    """Remaining UA per CDU from ``cooling.cdu.fouling`` (1 for clean exchangers)."""
    out = np.ones(cdu_hall.size)
    hall_index = {h.name: i for i, h in enumerate(spec.halls)}
    for foul in spec.cooling.cdu.fouling:
        first = int(np.flatnonzero(cdu_hall == hall_index[foul.hall])[0])
        out[first + np.asarray(foul.cdus)] = foul.ua_fraction
    return out


def _design_ua(spec: FacilitySpec, q_w: Array, c_tcs: Array, c_fws: Array, source: str) -> Array:
    """CDU UA that gives the design approach at the design heat load (inverse eps-NTU)."""
    cool = spec.cooling
    cap_w = cool.cdu.capacity_kw * KW
    if np.any(q_w > cap_w):
        raise SpecError(
            source,
            [
                (
                    "cooling.cdu.capacity_kw",
                    f"must cover the largest CDU design load {q_w.max() / KW:.0f} kW, got {cool.cdu.capacity_kw:g}",
                )
            ],
        )
    t_fws_in = cool.facility_water.supply_setpoint_c
    t_sup = t_fws_in + cool.cdu.design_approach_k
    if t_sup > cool.tcs.supply_setpoint_c + 1e-9:
        raise SpecError(
            source,
            [
                (
                    "cooling.cdu.design_approach_k",
                    f"facility_water.supply_setpoint_c + approach = {t_sup:g} degC must not exceed "
                    f"tcs.supply_setpoint_c = {cool.tcs.supply_setpoint_c:g} degC",
                )
            ],
        )
    c_min, c_max = np.minimum(c_tcs, c_fws), np.maximum(c_tcs, c_fws)
    eps = q_w / (c_min * (t_sup + q_w / c_tcs - t_fws_in))
    return ntu_from_effectiveness(eps, c_min / c_max, cool.cdu.arrangement) * c_min
