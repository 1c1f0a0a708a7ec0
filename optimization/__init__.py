"""Power-cap dispatch by stage: site linearization -> ``Problem`` -> a backend (Pyomo reference or
matrix -> highspy) -> ``Solution`` -> plan Dataset; feasibility checks, MPC control and studies."""

from factory_twin.optimization.dispatch import dispatch
from factory_twin.optimization.mpc import MPCController
from factory_twin.optimization.options import MPC_OPTIONS, DispatchOptions
from factory_twin.optimization.plan import plan_kpis, plan_summary
from factory_twin.optimization.plan_follower import PlanFollower

__all__ = ["MPC_OPTIONS", "DispatchOptions", "MPCController", "PlanFollower", "dispatch", "plan_kpis", "plan_summary"]
