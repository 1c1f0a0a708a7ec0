"""Power-cap dispatch: the LP (Pyomo and a matrix path to HiGHS), feasibility checks and MPC
control."""

from optimization.dispatch import dispatch
from optimization.mpc import MPCController
from optimization.report import plan_summary

__all__ = ["MPCController", "dispatch", "plan_summary"]
