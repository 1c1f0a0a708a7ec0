"""Model-predictive control: re-plan caps over a receding horizon every ``replan_every``; apply the
plan's first command, held until the next re-plan. The plan itself holds it over those steps, so
that every step it covers (e.g. a DR ramp-in) stays within its limits.

Settings: one :class:`optimization.options.DispatchOptions` (default :data:`MPC_OPTIONS`: 2 h at
1 min, every limit soft so that a re-plan always yields caps, 60 s time limit).

Feedback: at each re-plan the measured import (from the twin state) minus the site model's
prediction for the caps in force is added to the model (``bias_mw`` of
:func:`optimization.dispatch.plan_horizon`), and the import ramp starts from the measurement. Only
DR events announced by the re-plan time are planned for (the notice is respected). Violations of
soft limits are logged. A failed re-plan keeps the previous command. The scenario in force is read
from the twin state on every call, so what-if changes of a running twin reach the plan (``replans``); the
latest plan is kept as ``plan``, an :class:`optimization.plan.DispatchPlan` (the twin reads it as its
:class:`~twin.simulation.controllers.ControlPlan`).

Job stops: when jobs may pause and the plan pauses a job for a fraction of the coming period, the
share is rounded to a whole pause or none (``pause_fixed``) and the plan solved again, so that the caps
absorb the remainder: a fractional pause would swing the job between full and idle draw inside the
period (the twin executes it as one block), a whole one keeps the measured power on the plan.

Warm start (``warm_start=True``, the default unless the backend is ``"pyomo"``): the LP is kept
between re-plans in a :class:`optimization.backend_highspy.WarmHighs` (``warm``): the new forecast
and measured state only change costs, bounds, right-hand sides and coefficients, written in place,
and HiGHS starts from the previous basis; limit rows sit at every step (infinite where absent), so DR
events entering or leaving the horizon keep it warm. When the structure changes (e.g. flex windows,
the first measured import), the LP is built cold; ``warm.warm``/``warm.cold`` count both
and each :class:`PlanRecord` says which it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from factory_twin.models.units import MW
from factory_twin.optimization.backend_highspy import WarmHighs
from factory_twin.optimization.dispatch import plan_horizon, plan_times
from factory_twin.optimization.groups import disaggregate, group_drawn_w, make_groups, rack_caps_w
from factory_twin.optimization.linearization import forecast
from factory_twin.optimization.options import MPC_OPTIONS, DispatchOptions
from factory_twin.optimization.plan import DispatchPlan
from factory_twin.twin.scenario.timeparse import seconds
from factory_twin.twin.simulation.controllers import Command, TwinState


@dataclass
class PlanRecord:
    """One re-plan: time, solver status, objective, build and solve seconds, soft-limit
    violations."""

    time: np.datetime64
    status: str
    objective: float
    build_seconds: float
    solve_seconds: float
    violations: str
    bias_mw: float
    warm: bool = False  # solved by updating the previous re-plan's LP in place


@dataclass
class MPCController:
    """A :class:`twin.simulation.controllers.Controller` that re-plans with the dispatch LP (see module
    docstring)."""

    facility: object
    scenario: object
    options: DispatchOptions = MPC_OPTIONS
    replan_every: str | float = "5min"
    warm_start: bool = True
    log: list[PlanRecord] = field(default_factory=list, init=False)
    replans = True  # plans again from the scenario in force at every call

    def __post_init__(self) -> None:
        if not isinstance(self.options, DispatchOptions):
            raise ValueError(f"options: expected DispatchOptions, got {type(self.options).__name__}")
        self.period_s = seconds(self.replan_every, "replan_every")
        self.groups = make_groups(self.facility, self.options.grouping)
        self._last: Command | None = None
        self.plan: DispatchPlan | None = None
        self.warm = WarmHighs() if self.warm_start and self.options.backend != "pyomo" else None

    def __call__(self, state: TwinState, time: np.datetime64) -> Command:
        f = self.facility
        if getattr(state, "scenario", None) is not None:
            self.scenario = state.scenario  # what-if changes of the running twin (DR events, limits, ambient)
        opts = self.options
        times = plan_times(self.scenario, time, opts)
        bias = self._bias(state, times[:1], opts.step)
        n_warm = self.warm.warm if self.warm else 0
        kw = dict(
            initial=state if np.isfinite(state.grid_import_w) else None,
            known_at=time,
            bias_mw=bias,
            hold_steps=max(1, min(times.size, round(self.period_s / opts.step))),
            warm=self.warm,
        )
        plan = plan_horizon(f, self.scenario, self.groups, times, opts, **kw)
        if plan.paused_share is not None and plan.optimal:
            q = plan.paused_share[0]
            if np.any((q > 1e-6) & (q < 1 - 1e-6)):  # whole pauses for the period; caps absorb the rest
                fixed = whole_pauses(q, self.groups.gpus)
                rounded = plan_horizon(f, self.scenario, self.groups, times, opts, pause_fixed=fixed, **kw)
                plan = rounded if rounded.optimal else plan
        self.plan = plan  # the latest plan, for the live runner, the links and the dashboard
        self.log.append(
            PlanRecord(
                np.datetime64(time, "s"),
                plan.status,
                plan.objective,
                plan.build_seconds,
                plan.solve_seconds,
                plan.violations,
                bias,
                bool(self.warm and self.warm.warm > n_warm),
            )
        )
        cap = plan.gpu_cap_w[0]  # held by the plan over the re-plan period
        if not np.all(np.isfinite(cap)):
            return self._last or Command(f.tdp_w.copy())
        self._last = Command(rack_caps_w(f, self.groups, cap), float(plan.bess_power_w[0]), *self._stops(plan))
        return self._last

    def _stops(self, plan: DispatchPlan) -> tuple:
        """Per-rack (paused share of the period, share of the GPUs resized away while computing) from the
        plan's first step; (None, None) without job stops."""
        if plan.paused_share is None:
            return None, None
        q = np.clip(plan.paused_share[0], 0.0, 1.0)
        r = plan.resized_share[0]
        gpu_share = np.where(q < 1 - 1e-9, r / np.maximum(1 - q, 1e-9), 0.0)
        return disaggregate(self.groups, q), disaggregate(self.groups, np.clip(gpu_share, 0.0, 1.0))

    def _bias(self, state: TwinState, t0, step_s: float) -> float:
        """Measured minus modelled import [MW] at the caps in force (0 before the first
        measurement)."""
        if not np.isfinite(state.grid_import_w) or self._last is None:
            return 0.0
        fc = forecast(self.facility, self.scenario, self.groups, t0, step_s)
        x = group_drawn_w(self.facility, self.groups, state.gpu_cap_w)
        u = fc.utilization[0]
        gpu_mw = float(np.sum(self.groups.gpus * (u * x + (1 - u) * self.groups.idle_w))) / MW
        if getattr(state, "paused", None) is not None:  # jobs stop: the measured GPU power, not the caps'
            gpu_mw = float(self.facility.gpus @ state.gpu_power_w) / MW
        model = fc.at_gpu_mw("grid_mw", np.array([gpu_mw]))[0] - self._last.bess_power_w / MW
        return float(state.grid_import_w / MW - model)


def whole_pauses(q: np.ndarray, gpus: np.ndarray) -> np.ndarray:
    """Paused shares rounded to 0 or 1 per group so that at least as many GPUs stop as the fractional
    shares ``q`` stop: the most-paused fractional groups pause wholly until their GPUs cover
    ``sum q x gpus``, the other fractional ones run."""
    out = np.round(q)
    frac = np.flatnonzero((q > 1e-6) & (q < 1 - 1e-6))
    need = float(np.sum(q * gpus)) - float(np.sum(np.where((q >= 1 - 1e-6), gpus, 0.0)))
    out[frac] = 0.0
    for g in frac[np.argsort(-q[frac], kind="stable")]:
        if need <= 1e-9:
            break
        out[g] = 1.0
        need -= gpus[g]
    return out
