"""The dispatch LP assembled directly as a scipy CSR matrix (the fast path to HiGHS at gigawatt
scale).

Same rows, columns and objective as :mod:`optimization.formulation` (see its docstrings for the
math); ``tests/optimization/test_dispatch_backends.py`` checks both give the same objective. Every
family is built as whole numpy index arrays: no Python loop over steps or groups. The LP is written
as ``min c @ v`` subject to ``row_lo <= A @ v <= row_hi`` and ``col_lo <= v <= col_hi``; the
dispatch objective (value - cost - penalties) is ``-(c @ v)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from factory_twin.optimization.problem import Problem
from numpy.typing import NDArray

Array = NDArray[np.float64]
INF = np.inf
S_PER_H = 3600.0


@dataclass
class LP:
    """A linear program in HiGHS's column/row-bound form; ``cols`` maps a name to its column
    indices."""

    c: Array
    A: sp.csr_matrix
    row_lo: Array
    row_hi: Array
    col_lo: Array
    col_hi: Array
    cols: dict[str, NDArray[np.int64]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.A.shape

    def unpack(self, v: Array) -> dict[str, Array]:
        """Split a primal vector into named arrays shaped like their index arrays."""
        return {k: np.asarray(v)[idx] for k, idx in self.cols.items()}


class _Builder:
    def __init__(self) -> None:
        self.n = 0
        self.lo: list[Array] = []
        self.hi: list[Array] = []
        self.cost: list[Array] = []
        self.cols: dict[str, NDArray[np.int64]] = {}
        self.r: list[Array] = []
        self.k: list[Array] = []
        self.v: list[Array] = []
        self.rlo: list[Array] = []
        self.rhi: list[Array] = []
        self.m = 0

    def var(self, name: str, shape: tuple[int, ...], lo, hi, cost=0.0) -> NDArray[np.int64]:
        size = int(np.prod(shape))
        idx = np.arange(self.n, self.n + size).reshape(shape)
        self.n += size
        self.lo.append(np.broadcast_to(np.asarray(lo, float), shape).ravel())
        self.hi.append(np.broadcast_to(np.asarray(hi, float), shape).ravel())
        self.cost.append(np.broadcast_to(np.asarray(cost, float), shape).ravel())
        self.cols[name] = idx
        return idx

    def rows(self, terms: list[tuple[NDArray, NDArray]], lo, hi) -> None:
        """Add rows: each term is (column indices [R, ...], coefficients broadcastable to them)."""
        lo, hi = np.atleast_1d(np.asarray(lo, float)), np.atleast_1d(np.asarray(hi, float))
        n_rows = max(lo.size, hi.size, *(np.shape(c)[0] for c, _ in terms))
        rid = np.arange(self.m, self.m + n_rows)
        for cols, vals in terms:
            cols = np.asarray(cols)
            vals = np.broadcast_to(np.asarray(vals, float), cols.shape)
            self.r.append(np.broadcast_to(rid.reshape((-1,) + (1,) * (cols.ndim - 1)), cols.shape).ravel())
            self.k.append(cols.ravel())
            self.v.append(vals.ravel())
        self.rlo.append(np.broadcast_to(lo, (n_rows,)))
        self.rhi.append(np.broadcast_to(hi, (n_rows,)))
        self.m += n_rows

    def lp(self) -> LP:
        A = sp.csr_matrix(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.k))),
            shape=(self.m, self.n),
        )
        A.sum_duplicates()
        A.eliminate_zeros()
        return LP(
            np.concatenate(self.cost),
            A,
            np.concatenate(self.rlo),
            np.concatenate(self.rhi),
            np.concatenate(self.lo),
            np.concatenate(self.hi),
            self.cols,
        )


def build_lp(p: Problem) -> LP:
    """Assemble the dispatch LP of ``p`` (families as in :mod:`optimization.formulation`)."""
    b = _Builder()
    T, G = p.busy_mw.shape
    dt_s, pen = p.dt_h * S_PER_H, p.penalty_per_mwh * p.dt_h
    soft = p.soft
    x = b.var("x", (T, G), p.x_lo, p.x_upper())
    y = b.var("y", (T, G), 0.0, INF, -p.value_per_token * p.tokens_per_s * dt_s)
    grid = b.var("grid_mw", (T,), -INF, INF, (p.price_per_mwh + p.carbon_cost_per_mwh) * p.dt_h)
    t_all = np.arange(T)

    # throughput hypograph: y - b_k x <= a_k
    K = p.seg_a.shape[1]
    yk = np.repeat(y[:, :, None], K, axis=2).reshape(-1, 1)
    xk = np.repeat(x[:, :, None], K, axis=2).reshape(-1, 1)
    b.rows(
        [(yk, 1.0), (xk, -np.broadcast_to(p.seg_b, (T, G, K)).reshape(-1, 1))],
        -INF,
        np.broadcast_to(p.seg_a, (T, G, K)).ravel(),
    )

    # power cuts: grid - b_c sum_g busy x (+ dis - ch) >= a_c + b_c idle
    C = p.cut_a_mw.shape[1]
    tc = np.repeat(t_all, C)
    cb = p.cut_b.ravel()
    terms = [(grid[tc][:, None], 1.0), (x[tc], -cb[:, None] * p.busy_mw[tc])]
    if p.bess is not None:
        e = p.bess
        ch = b.var("bess_charge_mw", (T,), 0.0, e.p_max_mw)
        dis = b.var("bess_discharge_mw", (T,), 0.0, e.p_max_mw)
        soc_lo = np.full(T, e.e_min_mwh)
        soc_lo[-1] = max(e.e_min_mwh, e.e0_mwh)
        soc = b.var("bess_soc_mwh", (T,), soc_lo, e.e_max_mwh)
        terms += [(dis[tc][:, None], 1.0), (ch[tc][:, None], -1.0)]
    b.rows(terms, (p.cut_a_mw + p.cut_b * p.idle_mw[:, None]).ravel(), INF)

    def limit(name: str, rhs: Array, lhs: list[tuple[NDArray, NDArray]], t: NDArray) -> None:
        if t.size == 0:
            return
        if name in soft:
            s = b.var(f"slack_{name}", (t.size,), 0.0, INF, pen)
            lhs = [*lhs, (s[:, None], -1.0)]
        b.rows(lhs, -INF, rhs)

    t_imp = np.flatnonzero(np.isfinite(p.import_limit_mw))
    limit("import_limit", p.import_limit_mw[t_imp], [(grid[t_imp][:, None], 1.0)], t_imp)
    t_dr = np.flatnonzero(np.isfinite(p.dr_cap_mw))
    limit("dr", p.dr_cap_mw[t_dr], [(grid[t_dr][:, None], 1.0)], t_dr)
    t_heat = np.flatnonzero(np.isfinite(p.heat_cap_mw))
    limit("heat", (p.heat_cap_mw - p.liquid_base_mw)[t_heat], [(x[t_heat], p.busy_mw[t_heat])], t_heat)

    # import ramp, both directions, one shared slack per step (the first step against grid0 if
    # given)
    cur, prev, shift = grid[1:], grid[:-1], np.zeros(T - 1)
    if p.grid0_mw is not None:
        cur, prev, shift = (
            grid,
            np.concatenate([[-1], grid[:-1]]),
            np.r_[p.grid0_mw, np.zeros(T - 1)],
        )
    if cur.size:
        up = [(cur[:, None], 1.0)]
        dn = [(cur[:, None], -1.0)]
        has = prev >= 0
        if has.any():
            up.append((np.where(has, prev, cur)[:, None], np.where(has, -1.0, 0.0)[:, None]))
            dn.append((np.where(has, prev, cur)[:, None], np.where(has, 1.0, 0.0)[:, None]))
        if "ramp" in soft:
            s = b.var("slack_ramp", (cur.size,), 0.0, INF, pen)
            up.append((s[:, None], -1.0))
            dn.append((s[:, None], -1.0))
        b.rows(up, -INF, p.ramp_mw_per_step + shift)
        b.rows(dn, -INF, p.ramp_mw_per_step - shift)

    # die temperature (soft only; hard folds into the bounds of x)
    td, gd = np.nonzero(p.die_rows())
    if td.size:
        s = b.var("slack_die", (td.size,), 0.0, INF, pen * p.busy_mw[td, gd])
        b.rows([(x[td, gd][:, None], 1.0), (s[:, None], -1.0)], -INF, p.x_die_max[td, gd])

    # per-GPU smoothing ramp
    if p.x_ramp_per_step is not None:
        r = np.broadcast_to(p.x_ramp_per_step, (T - 1, G)).ravel()
        if T > 1:
            b.rows([(x[1:].reshape(-1, 1), 1.0), (x[:-1].reshape(-1, 1), -1.0)], -r, r)
        if p.x0 is not None:
            b.rows([(x[0][:, None], 1.0)], p.x0 - p.x_ramp_per_step, p.x0 + p.x_ramp_per_step)

    # BESS energy balance: soc[t] - soc[t-1] - eta_c dt ch + dt / eta_d dis = 0 (soc[-1] = e0)
    if p.bess is not None:
        e = p.bess
        terms = [
            (soc[:, None], 1.0),
            (ch[:, None], -e.eta_charge * p.dt_h),
            (dis[:, None], p.dt_h / e.eta_discharge),
        ]
        rhs = np.zeros(T)
        rhs[0] = e.e0_mwh
        if T > 1:
            prev = np.concatenate([[soc[0]], soc[:-1]])[:, None]
            terms.append((prev, np.where(t_all > 0, -1.0, 0.0)[:, None]))
        b.rows(terms, rhs, rhs)

    # hold: x[t] = x[0] (and BESS net power) over the first hold_steps steps
    if p.hold_steps > 1:
        th = np.arange(1, p.hold_steps)
        b.rows([(x[th].reshape(-1, 1), 1.0), (np.tile(x[0], th.size)[:, None], -1.0)], 0.0, 0.0)
        if p.bess is not None:
            first = (np.full((th.size, 1), dis[0]), np.full((th.size, 1), ch[0]))
            terms = [(dis[th][:, None], 1.0), (ch[th][:, None], -1.0), (first[0], -1.0), (first[1], 1.0)]
            b.rows(terms, 0.0, 0.0)

    # flex tiers: sum w y (+ s) >= share
    for i, (tt, gg, w, share, e_mwh) in enumerate(p.flex_coefficients()):
        terms = [(y[tt, gg][None, :], w[None, :])]
        if "flex" in soft:
            s = b.var(f"slack_flex_{i}", (1,), 0.0, INF, p.penalty_per_mwh * e_mwh)
            terms.append((s[:, None], 1.0))
        b.rows(terms, share, INF)
    return b.lp()
