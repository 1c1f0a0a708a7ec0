"""The electrical side of the campus at the steering step (1 s), per GPU: demand, limits, draw, every tier's load,
protective devices, and the meters of a steering run.

Each step ``[t, t + dt)``: the workload demand of every GPU (:mod:`twin.scenario.demand`) meets the limits the
controller set from what it observed up to ``t`` (the limits act one step after the telemetry they come from); a
GPU draws ``min(demand, limit)``; racks add their non-GPU power and PSU losses; the one-line diagram carries the
racks and the cooling plant (:meth:`twin.facility.topology.Topology.flow`) and its protective devices integrate
their load (:class:`twin.simulation.paths.PowerPaths`: a tripped element opens, its racks go dark unless a partner
picks them up). The cooling plant is quasi-static at this time scale: its power is the steady model's
(:func:`twin.simulation.design.cooling_power_w`) for the liquid heat and the ambient, refreshed every
``COOLING_EVERY_S``; heat above the plant's capacity at that ambient (:meth:`Plant.capacity_w`) counts as a
cooling limit hit. The controller (a :class:`Steering`, passed in: this module never imports the optimizer) then
sees the step's :class:`Measurement` and returns the limits for the next one. A controller may steer GPUs in units
(``gpus_per_unit``: a unit's GPUs share one demand, their mean, and one limit; 1 by default): the per-GPU arrays then
hold one entry per unit, in W per GPU, and every sum and meter counts each GPU.

Meters (:class:`SteeringMeters`): per element the time above its budget (each excursion's length and its largest
load multiple), per step the satisfaction of demand (served over demanded GPU energy, and the mean over GPU-steps
of ``min(limit, demand) / demand``), the tokens demanded and delivered (throughput lost to limits), per group the
guarantee, allocation, demand and satisfaction, and every record interval the means for a Dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import xarray as xr
from factory_twin.models.units import MW
from factory_twin.twin.facility.resource_groups import units_per_rack
from factory_twin.twin.scenario.demand import Demand, DemandStep
from factory_twin.twin.simulation.design import cooling_power_w
from factory_twin.twin.simulation.paths import PowerPaths
from factory_twin.twin.simulation.plant import build_plant
from numpy.typing import NDArray

Array = NDArray[np.float64]
COOLING_EVERY_S = 60.0
SITE_SERIES = ("grid_w", "gpu_w", "demand_w", "limit_w", "tokens_demanded", "tokens_delivered", "cooling_w")


@dataclass(frozen=True)
class Measurement:
    """What steering sees after a step: the time at its end, per GPU the demand [W] of the step (telemetry: the
    GPUs' requests), per rack the GPU power drawn [W], per element its input [W], the routing in force, the grid
    flow [W], the ambient (dry, wet bulb) [degC] and the scenario."""

    time: np.datetime64
    gpu_demand_w: NDArray[np.float32]
    rack_gpu_w: Array
    element_in_w: Array
    routing: object
    grid_w: float
    ambient: tuple[float, float]
    cooling_room_w: float  # heat the plant can still reject at this ambient [W] (negative: over capacity)
    scenario: object


class Steering(Protocol):
    """A steering controller: per-GPU limits [W] for the next step from a :class:`Measurement`, its element budgets
    [W at each element's input] and the resource group of every rack (for the group meters)."""

    budget_w: Array
    rack_group: NDArray[np.int64]
    group_names: tuple[str, ...]
    gpus_per_unit: int  # GPUs steered as one: per-GPU arrays hold one entry per unit [W per GPU]

    def __call__(self, m: Measurement) -> NDArray[np.float32]: ...


@dataclass
class SteeringMeters:
    """Running totals of a steering run (module docstring). Energies in J, tokens in tokens."""

    n_el: int
    n_groups: int
    steps: int = 0
    served_j: float = 0.0
    demanded_j: float = 0.0
    ratio_sum: float = 0.0  # sum over GPU-steps of min(limit, demand) / demand
    gpu_steps: float = 0.0
    tokens_demanded: float = 0.0
    tokens_delivered: float = 0.0
    grid_j: float = 0.0
    cooling_hit_s: float = 0.0
    over_s: Array = field(default=None)  # per element: seconds above budget
    run_s: Array = field(default=None)  # per element: length of the excursion in progress
    longest_s: Array = field(default=None)
    excursions: Array = field(default=None)
    peak_multiple: Array = field(default=None)  # largest load / device setting seen above budget
    at_limit_s: Array = field(default=None)  # seconds at >= 99 % of budget
    group_served_j: Array = field(default=None)
    group_demanded_j: Array = field(default=None)

    def __post_init__(self) -> None:
        z = np.zeros(self.n_el)
        for k in ("over_s", "run_s", "longest_s", "excursions", "peak_multiple", "at_limit_s"):
            if getattr(self, k) is None:
                setattr(self, k, z.copy())
        if self.group_served_j is None:
            self.group_served_j = np.zeros(self.n_groups)
            self.group_demanded_j = np.zeros(self.n_groups)

    @property
    def satisfaction(self) -> float:
        """Served over demanded GPU energy [-]."""
        return self.served_j / self.demanded_j if self.demanded_j > 0 else 1.0

    @property
    def satisfaction_mean(self) -> float:
        """Mean over GPU-steps of min(limit, demand) / demand [-]."""
        return self.ratio_sum / self.gpu_steps if self.gpu_steps else 1.0

    @property
    def throughput_lost(self) -> float:
        """Share of the demanded tokens the limits did not deliver [-]."""
        return 1.0 - self.tokens_delivered / self.tokens_demanded if self.tokens_demanded > 0 else 0.0


class PowerLoop:
    """A campus stepped at ``step_s`` under a steering controller (module docstring)."""

    def __init__(self, f, scenario, controller: Steering, start=None, step_s: float = 1.0, seed: int = 0,
                 record_every_s: float = 60.0, demand: Demand | None = None):  # fmt: skip
        self.f, self.scenario, self.controller = f, scenario, controller
        self.dt = float(step_s)
        self._step64 = np.timedelta64(int(round(self.dt)), "s")
        self.time = np.datetime64(start if start is not None else scenario.start, "s")
        self.t_s = 0.0
        self.unit = int(getattr(controller, "gpus_per_unit", 1))
        self.demand = demand or Demand(f, scenario, self.time, seed, gpus_per_unit=self.unit)
        self.paths = PowerPaths(f.topology, scenario.faults)
        self.plant = build_plant(f)
        self.c_fws = float(f.c_fws_max_w_k.sum())
        self.psu_rating_w = f.psu_count * f.psu_rating_w
        self.n_unit = units_per_rack(f, self.unit)  # entries per rack: GPUs, or steering units
        self.limits = np.repeat(f.tdp_w, self.n_unit).astype(np.float32)
        self.meters = SteeringMeters(f.topology.n, len(controller.group_names))
        self.record_every = int(round(record_every_s / self.dt))
        self.records: list[dict] = []
        self._acc: dict[str, Array] = {}
        self._cool_at = -np.inf
        self.cooling_w = 0.0
        self.cooling_room_w = np.inf
        self._rack_first = np.concatenate(([0], np.cumsum(self.n_unit))).astype(np.int64)  # each rack's entries
        self._inv_gpus = 1.0 / f.gpus

    def step(self) -> Measurement:
        """Advance one step; return what steering sees (the controller has already set the next limits)."""
        f, dt = self.f, self.dt
        from factory_twin.twin.simulation.loop_kernels import rack_pass  # numba: loaded at the first step

        d: DemandStep = self.demand.step(self.t_s, dt)
        on = self.paths.rack_on
        rack_gpu, rack_lim, rack_dem, rack_dc, ratio = rack_pass(d.gpu_w, self.limits, self._rack_first, self.unit,
                                                                 on, f.non_gpu_w)  # fmt: skip
        rack_in = self.plant.psu_input_w(rack_dc, self.psu_rating_w)
        if self.t_s >= self._cool_at:
            self._cooling(rack_gpu, rack_in, rack_dc, on)
        flow = f.topology.flow(self.paths.routing, rack_in, self.cooling_w)
        busy = f.gpus * (d.rack_tokens_per_s > 0)
        self.paths.protect(flow, self.time, dt, f.gpus, busy)
        self._meter(d, ratio, rack_lim, rack_dem, rack_gpu, flow, on)
        self.t_s += dt
        self.time = self.time + self._step64
        m = Measurement(self.time, d.gpu_w, rack_gpu, flow.in_w, self.paths.routing, float(flow.grid_w),
                        self.ambient, self.cooling_room_w, self.scenario)  # fmt: skip
        self.limits = np.asarray(self.controller(m), np.float32)
        return m

    def _cooling(self, rack_gpu: Array, rack_in: Array, rack_dc: Array, on) -> None:
        f = self.f
        db, wb = self.scenario.ambient(np.array([self.time]))
        self.ambient = (float(db[0]), float(wb[0]))
        q_liq = float(rack_gpu.sum() + (f.non_gpu_liquid_w * on).sum())
        q_air = float(((f.non_gpu_w - f.non_gpu_liquid_w) * on).sum() + (rack_in - rack_dc).sum())
        self.cooling_w = float(cooling_power_w(f, q_liq, q_air, self.ambient[0], self.ambient[1]))
        cap = float(self.plant.capacity_w(self.ambient[0], self.ambient[1], self.c_fws))
        self.cooling_room_w = cap - q_liq
        self._cool_at = self.t_s + COOLING_EVERY_S

    def _meter(self, d: DemandStep, ratio: float, rack_lim, rack_dem, rack_gpu, flow, on) -> None:
        """Add the step to the meters; ``ratio`` the sum over GPUs of ``min(limit, demand) / demand``."""
        from factory_twin.twin.simulation import loop_kernels as k

        f, m, dt, c = self.f, self.meters, self.dt, self.controller
        m.steps += 1
        tok_delivered = self.demand.tokens_delivered(d, rack_lim * self._inv_gpus)
        served, demanded, tok_d, tok, limit, g_served, g_demanded = k.rack_sums(
            rack_gpu, rack_dem, on, d.rack_tokens_per_s, tok_delivered, rack_lim, c.rack_group, m.n_groups
        )
        m.served_j += served * dt
        m.demanded_j += demanded * dt
        m.ratio_sum += ratio
        m.gpu_steps += self.unit * d.gpu_w.size
        m.tokens_demanded += tok_d * dt
        m.tokens_delivered += tok * dt
        m.grid_j += float(flow.grid_w) * dt
        if self.cooling_room_w < 0:
            m.cooling_hit_s += dt
        budget = c.budget_w
        if k.element_marks(flow.in_w, budget, dt, m.at_limit_s):
            over = flow.in_w > budget * (1 + 1e-9)
            m.over_s += over * dt
            m.excursions += over & (m.run_s == 0)
            m.run_s = np.where(over, m.run_s + dt, 0.0)
            m.longest_s = np.maximum(m.longest_s, m.run_s)
            mult = f.topology.trip_multiple(flow.in_w)
            m.peak_multiple = np.maximum(m.peak_multiple, np.where(over, mult, 0.0))
        elif m.run_s.any():  # every excursion ended
            m.run_s = np.zeros_like(m.run_s)
        m.group_served_j += g_served * dt
        m.group_demanded_j += g_demanded * dt
        self._accumulate(flow, budget, limit, tok_d, tok, served, demanded)

    def _accumulate(self, flow, budget, limit_w: float, tok_d: float, tok: float, served: float,
                    demanded: float) -> None:  # fmt: skip
        """Add the step to the record interval's sums; close a record every ``record_every`` steps."""
        if not self._acc:
            n_el = flow.in_w.size
            self._acc = {"element_in_w": np.zeros(n_el), "element_budget_w": np.zeros(n_el),
                         "element_max_w": np.full(n_el, -np.inf), "site": np.zeros(len(SITE_SERIES))}  # fmt: skip
        a = self._acc
        a["element_in_w"] += flow.in_w
        a["element_budget_w"] += budget
        np.maximum(a["element_max_w"], flow.in_w, out=a["element_max_w"])
        a["site"] += (flow.grid_w, served, demanded, limit_w, tok_d, tok, self.cooling_w)
        if self.meters.steps % self.record_every == 0:
            n = self.record_every
            rec = dict(zip(SITE_SERIES, a["site"] / n, strict=True))
            rec |= {"element_in_w": a["element_in_w"] / n, "element_budget_w": a["element_budget_w"] / n,
                    "element_max_w": a["element_max_w"]}  # fmt: skip
            rec["time"] = self.time + np.timedelta64(int(round(self.dt)), "s")
            self.records.append(rec)
            self._acc = {}

    def run(self, duration_s: float, progress=None) -> SteeringMeters:
        """Step for ``duration_s`` [s]; ``progress(fraction)`` after every record."""
        n = int(round(duration_s / self.dt))
        for k in range(n):
            self.step()
            if progress is not None and (k + 1) % self.record_every == 0:
                progress((k + 1) / n)
        return self.meters

    def dataset(self) -> xr.Dataset:
        """The records as a Dataset over ``time`` and ``element`` (MW, interval means; ``element_max_mw`` the
        largest one-step load) with the run's totals in the attributes."""
        recs = self.records
        topo = self.f.topology
        t = np.array([r["time"] for r in recs], "datetime64[s]")

        def series(k, scale=1 / MW):
            return np.array([np.asarray(r[k]) for r in recs]) * scale

        m = self.meters
        ds = xr.Dataset(
            {
                "element_mw": (("time", "element"), series("element_in_w"), {"units": "MW", "long_name": "tier load"}),
                "element_max_mw": (("time", "element"), series("element_max_w"), {"units": "MW"}),
                "element_budget_mw": (("time", "element"), series("element_budget_w"), {"units": "MW"}),
                "grid_import_mw": ("time", series("grid_w"), {"units": "MW"}),
                "gpu_power_mw": ("time", series("gpu_w"), {"units": "MW"}),
                "gpu_demand_mw": ("time", series("demand_w"), {"units": "MW"}),
                "gpu_limit_mw": ("time", series("limit_w"), {"units": "MW", "long_name": "sum of GPU limits"}),
                "cooling_power_mw": ("time", series("cooling_w"), {"units": "MW"}),
                "tokens_demanded_per_s": ("time", series("tokens_demanded", 1.0), {"units": "1/s"}),
                "tokens_per_s": ("time", series("tokens_delivered", 1.0), {"units": "1/s"}),
                "over_budget_s": ("element", m.over_s, {"units": "s"}),
                "longest_excursion_s": ("element", m.longest_s, {"units": "s"}),
                "excursions": ("element", m.excursions, {"units": "1"}),
                "peak_multiple": ("element", m.peak_multiple, {"units": "1"}),
                "at_limit_s": ("element", m.at_limit_s, {"units": "s"}),
                "group_satisfaction": (
                    "group",
                    m.group_served_j / np.maximum(m.group_demanded_j, 1e-300),
                    {"units": "1"},
                ),
            },
            coords={"time": t, "element": list(topo.names), "group": list(self.controller.group_names)},
        )
        ds.attrs |= {
            "satisfaction": m.satisfaction,
            "satisfaction_mean": m.satisfaction_mean,
            "throughput_lost": m.throughput_lost,
            "cooling_limit_s": m.cooling_hit_s,
            "trips": sum(e.kind == "trip" for e in self.paths.events),
            "events": "; ".join(str(e) for e in self.paths.events),
            "interruptions": self.demand.interruptions,
        }
        return ds
