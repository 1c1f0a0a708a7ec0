"""Stage 3a, the Pyomo backend: the readable reference formulation of the dispatch LP, one function
per constraint family, solved through Pyomo's HiGHS interface.

Sets: steps ``t`` (length ``dt`` h), groups ``g``, throughput segments ``k``, power cuts ``c``.
Variables: ``x[t, g]`` busy power per GPU as a fraction of TDP (the cap), ``y[t, g]`` throughput
share, ``grid[t]`` import [MW], optional ``ch[t]``, ``dis[t]`` [MW] and ``soc[t]`` [MWh] of the
BESS, and non-negative slacks ``slack_*`` only for limits declared soft. Data:
:class:`optimization.problem.Problem`. The same LP is assembled as a matrix, under the same
constraint names, in :mod:`optimization.backend_highspy`.

Users add their own constraints through ``extra_constraints(model, problem)``, called after every
family below and before the solve; it may add any Pyomo component to ``model``, e.g.
``model.my_cap = pyo.Constraint(model.T, rule=lambda m, t: m.grid[t] <= 90.0)``. The hook forces
the Pyomo backend.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np
import pyomo.environ as pyo
from factory_twin.models.units import S_PER_H
from factory_twin.optimization.options import DispatchOptions
from factory_twin.optimization.problem import Problem
from factory_twin.optimization.solution import Solution
from numpy.typing import NDArray

Array = NDArray[np.float64]


def pyomo_model(p: Problem, extra_constraints: Callable | None = None) -> pyo.ConcreteModel:
    """Build the full model: variables, every constraint family, the objective, then the user
    hook."""
    m = pyo.ConcreteModel("dispatch")
    T, G = p.busy_mw.shape
    m.T, m.G = pyo.RangeSet(0, T - 1), pyo.RangeSet(0, G - 1)
    m.K, m.C = pyo.RangeSet(0, p.seg_a.shape[1] - 1), pyo.RangeSet(0, p.cut_a_mw.shape[1] - 1)
    m.penalty = []  # (slack var, weight) pairs collected by the families
    cap_bounds(m, p)
    stop_vars(m, p)
    m.y = pyo.Var(m.T, m.G, domain=pyo.NonNegativeReals)
    m.grid = pyo.Var(m.T, domain=pyo.Reals)
    throughput(m, p)
    bess(m, p)
    power_chain(m, p)
    import_limit(m, p)
    import_ramp(m, p)
    dr_events(m, p)
    heat_rejection(m, p)
    cdu_limits(m, p)
    tiers(m, p)
    die_temperature(m, p)
    smoothing(m, p)
    flex_tiers(m, p)
    hold(m, p)
    stops(m, p)
    objective(m, p)
    if extra_constraints is not None:
        extra_constraints(m, p)
    return m


def _slack(m: pyo.ConcreteModel, p: Problem, name: str, index, weight, soft_key: str | None = None) -> pyo.Var | None:
    """A non-negative slack over ``index`` when ``soft_key`` (default ``name``) is soft, recorded for
    the penalty term."""
    if (soft_key or name) not in p.soft:
        return None
    s = pyo.Var(index, domain=pyo.NonNegativeReals)
    m.add_component(f"slack_{name}", s)
    m.penalty.append((s, weight))
    return s


def cap_bounds(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Cap bounds: :math:`x_{lo,g} \le x_{t,g} \le \min(x_{hi,g}, x^{die}_{t,g})`.

    ``x_lo`` is the larger of the minimum cap and the power-smoothing floor, ``x_hi`` the uncapped
    busy draw (a cap above it changes nothing); the die limit folds into the upper bound unless it
    is soft, and so do hard CDU limits of CDUs that hold one group (:meth:`Problem.x_upper`).
    """
    hi = p.x_upper()
    lo = p.x_lo if p.stops is None else np.where(np.isin(np.arange(p.n_groups), p.stops.group), 0.0, p.x_lo)
    m.x = pyo.Var(m.T, m.G, bounds=lambda _, t, g: (float(lo[g]), float(hi[t, g])))


def stop_vars(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Job stops (:class:`optimization.problem.Stops`), per mode :math:`m` (a group that may pause or
    resize): stopped share :math:`0 \le s_{t,m} \le \bar s_m`, starts :math:`v_{t,m} \ge 0` and ends
    :math:`e_{t,m} \ge 0`; ``m.stopped[t, g]`` is the group's stopped share (both kinds), 0 without stops."""
    st = p.stops
    if st is None:
        return
    M = st.group.size
    m.M = pyo.RangeSet(0, M - 1)
    lo, hi = st.share_bounds(p.hold_steps)
    m.s = pyo.Var(m.T, m.M, bounds=lambda _, t, k: (float(lo[t, k]), float(hi[t, k])))
    m.v = pyo.Var(m.T, m.M, domain=pyo.NonNegativeReals)
    m.e = pyo.Var(m.T, m.M, domain=pyo.NonNegativeReals)
    modes = {g: [k for k in range(M) if st.group[k] == g] for g in range(p.n_groups)}
    m.stopped = pyo.Expression(m.T, m.G, rule=lambda m, t, g: sum(m.s[t, k] for k in modes[g]))


def _stopped(m: pyo.ConcreteModel, t: int, g: int):
    return m.stopped[t, g] if hasattr(m, "stopped") else 0.0


def stop_gpu_mw(m: pyo.ConcreteModel, p: Problem, t: int):
    r"""GPU power of the stops at step t [MW]: :math:`\sum_m P^{idle}_{t,m} s_{t,m} + (E^{ck}_{t,m} v_{t,m}
    + E^{rs}_{t,m} e_{t,m}) / \Delta t`."""
    st = p.stops
    if st is None:
        return 0.0
    return sum(
        float(st.idle_mw[t, k]) * m.s[t, k]
        + float(st.start_mwh[t, k] / p.dt_h) * m.v[t, k]
        + float(st.end_mwh[t, k] / p.dt_h) * m.e[t, k]
        for k in m.M
    )


def stops(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Time-sharing relaxation of stops: :math:`x_{lo}(1 - s) \le x \le x_{hi}(1 - s)` per stopping group
    (with the throughput rows :math:`y \le a_k (1 - s) + b_k x`, the perspective of the curve), starts
    :math:`v_t \ge s_t - s_{t-1}` and ends :math:`e_t \ge s_{t-1} - s_t` with :math:`s_{-1} = s_0`, and
    the held command :math:`s_t = s_0` over the hold steps."""
    st = p.stops
    if st is None:
        return
    hi = p.x_upper()
    g_set = sorted({int(g) for g in st.group})
    m.stop_lo = pyo.Constraint(
        m.T, g_set, rule=lambda m, t, g: m.x[t, g] + float(p.x_lo[g]) * m.stopped[t, g] >= float(p.x_lo[g])
    )
    m.stop_hi = pyo.Constraint(
        m.T, g_set, rule=lambda m, t, g: m.x[t, g] + float(hi[t, g]) * m.stopped[t, g] <= float(hi[t, g])
    )

    def prev(m, t, k):
        return m.s[t - 1, k] if t > 0 else float(st.s0[k])

    m.stop_start = pyo.Constraint(m.T, m.M, rule=lambda m, t, k: m.v[t, k] >= m.s[t, k] - prev(m, t, k))
    m.stop_end = pyo.Constraint(m.T, m.M, rule=lambda m, t, k: m.e[t, k] >= prev(m, t, k) - m.s[t, k])
    if p.hold_steps > 1:
        idx = [(t, k) for t in range(1, p.hold_steps) for k in range(st.group.size)]
        m.hold_stops = pyo.Constraint(idx, rule=lambda m, t, k: m.s[t, k] == m.s[0, k])


def throughput(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Hypograph of the concave throughput curve, for every segment k:
    :math:`y_{t,g} \le a_{g,k} + b_{g,k} x_{t,g}`.

    Exact without binaries because the objective rewards ``y`` and the curve is concave. With job stops
    it is the curve's perspective :math:`y \le a_k (1 - s) + b_k x` (``stopped`` is 0 otherwise).
    """
    m.throughput = pyo.Constraint(
        m.T,
        m.G,
        m.K,
        rule=lambda m, t, g, k: (
            m.y[t, g] - float(p.seg_b[g, k]) * m.x[t, g] + float(p.seg_a[g, k]) * _stopped(m, t, g)
            <= float(p.seg_a[g, k])
        ),
    )


def power_chain(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Grid import above every cut of the site model: :math:`grid_t \ge \alpha_{t,c} + \beta_{t,c}
    P^{gpu}_t - dis_t + ch_t`, with :math:`P^{gpu}_t = P^{idle}_t + \sum_g B_{t,g} x_{t,g}` [MW].

    The cuts are lines through points of the steady site model (IT + chain losses + cooling at the
    forecast ambient); the import is exact at the points and conservative between them when the site
    load is convex in GPU power. It is tight at the optimum whenever import is priced (price +
    carbon > 0) or a limit on import binds; otherwise the import may sit above the envelope (report
    it from :meth:`Problem.site_mw`).
    """
    bess = hasattr(m, "soc")

    def rule(m, t, c):
        load = float(p.idle_mw[t]) + sum(float(p.busy_mw[t, g]) * m.x[t, g] for g in m.G) + stop_gpu_mw(m, p, t)
        net = (m.dis[t] - m.ch[t]) if bess else 0.0
        return m.grid[t] + net >= float(p.cut_a_mw[t, c]) + float(p.cut_b[t, c]) * load

    m.power_chain = pyo.Constraint(m.T, m.C, rule=rule)


def import_limit(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Import limit: :math:`grid_t - s_t \le L_t` where :math:`L_t` is finite (``s`` only when
    soft)."""
    idx = [int(t) for t in np.flatnonzero(np.isfinite(p.import_limit_mw))]
    s = _slack(m, p, "import_limit", idx, 1.0)
    m.import_limit = pyo.Constraint(
        idx,
        rule=lambda m, t: m.grid[t] - (s[t] if s is not None else 0) <= float(p.import_limit_mw[t]),
    )


def import_ramp(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Import ramp both ways: :math:`|grid_t - grid_{t-1}| \le R\,\Delta t + s_t` (``grid_{-1}`` =
    initial).

    ``R`` [MW/min] x step length is ``ramp_mw_per_step``; it also holds around DR events, so the
    site starts shedding before an event when the drop is deeper than one ramp allows.
    """
    first = 0 if p.grid0_mw is not None else 1
    idx = list(range(first, p.n_steps))
    s = _slack(m, p, "ramp", idx, 1.0)

    def prev(m, t):
        return m.grid[t - 1] if t > 0 else float(p.grid0_mw)

    def up(m, t):
        return m.grid[t] - prev(m, t) - (s[t] if s is not None else 0) <= p.ramp_mw_per_step

    def down(m, t):
        return prev(m, t) - m.grid[t] - (s[t] if s is not None else 0) <= p.ramp_mw_per_step

    m.ramp_up = pyo.Constraint(idx, rule=up)
    m.ramp_down = pyo.Constraint(idx, rule=down)


def dr_events(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Demand response: :math:`grid_t - s_t \le (1 - d_t)\,\bar P_t` during events.

    ``d_t`` is the event depth ramped in over the event's ramp time, :math:`\bar P_t` the baseline
    (the uncapped forecast import); both are folded into ``dr_cap_mw`` (infinite outside events).
    """
    idx = [int(t) for t in np.flatnonzero(np.isfinite(p.dr_cap_mw))]
    s = _slack(m, p, "dr", idx, 1.0)
    m.dr = pyo.Constraint(idx, rule=lambda m, t: m.grid[t] - (s[t] if s is not None else 0) <= float(p.dr_cap_mw[t]))


def heat_rejection(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Heat rejection: liquid heat :math:`Q^0_t + \sum_g B_{t,g} x_{t,g} - s_t \le Q^{max}_t`.

    :math:`Q^{max}_t` is the largest liquid heat the plant rejects while holding the facility-water
    setpoint at the forecast dry and wet bulb; :math:`Q^0_t` the heat of idle GPUs and liquid-cooled
    non-GPU parts.
    """
    idx = [int(t) for t in np.flatnonzero(np.isfinite(p.heat_cap_mw))]
    s = _slack(m, p, "heat", idx, 1.0)

    def rule(m, t):
        q = sum(float(p.busy_mw[t, g]) * m.x[t, g] for g in m.G) + stop_gpu_mw(m, p, t) - (s[t] if s is not None else 0)
        return q <= float(p.heat_cap_mw[t] - p.liquid_base_mw[t])

    m.heat = pyo.Constraint(idx, rule=rule)


def cdu_limits(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""CDU limits (class x CDU grouping): :math:`\sum_{g \in z} B_{t,g} x_{t,g} - s_{t,z} \le
    \text{room}_{t,z}` for each limit of :mod:`optimization.cdu_limits` (exchanger heat, flow).

    Rows only where :meth:`Problem.cdu_rows` asks for them: a hard limit on a CDU with one group is
    part of the bound of ``x`` (:func:`cap_bounds`).
    """
    if not p.cdu_rooms_mw:
        return
    t, z, members = p.cdu_rows()
    idx = list(zip(t.tolist(), z.tolist(), strict=True))
    if not idx:
        return
    for name, room in p.cdu_rooms_mw.items():
        s = _slack(m, p, name, idx, 1.0, soft_key="cdu")

        def rule(m, t, z, room=room, s=s):
            q = sum(float(p.busy_mw[t, g]) * m.x[t, int(g)] for g in members[z] if g >= 0)
            return q - (s[t, z] if s is not None else 0) <= float(room[t, z])

        m.add_component(name, pyo.Constraint(idx, rule=rule))


def tiers(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Tiers of the one-line diagram (:mod:`optimization.tiers`): per row block :math:`k` (a direction :math:`d_k`
    over groups, shared by the elements that carry the same mix of groups) and step, :math:`\sum_g d_{k,g}
    B_{t,g} x_{t,g} - s_{k,t} \le \rho_{k,t}`, the continuous limit of the block's tightest element in units of
    the busy GPU power through it (with N-1: the tightest over every path closed and each path lost). A block of
    one group is written in the cap, :math:`x_{t,g} - s_{k,t} \le \rho_{k,t} / (d_{k,g} B_{t,g})` with the slack
    priced per MW (:meth:`Problem.tier_row_form`), and folds into the bound of ``x`` when hard."""
    ks = p.tier_row_blocks()
    if not ks.size:
        return
    k1, g1, rhs, scale = p.tier_row_form()
    members = p.tier_members()
    idx = [(int(k), t) for k in ks for t in range(p.n_steps)]
    s = _slack(m, p, "tier", idx, {(k, t): float(scale[k, t]) for k, t in idx})

    def rule(m, k, t):
        if k1[k] >= 0:
            lhs = m.x[t, int(g1[k])]
        else:
            d, b = p.tiers.direction[k], p.busy_mw[t]
            lhs = sum(float(d[g] * b[g]) * m.x[t, int(g)] for g in members[k] if g >= 0)
        return lhs - (s[k, t] if s is not None else 0) <= float(rhs[k, t])

    m.tier = pyo.Constraint(idx, rule=rule)


def die_temperature(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Die temperature, steady: :math:`T_{cool} + x\,P_{tdp}(R_{dp} + R_{pc}) \le T_{max}`, i.e.
    :math:`x_{t,g} \le x^{die}_{t,g}`.

    Hard: folded into the bound of ``x`` (see :func:`cap_bounds`). Soft: rows with a slack weighted
    by the busy MW of the group.
    """
    rows = [(int(t), int(g)) for t, g in zip(*np.nonzero(p.die_rows()), strict=True)]
    if not rows:
        return
    m.die_idx = pyo.Set(initialize=rows, dimen=2)
    s = _slack(m, p, "die", m.die_idx, {tg: float(p.busy_mw[tg]) for tg in rows})
    m.die = pyo.Constraint(m.die_idx, rule=lambda m, t, g: m.x[t, g] - s[t, g] <= float(p.x_die_max[t, g]))


def smoothing(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Per-GPU power smoothing ramp: :math:`|x_{t,g} - x_{t-1,g}| \le r_g` with :math:`r_g =
    \rho_g\,\Delta t / P_{tdp,g}` (``rho`` in W/s); the floor is part of ``x_lo``."""
    if p.x_ramp_per_step is None:
        return
    r = p.x_ramp_per_step

    def rule(m, t, g):
        prev = m.x[t - 1, g] if t > 0 else float(p.x0[g])
        return pyo.inequality(-float(r[g]), m.x[t, g] - prev, float(r[g]))

    idx = [(t, g) for t in range(0 if p.x0 is not None else 1, p.n_steps) for g in range(p.n_groups)]
    m.smoothing = pyo.Constraint(idx, rule=rule)


def bess(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""BESS: :math:`e_t = e_{t-1} + (\eta_c ch_t - dis_t / \eta_d)\,\Delta t`, :math:`e_{-1} =
    e_0`, :math:`e_{min} \le e_t \le e_{max}`, :math:`0 \le ch_t, dis_t \le P_{max}`, and
    :math:`e_{T-1} \ge e_0` (the plan may not end with less energy than it started with).

    Simultaneous charge and discharge is not excluded; it only wastes energy, which the LP avoids
    whenever import has a positive price.
    """
    e = p.bess
    if e is None:
        return
    m.ch = pyo.Var(m.T, bounds=(0.0, e.p_max_mw))
    m.dis = pyo.Var(m.T, bounds=(0.0, e.p_max_mw))
    last = p.n_steps - 1
    m.soc = pyo.Var(
        m.T,
        bounds=lambda _, t: (max(e.e_min_mwh, e.e0_mwh) if t == last else e.e_min_mwh, e.e_max_mwh),
    )

    def rule(m, t):
        prev = m.soc[t - 1] if t > 0 else e.e0_mwh
        return m.soc[t] == prev + (e.eta_charge * m.ch[t] - m.dis[t] / e.eta_discharge) * p.dt_h

    m.bess_balance = pyo.Constraint(m.T, rule=rule)


def flex_tiers(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Flex tiers: over each window :math:`W` of a class, :math:`\sum_{t,g \in W} N_{t,g}\,y_{t,g}
    \ge (1 - \tau) \sum_{t,g \in W} N_{t,g}\,y^{unc}_g` with :math:`N` the token rate at full
    throughput; written with weights normalized by the right side.
    """
    windows = p.flex_coefficients()
    idx = list(range(len(windows)))
    s = _slack(m, p, "flex", idx, {i: w[4] / p.dt_h for i, w in enumerate(windows)})

    def rule(m, i):
        tt, gg, w, share, _ = windows[i]
        lhs = sum(float(wi) * m.y[int(t), int(g)] for t, g, wi in zip(tt, gg, w, strict=True))
        return lhs + (s[i] if s is not None else 0) >= share

    m.flex = pyo.Constraint(idx, rule=rule)


def hold(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Held command: :math:`x_{t,g} = x_{0,g}` and :math:`dis_t - ch_t = dis_0 - ch_0` for
    :math:`t <` ``hold_steps`` (the MPC applies one command until its next re-plan)."""
    if p.hold_steps <= 1:
        return
    idx = [(t, g) for t in range(1, p.hold_steps) for g in range(p.n_groups)]
    m.hold = pyo.Constraint(idx, rule=lambda m, t, g: m.x[t, g] == m.x[0, g])
    if p.bess is not None:
        m.hold_bess = pyo.Constraint(range(1, p.hold_steps), rule=lambda m, t: m.dis[t] - m.ch[t] == m.dis[0] - m.ch[0])


def objective(m: pyo.ConcreteModel, p: Problem) -> None:
    r"""Maximize :math:`\sum_t [\sum_g v_g N_{t,g} y_{t,g} \Delta t_s - (\pi_t +
    \kappa_t)\,grid_t\,\Delta t_h]
    - \sum \text{penalty}\cdot s\,\Delta t_h`.

    ``v`` value per token, ``pi`` energy price and ``kappa`` carbon cost per MWh (carbon intensity x
    carbon price); slacks in MW (die: x busy MW; flex: x the window's uncapped energy / dt).
    """
    dt_s = p.dt_h * S_PER_H
    value = sum(float(p.value_per_token[g] * p.tokens_per_s[t, g] * dt_s) * m.y[t, g] for t in m.T for g in m.G)
    cost = sum(float((p.price_per_mwh[t] + p.carbon_cost_per_mwh[t]) * p.dt_h) * m.grid[t] for t in m.T)
    pen = 0
    for s, w in m.penalty:
        pen += sum((w[i] if isinstance(w, dict) else w) * s[i] for i in s) * p.penalty_per_mwh * p.dt_h
    m.objective = pyo.Objective(expr=value - cost - pen, sense=pyo.maximize)


def solve_pyomo(p: Problem, options: DispatchOptions, extra_constraints: Callable | None = None) -> Solution:
    """Build the model of ``p``, solve it with Pyomo's HiGHS interface and name the values as the
    matrix backend does; values are loaded only if a solution exists."""
    from pyomo.contrib.solver.common.results import TerminationCondition
    from pyomo.contrib.solver.solvers.highs import Highs

    t0 = time.perf_counter()
    m = pyomo_model(p, extra_constraints)
    build_s = time.perf_counter() - t0
    opts = options.highs_options()
    t0 = time.perf_counter()
    res = Highs().solve(
        m,
        time_limit=opts.pop("time_limit"),
        threads=opts.pop("threads"),
        solver_options=opts,
        load_solutions=False,
        raise_exception_on_nonoptimal_result=False,
    )
    solve_s = time.perf_counter() - t0
    done = res.termination_condition == TerminationCondition.convergenceCriteriaSatisfied
    status = "optimal" if done else re.sub(r"(?<!^)(?=[A-Z])", " ", res.termination_condition.name).lower()
    if res.incumbent_objective is None:
        return Solution(status, np.nan, "pyomo", build_s, solve_s)
    res.solution_loader.load_vars()
    return Solution(status, float(res.incumbent_objective), "pyomo", build_s, solve_s, model_values(m, p))


def model_values(m: pyo.ConcreteModel, p: Problem) -> dict[str, Array]:
    """Values of a solved model under the names of :class:`optimization.solution.Solution`."""
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
    if p.stops is not None:
        M = p.stops.group.size
        out |= {"stop_share": arr(m.s, (T, M)), "stop_start": arr(m.v, (T, M)), "stop_end": arr(m.e, (T, M))}
    for s, _ in m.penalty:
        out[s.local_name] = np.array([s[k].value or 0.0 for k in s], float)
    return out
