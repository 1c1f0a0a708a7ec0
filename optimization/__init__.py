"""Power-cap dispatch by stage: site linearization -> ``Problem`` -> a backend (Pyomo reference or
matrix -> highspy) -> ``Solution`` -> ``DispatchPlan`` -> plan Dataset; feasibility checks, MPC control,
the controller registry and studies."""

from factory_twin.optimization.dispatch import dispatch, dispatch_plan
from factory_twin.optimization.mpc import MPCController
from factory_twin.optimization.options import MPC_OPTIONS, DispatchOptions
from factory_twin.optimization.plan import DispatchPlan, plan_kpis, plan_summary
from factory_twin.optimization.plan_follower import PlanFollower

__all__ = [
    "MPC_OPTIONS",
    "DispatchOptions",
    "DispatchPlan",
    "MPCController",
    "PlanFollower",
    "dispatch",
    "dispatch_plan",
    "plan_kpis",
    "plan_summary",
]
