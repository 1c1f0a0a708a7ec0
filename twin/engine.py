"""Simulation engine: the whole campus, grid meter to GPU die, as numpy arrays over racks and CDUs.

Two rates. Every ``step_s`` (default 1 s) the rack side advances: GPU power = min(demand, cap, thermal
throttle limit) -> exact two-node RC step of the die and cold plate against the local coolant. Every
``plant_step_s`` (default 10 s) the loops advance with the rack heat of that interval: rack returns mix at
the CDU headers -> plug-flow delay of the TCS return leg -> CDU eps-NTU with facility-valve supply control
-> facility water mix -> plug-flow delay to the plant -> heat rejection at the present ambient -> supply
temperatures for the next interval. Air-side heat (the share not captured by liquid, plus PSU losses) is
removed by the air system at its COP. Power: rack DC -> PSUs (IT meter) -> busway -> UPS -> transformers
-> grid, with mechanical loads on the transformers and the BESS at the meter.

Loops run at constant flow: CDUs control supply temperature with a three-way valve on the facility side
(branch flow constant, part of it bypasses the exchanger), so heat-capacity rates are constant in each
loop and the heat books close exactly. Fluid c_p is evaluated at each loop's setpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from models.cooling import PlugFlowDelay, cdu_supply_control
from models.gpu import thermal_throttle_limit_w
from models.power import bess_step
from models.thermal import TwoNodeRC
from twin.assembly import MW, Facility
from twin.controllers import Command, Controller, TwinState, Uncapped
from twin.plant import Plant, build_plant
from twin.recorder import PlantStepResult, Recorder
from twin.scenario import Scenario
from twin.timeparse import seconds

Array = NDArray[np.float64]


class Twin:
    """A running twin: state arrays plus :meth:`advance`; :func:`simulate` drives it and records."""

    def __init__(self, facility: Facility, scenario: Scenario, start: np.datetime64 | str | None = None,
                 step_s: float = 1.0, plant_step_s: float = 10.0, controller: Controller | None = None):
        f = facility
        if step_s <= 0 or plant_step_s <= 0:
            raise ValueError("step: must be > 0")
        n_sub = plant_step_s / step_s
        if abs(n_sub - round(n_sub)) > 1e-9:
            raise ValueError(f"plant_step: {plant_step_s:g} s must be a whole multiple of step {step_s:g} s")
        self.f, self.scenario = f, scenario
        self.dt, self.plant_dt, self.n_sub = float(step_s), float(plant_step_s), int(round(n_sub))
        self.time = np.datetime64(start if start is not None else scenario.start, "s")
        self.controller = controller or Uncapped(f.tdp_w)
        self.plant: Plant = build_plant(f)
        cool = f.spec.cooling
        self.rc = TwoNodeRC(f.r_die_plate_k_w, f.r_plate_coolant_k_w, f.c_die_j_k, f.c_plate_j_k)
        self.stepper = self.rc.discretize(self.dt)
        self.r_total = f.r_die_plate_k_w + f.r_plate_coolant_k_w
        self.c_rack_w_k = f.rack_m_dot_kg_s * f.tcs.cp_j_kgk(cool.tcs.supply_setpoint_c)
        self.c_tcs = np.bincount(f.rack_cdu, self.c_rack_w_k, f.n_cdus)
        self.c_fws = f.c_fws_max_w_k
        self.c_fws_total = float(self.c_fws.sum())
        self.fws_v_dot = self.c_fws_total / (f.fws.rho_kg_m3(cool.facility_water.supply_setpoint_c)
                                             * f.fws.cp_j_kgk(cool.facility_water.supply_setpoint_c))
        liquid_w = f.liquid_fraction * f.rack_design_w
        self.non_gpu_liquid_w = (liquid_w - f.gpus * f.tdp_w).clip(0.0, f.non_gpu_w)
        self.curves_x = [(c, np.flatnonzero(f.rack_class == i)) for i, c in enumerate(f.curves)]
        self.tokens_per_gpu = np.array([w.tokens_per_s_per_gpu for w in f.spec.workloads])[f.rack_class]
        self.bess = self.plant.bess
        self.bess_energy_j = self.plant.bess_initial_j
        self.command = Command(f.tdp_w.copy())
        self.cap = f.tdp_w.copy()
        self._initial_state()

    # ------------------------------------------------------------------ state
    def _initial_state(self) -> None:
        """Steady state at the start time under the uncapped demand and setpoint supply temperatures."""
        f, cool = self.f, self.f.spec.cooling
        u = self._utilization(np.array([self.time]))[:, 0]
        busy = np.minimum(f.demand_w, self.command.gpu_cap_w)
        p_gpu = u * busy + (1 - u) * f.idle_w
        q_rack = f.gpus * p_gpu + self.non_gpu_liquid_w
        self.tcs_supply_c = np.full(f.n_cdus, cool.tcs.supply_setpoint_c)
        self.rise_k = q_rack / self.c_rack_w_k
        t_cool = self.tcs_supply_c[f.rack_cdu] + 0.5 * self.rise_k
        self.t_die, self.t_plate = self.stepper.steady_state(p_gpu, t_cool)
        self.gpu_power_w = p_gpu
        t_ret = self.tcs_supply_c + np.bincount(f.rack_cdu, q_rack, f.n_cdus) / self.c_tcs
        self.tcs_return_c = t_ret
        self.tcs_delay = PlugFlowDelay(np.full(f.n_cdus, cool.tcs.loop_volume_l * 1e-3), t_ret)
        q_cdu = self.c_tcs * (t_ret - self.tcs_supply_c)
        self.fws_supply_c = float(cool.facility_water.supply_setpoint_c)
        t_fws_ret = self.fws_supply_c + float(q_cdu.sum()) / self.c_fws_total
        self.fws_return_c = t_fws_ret
        self.fws_delay = PlugFlowDelay(np.array([cool.facility_water.return_volume_m3]), np.array([t_fws_ret]))
        self.throttled = np.zeros(f.n_racks, bool)
        self.cdu_at_capacity = np.zeros(f.n_cdus, bool)
        self.last: PlantStepResult | None = None

    def stored_heat_j(self) -> float:
        """Heat held in the twin [J, relative to 0 degC]: die and plate nodes, pipes, in-transit supply."""
        f = self.f
        racks = float(np.sum(f.gpus * self.rc.stored_energy_j(self.t_die, self.t_plate)))
        tcs = float(self.tcs_delay.stored_energy_j(self.c_tcs / self.f.tcs_v_dot_m3_s).sum())
        fws = float(self.fws_delay.stored_energy_j(self.c_fws_total / self.fws_v_dot).sum())
        transit = self.plant_dt * (float(self.c_tcs @ self.tcs_supply_c) + self.c_fws_total * self.fws_supply_c)
        return racks + tcs + fws + transit

    def state(self) -> TwinState:
        last = self.last
        return TwinState(self.time, self.gpu_power_w.copy(), self.command.gpu_cap_w.copy(), self.t_die.copy(),
                         self.tcs_supply_c.copy(), self.fws_supply_c, last.grid_w - last.bess_w if last else np.nan,
                         last.it_w if last else np.nan, last.cooling_w if last else np.nan, self.bess_energy_j)

    def _utilization(self, times: NDArray[np.datetime64]) -> Array:
        """Busy share per rack [rack, time] and busy-power multiplier (training oscillation)."""
        names = self.f.class_names
        u = np.stack([self.scenario.utilization(c, times) for c in names])
        return u[self.f.rack_class]

    # ------------------------------------------------------------------ stepping
    def advance(self) -> PlantStepResult:
        """Advance one plant step (``n_sub`` rack steps); return the interval means."""
        f, dt, n = self.f, self.dt, self.n_sub
        if self._due_for_control():
            self.command = self.controller(self.state(), self.time)
            cap = np.asarray(self.command.gpu_cap_w, float)
            if cap.shape != (f.n_racks,):
                raise ValueError(f"controller returned gpu_cap_w of shape {cap.shape}, expected ({f.n_racks},)")
            self.cap = np.clip(cap, f.min_cap_w, f.tdp_w)
        times = self.time + (np.arange(n) * dt).astype("timedelta64[s]")
        u = self._utilization(times[:1])[:, 0]
        osc = np.stack([self.scenario.workload[c].power_factor(times) if c in self.scenario.workload
                        else np.ones(n) for c in f.class_names])
        busy_dem = f.demand_w
        idle_part = (1 - u) * f.idle_w
        t_cool = self.tcs_supply_c[f.rack_cdu] + 0.5 * self.rise_k
        e0 = self.rc.stored_energy_j(self.t_die, self.t_plate)
        p_sum = np.zeros(f.n_racks)
        eff_sum = np.zeros(f.n_racks)
        thr_count = np.zeros(f.n_racks)
        t_die, t_plate, cap = self.t_die, self.t_plate, self.cap
        for j in range(n):
            lim, throttled = thermal_throttle_limit_w(t_die, t_cool, f.t_max_c, self.r_total, f.min_cap_w)
            eff = np.minimum(np.minimum(busy_dem, cap), lim)
            p = u * np.minimum(busy_dem * osc[f.rack_class, j], eff) + idle_part
            t_die, t_plate = self.stepper.step(t_die, t_plate, p, t_cool)
            p_sum += p
            eff_sum += eff
            thr_count += throttled
        self.t_die, self.t_plate = t_die, t_plate
        p_gpu = p_sum / n
        self.gpu_power_w = p_gpu
        self.throttled = thr_count > 0
        gpu_heat_j = f.gpus * (p_sum * dt - (self.rc.stored_energy_j(t_die, t_plate) - e0))
        q_rack_w = gpu_heat_j / self.plant_dt + self.non_gpu_liquid_w
        self.rise_k = q_rack_w / self.c_rack_w_k
        result = self._plant_and_power(p_gpu, q_rack_w, u, eff_sum / n, thr_count / n)
        self.time = self.time + np.timedelta64(int(round(self.plant_dt)), "s")
        self.last = result
        return result

    def _due_for_control(self) -> bool:
        if not hasattr(self, "_next_control"):
            self._next_control = self.time
        if self.time >= self._next_control:
            self._next_control = self.time + np.timedelta64(int(round(self.controller.period_s)), "s")
            return True
        return False

    def _plant_and_power(self, p_gpu: Array, q_rack_w: Array, u: Array, eff_w: Array,
                         throttled_share: Array) -> PlantStepResult:
        f, cool, dt = self.f, self.f.spec.cooling, self.plant_dt
        n_cdu = f.n_cdus
        q_cdu_in = np.bincount(f.rack_cdu, q_rack_w, n_cdu)
        t_header = self.tcs_supply_c + q_cdu_in / self.c_tcs
        t_ret = self.tcs_delay.push(t_header, f.tcs_v_dot_m3_s, dt)
        self.tcs_return_c = t_ret
        ctl = cdu_supply_control(t_ret, self.c_tcs, self.fws_supply_c, self.c_fws, f.cdu_ua_nom_w_k,
                                 cool.tcs.supply_setpoint_c, arrangement=cool.cdu.arrangement,
                                 exponent=cool.cdu.ua_flow_exponent)
        self.cdu_at_capacity = ctl.at_capacity
        q_cdu = self.c_tcs * (t_ret - ctl.t_supply_c)
        t_branch = self.fws_supply_c + q_cdu / self.c_fws
        t_mix = float(self.c_fws @ t_branch) / self.c_fws_total
        t_plant_in = float(self.fws_delay.push(np.array([t_mix]), np.array([self.fws_v_dot]), dt)[0])
        self.fws_return_c = t_plant_in
        db, wb = self.scenario.ambient(np.array([self.time]))
        rej = self.plant.reject(t_plant_in, self.c_fws_total, float(db[0]), float(wb[0]))
        self.tcs_supply_c = ctl.t_supply_c
        self.fws_supply_c = rej.t_supply_c
        self.ambient = (float(db[0]), float(wb[0]))
        self.rejection = rej

        rack_dc = f.gpus * p_gpu + f.non_gpu_w
        chain = self.plant.chain_forward(rack_dc, 0.0)
        psu_loss = chain.psu_loss_w
        q_air = float(np.sum(f.non_gpu_w - self.non_gpu_liquid_w) + np.sum(psu_loss))
        air_w = q_air / cool.air.cop
        cooling_w = rej.power_w + self.plant.pump_w + air_w
        chain = self.plant.chain_forward(rack_dc, cooling_w)
        bess_cmd = float(self.command.bess_power_w)
        bess_w = 0.0
        if self.bess is not None:
            e_next, bess_w = bess_step(self.bess_energy_j, bess_cmd, dt, self.bess)
            self.bess_energy_j, bess_w = float(e_next), float(bess_w)
        tok_full = f.gpus * u * self.tokens_per_gpu
        thr = np.empty(f.n_racks)
        for curve, idx in self.curves_x:
            thr[idx] = curve.throughput(eff_w[idx] / f.tdp_w[idx])
        tokens = float(tok_full @ thr)
        tok_unc = float(tok_full.sum())
        return PlantStepResult(
            gpu_w=float(f.gpus @ p_gpu), rack_dc_w=float(rack_dc.sum()), it_w=float(chain.it_w),
            losses_w=float(chain.busway_loss_w + chain.ups_loss_w + chain.transformer_loss_w),
            cooling_w=cooling_w, grid_w=float(chain.grid_w), bess_w=bess_w,
            q_liquid_w=float(q_rack_w.sum()), q_air_w=q_air, q_rejected_w=rej.q_w + q_air,
            throughput=tokens / tok_unc if tok_unc > 0 else 1.0, tokens_per_s=tokens,
            tokens_uncapped_per_s=tok_unc, throttled_gpus=float(f.gpus @ throttled_share))


def simulate(facility: Facility, scenario: Scenario, start: str | np.datetime64 | None = None,
             duration: str | float = "24h", step: str | float = "1s", plant_step: str | float = "10s",
             record_every: str | float = "60s", controller: Controller | None = None,
             progress: Callable[[float], None] | None = None) -> xr.Dataset:
    """Simulate ``facility`` under ``scenario``; return an xarray Dataset (units in attributes).

    ``duration``, ``step``, ``plant_step`` and ``record_every`` take seconds or strings like ``"24h"``,
    ``"5min"``, ``"1s"``; ``record_every`` must be a multiple of ``plant_step``. Per-rack and per-CDU
    variables are sampled at each record time; powers and throughput are means over the record interval.
    ``progress`` receives the completed fraction.
    """
    twin = Twin(facility, scenario, start, seconds(step, "step"), seconds(plant_step, "plant_step"), controller)
    rec_s, dur_s = seconds(record_every, "record_every"), seconds(duration, "duration")
    per_rec = rec_s / twin.plant_dt
    if abs(per_rec - round(per_rec)) > 1e-9 or per_rec < 1:
        raise ValueError(f"record_every: {rec_s:g} s must be a whole multiple of plant_step {twin.plant_dt:g} s")
    n_rec = int(dur_s // rec_s)
    if n_rec < 1:
        raise ValueError(f"duration: {dur_s:g} s is shorter than record_every {rec_s:g} s")
    rec = Recorder(twin, n_rec, int(round(per_rec)))
    for k in range(n_rec):
        for _ in range(rec.per_record):
            rec.accumulate(twin.advance())
        rec.record(k)
        if progress:
            progress((k + 1) / n_rec)
    return rec.dataset()


def run_energy_books(ds: xr.Dataset) -> dict[str, float]:
    """Relative residuals of the electrical and heat books of a run (both should be ~1e-12)."""
    return {"electric": float(ds.attrs["electric_book_residual"]), "heat": float(ds.attrs["heat_book_residual"])}


__all__ = ["MW", "PlantStepResult", "Twin", "run_energy_books", "simulate"]
