"""Controller interface: anything that, given the twin state and time, returns GPU caps and BESS power.

The engine calls ``controller(state, time)`` every ``controller.period_s`` seconds of simulated time and
holds the returned :class:`Command` until the next call. Controllers live outside the engine (the
optimizer's MPC controller implements the same protocol); the engine never imports them.
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
    period_s: float

    def __call__(self, state: TwinState, time: np.datetime64) -> Command: ...


@dataclass
class Uncapped:
    """Every GPU capped at its TDP (no control)."""

    tdp_w: NDArray[np.float64]
    period_s: float = 3600.0

    def __call__(self, state: TwinState, time: np.datetime64) -> Command:
        return Command(self.tdp_w)


@dataclass
class FixedCap:
    """A fixed cap as a fraction of TDP, bounded below by each rack's minimum cap."""

    tdp_w: NDArray[np.float64]
    min_cap_w: NDArray[np.float64]
    fraction: float
    period_s: float = 3600.0

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
