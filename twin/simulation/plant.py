"""The facility plant around the IT floor: heat-rejection staging, pumps, PSU curve and BESS (the power network
above the racks is the facility's one-line diagram, :attr:`twin.facility.assembly.Facility.topology`).

Heat rejection is staged the way warm-water plants run: dry coolers first (fans modulate to hold the
facility-water supply setpoint), adiabatic/evaporative assist when the dry bulb is too warm, chiller trim
in series when even the wet bulb is too warm, and a supply temperature above setpoint when the chiller is
out of capacity. All functions are vectorized over time so the optimizer can evaluate a forecast at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models.cooling import chiller_power_w, dry_cooler, evaporative_cooler, pump_power_w
from factory_twin.models.power import Bess, psu_input_w
from factory_twin.models.units import J_PER_MWH, KW, MW
from factory_twin.twin.facility.assembly import Facility
from numpy.typing import ArrayLike, NDArray

G = 9.80665  # standard gravity [m/s2]

MODES = ("idle", "dry", "evaporative", "chiller trim", "over capacity")


@dataclass(frozen=True)
class Rejection:
    """Plant outcome over an interval (arrays broadcast over time)."""

    t_supply_c: NDArray | float
    q_w: NDArray | float
    fan_w: NDArray | float
    chiller_w: NDArray | float
    water_kg_s: NDArray | float
    mode: NDArray | int

    @property
    def power_w(self):
        return self.fan_w + self.chiller_w


@dataclass(frozen=True, eq=False)
class Plant:
    f: Facility
    psu_load_points: tuple[float, ...]
    psu_efficiencies: tuple[float, ...]
    bess: Bess | None
    bess_initial_j: float
    pump_w: float

    def reject(
        self,
        t_return_c: ArrayLike,
        c_w_k: float,
        dry_bulb_c: ArrayLike,
        wet_bulb_c: ArrayLike,
        setpoint_c: float | None = None,
    ) -> Rejection:
        """Cool facility water returning at ``t_return_c`` with heat-capacity rate ``c_w_k`` [W/K] toward the
        supply setpoint (the spec's unless ``setpoint_c`` is given) at the given ambient; returns the supply
        temperature achieved and the power used."""
        plant = self.f.spec.cooling.plant
        t_set = self.f.spec.cooling.facility_water.supply_setpoint_c if setpoint_c is None else setpoint_c
        t_in = np.asarray(t_return_c, float)
        q_need = np.maximum(c_w_k * (t_in - t_set), 0.0)
        dry = dry_cooler(
            q_need,
            t_set,
            dry_bulb_c,
            plant.dry_cooler.capacity_mw * MW,
            plant.dry_cooler.design_approach_k,
            plant.dry_cooler.fan_power_kw_per_mw * KW / MW,
        )
        if dry.feasible.all():  # the common case: dry coolers hold the setpoint on their own
            mode = np.where(q_need > 0, 1, 0)
            z = np.zeros_like(q_need)
            return _squeeze(
                Rejection(np.minimum(t_in, t_set), c_w_k * (t_in - np.minimum(t_in, t_set)), dry.fan_w, z, z, mode)
            )
        t_best, fan_w, water = dry.t_min_out_c, dry.fan_w, np.zeros_like(q_need)
        use_evap = np.zeros(q_need.shape, bool)
        if plant.evaporative is not None:
            ev = plant.evaporative
            wet = evaporative_cooler(
                q_need,
                t_set,
                wet_bulb_c,
                plant.dry_cooler.capacity_mw * MW,
                ev.design_approach_k,
                ev.fan_power_kw_per_mw * KW / MW + dry.fan_full_w_per_w,
                ev.water_l_per_kwh,
            )
            use_evap = ~dry.feasible & (wet.t_min_out_c < t_best)
            t_best = np.where(use_evap, wet.t_min_out_c, t_best)
            fan_w = np.where(use_evap, wet.fan_w, fan_w)
            water = np.where(use_evap, wet.water_kg_s, 0.0)
        short = ~dry.feasible & ~(use_evap & (t_best <= t_set))
        t_after = np.where(short, np.minimum(t_best, t_in), t_set)
        t_sup, chill_w = t_after, np.zeros_like(q_need)
        if plant.chiller is not None:
            ch = plant.chiller
            q_trim = np.minimum(np.maximum(c_w_k * (t_after - t_set), 0.0), ch.capacity_mw * MW)
            t_sup = t_after - q_trim / c_w_k
            chill_w = chiller_power_w(q_trim, t_sup, t_best, ch.carnot_fraction, ch.evap_approach_k, ch.cond_approach_k)
        mode = np.select([q_need <= 0, dry.feasible, use_evap & ~short, t_sup <= t_set + 1e-9], [0, 1, 2, 3], 4)
        return _squeeze(Rejection(t_sup, c_w_k * (t_in - t_sup), fan_w, chill_w, water, mode))

    def capacity_w(
        self, dry_bulb_c: ArrayLike, wet_bulb_c: ArrayLike, c_w_k: float, setpoint_c: float | None = None
    ) -> NDArray | float:
        """Largest facility-water heat [W] the plant rejects while holding the supply setpoint at this ambient
        (:meth:`reject` holds it for any smaller duty and reports "over capacity" above it).

        Each cooler leaves the water at ``T_ref + dT_des Q/Q_cap`` at full fan speed (dry bulb for the dry
        coolers, wet bulb for the evaporative stage); the chiller trims the remaining
        ``c (T_leave - T_set)`` up to its capacity ``Q_ch``. Solving ``c (T_ref + dT_des Q/Q_cap - T_set)
        <= Q_ch`` for Q gives ``Q_max = Q_cap (T_set - T_ref + Q_ch / c) / dT_des`` for the better stage,
        and never less than ``Q_ch`` (the chiller alone). Without a chiller ``Q_ch = 0``.
        """
        plant = self.f.spec.cooling.plant
        t_set = self.f.spec.cooling.facility_water.supply_setpoint_c if setpoint_c is None else setpoint_c
        q_cap = plant.dry_cooler.capacity_mw * MW
        q_ch = plant.chiller.capacity_mw * MW if plant.chiller is not None else 0.0
        stages = [(np.asarray(dry_bulb_c, float), plant.dry_cooler.design_approach_k)]
        if plant.evaporative is not None:
            stages.append((np.asarray(wet_bulb_c, float), plant.evaporative.design_approach_k))
        best = np.max([q_cap * (t_set - t_ref + q_ch / c_w_k) / app for t_ref, app in stages], axis=0)
        q = np.maximum(best, q_ch)
        return float(q) if np.ndim(q) == 0 else q

    def psu_input_w(self, rack_dc_w: ArrayLike, psu_rating_w: ArrayLike, curve: ArrayLike | None = None) -> NDArray:
        """Rack input [W] (the IT meter) for rack DC power ``rack_dc_w`` [W] on converters rated ``psu_rating_w`` [W]
        (:func:`models.power.psu_input_w`). ``curve`` (broadcasting with ``rack_dc_w``) indexes each rack's curve in
        ``f.psu_curves`` (:attr:`twin.facility.assembly.Facility.psu_curve`); it may be left out when every rack
        converts with the facility's PSU curve."""
        curves = getattr(self.f, "psu_curves", ())
        if len(curves) <= 1:
            return psu_input_w(rack_dc_w, psu_rating_w, self.psu_load_points, self.psu_efficiencies)
        if curve is None:
            raise ValueError("curve: the racks of this facility convert with several curves (halls' psu_curve): "
                             "pass each rack's index (Facility.psu_curve)")  # fmt: skip
        p, r, c = np.broadcast_arrays(np.asarray(rack_dc_w, float), np.asarray(psu_rating_w, float), np.asarray(curve))
        out = np.empty(p.shape)
        for k, (x, eta) in enumerate(curves):
            sel = c == k
            if sel.any():
                out[sel] = psu_input_w(p[sel], r[sel], x, eta)
        return out


def _squeeze(r: Rejection) -> Rejection:
    """Plain floats for scalar evaluations (the engine), arrays otherwise (forecasts)."""
    if np.ndim(r.t_supply_c):
        return r
    return Rejection(
        float(r.t_supply_c), float(r.q_w), float(r.fan_w), float(r.chiller_w), float(r.water_kg_s), int(r.mode)
    )


def build_plant(f: Facility) -> Plant:
    """PSU curve, BESS and constant-flow pump power from the facility spec."""
    g, cool = f.spec.grid, f.spec.cooling
    bess, e0 = None, 0.0
    if g.bess is not None:
        b = g.bess
        bess = Bess(
            energy_capacity_j=b.energy_mwh * J_PER_MWH,
            power_limit_w=b.power_mw * MW,
            eta_charge=b.eta_charge,
            eta_discharge=b.eta_discharge,
            soc_min=b.soc_min,
            soc_max=b.soc_max,
        )
        e0 = b.soc_initial * b.energy_mwh * J_PER_MWH
    tcs_rho = f.tcs.rho_kg_m3(cool.tcs.supply_setpoint_c)
    fws_t = cool.facility_water.supply_setpoint_c
    fws_v = float(f.c_fws_max_w_k.sum()) / (f.fws.rho_kg_m3(fws_t) * f.fws.cp_j_kgk(fws_t))
    pump = float(
        np.sum(pump_power_w(f.tcs_v_dot_m3_s, cool.tcs.pump_head_m, tcs_rho, cool.tcs.pump_efficiency))
    ) + float(
        pump_power_w(
            fws_v, cool.facility_water.pump_head_m, f.fws.rho_kg_m3(fws_t), cool.facility_water.pump_efficiency
        )
    )
    return Plant(f, tuple(g.psu.load_points), tuple(g.psu.efficiencies), bess, e0, pump)
