"""The control hand-off: what a controller reads (:class:`TwinState`), commands (:class:`Command`) and plans
(:class:`ControlPlan`), the :class:`Controller` protocol, and the controllers that need only the twin.

The engine calls ``controller(state, time)`` every ``controller.period_s`` seconds of simulated time and
holds the returned :class:`Command` until the next call. The live runner also reads ``controller.plan``
(the latest :class:`ControlPlan`, None for a controller that does not plan: the plan ahead and the
limits it cannot meet) and ``controller.replans`` (whether what-ifs reach the commands). The engine
never imports a controller: one is passed in. Every controller that can be named (CLI ``--controller``,
the dashboard) is registered in :mod:`optimization.controllers`, with ``make_controller``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from factory_twin.models.units import MW
from numpy.typing import NDArray


@dataclass(frozen=True)
class Command:
    """Per-rack GPU power cap [W per GPU] and BESS power [W] (> 0 discharges into the site); optional per-rack
    job stops (:mod:`twin.simulation.jobs`): the share of the period the rack's job is paused and the share of its GPUs
    idled by resizing (ignored for jobs that allow neither)."""

    gpu_cap_w: NDArray[np.float64]
    bess_power_w: float = 0.0
    paused_share: NDArray[np.float64] | None = None
    resized_share: NDArray[np.float64] | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class ControlPlan:
    """A planning controller's plan over its horizon (SI units): what it will command per group of racks and
    what it expects. Built by the optimizer (:func:`optimization.plan.make_plan`, whose
    :class:`~optimization.plan.DispatchPlan` adds the forecast and the economics); read by the live runner
    (the plan ahead, the limits it cannot meet), the grid links (planned load) and the dashboard.

    ``times`` [T] step starts (naive local ``datetime64[s]``), ``step_s`` [s], ``group_names`` [G].
    Per step and group ``[T, G]``: ``gpu_cap_w`` the power cap per GPU [W], a cap the GPUs take
    (``min_cap_w <= cap <= tdp_w``; the lowest cap that yields the planned draw); ``gpu_drawn_w`` the mean
    power a busy GPU of the group is expected to draw under that cap while its job computes [W] (<= the
    cap). Both are NaN where the plan failed. Per step ``[T]``: the expected campus ``gpu_power_w``, the
    expected ``grid_import_w`` (after the BESS), the ``bess_power_w`` to command (> 0 discharges), and the
    targets planned against: ``import_limit_w`` and ``dr_target_w`` (NaN without a DR event). With job
    stops, ``paused_share`` and ``resized_share`` [T, G] (of the step; of the GPUs while computing).
    ``status`` (``"optimal"`` or why not), ``objective``, ``violations`` (soft limits exceeded) and
    ``conflicts`` (hard limits that cannot hold) say how good it is: a missed target is never silent.
    """

    times: NDArray[np.datetime64]
    step_s: float
    group_names: tuple[str, ...]
    gpu_cap_w: NDArray[np.float64]
    gpu_drawn_w: NDArray[np.float64]
    gpu_power_w: NDArray[np.float64]
    grid_import_w: NDArray[np.float64]
    bess_power_w: NDArray[np.float64]
    import_limit_w: NDArray[np.float64]
    dr_target_w: NDArray[np.float64]
    status: str
    objective: float
    violations: str = ""
    conflicts: str = ""
    paused_share: NDArray[np.float64] | None = None
    resized_share: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        T, G = len(self.times), len(self.group_names)
        for name in ("gpu_cap_w", "gpu_drawn_w", "paused_share", "resized_share"):
            a = getattr(self, name)
            if a is not None and np.shape(a) != (T, G):
                raise ValueError(f"{name}: expected [steps, groups] = ({T}, {G}), got {np.shape(a)}")
        for name in ("gpu_power_w", "grid_import_w", "bess_power_w", "import_limit_w", "dr_target_w"):
            if np.shape(getattr(self, name)) != (T,):
                raise ValueError(f"{name}: expected [steps] = ({T},), got {np.shape(getattr(self, name))}")

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"


@dataclass(frozen=True)
class TwinState:
    """Read-only view of the twin handed to controllers (SI units; copies, safe to keep)."""

    time: np.datetime64
    gpu_power_w: NDArray[np.float64]
    gpu_cap_w: NDArray[np.float64]
    die_temp_c: NDArray[np.float64]
    tcs_supply_c: NDArray[np.float64]
    fws_supply_c: float
    grid_import_w: float
    it_power_w: float
    cooling_power_w: float
    bess_energy_j: float
    scenario: object = None  # the scenario in force (what-if changes included)
    paused: NDArray[np.float64] | None = None  # per rack: 1 where the job is not computing (pause, restart)
    resized: NDArray[np.float64] | None = None  # per rack: share of the busy GPUs idled by resizing


@runtime_checkable
class Controller(Protocol):
    """What the engine and the live runner read: ``period_s`` [s] between calls, the call itself, ``plan``
    (the latest :class:`ControlPlan`, None for controllers that do not plan) and ``replans`` (True when
    each call plans again from ``state.scenario``, so that what-ifs such as DR events and import limits
    reach the commands)."""

    period_s: float
    plan: ControlPlan | None
    replans: bool

    def __call__(self, state: TwinState, time: np.datetime64) -> Command: ...


@dataclass
class Uncapped:
    """Every GPU capped at its TDP (no control)."""

    tdp_w: NDArray[np.float64]
    period_s: float = 3600.0
    plan = None  # plans nothing
    replans = False

    def __call__(self, state: TwinState, time: np.datetime64) -> Command:
        return Command(self.tdp_w)


@dataclass
class FixedCap:
    """A fixed cap as a fraction of TDP, bounded below by each rack's minimum cap."""

    tdp_w: NDArray[np.float64]
    min_cap_w: NDArray[np.float64]
    fraction: float
    period_s: float = 3600.0
    plan = None  # plans nothing
    replans = False

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction: must be within (0, 1], got {self.fraction!r}")

    def __call__(self, state: TwinState, time: np.datetime64) -> Command:
        return Command(np.maximum(self.fraction * self.tdp_w, self.min_cap_w))


@dataclass
class UniformCapToTarget:
    """One cap fraction of TDP for every GPU, the highest whose drawn GPU power meets the grid target on the
    GPU meter (``scenario.target_limit(t, "gpu")``) at each call: the plain DVFS policy of demand response
    (the same cap everywhere, no job awareness). TDP where no target is in force; the minimum caps where even
    they exceed the target.

    ``facility`` is a :class:`twin.facility.assembly.Facility`; ``levels`` caps are tried between the largest minimum
    cap and TDP (resolution 1/levels of the range).
    """

    facility: object
    period_s: float = 60.0
    levels: int = 400
    plan = None  # plans nothing; follows GPU-meter targets, not DR events or import limits
    replans = False

    def __call__(self, state: TwinState, time: np.datetime64) -> Command:
        f, sc = self.facility, state.scenario
        target_mw = float(sc.target_limit(np.array([time]), "gpu")[0])
        if not np.isfinite(target_mw):
            return Command(f.tdp_w.copy())
        u = np.stack([sc.utilization(c, np.array([time]))[0] for c in f.class_names])[f.rack_class]
        lo = float(np.max(f.min_cap_w / f.tdp_w))
        fracs = np.linspace(1.0, lo, self.levels + 1)
        for c in fracs:  # from the top: the first cap that meets the target
            cap = np.maximum(c * f.tdp_w, f.min_cap_w)
            if float(f.gpus @ (u * f.drawn_w(cap) + (1 - u) * f.idle_w)) <= target_mw * MW:
                return Command(cap)
        return Command(f.min_cap_w.copy())
