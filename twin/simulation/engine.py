"""Simulation engine: the whole campus, grid meter to GPU die, as numpy arrays over racks and CDUs.

Two rates. Every ``step_s`` (default 1 s) the rack side advances: GPU power = min(drawn under the cap
(:meth:`twin.facility.assembly.Facility.drawn_w`), thermal throttle limit) -> exact two-node RC step of the die and
cold plate against the local coolant. Every ``plant_step_s`` (default 20 s) the loops advance with the rack
heat of that interval: rack returns mix at the CDU headers -> plug-flow delay of the TCS return leg -> CDU
eps-NTU with facility-valve supply control -> facility water mix -> plug-flow delay to the plant -> heat
rejection at the present ambient -> supply temperatures for the next interval. Air-side heat (the share not
captured by liquid, plus PSU losses) is removed by the air system at its COP. Power: rack DC -> PSUs (IT
meter) -> busway -> UPS -> transformers -> grid, with mechanical loads on the transformers and the BESS at the
meter.

The facility's import ramp limit (``grid.ramp_limit_mw_per_min``) binds every move of the caps: a controller's command
or an :meth:`Twin.override` is the goal, and each plant step moves the campus GPU power toward it by at most the ramp
limit over the step divided by the import per watt at the racks (grid import / rack DC power of the latest step: PSUs,
distribution and cooling follow the load); every rack moves the same share of its way. The first command of a run is
applied at once (the start is not a move). Not limited (``ramp_limited=False``): the BMC emulator's hardware. Nor:
changes of the workload itself (utilization, a job starting or stopping: the load, not a control action), job pauses and
the BESS (the MPC's import ramp row plans both).

Jobs that may pause or resize (:mod:`twin.simulation.jobs`) follow the stop shares of the controller's command: per
plant step the share of a busy GPU's time spent computing scales its busy draw and throughput, and the rest draws the
stop phases' power (checkpoint, idle, restart, rejoin).

Loops run at constant flow: CDUs control supply temperature with a three-way valve on the facility side
(branch flow constant, part of it bypasses the exchanger), so heat-capacity rates are constant in each
loop and the heat books close exactly. Fluid c_p is evaluated at each loop's setpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
import xarray as xr
from factory_twin.models.cooling import ConstantFlowCdus, ConstantFlowDelay
from factory_twin.models.gpu import ThermalThrottle
from factory_twin.models.power import bess_step
from factory_twin.models.thermal import RCStep, TwoNodeRC
from factory_twin.models.units import MW, S_PER_MIN
from factory_twin.twin.facility.assembly import Facility
from factory_twin.twin.scenario.inputs import facility_and_scenario
from factory_twin.twin.scenario.scenario import Scenario, WorkloadProfile
from factory_twin.twin.scenario.timeparse import seconds
from factory_twin.twin.simulation.controllers import Command, Controller, TwinState, Uncapped
from factory_twin.twin.simulation.jobs import JobStops
from factory_twin.twin.simulation.memory_budget import check_memory
from factory_twin.twin.simulation.meters import PlantStepResult, grid_import_w
from factory_twin.twin.simulation.paths import PowerPaths
from factory_twin.twin.simulation.plant import Plant, Rejection, build_plant
from factory_twin.twin.simulation.recorder import Recorder
from numpy.typing import NDArray

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
INPUT_CHUNK_S = 3600.0  # inputs (ambient, utilization) are evaluated an hour of plant steps at a time
HOT_MARGIN_K = 1.0  # racks whose die may come this close to the throttle temperature step at step_s
_NO_OSC = WorkloadProfile()


class Twin:
    """A running twin: state arrays plus :meth:`advance`; :func:`simulate` drives it and records.

    Per rack, per GPU [W]: ``gpu_power_w`` the mean draw over the latest plant step; ``gpu_demand_w`` what the same
    work would draw at no cap, ``u x drawn_w(TDP) + idle_part`` beside the drawn ``u x drawn_w(cap) + idle_part``
    (computing share ``u``, the idle and stop phases' power ``idle_part``; the thermal throttle and sub-second swings
    left out): the GPUs' demand a steering controller sees (:mod:`twin.simulation.power_loop`)."""

    def __init__(
        self,
        facility: Facility,
        scenario: Scenario,
        start: np.datetime64 | str | None = None,
        step_s: float = 1.0,
        plant_step_s: float = 20.0,
        controller: Controller | None = None,
        ramp_limited: bool = True,
    ):
        """``ramp_limited``: False applies every command at once (the BMC emulator: hardware power limits take
        effect when written; keeping the ramp is the steering side's job, and the watchdog's fallback is a safety
        cut)."""
        f = facility
        if step_s <= 0 or plant_step_s <= 0:
            raise ValueError("step: must be > 0")
        if plant_step_s != round(plant_step_s):  # the clock below counts whole seconds
            raise ValueError(f"plant_step: must be a whole number of seconds, got {plant_step_s:g} s")
        n_sub = plant_step_s / step_s
        if abs(n_sub - round(n_sub)) > 1e-9:
            raise ValueError(f"plant_step: {plant_step_s:g} s must be a whole multiple of step {step_s:g} s")
        scenario.check_facility(f)
        self.f = f
        self.scenario = scenario
        self.dt, self.plant_dt, self.n_sub = float(step_s), float(plant_step_s), int(round(n_sub))
        self.time = np.datetime64(start if start is not None else scenario.start, "s")
        self.controller = controller or Uncapped(f.tdp_w)
        self.plant: Plant = build_plant(f)
        cool = f.spec.cooling
        self.rc = TwoNodeRC(f.r_die_plate_k_w, f.r_plate_coolant_k_w, f.c_die_j_k, f.c_plate_j_k)
        self.stepper = self.rc.discretize(self.dt)
        self.big_stepper = self.rc.discretize(self.plant_dt)
        # transition matrices to each 1 s sample inside a plant step (die row only): the die path under held
        # inputs, to tell which racks near the limit never reach it (those take the one exact step)
        inner = [self.rc.discretize(k * self.dt) for k in range(1, self.n_sub)]
        self._die_phi = (np.array([s.phi11 for s in inner]), np.array([s.phi12 for s in inner]))
        self.c_rack_w_k = f.rack_m_dot_kg_s * f.tcs.cp_j_kgk(cool.tcs.supply_setpoint_c)
        self.c_tcs = np.bincount(f.rack_cdu, self.c_rack_w_k, f.n_cdus)
        self.c_fws = f.c_fws_max_w_k
        self.c_fws_total = float(self.c_fws.sum())
        # three-way valves: each exchanger's flows are constant, so only its duty and supply temperature change
        self.cdus = ConstantFlowCdus(
            self.c_tcs, self.c_fws, f.cdu_ua_nom_w_k, cool.tcs.supply_setpoint_c, cool.cdu.arrangement
        )
        self.fws_v_dot = self.c_fws_total / (
            f.fws.rho_kg_m3(cool.facility_water.supply_setpoint_c)
            * f.fws.cp_j_kgk(cool.facility_water.supply_setpoint_c)
        )
        self.non_gpu_liquid_w = f.non_gpu_liquid_w
        self.curves_x = [(c, np.flatnonzero(f.rack_class == i)) for i, c in enumerate(f.curves)]
        self.tokens_per_gpu = np.array([w.tokens_per_s_per_gpu for w in f.spec.workloads])[f.rack_class]
        self.bess = self.plant.bess
        self.paths = PowerPaths(f.topology, scenario.faults)  # who feeds whom: changes when a path opens
        self.psu_rating_w = f.psu_count * f.psu_rating_w
        self.air_const_w = float(np.sum(f.non_gpu_w - self.non_gpu_liquid_w))
        self.bess_energy_j = self.plant.bess_initial_j
        self.command = Command(f.tdp_w.copy())
        self.cap = f.tdp_w.copy()
        self.cap_goal: Array | None = None  # caps commanded and not yet reached (the ramp limit) [W per GPU]
        limit_w_s = f.spec.grid.ramp_limit_mw_per_min * MW / S_PER_MIN  # the facility's import ramp limit
        self.ramp_w_s = limit_w_s if ramp_limited else np.inf
        self._next_control = self.time  # the controller is called at the first plant step
        # inputs cached an hour of plant steps at a time (see _inputs); the scenario setter clears it
        self._chunk: tuple[Array, Array, Array] | None = None
        self._inputs_from = self._inputs_until = None
        self.eff = f.drawn_w(self.cap)
        self.eff_uncapped = f.drawn_w(f.tdp_w)  # busy draw per GPU at no cap (caps never exceed TDP) [W]
        self.jobs = JobStops.of(f)  # None unless a job may pause or resize
        self._initial_state()

    # ------------------------------------------------------------------ state
    def _initial_state(self) -> None:
        """Steady state at the start time under the uncapped demand and setpoint supply temperatures."""
        f, cool = self.f, self.f.spec.cooling
        db, wb = self.scenario.ambient(np.array([self.time]))
        self.ambient: tuple[float, float] = (float(db[0]), float(wb[0]))
        u = np.stack([self.scenario.utilization(c, np.array([self.time]))[0] for c in f.class_names])[f.rack_class]
        busy = f.drawn_w(self.command.gpu_cap_w)
        p_gpu = u * busy + (1 - u) * f.idle_w
        self.gpu_demand_w = u * self.eff_uncapped + (1 - u) * f.idle_w
        q_rack = f.gpus * p_gpu + self.non_gpu_liquid_w
        # the facility-water supply setpoint may be moved at run time (a BMS reset); CDU setpoints live in
        # self.cdus (replace it to change them)
        self.fws_setpoint_c = float(cool.facility_water.supply_setpoint_c)
        self.tcs_supply_c = np.full(f.n_cdus, cool.tcs.supply_setpoint_c)
        self.rise_k = q_rack / self.c_rack_w_k
        t_cool = self.tcs_supply_c[f.rack_cdu] + 0.5 * self.rise_k
        self.t_die, self.t_plate = self.stepper.steady_state(p_gpu, t_cool)
        self.gpu_power_w = p_gpu
        self.gpu_energy_j = np.zeros(f.n_racks)  # drawn per GPU of each rack since the twin started [J]
        t_ret = self.tcs_supply_c + np.bincount(f.rack_cdu, q_rack, f.n_cdus) / self.c_tcs
        self.tcs_return_c = t_ret
        self.tcs_delay = ConstantFlowDelay(
            np.full(f.n_cdus, cool.tcs.loop_volume_l * 1e-3), f.tcs_v_dot_m3_s, self.plant_dt, t_ret
        )
        q_cdu = self.c_tcs * (t_ret - self.tcs_supply_c)
        self.fws_supply_c = float(cool.facility_water.supply_setpoint_c)
        t_fws_ret = self.fws_supply_c + float(q_cdu.sum()) / self.c_fws_total
        self.fws_return_c = t_fws_ret
        self.fws_delay = ConstantFlowDelay(
            cool.facility_water.return_volume_m3, self.fws_v_dot, self.plant_dt, t_fws_ret
        )
        self.rejection: Rejection = self.plant.reject(t_fws_ret, self.c_fws_total, *self.ambient)
        self.throttled = np.zeros(f.n_racks, bool)
        self.cdu_at_capacity = np.zeros(f.n_cdus, bool)
        self.last: PlantStepResult | None = None

    @property
    def cdu_q_w(self) -> Array:
        """Heat each CDU moves from its TCS loop to the facility water over the latest plant step [W]: the loop's
        heat-capacity rate times its return-minus-supply difference."""
        return self.c_tcs * (np.asarray(self.tcs_return_c, float) - np.asarray(self.tcs_supply_c, float))

    def stored_heat_j(self) -> float:
        """Heat held in the twin [J, relative to 0 degC]: die and plate nodes, pipes, in-transit supply."""
        f = self.f
        racks = float(np.sum(f.gpus * self.rc.stored_energy_j(self.t_die, self.t_plate)))
        tcs = float(self.tcs_delay.stored_energy_j(self.c_tcs / self.f.tcs_v_dot_m3_s).sum())
        fws = float(self.fws_delay.stored_energy_j(self.c_fws_total / self.fws_v_dot).sum())
        transit = self.plant_dt * (float(self.c_tcs @ self.tcs_supply_c) + self.c_fws_total * self.fws_supply_c)
        return racks + tcs + fws + transit

    def dr_baseline_mw(self, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
        """The DR baseline [MW] at ``times`` under the scenario in force
        (:func:`twin.simulation.targets.dr_baseline_mw`)."""
        from factory_twin.twin.simulation.targets import dr_baseline_mw

        return dr_baseline_mw(self.f, self.scenario, times)

    def state(self) -> TwinState:
        last = self.last
        paused, resized = self.jobs.stopped() if self.jobs is not None else (None, None)
        return TwinState(
            self.time,
            self.gpu_power_w.copy(),
            self.command.gpu_cap_w.copy(),
            self.t_die.copy(),
            self.tcs_supply_c.copy(),
            self.fws_supply_c,
            grid_import_w(last) if last else np.nan,
            last.it_w if last else np.nan,
            last.cooling_w if last else np.nan,
            self.bess_energy_j,
            self.scenario,
            paused,
            resized,
        )

    # ------------------------------------------------------------------ stepping
    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @scenario.setter
    def scenario(self, value: Scenario) -> None:
        """Replace the scenario (what-if changes); cached inputs are recomputed from the next step."""
        self._scenario = value
        self._inputs_until = None
        if hasattr(self, "paths"):
            self.paths.set_faults(value.faults)

    def _inputs(self) -> tuple[float, float, Array, Array | None]:
        """Ambient, per-rack utilization and the oscillation table for the coming plant step.

        Evaluated for an hour of plant steps at a time (one vectorized call per input, not one per step).
        """
        if self._inputs_until is None or not (self._inputs_from <= self.time < self._inputs_until):
            n = int(round(INPUT_CHUNK_S / self.plant_dt))
            times = self.time + (np.arange(n) * self.plant_dt).astype("timedelta64[s]")
            db, wb = self.scenario.ambient(times)
            u = np.stack([self.scenario.utilization(c, times) for c in self.f.class_names])
            self._chunk = (db, wb, u)
            self._inputs_from, self._inputs_until = times[0], times[-1] + np.timedelta64(int(self.plant_dt), "s")
        i = int((self.time - self._inputs_from).astype(float) // self.plant_dt)
        db, wb, u = self._chunk
        oscillating = [c for c in self.f.class_names if self.scenario.workload.get(c, _NO_OSC).oscillation_depth > 0]
        osc = None
        if oscillating:
            sub = float(self.time.astype(np.int64)) + np.arange(self.n_sub) * self.dt
            osc = np.stack(
                [
                    self.scenario.workload[c].power_factor(sub) if c in oscillating else np.ones(self.n_sub)
                    for c in self.f.class_names
                ]
            )
        return float(db[i]), float(wb[i]), u[:, i][self.f.rack_class], osc

    def advance(self) -> PlantStepResult:
        """Advance one plant step; return the interval means.

        Racks whose inputs cannot change inside the interval (no training oscillation, not throttled, and
        die, steady state and plate + P R_1 all more than ``HOT_MARGIN_K`` below the throttle temperature)
        take one exact step of the whole interval: identical to ``n_sub`` exact steps of ``step_s`` with
        the same held inputs (tests/twin/test_engine.py checks it).
        The others step every ``step_s`` with the throttle checked each step.
        """
        f = self.f
        if self._due_for_control():
            self.command = self.controller(self.state(), self.time)
            cap = np.asarray(self.command.gpu_cap_w, float)
            if cap.shape != (f.n_racks,):
                raise ValueError(f"controller returned gpu_cap_w of shape {cap.shape}, expected ({f.n_racks},)")
            self.cap_goal = np.clip(cap, f.min_cap_w, f.tdp_w)
            if self.jobs is not None:
                self.jobs.command(self.command.paused_share, self.command.resized_share, self.controller.period_s)
        db, wb, u_busy, osc = self._inputs()
        self.ambient = (db, wb)
        self.paths.apply_faults(self.time, f.gpus, f.gpus * u_busy)
        eff = self.eff
        idle_part = (1 - u_busy) * f.idle_w
        u = u_busy
        if self.jobs is not None:  # computing share of the busy GPUs; the rest draws the stops' power
            run, other_w = self.jobs.step(self.plant_dt, u_busy, f.idle_w)
            u, idle_part = u_busy * run, idle_part + u_busy * other_w
        if not self.paths.all_on:  # dark racks: no power, no work
            on = self.paths.rack_on
            u, idle_part = u * on, idle_part * on
        self._move_caps(u, idle_part)
        eff = self.eff
        p_const = u * eff + idle_part
        self.gpu_demand_w = u * self.eff_uncapped + idle_part  # the same work at no cap (attribute docstring)
        t_cool = self.tcs_supply_c[f.rack_cdu] + 0.5 * self.rise_k
        t_die0, t_plate0 = self.t_die, self.t_plate
        t_die, t_plate = self.big_stepper.step(t_die0, t_plate0, p_const, t_cool)
        p_mean, eff_mean, thr_share = p_const, eff, np.zeros(f.n_racks)
        limit = f.t_max_c - HOT_MARGIN_K
        # the die heads from its state toward t_cool + P R_total, passing near t_plate + P R_1 on the way
        bound = np.maximum(
            np.maximum(t_die0, t_cool + p_const * self.stepper.r_total_k_w), t_plate0 + p_const * f.r_die_plate_k_w
        )
        hot = (bound >= limit) | self.throttled
        varying = np.zeros(f.n_racks, bool)
        if osc is not None:
            varying = np.isin(f.rack_class, np.flatnonzero(np.any(osc != 1.0, axis=1)))
            hot |= varying
        near = np.flatnonzero(hot & ~self.throttled & ~varying)
        if near.size:
            hot[near[self._stays_below_limit(near, t_die0[near], t_plate0[near], p_const[near], t_cool[near])]] = False
        if hot.any():
            idx = np.flatnonzero(hot)
            sub = self._substep(
                idx,
                t_die0[idx],
                t_plate0[idx],
                t_cool[idx],
                u[idx],
                eff[idx],
                idle_part[idx],
                None if osc is None else osc[f.rack_class[idx]],
            )
            t_die[idx], t_plate[idx] = sub[0], sub[1]
            p_mean, eff_mean, thr_share = p_mean.copy(), eff_mean.copy(), thr_share
            p_mean[idx], eff_mean[idx], thr_share[idx] = sub[2], sub[3], sub[4]
        e0 = self.rc.stored_energy_j(t_die0, t_plate0)
        self.t_die, self.t_plate = t_die, t_plate
        self.gpu_power_w = p_mean
        self.gpu_energy_j = self.gpu_energy_j + p_mean * self.plant_dt  # a new array: readers keep theirs whole
        self.throttled[~hot] = False
        gpu_heat_j = f.gpus * (p_mean * self.plant_dt - (self.rc.stored_energy_j(t_die, t_plate) - e0))
        q_rack_w = gpu_heat_j / self.plant_dt + self.non_gpu_liquid_w * self._on()
        self.rise_k = q_rack_w / self.c_rack_w_k
        result = self._plant_and_power(p_mean, q_rack_w, u, u_busy, eff_mean, thr_share)
        self.time = self.time + np.timedelta64(int(round(self.plant_dt)), "s")
        self.last = result
        return result

    def _stays_below_limit(self, idx: IntArray, t_die: Array, t_plate: Array, p: Array, t_cool: Array) -> NDArray:
        """Racks ``idx`` whose die stays below ``t_max`` at every ``step_s`` sample of the coming interval with
        inputs held (exact transition to each sample): the throttle would never act, so the one exact step
        of the interval equals the fine steps."""
        if self.n_sub == 1:
            return t_die < self.f.t_max_c[idx]
        ss_die = t_cool + p * self.stepper.r_total_k_w[idx]
        d_die, d_plate = t_die - ss_die, t_plate - (t_cool + p * self.rc.r_plate_coolant_k_w[idx])
        phi11, phi12 = self._die_phi
        path = ss_die + phi11[:, idx] * d_die + phi12[:, idx] * d_plate
        return np.maximum(path.max(axis=0), t_die) < self.f.t_max_c[idx]

    def _substep(
        self,
        idx: IntArray,
        t_die: Array,
        t_plate: Array,
        t_cool: Array,
        u: Array,
        eff: Array,
        idle_part: Array,
        osc: Array | None,
    ) -> tuple[Array, ...]:
        """Step racks ``idx`` every ``step_s`` with the thermal throttle; return temperatures and means."""
        f, n = self.f, self.n_sub
        step = _subset(self.stepper, idx)
        # referenced to the cold plate (the fast die node): holds the die at t_max even while the plate
        # is still hot; at steady state it equals (t_max - t_coolant) / R_total
        throttle = ThermalThrottle(
            f.t_max_c[idx], f.r_die_plate_k_w[idx], f.min_cap_w[idx], f.throttle_hysteresis_k[idx]
        )
        dem = f.demand_w[idx]
        p_sum, eff_sum, thr = np.zeros(idx.size), np.zeros(idx.size), np.zeros(idx.size)
        throttled = self.throttled[idx]
        for j in range(n):
            lim, throttled = throttle.limit(t_die, t_plate, throttled)
            e = np.minimum(eff, lim)
            busy = e if osc is None else np.minimum(dem * osc[:, j], e)
            p = u * busy + idle_part
            t_die, t_plate = step.step(t_die, t_plate, p, t_cool)
            p_sum += p
            eff_sum += e
            thr += throttled
        self.throttled[idx] = throttled
        return t_die, t_plate, p_sum / n, eff_sum / n, thr / n

    def override(self, gpu_cap_w: Array) -> None:
        """Hold new per-rack caps [W per GPU] from the next plant step until the controller's next call (a guardrail
        acting before the controller has re-planned), reached at the ramp limit like a command; the BESS command is
        kept."""
        f = self.f
        self.cap_goal = np.clip(np.asarray(gpu_cap_w, float), f.min_cap_w, f.tdp_w)
        self.command = Command(self.cap_goal.copy(), self.command.bess_power_w)

    def _move_caps(self, u: Array, idle_part: Array) -> None:
        """Move the caps toward :attr:`cap_goal` so that this plant step's campus GPU power (computing share ``u`` x
        drawn power + ``idle_part``, per GPU) stays within the ramp limit's share of the step from the latest step's
        (module docstring): what a job's stop sheds this step counts, and the caps move the rest of the way."""
        goal = self.cap_goal
        if goal is None:
            return
        f = self.f
        eff_goal = f.drawn_w(goal)
        last = self.last
        if last is not None:
            way = eff_goal - self.eff
            p0 = float(f.gpus @ (u * self.eff + idle_part))  # this step's GPU power with the caps in force [W]
            move = float((f.gpus * u) @ way)  # what reaching the goal adds (or sheds, < 0) [W]
            import_per_w = max(last.grid_w / max(last.rack_dc_w, 1.0), 1.0)
            band = self.ramp_w_s * self.plant_dt / import_per_w
            room = (last.gpu_w + band - p0) if move > 0 else (p0 - (last.gpu_w - band))
            if abs(move) > max(room, 0.0):
                self.eff = self.eff + max(room, 0.0) / abs(move) * way
                self.cap = np.clip(f.cap_for_drawn_w(self.eff), f.min_cap_w, f.tdp_w)
                return
        self.cap, self.eff, self.cap_goal = goal, eff_goal, None

    def request_control(self) -> None:
        """Call the controller at the next plant step (e.g. after a what-if change of the scenario)."""
        self._next_control = self.time

    def _due_for_control(self) -> bool:
        if self.time >= self._next_control:
            self._next_control = self.time + np.timedelta64(int(round(self.controller.period_s)), "s")
            return True
        return False

    def _on(self) -> Array | float:
        """1 for racks with power, 0 for dark ones (the scalar 1 while every rack has power)."""
        return 1.0 if self.paths.all_on else self.paths.rack_on.astype(float)

    def _plant_and_power(
        self, p_gpu: Array, q_rack_w: Array, u: Array, u_busy: Array, eff_w: Array, throttled_share: Array
    ) -> PlantStepResult:
        """Loops, heat rejection and the power chain for one plant step; ``u`` is the computing share of each
        rack's GPUs (throughput), ``u_busy`` the busy share (uncapped throughput)."""
        f, cool, dt = self.f, self.f.spec.cooling, self.plant_dt
        n_cdu = f.n_cdus
        q_cdu_in = np.bincount(f.rack_cdu, q_rack_w, n_cdu)
        t_header = self.tcs_supply_c + q_cdu_in / self.c_tcs
        t_ret = self.tcs_delay.push(t_header)
        self.tcs_return_c = t_ret
        t_supply, self.cdu_at_capacity = self.cdus.control(t_ret, self.fws_supply_c)
        q_cdu = self.c_tcs * (t_ret - t_supply)
        t_branch = self.fws_supply_c + q_cdu / self.c_fws
        t_mix = float(self.c_fws @ t_branch) / self.c_fws_total
        t_plant_in = float(self.fws_delay.push(t_mix)[0])
        self.fws_return_c = t_plant_in
        rej = self.plant.reject(t_plant_in, self.c_fws_total, *self.ambient, setpoint_c=self.fws_setpoint_c)
        self.tcs_supply_c = t_supply
        self.fws_supply_c = rej.t_supply_c
        self.rejection = rej

        on = self._on()
        rack_dc = f.gpus * p_gpu + f.non_gpu_w * on
        rack_in = self.plant.psu_input_w(rack_dc, self.psu_rating_w, f.psu_curve)
        it_w = float(rack_in.sum())
        air_const = self.air_const_w if self.paths.all_on else float(on @ (f.non_gpu_w - self.non_gpu_liquid_w))
        q_air = air_const + it_w - float(rack_dc.sum())  # non-GPU air share + PSU losses
        cooling_w = rej.power_w + self.plant.pump_w + q_air / cool.air.cop
        flow = f.topology.flow(self.paths.routing, rack_in, cooling_w)
        racks_dark = float(f.n_racks - np.count_nonzero(self.paths.rack_on))
        self.paths.protect(flow, self.time, dt, f.gpus, f.gpus * u_busy)
        bess_cmd = float(self.command.bess_power_w)
        bess_w = 0.0
        if self.bess is not None:
            e_next, bess_w = bess_step(self.bess_energy_j, bess_cmd, dt, self.bess)
            self.bess_energy_j, bess_w = float(e_next), float(bess_w)
        tok_full = f.gpus * u * self.tokens_per_gpu
        thr = self._throughput(eff_w)
        tokens = float(tok_full @ thr)
        tok_unc = float(tok_full.sum() if u is u_busy else np.sum(f.gpus * u_busy * self.tokens_per_gpu))
        return PlantStepResult(
            gpu_w=float(f.gpus @ p_gpu),
            rack_dc_w=float(rack_dc.sum()),
            it_w=it_w,
            losses_w=float(flow.losses_w),
            cooling_w=cooling_w,
            grid_w=float(flow.grid_w),
            bess_w=bess_w,
            q_liquid_w=float(q_rack_w.sum()),
            q_air_w=q_air,
            q_rejected_w=rej.q_w + q_air,
            tokens_per_s=tokens,
            tokens_uncapped_per_s=tok_unc,
            throttled_gpus=float(f.gpus @ throttled_share),
            racks_dark=racks_dark,
            tier_in_w=flow.in_w,
            tier_loss_w=flow.loss_w,
        )

    def _throughput(self, eff_w: Array) -> Array:
        """Per-rack throughput at effective caps ``eff_w`` [-] (reused while the caps do not change)."""
        cached = getattr(self, "_thr_cache", None)
        if cached is not None and np.array_equal(cached[0], eff_w):
            return cached[1]
        thr = np.empty(self.f.n_racks)
        for curve, idx in self.curves_x:
            thr[idx] = curve.throughput(eff_w[idx] / self.f.tdp_w[idx])
        self._thr_cache = (eff_w.copy(), thr)
        return thr


def _subset(step: RCStep, idx: IntArray) -> RCStep:
    """The exact step of racks ``idx`` only (for the racks that need fine steps)."""
    rc = step.rc
    sub_rc = TwoNodeRC(rc.r_die_plate_k_w[idx], rc.r_plate_coolant_k_w[idx], rc.c_die_j_k[idx], rc.c_plate_j_k[idx])
    return replace(
        step,
        rc=sub_rc,
        phi11=step.phi11[idx],
        phi12=step.phi12[idx],
        phi21=step.phi21[idx],
        phi22=step.phi22[idx],
        r_total_k_w=step.r_total_k_w[idx],
    )


def simulate(
    facility: Facility,
    scenario: Scenario,
    start: str | np.datetime64 | None = None,
    duration: str | float = "24h",
    step: str | float = "1s",
    plant_step: str | float = "20s",
    record_every: str | float = "60s",
    controller: Controller | None = None,
    progress: Callable[[float], None] | None = None,
    recorder: type[Recorder] | partial = Recorder,
) -> xr.Dataset:
    """Simulate ``facility`` under ``scenario``; return an xarray Dataset (units in attributes).

    ``duration``, ``step``, ``plant_step`` and ``record_every`` take seconds or strings like ``"24h"``, ``"5min"``,
    ``"1s"``; ``record_every`` must be a multiple of ``plant_step``. Per-rack and per-CDU variables are sampled at
    each record time; powers and throughput are means over the record interval. ``progress`` receives the completed
    fraction. ``recorder(twin, n_records, plant_steps_per_record)`` makes the
    :class:`~factory_twin.twin.simulation.recorder.Recorder`: the class or a ``functools.partial`` of it (e.g. a
    ``CampusRecorder`` for long runs).
    """
    facility, scenario = facility_and_scenario(facility, scenario)
    twin = Twin(facility, scenario, start, seconds(step, "step"), seconds(plant_step, "plant_step"), controller)
    rec_s, dur_s = seconds(record_every, "record_every"), seconds(duration, "duration")
    per_rec = rec_s / twin.plant_dt
    if abs(per_rec - round(per_rec)) > 1e-9 or per_rec < 1:
        raise ValueError(f"record_every: {rec_s:g} s must be a whole multiple of plant_step {twin.plant_dt:g} s")
    n_rec = int(dur_s // rec_s)
    if n_rec < 1:
        raise ValueError(f"duration: {dur_s:g} s is shorter than record_every {rec_s:g} s")
    scenario.signals.check_covers(twin.time, twin.time + np.timedelta64(int(n_rec * rec_s), "s"))
    kind = getattr(recorder, "func", recorder)  # a Recorder class or a functools.partial of one
    check_memory(
        kind.record_bytes(facility, n_rec), "simulate: the record", "record less often or simulate a shorter duration"
    )
    rec = recorder(twin, n_rec, int(round(per_rec)))
    for k in range(n_rec):
        for _ in range(rec.per_record):
            rec.accumulate(twin.advance())
        rec.record(k)
        if progress:
            progress((k + 1) / n_rec)
    return rec.dataset()
