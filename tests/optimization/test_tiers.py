"""Tier rows of the dispatch LP: equal to an independent linprog assembly written element by element from the
one-line diagram; both backends build the same rows; an infeasible N-1 plan names the element, the step and the
shortfall; soft rows report their violations; the warm MPC keeps them."""

from pathlib import Path

import numpy as np
import pytest
from factory_twin.optimization.dispatch import dispatch, plan_times
from factory_twin.optimization.groups import make_groups
from factory_twin.optimization.linearization import forecast
from factory_twin.optimization.mpc import MPCController
from factory_twin.optimization.options import MPC_OPTIONS, DispatchOptions
from factory_twin.optimization.problem import make_problem
from factory_twin.twin.simulation.plant import build_plant
from scipy.optimize import linprog
from support import dense_rows

from factory_twin import twin

FACILITY = Path(__file__).parents[1] / "data" / "tiers-small.toml"
OPTS = DispatchOptions(horizon="6h", step="15min")


@pytest.fixture(scope="module")
def small():
    return twin.load_facility(FACILITY)


@pytest.fixture(scope="module")
def scenario(small, tmp_path_factory):
    p = tmp_path_factory.mktemp("sc") / "s.toml"
    p.write_text('name = "tiers"\nstart = "2026-08-08T10:00:00"\n[workload.training]\nlevel = 1.0\n'
                 '[workload.inference]\nprofile = "diurnal"\nmin = 0.5\nmax = 0.95\npeak_hour = 14.0\n')  # fmt: skip
    return twin.load_scenario(p, small)


def _shares(topo, routing) -> np.ndarray:
    """share[e, r]: the part of rack r's power that passes element e, path by path (1 / live parents a step)."""
    share = np.zeros((topo.n, topo.n_racks))
    live = routing.energized

    def up(x_parents, r, amount):
        on = [p for p in x_parents if live[p]]
        for p in on:
            share[p, r] += amount / len(on)
            up(topo.parents(p).tolist(), r, amount / len(on))

    for r in range(topo.n_racks):
        up(topo.rack_parents(r).tolist(), r, 1.0)
    return share


def _element_rows(f, sc, p, groups, fc, n_minus_1: bool) -> list[tuple[int, dict[int, float], float]]:
    """Every element's tier row at every step, written out from the diagram (no optimization.tiers code): its load
    through the per-rack flows at five evenly spaced positions from every group's lowest cap to its uncapped draw,
    the chord through the end points raised to lie above the load at all five, in the busy GPU power it carries,
    the row ``load <= rating x derate``. (step, {group: coefficient on x}, right side [MW])."""
    topo = f.topology
    plant = build_plant(f)
    times = plan_times(sc, None, OPTS)
    u = np.stack([sc.utilization(c, times) for c in f.class_names])[f.rack_class]  # [racks, T]
    lam = np.linspace(0, 1, 5)
    rin = []
    for q in lam:
        busy = f.min_cap_w + q * (f.demand_w - f.min_cap_w)
        gpu = u * busy[:, None] + (1 - u) * f.idle_w[:, None]
        dc = f.gpus[:, None] * gpu + f.non_gpu_w[:, None]
        rin.append(plant.psu_input_w(dc, (f.psu_count * f.psu_rating_w)[:, None]))
    rin = np.stack(rin, axis=-1)  # [racks, T, 5]
    levels = np.linspace(0, 1, fc.cooling_mw.shape[1])
    mech = np.array([np.interp(lam, levels, row) for row in fc.cooling_mw]) * 1e6
    paths = np.array([x or "" for x in topo.path])
    routings = [topo.routing()] + ([topo.routing(paths != "A"), topo.routing(paths != "B")] if n_minus_1 else [])
    x_pts = (groups.min_cap_w / groups.tdp_w, groups.demand_w / groups.tdp_w)
    n_g = np.bincount(groups.rack_group, minlength=groups.n)
    rows = []
    for routing in routings:
        load = topo.flow(routing, rin, mech).in_w / 1e6  # [elements, T, 5]
        share = _shares(topo, routing)
        for e in np.flatnonzero(routing.energized):
            G = np.array([share[e, groups.rack_group == g].sum() / n_g[g] for g in range(groups.n)])
            if G.sum() == 0:
                continue
            for t in range(p.n_steps):
                d0, d1 = (float(np.sum(G * p.busy_mw[t] * x)) for x in x_pts)
                if d1 <= d0:
                    continue
                le = load[e, t]
                lift = max(0.0, max(le[j] - (le[0] + lam[j] * (le[-1] - le[0])) for j in range(5)))
                slope = (le[-1] - le[0]) / (d1 - d0)
                coef = {g: slope * G[g] * p.busy_mw[t, g] for g in range(groups.n) if G[g] > 0}
                rows.append((t, coef, topo.continuous_limit_w[e] / 1e6 - le[0] - lift + slope * d0))
    return rows


def independent_linprog(f, sc, opts: DispatchOptions):
    """The plan's LP written out by hand (throughput hypograph, grid cuts, import limit, heat, ramp, the die limit
    as a bound, and the tier rows of :func:`_element_rows`), solved by scipy's linprog: objective and caps."""
    groups = make_groups(f, opts.grouping)
    fc = forecast(f, sc, groups, plan_times(sc, None, opts), opts.step)
    p = make_problem(f, sc, groups, fc, opts.updated(tiers=False, n_minus_1=False))
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
        for c in range(C):
            row([(Gr(t), -1.0)] + [(X(t, g), p.cut_b[t, c] * p.busy_mw[t, g]) for g in range(G)],
                -(p.cut_a_mw[t, c] + p.cut_b[t, c] * p.idle_mw[t]))  # fmt: skip
        row([(Gr(t), 1.0)], p.import_limit_mw[t])
        row([(X(t, g), p.busy_mw[t, g]) for g in range(G)], p.heat_cap_mw[t] - p.liquid_base_mw[t])
        if t > 0:
            row([(Gr(t), 1.0), (Gr(t - 1), -1.0)], p.ramp_mw_per_step)
            row([(Gr(t), -1.0), (Gr(t - 1), 1.0)], p.ramp_mw_per_step)
    if opts.tiers:
        for t, coef, rhs in _element_rows(f, sc, p, groups, fc, opts.n_minus_1):
            row([(X(t, g), v) for g, v in coef.items()], rhs)
    c = np.zeros(n)
    bounds = [None] * n
    hi = p.x_upper()
    for t in range(T):
        for g in range(G):
            c[Y(t, g)] = -p.value_per_token[g] * p.tokens_per_s[t, g] * p.dt_h * 3600
            bounds[X(t, g)] = (p.x_lo[g], hi[t, g])
            bounds[Y(t, g)] = (0, None)
        c[Gr(t)] = (p.price_per_mwh[t] + p.carbon_cost_per_mwh[t]) * p.dt_h
        bounds[Gr(t)] = (None, None)
    res = linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return -res.fun, res.x[: T * G].reshape(T, G), p


@pytest.mark.parametrize("backend", ["highspy", "pyomo"])
@pytest.mark.parametrize("n_minus_1", [False, True])
def test_tiered_lp_equals_an_independent_linprog_assembly(small, scenario, backend, n_minus_1):
    opts = OPTS.updated(n_minus_1=n_minus_1, backend=backend)
    plan = dispatch(small, scenario, opts)
    assert plan.attrs["status"] == "optimal"
    want_obj, want_x, _ = independent_linprog(small, scenario, opts)
    assert plan.attrs["objective"] == pytest.approx(want_obj, rel=1e-6)
    groups = make_groups(small, "hall")
    drawn = plan.gpu_cap_w.values  # the cap per busy GPU of each group [W] (draws min(demand, cap) here)
    assert np.allclose(np.minimum(drawn, groups.demand_w) / groups.tdp_w, want_x, atol=1e-6)
    free, _, _ = independent_linprog(small, scenario, opts.updated(tiers=False, n_minus_1=False))
    if n_minus_1:  # the N-1 rows bind: they cost value (and the case would not test them otherwise)
        assert want_obj < free - 1e-6 * abs(free)


def test_both_backends_build_the_same_tier_rows(small, scenario):
    import pyomo.environ as pyo
    from factory_twin.optimization.backend_highspy import matrix_lp
    from factory_twin.optimization.backend_pyomo import pyomo_model

    opts = OPTS.updated(n_minus_1=True, soft=("tier",))
    groups = make_groups(small, "hall")
    fc = forecast(small, scenario, groups, plan_times(scenario, None, opts), opts.step)
    p = make_problem(small, scenario, groups, fc, opts)
    m = pyomo_model(p)
    pyomo_rows = {c.local_name: len(c) for c in m.component_objects(pyo.Constraint) if len(c)}
    lp = matrix_lp(p)
    assert {k: v.size for k, v in lp.rows.items()} == pyomo_rows
    assert pyomo_rows["tier"] == p.tiers.n_blocks * p.n_steps > 0
    assert "slack_tier" in lp.cols
    # one row block per direction, not per element: 12 elements x 3 routings, 4 directions over 2 groups
    assert p.tiers.n_blocks == 4
    bound = {p.tiers.labels[r] for r in p.tiers.routing.ravel()}
    assert bound <= {"after losing path A", "after losing path B"}  # a path lost is always the tighter routing


def test_an_infeasible_n_minus_1_plan_names_the_element_step_and_shortfall(small, scenario):
    """PDU-2 (racks 3 and 4) at 150 kW: fine on two paths (~86 kW each at minimum caps), not on one (~175 kW)."""
    spec = small.spec
    els = [e.model_copy(update={"rating_kw": 150.0}) if e.name.endswith("pdu-2") else e for e in spec.topology.elements]
    from factory_twin.twin.facility.assembly import assemble, rack_catalog

    tight = assemble(spec.model_copy(update={"topology": spec.topology.model_copy(update={"elements": els})}),
                     rack_catalog(), "tight")  # fmt: skip
    plan = dispatch(tight, scenario, OPTS.updated(n_minus_1=True))
    assert plan.attrs["status"].startswith("infeasible")
    conflict = plan.attrs["conflicts"]
    assert conflict.startswith("tier (") and "pdu-2 after losing path" in conflict
    assert "short by" in conflict and "at 2026-08-08T10:00:00" in conflict
    assert dispatch(tight, scenario, OPTS).attrs["status"] == "optimal"  # without N-1 it plans


def test_soft_tier_rows_report_the_element_they_exceed(small, scenario):
    spec = small.spec
    els = [e.model_copy(update={"rating_kw": 150.0}) if e.name.endswith("pdu-2") else e for e in spec.topology.elements]
    from factory_twin.twin.facility.assembly import assemble, rack_catalog

    tight = assemble(spec.model_copy(update={"topology": spec.topology.model_copy(update={"elements": els})}),
                     rack_catalog(), "tight")  # fmt: skip
    plan = dispatch(tight, scenario, OPTS.updated(n_minus_1=True, soft=("tier",)))
    assert plan.attrs["status"] == "optimal"
    assert "tier (soft; worst " in plan.attrs["violations"] and "pdu-2 after losing path" in plan.attrs["violations"]


def test_the_warm_mpc_carries_the_tier_rows(small, scenario):
    ctl = MPCController(small, scenario, MPC_OPTIONS.updated(n_minus_1=True))
    tw = twin.Twin(small, scenario, controller=ctl)
    for _ in range(31):  # two re-plans, 5 min apart
        tw.advance()
    assert ctl.warm.warm >= 1 and ctl.log[-1].status == "optimal" and ctl.log[-1].warm
    rows = ctl.warm._model.lp.rows
    assert rows["tier"].size == 4 * 120  # 4 directions x 2 h at 1 min
