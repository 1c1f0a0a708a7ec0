"""Steady-state evaluation of a facility: design point, cooling power vs heat and ambient, grid power.

The optimizer linearizes these around its forecast; ``factory-twin validate`` prints the design point.
All functions broadcast over time arrays (campus totals per time step).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from factory_twin.twin import meters
from factory_twin.twin.assembly import Facility
from factory_twin.twin.plant import Plant, build_plant
from factory_twin.twin.weather import climate_normals
from numpy.typing import ArrayLike, NDArray


@lru_cache(maxsize=8)
def _plant(f: Facility) -> Plant:
    return build_plant(f)


@dataclass(frozen=True)
class SteadyPoint:
    """Campus totals at steady state [W] (no BESS); read by the power meters of :mod:`twin.meters`."""

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


def heat_split_w(f: Facility, gpu_w_per_rack: NDArray) -> tuple[float, float, float]:
    """(rack DC power, liquid heat, air heat) [W] for per-GPU power per rack (PSU losses go to air)."""
    rack_dc = f.gpus * gpu_w_per_rack + f.non_gpu_w
    non_gpu_liquid = f.non_gpu_liquid_w
    psu_loss = _plant(f).chain_forward(rack_dc, 0.0).psu_loss_w
    q_liquid = float(np.sum(f.gpus * gpu_w_per_rack + non_gpu_liquid))
    q_air = float(np.sum(f.non_gpu_w - non_gpu_liquid) + np.sum(psu_loss))
    return float(rack_dc.sum()), q_liquid, q_air


def cooling_power_w(
    f: Facility, q_liquid_w: ArrayLike, q_air_w: ArrayLike, dry_bulb_c: ArrayLike, wet_bulb_c: ArrayLike
) -> NDArray:
    """Steady cooling power [W]: pumps + heat rejection of ``q_liquid_w`` at the ambient + air side."""
    p = _plant(f)
    c = float(f.c_fws_max_w_k.sum())
    t_ret = f.spec.cooling.facility_water.supply_setpoint_c + np.asarray(q_liquid_w, float) / c
    rej = p.reject(t_ret, c, dry_bulb_c, wet_bulb_c)
    return p.pump_w + rej.power_w + np.asarray(q_air_w, float) / f.spec.cooling.air.cop


def grid_power_w(f: Facility, rack_dc_w: NDArray, cooling_w: ArrayLike):
    """Chain forward for a per-rack DC power array and a (time) array of mechanical load."""
    return _plant(f).chain_forward(rack_dc_w, cooling_w)


def steady_point(f: Facility, gpu_w_per_rack: NDArray, dry_bulb_c: float, wet_bulb_c: float) -> SteadyPoint:
    """The campus at steady state for per-GPU power ``gpu_w_per_rack`` and the given ambient."""
    _, q_liq, q_air = heat_split_w(f, gpu_w_per_rack)
    p = _plant(f)
    c = float(f.c_fws_max_w_k.sum())
    rej = p.reject(f.spec.cooling.facility_water.supply_setpoint_c + q_liq / c, c, dry_bulb_c, wet_bulb_c)
    cooling = p.pump_w + rej.power_w + q_air / f.spec.cooling.air.cop
    chain = grid_power_w(f, f.gpus * gpu_w_per_rack + f.non_gpu_w, cooling)
    losses = chain.busway_loss_w + chain.ups_loss_w + chain.transformer_loss_w
    return SteadyPoint(chain.it_w, losses, cooling, chain.grid_w, q_liq, q_air, rej.t_supply_c)


DESIGN_METERS = ("grid_import_mw", "it_power_mw", "cooling_power_mw", "losses_mw", "pue")


def design_point(f: Facility) -> dict[str, float]:
    """All GPUs at TDP at the site's ASHRAE 0.4 % design dry and wet bulb (built-in climates):
    the ambient and :data:`DESIGN_METERS`."""
    normals = climate_normals().get(f.spec.site.climate, {})
    db, wb = normals.get("design_dry_bulb_c", 35.0), normals.get("design_wet_bulb_c", 27.0)
    sp = steady_point(f, f.tdp_w, db, wb)
    return {"dry_bulb_c": db, "wet_bulb_c": wb, **meters.read(meters.Reading(sp, None, None), DESIGN_METERS)}
