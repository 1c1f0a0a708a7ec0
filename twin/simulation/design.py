"""Steady-state evaluation of a facility: design point, cooling power vs heat and ambient, grid power.

The optimizer linearizes these around its forecast; ``factory-twin validate`` prints the design point.
All functions broadcast over time arrays (campus totals per time step).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from factory_twin.twin.facility.assembly import Facility
from factory_twin.twin.facility.topology import Flow, Reduced, Routing
from factory_twin.twin.scenario.weather import climate_normals
from factory_twin.twin.simulation import meters
from factory_twin.twin.simulation.plant import Plant, build_plant
from numpy.typing import ArrayLike, NDArray


@lru_cache(maxsize=8)
def _plant(f: Facility) -> Plant:
    return build_plant(f)


@dataclass(frozen=True)
class SteadyPoint:
    """Campus totals at steady state [W] (no BESS); read by the power meters of :mod:`twin.simulation.meters`."""

    it_w: NDArray | float
    losses_w: NDArray | float
    cooling_w: NDArray | float
    grid_w: NDArray | float
    q_liquid_w: NDArray | float
    q_air_w: NDArray | float
    fws_supply_c: NDArray | float
    bess_w: float = 0.0

    @property
    def pue(self):
        return meters.pue(self)


@dataclass(frozen=True)
class RackTypes:
    """Racks the steady site model cannot tell apart (same class, GPU count, idle, minimum-cap and
    uncapped GPU power, non-GPU powers and PSU rating): a representative rack per type (``rack``)
    and how many racks share it (``count``). Campus sums over racks become sums over a few types."""

    rack: NDArray
    count: NDArray
    of_rack: NDArray | None = None  # type index of every rack


@lru_cache(maxsize=8)
def rack_types(f: Facility) -> RackTypes:
    """The :class:`RackTypes` of ``f`` (all racks when every rack differs)."""
    key = np.column_stack(
        [f.rack_class, f.gpus, f.idle_w, f.min_cap_w, f.demand_w, f.non_gpu_w, f.non_gpu_liquid_w,
         f.psu_count * f.psu_rating_w, f.psu_curve]
    )  # fmt: skip
    _, first, inverse, count = np.unique(key, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return RackTypes(first, count.astype(float), inverse.ravel())


@lru_cache(maxsize=8)
def routing(f: Facility) -> Routing:
    """The one-line diagram with every path closed (the steady model's routing)."""
    return f.topology.routing()


@lru_cache(maxsize=32)
def reduced(f: Facility, rt: Routing | None = None) -> Reduced:
    """The one-line diagram of ``f`` under ``rt`` (default: every path closed) with the elements that carry the
    same load merged (:meth:`twin.facility.topology.Topology.reduce`), racks by their :func:`rack_types`."""
    types = rack_types(f)
    return f.topology.reduce(rt or routing(f), types.of_rack, types.rack.size)


@dataclass(frozen=True)
class RackTotals:
    """Campus sums over racks [W]: GPU power, rack DC power, IT input (after the PSUs), liquid and
    air heat (PSU losses go to air)."""

    gpu_w: NDArray | float
    rack_dc_w: NDArray | float
    it_w: NDArray | float
    q_liquid_w: NDArray | float
    q_air_w: NDArray | float
    rack_in_w: NDArray | None = None  # input of each rack (or one rack of each type) before the sums [W]


def rack_totals(f: Facility, gpu_w: NDArray, types: RackTypes | None = None) -> RackTotals:
    """:class:`RackTotals` for per-GPU power ``gpu_w`` [W] over racks (last axis; leading axes,
    e.g. time, broadcast) or, with ``types``, over rack types (sums weighted by their counts)."""
    r = slice(None) if types is None else types.rack
    n = 1.0 if types is None else types.count
    gpus, non_gpu, liquid = f.gpus[r], f.non_gpu_w[r], f.non_gpu_liquid_w[r]
    rack_dc = gpus * gpu_w + non_gpu
    rack_in = _plant(f).psu_input_w(rack_dc, (f.psu_count * f.psu_rating_w)[r], f.psu_curve[r])

    def total(a: NDArray) -> NDArray:
        return np.sum(n * a, axis=-1)

    return RackTotals(
        total(gpus * gpu_w),
        total(rack_dc),
        total(rack_in),
        total(gpus * gpu_w + liquid),
        total(non_gpu - liquid) + total(rack_in - rack_dc),
        rack_in,
    )


def cooling_power_w(
    f: Facility, q_liquid_w: ArrayLike, q_air_w: ArrayLike, dry_bulb_c: ArrayLike, wet_bulb_c: ArrayLike
) -> NDArray:
    """Steady cooling power [W]: pumps + heat rejection of ``q_liquid_w`` at the ambient + air side."""
    p = _plant(f)
    c = float(f.c_fws_max_w_k.sum())
    t_ret = f.spec.cooling.facility_water.supply_setpoint_c + np.asarray(q_liquid_w, float) / c
    rej = p.reject(t_ret, c, dry_bulb_c, wet_bulb_c)
    return p.pump_w + rej.power_w + np.asarray(q_air_w, float) / f.spec.cooling.air.cop


@dataclass(frozen=True)
class SiteFlow:
    """The diagram's campus totals [W]: losses of every element and the grid flow (the sum of the feeds' inputs)."""

    losses_w: NDArray | float
    grid_w: NDArray | float


def grid_flow(f: Facility, rt: RackTotals, cooling_w: ArrayLike, types: RackTypes | None = None) -> Flow | SiteFlow:
    """The one-line diagram above the IT meter at steady state with every path closed, for the racks of ``rt``
    (:func:`rack_totals`, per rack or, with ``types``, per rack type) and the mechanical load ``cooling_w`` [W];
    leading axes (e.g. time) broadcast. Per rack: every element's :class:`twin.facility.topology.Flow`; per rack type
    (the optimizer's forecast) only the campus totals, over the diagram's classes of identical elements. The
    aggregate chain reads only the campus IT input ``rt.it_w``."""
    topo, rt_routing = f.topology, routing(f)
    mech = np.asarray(cooling_w, float)
    tail = np.broadcast_shapes(np.shape(rt.it_w), mech.shape)
    if rt_routing.single_rack_parent >= 0:
        direct = np.zeros((topo.n, *tail))
        direct[rt_routing.single_rack_parent] = rt.it_w
        return topo.flow_direct(rt_routing, direct + topo.mech_direct(rt_routing, mech))
    x = np.asarray(rt.rack_in_w, float)
    x = np.moveaxis(np.broadcast_to(x, (*tail, x.shape[-1])), -1, 0)
    if types is not None:
        _, _, losses, grid = topo.flow_reduced(reduced(f), x, np.broadcast_to(mech, tail))
        return SiteFlow(losses, grid)
    direct = (rt_routing.rack @ x.reshape(x.shape[0], -1)).reshape((topo.n, *tail))
    return topo.flow_direct(rt_routing, direct + topo.mech_direct(rt_routing, mech))


@dataclass(frozen=True)
class SiteLevels:
    """The steady site model over time with every rack type at the same position ``lam`` between its minimum
    cap (0) and its uncapped draw (1): ``[T, J]`` for J levels [W]; utilization ``[T, classes]`` [-] and
    ambient ``[T]`` [degC] from the scenario."""

    utilization: NDArray
    dry_bulb_c: NDArray
    wet_bulb_c: NDArray
    gpu_w: NDArray
    it_w: NDArray
    cooling_w: NDArray
    grid_w: NDArray


def site_levels(f: Facility, scenario, times: NDArray, levels: tuple[float, ...]) -> SiteLevels:
    """:class:`SiteLevels` of ``f`` under ``scenario`` (utilization per class, ambient with its what-if offset)
    at ``times`` and cap positions ``levels``: a busy GPU draws ``min_cap + lam (demand - min_cap)``, an idle one
    its idle power; rack totals, cooling at the ambient and the grid flow as :func:`steady_point`."""
    u_cls = np.stack([scenario.utilization(c, times) for c in f.class_names], axis=1)  # [T, classes]
    db, wb = scenario.ambient(times)
    types = rack_types(f)  # racks differ only by type here: evaluate each type once
    r = types.rack
    u = u_cls[:, f.rack_class[r]][:, None, :]  # [T, 1, types]
    lo, hi = f.min_cap_w[r], f.demand_w[r]
    busy = lo + np.asarray(levels, float)[:, None] * (hi - lo)  # [J, types]
    rt = rack_totals(f, u * busy + (1 - u) * f.idle_w[r], types)  # [T, J]
    cooling = np.asarray(cooling_power_w(f, rt.q_liquid_w, rt.q_air_w, db[:, None], wb[:, None]), float)
    flow = grid_flow(f, rt, cooling, types)
    return SiteLevels(u_cls, np.asarray(db, float), np.asarray(wb, float), rt.gpu_w, rt.it_w, cooling, flow.grid_w)


def uncapped_import_w(f: Facility, scenario, times: NDArray) -> NDArray:
    """Grid import [W] at ``times`` with every GPU uncapped (its full demand while busy), no BESS: the steady
    site model at ``lam = 1`` (:func:`site_levels`), the import the campus would draw without any cap."""
    return np.asarray(site_levels(f, scenario, np.asarray(times, "datetime64[s]"), (1.0,)).grid_w[:, 0], float)


def steady_point(f: Facility, gpu_w_per_rack: NDArray, dry_bulb_c: float, wet_bulb_c: float) -> SteadyPoint:
    """The campus at steady state for per-GPU power ``gpu_w_per_rack`` and the given ambient."""
    rt = rack_totals(f, gpu_w_per_rack)
    q_liq, q_air = rt.q_liquid_w, rt.q_air_w
    p = _plant(f)
    c = float(f.c_fws_max_w_k.sum())
    rej = p.reject(f.spec.cooling.facility_water.supply_setpoint_c + q_liq / c, c, dry_bulb_c, wet_bulb_c)
    cooling = p.pump_w + rej.power_w + q_air / f.spec.cooling.air.cop
    flow = grid_flow(f, rt, cooling)
    return SteadyPoint(rt.it_w, flow.losses_w, cooling, flow.grid_w, q_liq, q_air, rej.t_supply_c)


DESIGN_METERS = ("grid_import_mw", "it_power_mw", "cooling_power_mw", "losses_mw", "pue")


def design_point(f: Facility) -> dict[str, float]:
    """All GPUs at TDP at the site's ASHRAE 0.4 % design dry and wet bulb (built-in climates):
    the ambient and :data:`DESIGN_METERS`."""
    normals = climate_normals().get(f.spec.site.climate, {})
    db, wb = normals.get("design_dry_bulb_c", 35.0), normals.get("design_wet_bulb_c", 27.0)
    sp = steady_point(f, f.tdp_w, db, wb)
    return {"dry_bulb_c": db, "wet_bulb_c": wb, **meters.read(meters.Reading(sp, None, None), DESIGN_METERS)}
