"""Stage 3, the solve: pick a backend for a :class:`optimization.problem.Problem` and return a
:class:`optimization.solution.Solution`.

A plan is optimal only when HiGHS reports ``kOptimal``; any other status (time limit, infeasible,
solve error) is carried in :attr:`Solution.status`, with values only if a feasible point exists.
``"auto"`` takes the Pyomo reference model up to :data:`PYOMO_MAX_COLUMNS` cap columns (its build
cost grows with the model) and the matrix path above; ``extra_constraints`` needs Pyomo. With a
:class:`optimization.backend_highspy.WarmHighs` (``warm``) the matrix path updates the kept model in
place (MPC re-plans) unless the backend is ``"pyomo"`` or extra constraints are given.
"""

from __future__ import annotations

from collections.abc import Callable

from factory_twin.optimization.backend_highspy import WarmHighs, solve_highspy
from factory_twin.optimization.backend_pyomo import solve_pyomo
from factory_twin.optimization.options import DispatchOptions
from factory_twin.optimization.problem import Problem
from factory_twin.optimization.solution import Solution

PYOMO_MAX_COLUMNS = 20_000  # "auto" switches to the matrix path above this many cap columns (build cost)


def choose_backend(p: Problem, options: DispatchOptions, extra_constraints: Callable | None = None) -> str:
    """``"pyomo"`` or ``"highspy"`` for ``p`` under ``options.backend`` (see module docstring)."""
    backend = options.backend
    if extra_constraints is not None:
        if backend == "highspy":
            raise ValueError("extra_constraints: needs the Pyomo backend (backend='pyomo' or 'auto')")
        return "pyomo"
    if backend == "auto":
        return "pyomo" if p.busy_mw.size <= PYOMO_MAX_COLUMNS else "highspy"
    return backend


def solve(
    p: Problem, options: DispatchOptions, extra_constraints: Callable | None = None, warm: WarmHighs | None = None
) -> Solution:
    """Build and solve ``p`` with the backend :func:`choose_backend` picks (``warm``: see module
    docstring)."""
    if warm is not None and extra_constraints is None and options.backend != "pyomo":
        return warm.solve(p, options)
    if choose_backend(p, options, extra_constraints) == "pyomo":
        return solve_pyomo(p, options, extra_constraints)
    return solve_highspy(p, options)
