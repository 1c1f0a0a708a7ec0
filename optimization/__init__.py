"""Power-cap dispatch: the LP (Pyomo and a matrix path to HiGHS), feasibility checks and MPC
control."""

from factory_twin.optimization.dispatch import dispatch
from factory_twin.optimization.mpc import MPCController
from factory_twin.optimization.report import plan_summary

__all__ = ["MPCController", "dispatch", "plan_summary"]
