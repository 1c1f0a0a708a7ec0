"""The dispatch LP on small cases with known optima, both backends, and an independent linprog
assembly; job stops (pauses and resizing, time-sharing relaxation): an independent row-by-row assembly,
analytic optima where pausing beats caps and where it does not, floors counted with paused time."""

from dataclasses import replace

import factory_twin.optimization.solve as lp_solve
import numpy as np
import pytest
from factory_twin.optimization.backend_highspy import HighsLP, WarmHighs, matrix_lp, model_slacks
from factory_twin.optimization.backend_pyomo import pyomo_model
from factory_twin.optimization.feasibility import check, violations
from factory_twin.optimization.options import DispatchOptions
from factory_twin.optimization.problem import BessData, Problem, Stops
from scipy.optimize import linprog
from support import dense_rows

# one concave curve: breakpoints at x = 0.5, 0.75 (throughput 0.8, 0.95), 1.0 at x = 1
SEG_A = np.array([-0.4, 0.5, 0.8])
SEG_B = np.array([2.4, 0.6, 0.2])


def problem(T=4, G=2, **kw) -> Problem:
    """Site import = GPU power (one cut through the origin with slope 1), no idle, loose limits."""
    base = dict(
        dt_h=1.0,
        gpus=np.full(G, 100.0),
        x_lo=np.full(G, 0.5),
        x_hi=np.ones(G),
        x_die_max=np.full((T, G), 2.0),
        seg_a=np.tile(SEG_A, (G, 1)),
        seg_b=np.tile(SEG_B, (G, 1)),
        busy_mw=np.full((T, G), 10.0),
        idle_mw=np.zeros(T),
        tokens_per_s=np.full((T, G), 1e6),
        value_per_token=np.full(G, 1e-3),
        cut_a_mw=np.zeros((T, 1)),
        cut_b=np.ones((T, 1)),
        liquid_base_mw=np.zeros(T),
        heat_cap_mw=np.full(T, np.inf),
        import_limit_mw=np.full(T, np.inf),
        dr_cap_mw=np.full(T, np.inf),
        ramp_mw_per_step=1e3,
        price_per_mwh=np.full(T, 1.0),
        carbon_cost_per_mwh=np.zeros(T),
    )
    return Problem(**(base | kw))


def solve(p, backend="highspy"):
    sol = lp_solve.solve(p, DispatchOptions(backend=backend))
    assert sol.optimal, sol.status
    assert sol.backend == backend
    return sol, sol.values


@pytest.mark.parametrize("backend", ["pyomo", "highspy"])
def test_equal_split_under_a_shared_limit(backend):
    # groups of 10 MW and 30 MW at full power; the limit puts both at the breakpoint x = 0.75
    # exactly,
    # where any unequal split moves one group onto a flatter segment than the other leaves.
    busy = np.array([[10.0, 30.0]])
    tokens = np.array([[1e6, 3e6]])  # three times the GPUs, three times the tokens
    p = problem(T=1, busy_mw=busy, tokens_per_s=tokens, import_limit_mw=np.array([0.75 * 40.0]))
    _, v = solve(p, backend)
    np.testing.assert_allclose(v["x"], [[0.75, 0.75]], rtol=1e-9)
    np.testing.assert_allclose(v["grid_mw"], [30.0], rtol=1e-9)


@pytest.mark.parametrize("backend", ["pyomo", "highspy"])
def test_dr_event_holds_import_exactly_at_target(backend):
    T = 6
    baseline = 20.0  # both groups uncapped
    depth = np.array([0, 0, 0.25, 0.25, 0.25, 0])
    cap = np.where(depth > 0, (1 - depth) * baseline, np.inf)
    _, v = solve(problem(T=T, dr_cap_mw=cap), backend)
    want = np.where(depth > 0, 15.0, 20.0)
    np.testing.assert_allclose(v["grid_mw"], want, rtol=1e-9)


def test_two_prices_and_a_bess_charge_low_discharge_high():
    T = 8
    price = np.r_[np.full(4, 10.0), np.full(4, 100.0)]
    b = BessData(e_min_mwh=1.0, e_max_mwh=9.0, e0_mwh=5.0, p_max_mw=2.0, eta_charge=0.9, eta_discharge=0.9)
    p = problem(T=T, G=1, x_lo=np.ones(1), price_per_mwh=price, bess=b)  # load fixed at 10 MW
    res, v = solve(p)
    ch, dis, soc = v["bess_charge_mw"], v["bess_discharge_mw"], v["bess_soc_mwh"]
    # fill to e_max in the cheap hours, empty back to e0 (end condition) in the dear ones
    np.testing.assert_allclose(ch[:4].sum(), 4.0 / 0.9, rtol=1e-9)
    np.testing.assert_allclose(dis[4:].sum(), 4.0 * 0.9, rtol=1e-9)
    assert ch[4:].max() < 1e-9 and dis[:4].max() < 1e-9
    assert soc.min() >= 1.0 - 1e-9 and soc.max() <= 9.0 + 1e-9
    np.testing.assert_allclose(soc[-1], 5.0, rtol=1e-9)
    np.testing.assert_allclose(v["grid_mw"], 10.0 + ch - dis, rtol=1e-9)
    tokens = 8 * 1e6 * 3600 * 1e-3
    cost = 10.0 * (40 + 4.0 / 0.9) + 100.0 * (40 - 3.6)
    np.testing.assert_allclose(res.objective, tokens - cost, rtol=1e-9)


@pytest.mark.parametrize("backend", ["pyomo", "highspy"])
def test_binding_ramp_starts_shedding_before_the_limit_drops(backend):
    T = 8
    lim = np.r_[np.full(5, np.inf), np.full(3, 10.0)]
    p = problem(
        T=T,
        G=1,
        busy_mw=np.full((T, 1), 20.0),
        import_limit_mw=lim,
        ramp_mw_per_step=2.5,
        grid0_mw=20.0,
    )
    _, v = solve(p, backend)
    want = np.minimum(20.0, 10.0 + 2.5 * (5 - np.arange(T)).clip(0))
    np.testing.assert_allclose(v["grid_mw"], want, rtol=1e-9)
    assert np.all(np.abs(np.diff(np.r_[20.0, v["grid_mw"]])) <= 2.5 * (1 + 1e-9))


def random_problem(seed, T=6, G=3):
    rng = np.random.default_rng(seed)
    return problem(
        T=T,
        G=G,
        busy_mw=rng.uniform(1, 3, (T, G)),
        idle_mw=rng.uniform(0.5, 1, T),
        tokens_per_s=rng.uniform(1e5, 2e5, (T, G)),
        value_per_token=rng.uniform(5e-4, 2e-3, G),
        x_lo=rng.uniform(0.4, 0.6, G),
        cut_a_mw=np.tile([2.0, 0.5], (T, 1)),
        cut_b=np.tile([1.1, 1.4], (T, 1)),
        import_limit_mw=rng.uniform(6, 9, T),
        heat_cap_mw=rng.uniform(4, 8, T),
        liquid_base_mw=rng.uniform(0.5, 1, T),
        price_per_mwh=rng.uniform(50, 900, T),
        carbon_cost_per_mwh=rng.uniform(0, 20, T),
        ramp_mw_per_step=1.0,
        x_die_max=rng.uniform(0.8, 1.1, (T, G)),
    )


def linprog_objective(p: Problem) -> float:
    return linprog_solution(p)[0]


def linprog_solution(p: Problem) -> tuple[float, np.ndarray]:
    """The same LP written out by hand, row by row (no code under test), solved by scipy: the
    objective and the caps ``x`` [T, G]. CDU limits are rows for every CDU (no folding)."""
    T, G, K, C = p.n_steps, p.n_groups, p.seg_a.shape[1], p.cut_a_mw.shape[1]
    n = 2 * T * G + T
    X = lambda t, g: t * G + g  # noqa: E731
    Y = lambda t, g: T * G + t * G + g  # noqa: E731
    Gr = lambda t: 2 * T * G + t  # noqa: E731
    A, b = [], []
    row = dense_rows(n, A, b)

    for t in range(T):
        for g in range(G):
            for k in range(K):
                row([(Y(t, g), 1.0), (X(t, g), -p.seg_b[g, k])], p.seg_a[g, k])
        for c in range(C):  # -grid + b sum busy x <= -(a + b idle)
            row(
                [(Gr(t), -1.0)] + [(X(t, g), p.cut_b[t, c] * p.busy_mw[t, g]) for g in range(G)],
                -(p.cut_a_mw[t, c] + p.cut_b[t, c] * p.idle_mw[t]),
            )
        row([(Gr(t), 1.0)], p.import_limit_mw[t])
        row([(X(t, g), p.busy_mw[t, g]) for g in range(G)], p.heat_cap_mw[t] - p.liquid_base_mw[t])
        if t > 0:
            row([(Gr(t), 1.0), (Gr(t - 1), -1.0)], p.ramp_mw_per_step)
            row([(Gr(t), -1.0), (Gr(t - 1), 1.0)], p.ramp_mw_per_step)
        for room in p.cdu_rooms_mw.values():
            for z in range(room.shape[1]):
                row([(X(t, g), p.busy_mw[t, g]) for g in range(G) if p.cdu_of_group[g] == z], room[t, z])
    c = np.zeros(n)
    bounds = [None] * n
    for t in range(T):
        for g in range(G):
            c[Y(t, g)] = -p.value_per_token[g] * p.tokens_per_s[t, g] * p.dt_h * 3600
            bounds[X(t, g)] = (p.x_lo[g], max(p.x_lo[g], min(p.x_hi[g], p.x_die_max[t, g])))
            bounds[Y(t, g)] = (0, None)
        c[Gr(t)] = (p.price_per_mwh[t] + p.carbon_cost_per_mwh[t]) * p.dt_h
        bounds[Gr(t)] = (None, None)
    res = linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return -res.fun, res.x[: T * G].reshape(T, G)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_instance_matches_independent_linprog(seed):
    p = random_problem(seed)
    want = linprog_objective(p)
    for backend in ("pyomo", "highspy"):
        res, _ = solve(p, backend)
        assert res.objective == pytest.approx(want, rel=1e-6)


def full_problem(soft=frozenset(), **kw):
    rng = np.random.default_rng(7)
    T, G = 12, 3
    base = dict(
        T=T,
        G=G,
        busy_mw=rng.uniform(1, 3, (T, G)),
        idle_mw=np.ones(T),
        tokens_per_s=rng.uniform(1e5, 2e5, (T, G)),
        cut_a_mw=np.tile([2.0, 1.0], (T, 1)),
        cut_b=np.tile([1.1, 1.3], (T, 1)),
        liquid_base_mw=np.full(T, 1.5),
        heat_cap_mw=np.full(T, 7.0),
        import_limit_mw=np.full(T, 9.0),
        dr_cap_mw=np.where(np.arange(T) > 6, 8.0, np.inf),
        ramp_mw_per_step=1.0,
        price_per_mwh=rng.uniform(50, 500, T),
        carbon_cost_per_mwh=np.full(T, 10.0),
        grid0_mw=8.0,
        x_die_max=np.full((T, G), 0.95),
        bess=BessData(0.5, 4.5, 2.0, 1.0, 0.95, 0.95),
        flex_windows=[(np.array([0, 1]), 0, 6, 0.9), (np.array([0, 1]), 6, 12, 0.9)],
        x_ramp_per_step=np.full(G, 0.2),
        x0=np.ones(G),
        soft=soft,
        penalty_per_mwh=1e4,
    )
    return problem(**(base | kw))


ALL_SOFT = frozenset({"ramp", "die", "flex", "import_limit", "dr", "heat"})
LOOSE = {
    "import_limit_mw": np.full(12, 20.0),
    "dr_cap_mw": np.where(np.arange(12) > 6, 12.0, np.inf),
    "heat_cap_mw": np.full(12, 10.0),
    "ramp_mw_per_step": 3.0,
}


@pytest.mark.parametrize(("soft", "kw"), [(frozenset(), LOOSE), (ALL_SOFT, {}), (ALL_SOFT, {"hold_steps": 3})])
def test_pyomo_and_matrix_paths_agree_with_every_family(soft, kw):
    p = full_problem(soft, **kw)
    a, va = solve(p, "pyomo")
    b, vb = solve(p, "highspy")
    assert a.objective == pytest.approx(b.objective, rel=1e-6)
    assert {k: v.shape for k, v in va.items()} == {k: v.shape for k, v in vb.items()}
    for v in (va, vb):  # a held command: equal caps and BESS power over the first hold_steps
        n = p.hold_steps
        np.testing.assert_allclose(v["x"][:n], np.broadcast_to(v["x"][0], (n, p.n_groups)), atol=1e-9)
        net = v["bess_discharge_mw"][:n] - v["bess_charge_mw"][:n]
        np.testing.assert_allclose(net, net[0], atol=1e-9)


@pytest.mark.parametrize(("soft", "kw"), [(frozenset(), LOOSE), (ALL_SOFT, {})])
def test_every_step_lp_has_the_same_optimum_and_slacks(soft, kw):
    """Rows at every step (infinite where a limit is absent) change nothing: same optimum, and the
    slacks cut back to the Pyomo model's rows equal the plain LP's (binding soft limits here:
    import limit 9 MW and DR 8 MW below what the groups would draw)."""
    p = full_problem(soft, x_die_max=np.where(np.arange(3) == 1, 0.95, np.inf) * np.ones((12, 1)), **kw)
    plain, every = matrix_lp(p), matrix_lp(p, every_step=True)
    assert every.rows["dr"].size == 12 > plain.rows["dr"].size == 5
    if soft:
        assert every.rows["die"].size == 36 > plain.rows["die"].size == 12
    s0, m0, v0, _ = HighsLP(plain, DispatchOptions()).run()
    s1, m1, v1, _ = HighsLP(every, DispatchOptions()).run()
    assert s0 == s1 == "optimal" and m1 == pytest.approx(m0, rel=1e-9)
    a, b = plain.unpack(v0), model_slacks(p, every.unpack(v1))
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    for k in a:
        if k.startswith("slack_"):
            np.testing.assert_allclose(b[k], a[k], atol=1e-7, err_msg=k)
    assert not soft or a["slack_dr"].max() > 0.1  # the DR slack is taken: the comparison means something


def test_warm_lp_stays_warm_when_a_dr_event_enters_the_horizon():
    """A DR event entering the horizon changes only bounds of the kept LP; its optimum equals a cold solve."""
    warm = WarmHighs()
    for first_dr in (12, 9, 7, 4):  # the event's steps come into view
        p = full_problem(ALL_SOFT, dr_cap_mw=np.where(np.arange(12) >= first_dr, 8.0, np.inf))
        sol = warm.solve(p, DispatchOptions())
        cold = lp_solve.solve(p, DispatchOptions())
        assert sol.objective == pytest.approx(cold.objective, rel=1e-9)
        assert sol.slacks["dr"].size == cold.slacks["dr"].size == 12 - first_dr
    assert (warm.warm, warm.cold) == (3, 1)


def test_floor_conflict_reported_and_soft_limit_reports_violation():
    T = 4
    times = np.datetime64("2026-08-07T00:00") + np.arange(T) * np.timedelta64(1, "h")
    lim = np.array([30.0, 8.0, 7.0, 30.0])  # floor is 10 MW (both groups at x_lo = 0.5)
    conflicts = check(problem(T=T, import_limit_mw=lim), times)
    assert len(conflicts) == 1
    c = conflicts[0]
    assert (c.limit, c.first, c.last, c.n_steps) == ("import_limit", times[1], times[2], 2)
    assert c.worst == pytest.approx(3.0, rel=1e-12)
    p = problem(T=T, import_limit_mw=lim, soft=frozenset({"import_limit"}), penalty_per_mwh=1e6)
    assert check(p, times) == []
    sol, v = solve(p)
    np.testing.assert_allclose(v["slack_import_limit"], [0, 2, 3, 0], atol=1e-9)
    (viol,) = violations(p, sol.slacks, times)
    assert (viol.limit, viol.n_steps, viol.worst) == ("import_limit", 2, pytest.approx(3.0))


def test_infeasible_solve_returns_no_plan():
    lim = np.array([np.inf, 10.0])  # 20 MW -> 10 MW in one step with a 1 MW ramp
    p = problem(T=2, import_limit_mw=lim, ramp_mw_per_step=1.0, grid0_mw=20.0)
    sol = lp_solve.solve(p, DispatchOptions())
    assert not sol.optimal and not sol.has_values and "infeasible" in sol.status
    status, _, _, _ = HighsLP(matrix_lp(p), DispatchOptions(solver="ipx")).run()
    assert status != "optimal"


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"busy_mw": -np.ones((4, 2))}, "busy_mw"),
        ({"import_limit_mw": np.full(4, -1.0)}, "import_limit_mw"),
        ({"price_per_mwh": np.full(4, np.nan)}, "price_per_mwh"),
        ({"soft": frozenset({"oops"})}, "soft"),
        ({"idle_mw": np.zeros(3)}, "idle_mw"),
        ({"x_hi": np.full(2, 0.1)}, "x_hi"),
    ],
)
def test_nonsense_problem_rejected(kw, name):
    with pytest.raises(ValueError, match=name):
        problem(**kw)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"solver": "hipo"}, "solver"),
        ({"time_limit": 0}, "time_limit"),
        ({"threads": -1}, "threads"),
        ({"horizon": "1h", "step": "7min"}, "horizon"),
        ({"step": "0s"}, "step"),
        ({"soft": ("dr", "oops")}, "soft"),
        ({"grouping": "row"}, "grouping"),
        ({"backend": "gurobi"}, "backend"),
        ({"penalty_per_mwh": -1.0}, "penalty_per_mwh"),
        ({"smoothing_ramp_w_s": 0.0}, "smoothing_ramp_w_s"),
    ],
)
def test_bad_options_rejected(kw, name):
    with pytest.raises(ValueError, match=name):
        DispatchOptions(**kw)


def test_options_store_seconds_and_copy_checked():
    o = DispatchOptions(horizon="2h", step="1min", soft="dr")
    assert (o.horizon, o.step, o.n_steps, o.soft) == (7200.0, 60.0, 120, ("dr",))
    assert o.updated(step=300).n_steps == 24 and o.n_steps == 120
    with pytest.raises(ValueError, match="options: unknown dispatch option"):
        o.updated(horizn="1h")
    with pytest.raises(ValueError, match="horizon"):
        o.updated(step="7min")
    assert o.highs_options() == {"solver": "simplex", "time_limit": 300.0, "threads": 1, "output_flag": False}


@pytest.mark.parametrize("kw", [{}, {"hold_steps": 3}])
def test_both_backends_name_the_same_constraint_families_row_for_row(kw):
    import pyomo.environ as pyo

    p = full_problem(ALL_SOFT, **kw)
    m = pyomo_model(p)
    pyomo_rows = {c.local_name: len(c) for c in m.component_objects(pyo.Constraint)}
    lp = matrix_lp(p)
    assert {k: v.size for k, v in lp.rows.items()} == pyomo_rows
    assert sum(pyomo_rows.values()) == lp.shape[0]
    assert set(lp.cols) == {"x", "y", "grid_mw", "bess_charge_mw", "bess_discharge_mw", "bess_soc_mwh"} | {
        f"slack_{n}" for n in ALL_SOFT
    }


# ---------------------------------------------------------------- job stops
IDLE = 0.05  # idle draw of a stopped busy GPU, as a fraction of TDP (busy_mw = 10 MW at TDP)


def stops(T, group=(0,), kind=(0,), share_max=(1.0,), start=(0.0,), end=(0.0,), s0=None, busy=10.0) -> Stops:
    M = len(group)
    col = lambda v: np.tile(np.asarray(v, float), (T, 1))  # noqa: E731
    return Stops(
        group=np.array(group),
        kind=np.array(kind),
        share_max=np.array(share_max, float),
        idle_mw=np.full((T, M), IDLE * busy),
        start_mwh=col(start),
        end_mwh=col(end),
        s0=np.zeros(M) if s0 is None else np.asarray(s0, float),
    )


def one_job(limit_mw: float, T=1, **kw) -> Problem:
    """One 10 MW group, import = GPU power, minimum cap x_lo = 0.5 (the lowest useful cap)."""
    base = dict(T=T, G=1, import_limit_mw=np.full(T, limit_mw))
    return problem(**(base | kw))


@pytest.mark.parametrize("backend", ["pyomo", "highspy"])
def test_pausing_beats_caps_below_the_lowest_useful_cap(backend):
    # 3 MW is below the 5 MW minimum-cap floor: caps alone cannot hold it (the pre-check says so)
    caps_only = one_job(3.0)
    assert [c.limit for c in check(caps_only, np.array(["2025-05-04T16:00"], "datetime64[s]"))] == ["import_limit"]
    # with pausing: compute at the lowest cap (the best throughput per MW above idle) a share 1 - s of the step,
    # idle the rest, and pay the checkpoint (0.1 MWh per whole pause): 5 (1 - s) + 0.5 s + 0.1 s = 3
    p = one_job(3.0, stops=stops(1, start=[0.1]))
    _, v = solve(p, backend)
    s = 2.0 / 4.4
    np.testing.assert_allclose(v["stop_share"], [[s]], rtol=1e-9)
    np.testing.assert_allclose(v["stop_start"], [[s]], rtol=1e-9)
    np.testing.assert_allclose(v["x"], [[0.5 * (1 - s)]], rtol=1e-9)  # the cap while computing: 0.5
    np.testing.assert_allclose(v["y"], [[0.8 * (1 - s)]], rtol=1e-9)
    np.testing.assert_allclose(v["grid_mw"], [3.0], rtol=1e-9)


@pytest.mark.parametrize("backend", ["pyomo", "highspy"])
def test_pausing_does_not_pay_above_the_minimum_cap_floor(backend):
    # 6 MW: the cap x = 0.6 gives y = 0.86; the chord from idle to any cap lies below the concave curve
    a, va = solve(one_job(6.0), backend)
    b, vb = solve(one_job(6.0, stops=stops(1, start=[0.01], end=[0.01])), backend)
    np.testing.assert_allclose(va["y"], [[0.86]], rtol=1e-9)
    np.testing.assert_allclose(vb["y"], [[0.86]], rtol=1e-9)
    assert vb["stop_share"].max() < 1e-9
    assert b.objective == pytest.approx(a.objective, rel=1e-9)


def test_a_pause_is_charged_once_and_the_floor_counts_paused_time():
    # two steps at 3 MW between free ones: the job must stop ~45 % of each; one rise and one fall of the
    # share, each paying its checkpoint (0.1 MWh) or restart (0.2 MWh) energy in its step
    T = 4
    lim = np.array([10.0, 3.0, 3.0, 10.0])
    p = one_job(0.0, T=T, import_limit_mw=lim, stops=stops(T, start=[0.1], end=[0.2]))
    _, v = solve(p)
    s, vs, ve = v["stop_share"][:, 0], v["stop_start"][:, 0], v["stop_end"][:, 0]
    assert s[0] == pytest.approx(0, abs=1e-9) and s[3] == pytest.approx(0, abs=1e-9)
    assert s[1] == pytest.approx(2.0 / 4.4, rel=1e-9)  # 5 (1 - s) + 0.5 s + 0.1 s = 3
    np.testing.assert_allclose([vs.sum(), ve.sum()], [s.max(), s.max()], rtol=1e-9)
    np.testing.assert_allclose(v["grid_mw"][1:3], [3.0, 3.0], rtol=1e-9)
    # the throughput is the curve's perspective: zero work while stopped
    np.testing.assert_allclose(v["y"][:, 0], np.min(SEG_A * (1 - s[:, None]) + SEG_B * v["x"], axis=1), rtol=1e-9)
    # a floor over the window at exactly what the stops leave holds; a hair above it cannot
    best = float(np.mean(v["y"][:, 0]))
    for share, ok in ((best - 1e-7, True), (best + 1e-3, False)):
        q = one_job(0.0, T=T, import_limit_mw=lim, stops=stops(T, start=[0.1], end=[0.2]),
                    flex_windows=[(np.array([0]), 0, T, share)])  # fmt: skip
        assert lp_solve.solve(q, DispatchOptions()).optimal is ok


def linprog_with_stops(p: Problem) -> float:
    """The dispatch LP with stops written out by hand (x, y, grid, s, v, e per step), solved by scipy."""
    T, G, K, C = p.n_steps, p.n_groups, p.seg_a.shape[1], p.cut_a_mw.shape[1]
    st = p.stops
    M = st.group.size
    X = lambda t, g: t * G + g  # noqa: E731
    Y = lambda t, g: T * G + t * G + g  # noqa: E731
    Gr = lambda t: 2 * T * G + t  # noqa: E731
    S = lambda t, m: 2 * T * G + T + t * M + m  # noqa: E731
    V = lambda t, m: 2 * T * G + T + T * M + t * M + m  # noqa: E731
    E = lambda t, m: 2 * T * G + T + 2 * T * M + t * M + m  # noqa: E731
    n = 2 * T * G + T + 3 * T * M
    A, b = [], []
    row = dense_rows(n, A, b)

    modes = {g: [m for m in range(M) if st.group[m] == g] for g in range(G)}
    for t in range(T):
        stop_gpu = [(S(t, m), st.idle_mw[t, m]) for m in range(M)]
        stop_gpu += [(V(t, m), st.start_mwh[t, m] / p.dt_h) for m in range(M)]
        stop_gpu += [(E(t, m), st.end_mwh[t, m] / p.dt_h) for m in range(M)]
        for g in range(G):
            for k in range(K):  # y - b x + a s <= a
                row([(Y(t, g), 1.0), (X(t, g), -p.seg_b[g, k])] + [(S(t, m), p.seg_a[g, k]) for m in modes[g]],
                    p.seg_a[g, k])  # fmt: skip
            if modes[g]:  # x_lo (1 - s) <= x <= x_hi (1 - s)
                hi = min(p.x_hi[g], p.x_die_max[t, g])
                row([(X(t, g), -1.0)] + [(S(t, m), -p.x_lo[g]) for m in modes[g]], -p.x_lo[g])
                row([(X(t, g), 1.0)] + [(S(t, m), hi) for m in modes[g]], hi)
        for c in range(C):
            gpu = [(X(t, g), p.busy_mw[t, g]) for g in range(G)] + stop_gpu
            row(
                [(Gr(t), -1.0)] + [(j, p.cut_b[t, c] * val) for j, val in gpu],
                -(p.cut_a_mw[t, c] + p.cut_b[t, c] * p.idle_mw[t]),
            )
        row([(Gr(t), 1.0)], p.import_limit_mw[t])
        for m in range(M):  # s - v <= s_prev, s_prev - s - e <= 0
            prev = [(S(t - 1, m), -1.0)] if t else []
            row([(S(t, m), 1.0), (V(t, m), -1.0), *prev], 0.0 if t else st.s0[m])
            prev = [(S(t - 1, m), 1.0)] if t else []
            row([(S(t, m), -1.0), (E(t, m), -1.0), *prev], 0.0 if t else -st.s0[m])
    c = np.zeros(n)
    bounds = [(0, None)] * n
    for t in range(T):
        for g in range(G):
            c[Y(t, g)] = -p.value_per_token[g] * p.tokens_per_s[t, g] * p.dt_h * 3600
            hi = max(p.x_lo[g], min(p.x_hi[g], p.x_die_max[t, g]))
            bounds[X(t, g)] = (0 if modes[g] else p.x_lo[g], hi)
        c[Gr(t)] = (p.price_per_mwh[t] + p.carbon_cost_per_mwh[t]) * p.dt_h
        bounds[Gr(t)] = (None, None)
        for m in range(M):
            bounds[S(t, m)] = (0, st.share_max[m])
    res = linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return -res.fun


@pytest.mark.parametrize("s0", [0.0, 0.7])
def test_lp_with_stops_matches_independent_linprog(s0):
    # three groups over four steps: group 0 pauses, group 1 pauses and resizes, group 2 neither
    T = 4
    rng = np.random.default_rng(3)
    st = stops(T, group=(0, 1, 1), kind=(0, 0, 1), share_max=(1.0, 1.0, 0.5), start=(0.3, 0.2, 0.0),
               end=(0.4, 0.1, 0.05), s0=(s0, 0.0, s0 / 2), busy=2.0)  # fmt: skip
    p = problem(
        T=T,
        G=3,
        busy_mw=rng.uniform(1.5, 2.5, (T, 3)),
        idle_mw=np.full(T, 0.3),
        tokens_per_s=rng.uniform(1e5, 2e5, (T, 3)),
        value_per_token=np.array([1e-3, 2e-3, 1.5e-3]),
        cut_a_mw=np.tile([0.5, 0.1], (T, 1)),
        cut_b=np.tile([1.1, 1.3], (T, 1)),
        import_limit_mw=np.array([8.0, 3.2, 2.9, 6.0]),
        price_per_mwh=rng.uniform(50, 300, T),
        stops=st,
    )
    want = linprog_with_stops(p)
    for backend in ("pyomo", "highspy"):
        res, v = solve(p, backend)
        assert res.objective == pytest.approx(want, rel=1e-7)
    assert v["stop_share"].max() > 0.1  # the stops are used, so the rows are exercised


@pytest.mark.parametrize(("hold", "fixed"), [(1, None), (3, None), (3, (0.0, 1.0, np.nan))])
def test_pyomo_and_matrix_paths_agree_with_stops_and_every_family(hold, fixed):
    soft = frozenset({"ramp", "die", "flex", "import_limit", "dr", "heat"})
    st = stops(12, group=(0, 2, 2), kind=(0, 0, 1), share_max=(1.0, 1.0, 0.6), start=(0.2, 0.1, 0.0),
               end=(0.3, 0.1, 0.1), s0=(1.0, 0.0, 0.2), busy=2.0)  # fmt: skip
    if fixed is not None:  # whole pauses held over the first hold steps (the MPC's rounding)
        st = replace(st, fixed=np.array(fixed))
    p = full_problem(
        soft,
        stops=st,
        hold_steps=hold,
        import_limit_mw=np.full(12, 6.0),
        penalty_per_mwh=1e7,
        x_ramp_per_step=None,
        x0=None,
    )
    a, va = solve(p, "pyomo")
    b, vb = solve(p, "highspy")
    assert a.objective == pytest.approx(b.objective, rel=1e-6)
    assert {k: x.shape for k, x in va.items()} == {k: x.shape for k, x in vb.items()}
    for v in (va, vb):
        np.testing.assert_allclose(v["stop_share"][:hold], np.broadcast_to(v["stop_share"][0], (hold, 3)), atol=1e-9)
        if fixed is not None:
            np.testing.assert_allclose(v["stop_share"][:hold, :2], np.broadcast_to(fixed[:2], (hold, 2)), atol=1e-9)
    assert vb["stop_share"].max() > 0.1


def test_stops_rejected_when_malformed():
    with pytest.raises(ValueError, match=r"stops\.share_max"):
        stops(2, share_max=(1.5,))
    with pytest.raises(ValueError, match="one mode per group and kind"):
        stops(2, group=(0, 0), kind=(0, 0), share_max=(1, 1), start=(0, 0), end=(0, 0))
    with pytest.raises(ValueError, match="stops: expected"):
        one_job(3.0, T=2, stops=stops(3))


def cdu_problem(soft=frozenset()) -> Problem:
    """A random small case with 4 groups on 3 CDUs: CDU 0 holds groups 0 and 1 (rows), CDUs 1 and 2 one
    group each (bounds when hard); a heat and a flow room that bind in turn."""
    from dataclasses import replace

    p = random_problem(5, T=6, G=4)
    b = p.busy_mw
    heat = np.stack([0.65 * (b[:, 0] + b[:, 1]), 0.7 * b[:, 2], 0.8 * b[:, 3]], axis=1)
    flow = np.stack([0.75 * (b[:, 0] + b[:, 1]), 0.9 * b[:, 2], 0.62 * b[:, 3]], axis=1)
    return replace(
        p,
        cdu_of_group=np.array([0, 0, 1, 2]),
        cdu_rooms_mw={"cdu_heat": heat, "cdu_flow": flow},
        cdu_labels=("cdu-0", "cdu-1", "cdu-2"),
        soft=frozenset(soft),
        penalty_per_mwh=1e8,  # above the most a MWh earns here (~1e6)
        import_limit_mw=np.full(6, 20.0),
    )


@pytest.mark.parametrize("incremental", [False, True])
def test_cdu_limits_match_independent_linprog_objective_and_caps(incremental):
    p = cdu_problem()
    want, x_want = linprog_solution(p)
    lp = matrix_lp(p, incremental=incremental)
    assert ("throughput" in lp.rows) != incremental and "cdu_heat" in lp.rows  # CDU 0 keeps its rows
    status, minimum, v, _ = HighsLP(lp, DispatchOptions()).run()
    assert status == "optimal"
    assert -minimum == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(lp.unpack(v)["x"], x_want, atol=1e-6)
    res, vals = solve(p, "pyomo")
    assert res.objective == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(vals["x"], x_want, atol=1e-6)
    # the limits hold and bind: CDU 0 at its heat room, CDU 2 at its flow room (tighter than heat)
    load, heat, flow = p.cdu_load_mw(x_want), p.cdu_rooms_mw["cdu_heat"], p.cdu_rooms_mw["cdu_flow"]
    assert np.all(load <= np.minimum(heat, flow) + 1e-9)
    assert np.isclose(load[:, 0], heat[:, 0], rtol=1e-6).sum() >= 3
    assert np.isclose(load[:, 2], flow[:, 2], rtol=1e-6).sum() >= 3


def test_soft_cdu_limits_rows_for_every_cdu_in_both_backends():
    import pyomo.environ as pyo

    p = cdu_problem(soft={"cdu"})
    pyomo_rows = {c.local_name: len(c) for c in pyomo_model(p).component_objects(pyo.Constraint)}
    lp = matrix_lp(p)
    assert lp.rows["cdu_heat"].size == lp.rows["cdu_flow"].size == pyomo_rows["cdu_heat"] == 6 * 3
    a, _ = solve(p, "pyomo")
    b, vb = solve(p, "highspy")
    assert a.objective == pytest.approx(b.objective, rel=1e-6)
    assert vb["slack_cdu_heat"].shape == (18,) and np.all(vb["slack_cdu_heat"] < 1e-6)  # the penalty keeps them
    hard, _ = solve(cdu_problem(), "highspy")
    assert b.objective == pytest.approx(hard.objective, rel=1e-6)


@pytest.mark.parametrize(("soft", "kw"), [(frozenset(), LOOSE), (ALL_SOFT, {}), (ALL_SOFT, {"hold_steps": 3})])
def test_throughput_in_increments_is_the_same_lp(soft, kw):
    p = full_problem(soft, **kw)
    out = []
    for incremental in (False, True):
        lp = matrix_lp(p, incremental=incremental)
        status, minimum, v, _ = HighsLP(lp, DispatchOptions()).run()
        assert status == "optimal"
        vals = lp.unpack(v)
        y_curve = np.min(p.seg_a[None] + p.seg_b[None] * vals["x"][..., None], axis=2)
        assert np.all(vals["y"] <= y_curve + 1e-9)
        out.append(-minimum)
    assert out[1] == pytest.approx(out[0], rel=1e-9)


def test_warm_update_of_an_incremental_lp_equals_a_cold_solve():
    from dataclasses import replace

    from factory_twin.optimization.backend_highspy import WarmHighs, solve_highspy

    warm = WarmHighs()
    first = cdu_problem()
    # new costs, bounds, the objective's constant (x_lo) and CDU rooms on each solve
    for k, (lo, price, room) in enumerate([(1.0, 1.0, 1.0), (0.95, 1.3, 1.05), (0.9, 0.7, 0.95)]):
        p = replace(
            first,
            x_lo=first.x_lo * lo,
            price_per_mwh=first.price_per_mwh * price,
            cdu_rooms_mw={n: r * room for n, r in first.cdu_rooms_mw.items()},
        )
        got, want = warm.solve(p, DispatchOptions()), solve_highspy(p, DispatchOptions())
        assert got.status == want.status == "optimal"
        assert "seg_d" in warm._model.lp.cols and (warm.warm, warm.cold) == (k, 1)
        assert got.objective == pytest.approx(want.objective, rel=1e-9)
        np.testing.assert_allclose(got.values["x"], want.values["x"], atol=1e-7)
