"""HiGHS solves for both backends, with the termination status checked every time.

Algorithms (HiGHS option ``solver``; see the HiGHS option reference, ergo-code.github.io/HiGHS):
``"simplex"`` (dual simplex: the most reliable, exact vertex, default for small and MPC models),
``"ipx"`` (interior point, ``run_crossover="choose"``: crossover only when the IPM residuals are
large; the default ``"on"`` failed on a 288k-column dispatch LP in the project's measurements),
``"pdlp"`` (first-order; fast at gigawatt scale, residuals are checked by HiGHS's own tolerances).

A plan is returned as optimal only when HiGHS reports ``kOptimal``; any other status (time limit,
infeasible, solve error) is carried in :attr:`Result.status` and the solution, if any, is marked
``optimal=False``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import highspy
import numpy as np
from factory_twin.optimization.formulation import build_model
from factory_twin.optimization.matrix import LP, build_lp
from factory_twin.optimization.problem import Problem
from numpy.typing import NDArray

SOLVERS = {
    "simplex": {"solver": "simplex"},
    "ipx": {"solver": "ipx", "run_crossover": "choose"},
    "ipm": {"solver": "ipm", "run_crossover": "choose"},
    "pdlp": {"solver": "pdlp"},
    "choose": {"solver": "choose"},
}
BACKENDS = ("auto", "pyomo", "highspy")
PYOMO_MAX_COLUMNS = 20_000  # "auto" switches to the matrix path above this many cap columns (build cost)
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Result:
    """Outcome of one solve: ``status`` is ``"optimal"`` or the HiGHS status in words."""

    status: str
    objective: float
    values: NDArray[np.float64] | None
    solve_seconds: float

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"


def highs_options(solver: str = "simplex", time_limit: float = 300.0, threads: int = 1) -> dict:
    """HiGHS option dictionary for ``solver`` (a key of :data:`SOLVERS`), a time limit [s] and
    threads."""
    if solver not in SOLVERS:
        raise ValueError(f"solver: must be one of {sorted(SOLVERS)}, got {solver!r}")
    if not (isinstance(time_limit, int | float) and time_limit > 0):
        raise ValueError(f"time_limit: must be > 0 seconds, got {time_limit!r}")
    if not (isinstance(threads, int) and threads >= 0):
        raise ValueError(f"threads: must be an integer >= 0 (0 = automatic), got {threads!r}")
    return {
        **SOLVERS[solver],
        "time_limit": float(time_limit),
        "threads": threads,
        "output_flag": False,
    }


def status_text(h: highspy.Highs) -> str:
    """``"optimal"`` or a lower-case description of the model status (e.g. ``"time limit
    reached"``)."""
    st = h.getModelStatus()
    return "optimal" if st == highspy.HighsModelStatus.kOptimal else h.modelStatusToString(st).lower()


def solve_lp(lp: LP, solver: str = "simplex", time_limit: float = 300.0, threads: int = 1) -> Result:
    """Solve ``min c @ v`` of ``lp`` with highspy, passing the CSR matrix in one call."""
    h = highspy.Highs()
    for k, v in highs_options(solver, time_limit, threads).items():
        h.setOptionValue(k, v)
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = lp.shape[1], lp.shape[0]
    model.col_cost_, model.col_lower_, model.col_upper_ = lp.c, lp.col_lo, lp.col_hi
    model.row_lower_, model.row_upper_ = lp.row_lo, lp.row_hi
    a = lp.A
    model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    model.a_matrix_.start_, model.a_matrix_.index_, model.a_matrix_.value_ = (
        a.indptr,
        a.indices,
        a.data,
    )
    model.a_matrix_.num_col_, model.a_matrix_.num_row_ = lp.shape[1], lp.shape[0]
    h.passModel(model)
    t0 = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - t0
    status = status_text(h)
    info = h.getInfo()
    if info.primal_solution_status != 2:  # 2 = feasible
        return Result(status, np.nan, None, seconds)
    return Result(status, float(info.objective_function_value), np.asarray(h.getSolution().col_value), seconds)


def solve_pyomo(model, solver: str = "simplex", time_limit: float = 300.0, threads: int = 1) -> Result:
    """Solve a Pyomo model with the persistent HiGHS interface; load values only if a solution
    exists."""
    from pyomo.contrib.solver.common.results import TerminationCondition
    from pyomo.contrib.solver.solvers.highs import Highs

    opts = highs_options(solver, time_limit, threads)
    opt = Highs()
    t0 = time.perf_counter()
    res = opt.solve(
        model,
        time_limit=opts.pop("time_limit"),
        threads=opts.pop("threads"),
        solver_options=opts,
        load_solutions=False,
        raise_exception_on_nonoptimal_result=False,
    )
    seconds = time.perf_counter() - t0
    done = res.termination_condition == TerminationCondition.convergenceCriteriaSatisfied
    status = "optimal" if done else re.sub(r"(?<!^)(?=[A-Z])", " ", res.termination_condition.name).lower()
    if res.incumbent_objective is None:
        return Result(status, np.nan, None, seconds)
    res.solution_loader.load_vars()
    return Result(status, float(res.incumbent_objective), np.empty(0), seconds)


def solve_problem(
    p: Problem,
    backend: str = "auto",
    solver: str = "simplex",
    time_limit: float = 300.0,
    threads: int = 1,
    extra_constraints: Callable | None = None,
) -> tuple[Result, dict[str, Array] | None, float, str]:
    """Build and solve ``p``; return (result, named values or None, build seconds, backend used).

    ``result.objective`` is the dispatch objective (value - costs - penalties) for both backends.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {BACKENDS}, got {backend!r}")
    if extra_constraints is not None:
        if backend == "highspy":
            raise ValueError("extra_constraints: needs the Pyomo backend (backend='pyomo' or 'auto')")
        backend = "pyomo"
    if backend == "auto":
        backend = "pyomo" if p.busy_mw.size <= PYOMO_MAX_COLUMNS else "highspy"
    t0 = time.perf_counter()
    if backend == "pyomo":
        m = build_model(p, extra_constraints)
        build_s = time.perf_counter() - t0
        res = solve_pyomo(m, solver, time_limit, threads)
        values = pyomo_values(m, p) if res.values is not None else None
        return res, values, build_s, backend
    lp = build_lp(p)
    build_s = time.perf_counter() - t0
    res = solve_lp(lp, solver, time_limit, threads)
    values = lp.unpack(res.values) if res.values is not None else None
    return (
        Result(res.status, -res.objective, res.values, res.solve_seconds),
        values,
        build_s,
        backend,
    )


def pyomo_values(m, p: Problem) -> dict[str, Array]:
    """Values of a solved Pyomo model under the names of :meth:`optimization.matrix.LP.unpack`."""
    T, G = p.busy_mw.shape

    def arr(var, shape):
        return np.array([var[k].value for k in var], float).reshape(shape)

    out = {"x": arr(m.x, (T, G)), "y": arr(m.y, (T, G)), "grid_mw": arr(m.grid, (T,))}
    if p.bess is not None:
        out |= {
            "bess_charge_mw": arr(m.ch, (T,)),
            "bess_discharge_mw": arr(m.dis, (T,)),
            "bess_soc_mwh": arr(m.soc, (T,)),
        }
    for s, _ in m.penalty:
        name = s.local_name.removeprefix("s_")
        vals = np.array([s[k].value or 0.0 for k in s], float)
        if name == "flex":
            out |= {f"slack_flex_{i}": vals[i : i + 1] for i in range(vals.size)}
        else:
            out[f"slack_{name}"] = vals
    return out
