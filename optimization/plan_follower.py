"""``PlanFollower``: a twin controller that applies a finished dispatch plan open loop, so that the twin
(not the LP) judges what the plan does to the racks.

At each call (every plan step) it commands the caps and BESS power of the plan step in force, turned
into per-rack caps as the MPC does (:func:`optimization.groups.rack_caps_w`). Before the plan's first
step and after its last, the nearest step applies; a step without caps (failed plan) leaves the GPUs
uncapped.
"""

from __future__ import annotations

import numpy as np
from factory_twin.optimization.groups import make_groups, rack_caps_w
from factory_twin.optimization.plan import DispatchPlan
from factory_twin.twin.simulation.controllers import Command, TwinState


class PlanFollower:
    """Follow ``plan`` (from :func:`optimization.dispatch.dispatch_plan`) on ``facility``; ``plan`` is also
    the plan the live runner shows."""

    replans = False  # the plan is fixed: what-ifs do not reach it

    def __init__(self, facility, plan: DispatchPlan) -> None:
        self.facility = facility
        self.plan = plan
        self.groups = make_groups(facility, plan.grouping)
        if self.groups.n != len(plan.group_names):
            raise ValueError(f"plan: {len(plan.group_names)} groups, the facility has {self.groups.n}")
        self.period_s = float(plan.step_s)
        self._times = plan.times.astype("datetime64[s]")
        self._bess_w = np.nan_to_num(plan.bess_power_w)

    def __call__(self, state: TwinState, time: np.datetime64) -> Command:
        i = int(np.clip(np.searchsorted(self._times, np.datetime64(time, "s"), "right") - 1, 0, self._times.size - 1))
        cap = self.plan.gpu_cap_w[i]
        if not np.all(np.isfinite(cap)):
            return Command(self.facility.tdp_w.copy())
        return Command(rack_caps_w(self.facility, self.groups, cap), float(self._bess_w[i]))
