"""Per-GPU steering against hand solutions and an independent scipy assembly of the same problem.

The reference works on the element x rack share matrix and per-GPU arrays directly (no trees, no cells, no event
sweep): each level's quadratic program (optimization.steering docstring) is solved by scipy's SLSQP and polished on
its active set by solving the KKT equations with numpy, so its limits are exact to rounding."""

import numpy as np
import pytest
import scipy.sparse as sp
from factory_twin.optimization.steering import allocate, equal_share, greedy_proportional, make_cells
from factory_twin.optimization.steering_tree import tree_from_shares
from scipy.linalg import qr
from scipy.optimize import linprog, minimize

KW = 1e3


def hand_case(priority):
    """Field guide power-steering.md §5: one 100 kW PDU, two 60 kW racks, guarantees 30/20 kW, demands 70/50 kW."""
    shares = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    tree = tree_from_shares(("PDU", "rack-1", "rack-2"), shares, np.array([1, 1]))
    cells = make_cells(tree, np.array([0, 1]), lo_w=0.0, hi_w=200 * KW, guarantee_w=np.array([30 * KW, 20 * KW]),
                       margin_w=0.0, idle_w=0.0, priority=np.array(priority), kappa=np.ones(2),
                       names=("job-1", "job-2"), dtype=np.float64)  # fmt: skip
    budgets, binding = tree.node_budgets(np.array([100, 60, 60]) * KW)
    return tree, cells, budgets, binding


def test_hand_case_equal_priority():
    """Both racks get their guarantee; the 50 kW left at the PDU covers 70 kW of spans (rack 1 from 30 to its 60 kW
    rating... its span is 40 kW, rack 2's 30 kW): the PDU's price Q solves 40 (1 - max(Q, 1/4)) + 30 (1 - Q) = 50
    -> Q = 2/7 (rack 1's own rating binds at Q = 1/4 first): 30 + 40 x 5/7 = 58.571 kW and 20 + 30 x 5/7 =
    41.429 kW."""
    _, cells, budgets, _ = hand_case([0, 0])
    a = allocate(cells, np.array([70, 50]) * KW, budgets)
    np.testing.assert_allclose(a.limit_w, [30e3 + 40e3 * 5 / 7, 20e3 + 30e3 * 5 / 7], rtol=0, atol=1e-6)
    assert a.limit_w.sum() == pytest.approx(100e3, abs=1e-6)
    assert not a.infeasible and not a.brake


def test_hand_case_priority_first():
    """Job 1 first: it takes its rack's full 60 kW, job 2 the 40 kW left (above its 20 kW guarantee)."""
    _, cells, budgets, _ = hand_case([0, 1])
    a = allocate(cells, np.array([70, 50]) * KW, budgets)
    np.testing.assert_allclose(a.limit_w, [60e3, 40e3], rtol=0, atol=1e-6)


def test_hand_case_baselines():
    _, cells, budgets, _ = hand_case([0, 0])
    np.testing.assert_allclose(equal_share(cells, budgets), [50e3, 50e3])
    # greedy: the PDU hands out 100 kW in proportion to 70:50 (rack 1 gets 58.33 kW, under its 60 kW)
    np.testing.assert_allclose(
        greedy_proportional(cells, np.array([70, 50]) * KW, budgets), [100e3 * 70 / 120, 100e3 * 50 / 120]
    )


def test_infeasible_guarantees_named():
    """Guarantees 70 + 50 kW under a 100 kW PDU cannot all be met: the PDU is named with the shortfall by group
    (equal priority: both cut in proportion to their guarantee spans, 20 kW short in total)."""
    tree, cells, budgets, binding = hand_case([0, 0])
    cells = make_cells(tree, np.array([0, 1]), lo_w=0.0, hi_w=200 * KW, guarantee_w=np.array([70 * KW, 50 * KW]),
                       margin_w=0.0, idle_w=0.0, priority=np.array([0, 0]), kappa=np.ones(2), names=("job-1", "job-2"),
                       dtype=np.float64)  # fmt: skip
    budgets, binding = tree.node_budgets(np.array([100, 200, 200]) * KW)
    a = allocate(cells, np.array([70, 50]) * KW, budgets, binding)
    assert a.limit_w.sum() == pytest.approx(100e3, abs=1e-6)
    short = {g: w for label, g, w in a.infeasible if label.startswith("PDU")}
    assert sum(short.values()) == pytest.approx(20e3, abs=1e-6)
    assert short["job-1"] == pytest.approx(20e3 * 70 / 120, abs=1e-6)


def test_floors_over_budget_brake():
    tree, cells, _, _ = hand_case([0, 0])
    cells = make_cells(tree, np.array([0, 1]), lo_w=60 * KW, hi_w=200 * KW, guarantee_w=0.0, margin_w=0.0, idle_w=0.0,
                       priority=np.array([0, 0]), kappa=np.ones(2), names=("a", "b"), dtype=np.float64)  # fmt: skip
    budgets, _ = tree.node_budgets(np.array([100, 200, 200]) * KW)
    a = allocate(cells, np.array([70, 50]) * KW, budgets)
    np.testing.assert_allclose(a.limit_w, [60e3, 60e3])
    assert a.brake == [("PDU", pytest.approx(20e3))]


# ------------------------------------------------------------------------------------------ scipy reference
def reference(shares, rack_of_gpu, budgets_el, demand, lo, hi, g, margin, idle, prio, kappa_gpu, kappa_s_gpu):
    """Limits per GPU by levels, each level's QP solved by SLSQP then polished exactly on its active set."""
    A = np.asarray(shares.todense())[:, rack_of_gpu]  # elements x GPUs
    r = np.clip(demand + margin, lo, hi)
    f = np.maximum(np.minimum(g, r), lo)
    active = demand > idle
    lv_spans = [("g", f - lo), ("r", r - f), ("sa", np.where(active, hi - r, 0)), ("si", np.where(active, 0, hi - r))]
    a = lo.astype(float).copy()
    plan = [(k, s, p) for k, s in lv_spans[:2] for p in sorted(set(prio))] + [(k, s, None) for k, s in lv_spans[2:]]
    for _, s, p in plan:
        kappa = kappa_gpu if p is not None else kappa_s_gpu
        w = s * ((prio == p) if p is not None else 1.0)
        idx = np.flatnonzero(w > 1e-12)
        if not idx.size:
            continue
        wi, ki = w[idx], kappa[idx]
        rows = np.flatnonzero(np.abs(A[:, idx]).sum(axis=1) > 0)
        Ai, bi = A[np.ix_(rows, idx)], budgets_el[rows] - A[rows] @ a
        scale = wi.max()

        def obj(x, wi=wi, ki=ki, scale=scale):
            return np.sum((wi - x) ** 2 / (2 * ki * wi)) / scale

        def jac(x, wi=wi, ki=ki, scale=scale):
            return -(wi - x) / (ki * wi) / scale

        res = minimize(obj, np.zeros(idx.size), jac=jac, method="SLSQP", bounds=list(zip(0 * wi, wi, strict=True)),
                       constraints=[{"type": "ineq", "fun": lambda x, Ai=Ai, bi=bi, s=scale: (bi - Ai @ x) / s,
                                     "jac": lambda x, Ai=Ai, s=scale: -Ai / s}],
                       options={"ftol": 1e-15, "maxiter": 1000})  # fmt: skip
        x = _polish(res.x, wi, ki, Ai, bi)
        a[idx] += x
    return a


def _polish(x, w, k, A, b, tol=1e-3):
    """Exact solution on the active set of ``x``: bounds at 0 or w fixed, active rows as equalities, KKT solved."""
    at_lo, at_hi = x <= tol * np.maximum(w, 1) * 1e-3, x >= w - tol * np.maximum(w, 1) * 1e-3
    free = ~(at_lo | at_hi)
    xf = np.where(at_hi, w, 0.0)
    act = np.flatnonzero(b - A @ x <= 1e-6 * np.maximum(np.abs(b), 1))
    if not free.any():
        return xf
    Af = A[np.ix_(act, np.flatnonzero(free))]
    rhs = b[act] - A[act][:, ~free] @ xf[~free]
    H = np.diag(1 / (k[free] * w[free]))
    c = w[free] / (k[free] * w[free])
    # min 1/2 x' H x - c' x  s.t. Af x = rhs, on a set of independent rows (an A/B pair gives the same row twice)
    if Af.shape[0]:
        _, rr, piv = qr(Af.T, mode="economic", pivoting=True)
        rank = int(np.sum(np.abs(np.diag(rr)) > 1e-9 * max(1.0, np.abs(rr).max())))
        Af, rhs = Af[piv[:rank]], rhs[piv[:rank]]
    n, m = H.shape[0], Af.shape[0]
    K = np.block([[H, Af.T], [Af, np.zeros((m, m))]])
    sol = np.linalg.solve(K, np.concatenate([c, rhs]))
    xf[free] = sol[:n]
    return xf


def random_case(seed):
    """A radial or 2N diagram of 2-3 levels over 4-8 racks of 2-3 GPUs, with groups, priorities and guarantees."""
    rng = np.random.default_rng(seed)
    n_racks = int(rng.integers(4, 9))
    gpr = rng.integers(2, 4, n_racks)
    # racks in 2 blocks; blocks under one feed; with 2N: each block has an A and a B element (share 0.5)
    split = int(rng.integers(1, n_racks))
    blocks = [np.arange(split), np.arange(split, n_racks)]
    two_n = bool(rng.integers(0, 2))
    rows, names, budgets = [], [], []
    share = 0.5 if two_n else 1.0
    for p in ("A", "B") if two_n else ("A",):
        rows.append(np.full(n_racks, share))
        names.append(f"feed-{p}")
        budgets.append(rng.uniform(0.55, 0.9) * gpr.sum() * 1000 * share)
        for b, racks in enumerate(blocks):
            row = np.zeros(n_racks)
            row[racks] = share
            rows.append(row)
            names.append(f"pdu-{p}{b}")
            budgets.append(rng.uniform(0.6, 1.0) * gpr[racks].sum() * 1000 * share)
    for r in range(n_racks):  # a rack shelf limit on some racks
        if rng.random() < 0.4:
            row = np.zeros(n_racks)
            row[r] = 1.0
            rows.append(row)
            names.append(f"rack-{r}")
            budgets.append(rng.uniform(0.6, 1.0) * gpr[r] * 1000)
    shares = sp.csr_matrix(np.array(rows))
    n = int(gpr.sum())
    rack_of_gpu = np.repeat(np.arange(n_racks), gpr)
    n_groups = 3
    gpu_group = np.sort(rng.integers(0, n_groups, n))  # contiguous-ish groups across racks
    prio = rng.integers(0, 2, n_groups)
    kappa = rng.uniform(0.5, 2.0, n_groups)
    guarantee = rng.uniform(300, 600, n_groups)
    demand = np.where(rng.random(n) < 0.2, 150.0, rng.uniform(400, 1100, n))
    kappa_s = rng.uniform(0.5, 2.0, n_groups)  # drawn last: the cases above stay those the reference was checked on
    return dict(names=tuple(names), shares=shares, budgets=np.array(budgets), gpr=gpr, rack_of_gpu=rack_of_gpu,
                gpu_group=gpu_group, prio=prio, kappa=kappa, kappa_s=kappa_s, guarantee=guarantee,
                demand=demand)  # fmt: skip


@pytest.mark.parametrize("seed", range(12))
def test_matches_scipy_reference(seed):
    c = random_case(seed)
    tree = tree_from_shares(c["names"], c["shares"], c["gpr"])
    g = c["gpu_group"]
    lo, hi, margin, idle = np.full(g.size, 100.0), np.full(g.size, 1200.0), 50.0, 200.0
    cells = make_cells(tree, g, lo, hi, c["guarantee"][g], margin, idle, c["prio"], c["kappa"], ("a", "b", "c"),
                       dtype=np.float64, kappa_surplus=c["kappa_s"])  # fmt: skip
    budgets, binding = tree.node_budgets(c["budgets"])
    got = allocate(cells, c["demand"], budgets, binding)
    want = reference(c["shares"], c["rack_of_gpu"], c["budgets"], c["demand"], lo, hi, c["guarantee"][g],
                     margin, idle, c["prio"][g], c["kappa"][g], c["kappa_s"][g])  # fmt: skip
    ref_load = c["shares"] @ np.bincount(c["rack_of_gpu"], want)
    assert np.all(ref_load <= c["budgets"] + 1e-6), "the SLSQP reference itself broke a budget: not a valid check"
    np.testing.assert_allclose(got.limit_w, want, rtol=0, atol=1e-6)
    # every tier within budget (element by element, with its share), every guarantee met when feasible
    load = c["shares"] @ np.bincount(c["rack_of_gpu"], got.limit_w)
    assert np.all(load <= c["budgets"] + 1e-6)
    f = np.maximum(np.minimum(c["guarantee"][g], np.clip(c["demand"] + margin, lo, hi)), lo)
    A = np.asarray(c["shares"].todense())[:, c["rack_of_gpu"]]
    feasible = linprog(np.zeros(g.size), A_ub=A, b_ub=c["budgets"], bounds=list(zip(f, hi, strict=True))).status == 0
    if feasible:
        assert np.all(got.limit_w >= f - 1e-6)
        assert not got.infeasible
    else:
        assert got.infeasible, "guarantees that cannot all be met are named"


@pytest.mark.parametrize("seed", range(6))
def test_tree_through_and_node_budgets_against_the_share_matrix(seed):
    """The tree's compiled sums against the element x rack share matrix itself: the GPU power through every element
    is ``S @ x``; each node's budget is the smallest ``B_e / s_e`` of the elements with its rack set, and the element
    named binding is one at that smallest value."""
    c = random_case(seed)
    tree = tree_from_shares(c["names"], c["shares"], c["gpr"])
    x = np.random.default_rng(seed).uniform(0, 5e3, c["gpr"].size)
    np.testing.assert_allclose(tree.through(x), c["shares"] @ x, rtol=1e-12)
    budgets, binding = tree.node_budgets(c["budgets"])
    dense = c["shares"].toarray()
    for n in range(tree.n_nodes):
        racks = tree.node_racks[n].indices
        members = [e for e in range(dense.shape[0]) if set(np.flatnonzero(dense[e])) == set(racks)]
        ratio = {e: c["budgets"][e] / dense[e, racks[0]] for e in members}
        assert budgets[n] == pytest.approx(min(ratio.values()), rel=1e-12)
        assert ratio[binding[n]] == pytest.approx(budgets[n], rel=1e-12)


def test_refuses_overlapping_rack_sets():
    shares = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="overlap"):
        tree_from_shares(("pdu-1", "pdu-2"), shares, np.array([1, 1, 1]))


def test_refuses_unequal_shares():
    shares = sp.csr_matrix(np.array([[1.0, 0.5]]))
    with pytest.raises(ValueError, match="unequal shares"):
        tree_from_shares(("pdu",), shares, np.array([1, 1]))


@pytest.mark.parametrize("seed", range(4))
def test_units_steer_as_their_gpus_would_when_they_demand_alike(seed):
    """A steering unit of m GPUs (one demand, one limit) gives, per GPU, the limits per-GPU steering gives when the
    unit's GPUs demand alike: the same allocation, checked at every level against the per-GPU allocator (itself
    checked against the scipy reference above), and the same baselines."""
    m = 4
    c = random_case(seed)
    per_gpu = tree_from_shares(c["names"], c["shares"], c["gpr"] * m)
    per_unit = tree_from_shares(c["names"], c["shares"], c["gpr"])
    g = c["gpu_group"]
    args = dict(margin_w=50.0, idle_w=200.0, priority=c["prio"], kappa=c["kappa"], names=("a", "b", "c"),
                dtype=np.float64)  # fmt: skip
    bounds = dict(lo_w=100.0, hi_w=1200.0)
    gpus = make_cells(per_gpu, np.repeat(g, m), guarantee_w=np.repeat(c["guarantee"][g], m), **bounds, **args,
                      kappa_surplus=c["kappa_s"])  # fmt: skip
    units = make_cells(per_unit, g, guarantee_w=c["guarantee"][g], **bounds, **args, kappa_surplus=c["kappa_s"],
                       unit_gpus=m)  # fmt: skip
    budgets, binding = per_gpu.node_budgets(m * c["budgets"])
    a_gpu = allocate(gpus, np.repeat(c["demand"], m), budgets, binding)
    a_unit = allocate(units, c["demand"], budgets, binding)
    assert a_gpu.binding, "the case binds somewhere: not a trivial comparison"
    np.testing.assert_allclose(np.repeat(a_unit.limit_w, m), a_gpu.limit_w, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a_unit.rack_limit_w, a_gpu.rack_limit_w, rtol=1e-12, atol=1e-6)
    assert a_unit.binding == a_gpu.binding
    assert [(n, grp) for n, grp, _ in a_unit.infeasible] == [(n, grp) for n, grp, _ in a_gpu.infeasible]
    np.testing.assert_allclose(np.repeat(equal_share(units, budgets), m), equal_share(gpus, budgets))
    np.testing.assert_allclose(np.repeat(greedy_proportional(units, c["demand"], budgets), m),
                               greedy_proportional(gpus, np.repeat(c["demand"], m), budgets))  # fmt: skip


def test_budgets_that_cover_every_maximum_give_every_gpu_its_maximum():
    """The shortcut (every node's budget covers the maxima below it: each GPU at its maximum) agrees with the full
    solve at its edge: 1 mW under those budgets, every limit is within 1 mW of the maximum and none above it."""
    c = random_case(3)
    tree = tree_from_shares(c["names"], c["shares"], c["gpr"])
    g = c["gpu_group"]
    cells = make_cells(tree, g, 100.0, 1200.0, c["guarantee"][g], 50.0, 200.0, c["prio"], c["kappa"],
                       ("a", "b", "c"), dtype=np.float64, kappa_surplus=c["kappa_s"])  # fmt: skip
    full = allocate(cells, c["demand"], cells.node_hi_w)
    assert np.array_equal(full.limit_w, np.full(g.size, 1200.0)) and not full.binding
    edge = allocate(cells, c["demand"], cells.node_hi_w - 1e-3)
    assert edge.binding, "1 mW under: the full solve ran"
    assert np.all(edge.limit_w <= 1200.0) and np.all(edge.limit_w >= 1200.0 - 1e-3 - 1e-9)
