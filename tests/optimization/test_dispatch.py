"""dispatch() on the reference campus: limits hold, backends and groupings agree, bad input is
rejected."""

import csv
from pathlib import Path

import numpy as np
import pytest
from factory_twin.models.gpu import ThroughputCurve
from factory_twin.optimization import dispatch, plan_summary
from factory_twin.optimization.groups import aggregate, disaggregate, make_groups
from factory_twin.optimization.options import DispatchOptions
from factory_twin.optimization.problem import Problem
from factory_twin.optimization.solve import solve
from scipy.optimize import linprog

A100 = Path("/work/shared/data/a100_power_cap_sweep.csv")
VARS = (
    "gpu_cap_w",
    "grid_import_mw",
    "import_limit_mw",
    "it_power_mw",
    "cooling_power_mw",
    "throughput",
    "tokens_per_s",
    "bess_power_mw",
    "bess_soc_mwh",
    "price",
)


def _before_event(scenario):
    return scenario.dr_events[0].start - np.timedelta64(30, "m")


@pytest.fixture(scope="module")
def day_plan(campus, hot):
    return dispatch(campus, hot, horizon="24h", step="5min")


def test_day_plan_is_optimal_and_within_limits(campus, day_plan):
    p = day_plan
    assert p.attrs["status"] == "optimal"
    for k in ("objective", "build_seconds", "solve_seconds"):
        assert np.isfinite(p.attrs[k])
    for v in VARS:
        assert "units" in p[v].attrs, v
    imp = p.grid_import_mw.values
    assert np.all(imp <= p.import_limit_mw.values * (1 + 1e-9))
    ramp = campus.spec.grid.ramp_limit_mw_per_min * 5
    assert np.all(np.abs(np.diff(imp)) <= ramp * (1 + 1e-9))
    g = make_groups(campus)
    cap = p.gpu_cap_w.values
    assert np.all(cap >= g.min_cap_w * (1 - 1e-9)) and np.all(cap <= g.tdp_w * (1 + 1e-9))
    assert 0 < p.throughput.min() <= p.throughput.max() <= 1 + 1e-9
    labels = [k for k, _ in plan_summary(p)]
    assert labels[:7] == [
        "status",
        "objective",
        "MWh shifted",
        "peak import",
        "throughput kept",
        "tokens",
        "energy + carbon cost",
    ]


def test_dr_event_import_at_target_through_the_event(day_plan, hot):
    p = day_plan
    ev = hot.dr_events[0]
    t = p.time.values
    full = (t >= ev.start + np.timedelta64(int(ev.ramp_s), "s")) & (t + np.timedelta64(300, "s") <= ev.end)
    np.testing.assert_allclose(p.grid_import_mw.values[full], 0.75 * p.baseline_mw.values[full], rtol=1e-6)
    inside = np.isfinite(p.dr_target_mw.values)
    assert np.all(p.grid_import_mw.values[inside] <= p.dr_target_mw.values[inside] * (1 + 1e-9))


def test_pyomo_and_matrix_give_the_same_objective_on_the_campus(campus, hot):
    kw = dict(start=_before_event(hot), horizon="4h", step="5min", soft=("flex",))
    a = dispatch(campus, hot, backend="pyomo", **kw)
    b = dispatch(campus, hot, backend="highspy", **kw)
    assert a.attrs["status"] == b.attrs["status"] == "optimal"
    assert a.attrs["objective"] == pytest.approx(b.attrs["objective"], rel=1e-6)


def test_cdu_grouping_gives_the_hall_optimum(campus, hot):
    # identical curves and limits inside a hall: splitting a hall into CDU groups cannot do better
    kw = dict(start=_before_event(hot), horizon="4h", step="10min", soft=("flex",))
    a = dispatch(campus, hot, grouping="hall", **kw)
    b = dispatch(campus, hot, grouping="cdu", **kw)
    assert a.attrs["objective"] == pytest.approx(b.attrs["objective"], rel=1e-6)


def test_disaggregate_and_aggregate_round_trip(campus):
    g = make_groups(campus, "cdu")
    cap = np.linspace(700, 1100, g.n)
    rack = disaggregate(g, cap)
    assert rack.shape == (campus.n_racks,)
    np.testing.assert_allclose(aggregate(g, rack, campus.gpus), cap, rtol=1e-12)
    assert aggregate(g, campus.gpus).sum() == campus.gpus.sum()
    with pytest.raises(ValueError, match="grouping"):
        make_groups(campus, "row")


def test_import_limit_below_floor_is_reported_then_soft(campus, hot):
    low = hot.with_changes(what_if_import_limit_mw=40.0)
    p = dispatch(campus, low, horizon="1h", step="5min")
    assert p.attrs["status"].startswith("infeasible") and "import_limit" in p.attrs["conflicts"]
    assert "MW" in p.attrs["conflicts"] and np.all(np.isnan(p.gpu_cap_w.values))
    s = dispatch(campus, low, horizon="1h", step="5min", soft=("import_limit",))
    assert s.attrs["status"] == "optimal" and "import_limit" in s.attrs["violations"]
    assert np.all(s.grid_import_mw.values > 40.0)


def test_dispatch_plans_against_the_limit_in_force(campus, tmp_path):
    """The grid-signals CSV's limit column over the contract; a what-if over the column (before, the what-if
    was dropped whenever the CSV had the column)."""
    from support import scenario_with_csv_limit

    sc = scenario_with_csv_limit(tmp_path, campus, 105.0)
    p = dispatch(campus, sc, horizon="1h", step="15min", start="2026-08-07T12:00:00")
    np.testing.assert_array_equal(p.import_limit_mw.values, 105.0)
    low = dispatch(campus, sc.with_changes(what_if_import_limit_mw=90.0), horizon="1h", step="15min",
                   start="2026-08-07T12:00:00")  # fmt: skip
    np.testing.assert_array_equal(low.import_limit_mw.values, 90.0)
    assert low.attrs["status"] == "optimal" and np.all(low.grid_import_mw.values <= 90.0 * (1 + 1e-9))
    assert p.grid_import_mw.values.max() > 100.0  # the what-if binds: the column alone lets the campus draw more


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"horizon": "1h", "step": "7min"}, "horizon"),
        ({"step": "-5min"}, "step"),
        ({"start": "event", "horizon": "2h"}, "dr_events"),
        ({"start": "2031-01-01T00:00:00", "horizon": "1h"}, "signals"),
        ({"solver": "hipo"}, "solver"),
        ({"grouping": "row"}, "grouping"),
        ({"soft": ("oops",)}, "soft"),
        ({"backend": "gurobi"}, "backend"),
        ({"horizn": "1h"}, "horizn"),
    ],
)
def test_nonsense_requests_rejected(campus, hot, kw, name):
    if kw.get("start") == "event":
        kw = kw | {"start": hot.dr_events[0].start}
    with pytest.raises(ValueError, match=name):
        dispatch(campus, hot, **({"horizon": "1h"} | kw))


def test_a_plan_too_large_for_memory_is_refused_with_the_estimate(campus, hot):
    with pytest.raises(ValueError, match=r"31,536,000 steps x 840 racks needs about [\d,.]+ GiB.*longer step"):
        dispatch(campus, hot, horizon="365d", step="1s")


def test_negative_import_limit_rejected(campus, hot):
    with pytest.raises(ValueError, match="import_limit_mw"):
        dispatch(campus, hot.with_changes(what_if_import_limit_mw=-5.0), horizon="1h")


def test_extra_constraints_hook(campus, hot):
    import pyomo.environ as pyo

    def cap90(m, p):
        m.user_cap = pyo.Constraint(m.T, rule=lambda m, t: m.grid[t] <= 90.0)

    p = dispatch(campus, hot, horizon="1h", step="5min", extra_constraints=cap90, soft=("flex",))
    assert p.attrs["backend"] == "pyomo" and p.attrs["status"] == "optimal"
    assert p.grid_import_mw.max() <= 90.0 + 1e-6


def _a100_curves():
    """ThroughputCurve per measured workload: drawn power per GPU / 400 W TDP vs normalized
    throughput."""
    if not A100.is_file():
        pytest.skip(f"published A100 cap sweep not found at {A100}")
    rows = list(csv.DictReader(A100.open()))
    out = {}
    for name in sorted({r["Workload"] for r in rows}):
        pts = np.array(
            [(float(r["power per GPU"]), float(r["normalized throughput"])) for r in rows if r["Workload"] == name]
        )
        out[name] = ThroughputCurve.from_points(pts[:, 0] / 400.0, pts[:, 1], x_min=pts[:, 0].min() / 400.0)
    return out


def _a100_optimum():
    """Four measured A100 workloads, equal GPU counts, GPU power 25 % below the uncapped draw.

    The LP optimum must equal linprog written out here; the weighted (equal-weight) throughput is
    compared with the 0.91 Emerald AI reported for its 25 % / 3 h event in the next test.
    """
    curves = list(_a100_curves().values())
    G = len(curves)
    segs = [c.segments() for c in curves]
    K = max(len(a) for a, _ in segs)
    seg_a = np.array([np.pad(a, (0, K - len(a)), mode="edge") for a, _ in segs])
    seg_b = np.array([np.pad(b, (0, K - len(b)), mode="edge") for _, b in segs])
    x_lo = np.array([c.x_min for c in curves])
    x_hi = np.array([c.x_demand for c in curves])
    busy = np.full((1, G), 400.0 * 64 / 1e6)  # 64 GPUs per job, 400 W TDP
    limit = 0.75 * float(busy[0] @ x_hi)
    p = Problem(
        dt_h=1.0,
        gpus=np.full(G, 64.0),
        x_lo=x_lo,
        x_hi=x_hi,
        x_die_max=np.full((1, G), 2.0),
        seg_a=seg_a,
        seg_b=seg_b,
        busy_mw=busy,
        idle_mw=np.zeros(1),
        tokens_per_s=np.ones((1, G)),
        value_per_token=np.ones(G),
        cut_a_mw=np.zeros((1, 1)),
        cut_b=np.ones((1, 1)),
        liquid_base_mw=np.zeros(1),
        heat_cap_mw=np.full(1, np.inf),
        import_limit_mw=np.array([limit]),
        dr_cap_mw=np.full(1, np.inf),
        ramp_mw_per_step=1.0,
        price_per_mwh=np.zeros(1),
        carbon_cost_per_mwh=np.zeros(1),
    )
    sol = solve(p, DispatchOptions())
    assert sol.optimal
    x = sol.values["x"][0]
    weighted = float(np.mean([c.throughput(xi) for c, xi in zip(curves, x, strict=True)]))
    A = np.zeros((G * K + 1, 2 * G))
    for g in range(G):
        A[g * K : (g + 1) * K, g] = -seg_b[g]
        A[g * K : (g + 1) * K, G + g] = 1.0
    A[-1, :G] = busy[0]
    ref = linprog(
        np.r_[np.zeros(G), -np.ones(G) / G],
        A_ub=A,
        b_ub=np.r_[seg_a.ravel(), limit],
        bounds=list(zip(x_lo, x_hi, strict=True)) + [(0, None)] * G,
        method="highs",
    )
    assert weighted == pytest.approx(-ref.fun, rel=1e-9)
    assert float(busy[0] @ x) == pytest.approx(limit, rel=1e-9)
    uniform = float(np.mean([c.throughput(0.75 * c.x_demand) for c in curves]))
    return weighted, uniform


def test_a100_cap_sweep_optimal_caps_under_a_25pct_cut():
    weighted, uniform = _a100_optimum()
    assert weighted >= uniform - 1e-12  # optimal caps beat the same 25 % cut on every job
    print(f"A100 sweep, 25 % GPU power cut: optimal {weighted:.4f}, uniform {uniform:.4f} (Emerald: 0.91)")


@pytest.mark.xfail(
    strict=True,
    reason="power caps alone on the four published A100 workloads keep 0.893 "
    "(equal weights); Emerald's 0.91 also paused and resized jobs. See docs/optimization.md.",
)
def test_a100_cap_sweep_keeps_emerald_weighted_throughput():
    assert _a100_optimum()[0] >= 0.91


def test_limit_between_min_cap_floor_and_flex_floor_is_explained(campus, hot):
    """Above the minimum-cap floor the LP is tried; when the flex tiers make it infeasible the result says
    so with the shortfall against the floor the tiers need, and soft flex tiers make it solvable."""
    base = hot.with_changes(dr_events=(), what_if_import_limit_mw=1000.0)
    kw = {"start": "2026-08-08T02:00:00", "horizon": "2h", "step": "15min"}
    floor = float(dispatch(campus, base, **kw).floor_mw.max())
    tight = base.with_changes(what_if_import_limit_mw=floor + 2.0)
    plan = dispatch(campus, tight, **kw)
    assert plan.attrs["optimal"] == 0 and "infeasible" in plan.attrs["status"].lower()
    assert plan.attrs["conflicts"].startswith("import_limit (vs the floor with the flex tiers held")
    soft = dispatch(campus, tight, soft=("flex",), **kw)
    assert soft.attrs["status"] == "optimal"
    assert float(soft.grid_import_mw.max()) <= floor + 2.0 + 1e-6
    assert soft.attrs["violations"].startswith("flex (throughput below the flex tier")
