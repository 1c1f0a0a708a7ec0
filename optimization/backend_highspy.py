"""Stage 3b, the matrix backend: the dispatch LP assembled as a scipy CSR matrix and solved by
highspy (the fast path at gigawatt scale).

Same rows, columns and objective as :mod:`optimization.backend_pyomo` (its docstrings carry the
math), written family by family under the same constraint names: ``MatrixLP.rows[name]`` are the
row indices of the Pyomo constraint ``name`` and ``MatrixLP.cols[name]`` the columns of a variable
under its :class:`optimization.solution.Solution` name. Every family is built from whole numpy
index arrays: no Python loop over steps or groups. The LP is written as ``min c @ v`` subject to
``row_lo <= A @ v <= row_hi`` and ``col_lo <= v <= col_hi``; the dispatch objective (value - cost -
penalties) is ``-(c @ v)``. :class:`HighsLP` keeps the ``highspy.Highs`` object that holds the
model, so bounds, right-hand sides and costs can be changed in place by name and the LP re-solved
from the previous basis; :class:`WarmHighs` does that between MPC re-plans.

Throughput as increments (class x CDU grouping, where the ``K`` hypograph rows per step and group
would dominate the LP): ``x = x_lo + sum_k d_k`` and ``y = thr(x_lo) + sum_k s_k d_k`` with
``0 <= d_k <= w_k`` the parts of the cap range on each linear piece of the concave curve (slope
``s_k``; widths cut at the upper bound of ``x``). Filling the pieces in order attains ``y = thr(x)``
and any other fill gives less, so the LP is the same; ``x`` and ``y`` are substituted out and
recovered from ``d`` (:attr:`MatrixLP.expand`). Every family is still written in ``x`` and ``y``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp
from factory_twin.models.units import S_PER_H
from factory_twin.optimization.options import DispatchOptions
from factory_twin.optimization.problem import Problem
from factory_twin.optimization.solution import Solution
from numpy.typing import NDArray

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
INF = np.inf


@dataclass
class MatrixLP:
    """A linear program in HiGHS's column/row-bound form; ``cols``/``rows`` map a name to indices."""

    c: Array
    A: sp.csr_matrix
    row_lo: Array
    row_hi: Array
    col_lo: Array
    col_hi: Array
    cols: dict[str, IntArray] = field(default_factory=dict)
    rows: dict[str, IntArray] = field(default_factory=dict)
    offset: float = 0.0  # constant of the objective
    expand: tuple[sp.csr_matrix, Array] | None = None  # (P, k): all named columns = P @ v + k

    @property
    def shape(self) -> tuple[int, int]:
        return self.A.shape

    def unpack(self, v: Array) -> dict[str, Array]:
        """Split a primal vector into named arrays shaped like their index arrays (``cols`` index the
        expanded vector when columns were substituted out)."""
        v = np.asarray(v)
        if self.expand is not None:
            v = self.expand[0] @ v + self.expand[1]
        return {k: v[idx] for k, idx in self.cols.items()}


class _Builder:
    """Collects columns and rows as index/value arrays, then one CSR matrix. With ``every_step``
    the step limits (:data:`STEP_LIMITS`) and the soft die rows get a row at every step (and
    group), infinite where the limit is absent (see :func:`matrix_lp`)."""

    def __init__(self, every_step: bool = False) -> None:
        self.every_step = every_step
        self.n = 0
        self.lo: list[Array] = []
        self.hi: list[Array] = []
        self.cost: list[Array] = []
        self.cols: dict[str, IntArray] = {}
        self.row_names: dict[str, list[IntArray]] = {}
        self.r: list[Array] = []
        self.k: list[Array] = []
        self.v: list[Array] = []
        self.rlo: list[Array] = []
        self.rhi: list[Array] = []
        self.m = 0
        self.subst: dict[str, tuple[IntArray, Array, Array]] = {}  # name -> (columns [..., K], coefficients, constant)

    def var(self, name: str, shape: tuple[int, ...], lo, hi, cost=0.0) -> IntArray:
        size = int(np.prod(shape))
        idx = np.arange(self.n, self.n + size).reshape(shape)
        self.n += size
        self.lo.append(np.broadcast_to(np.asarray(lo, float), shape).ravel())
        self.hi.append(np.broadcast_to(np.asarray(hi, float), shape).ravel())
        self.cost.append(np.broadcast_to(np.asarray(cost, float), shape).ravel())
        self.cols[name] = idx
        return idx

    def rows(self, name: str, terms: list[tuple[NDArray, NDArray]], lo, hi) -> None:
        """Add rows of family ``name``: each term is (column indices [R, ...], coefficients
        broadcastable to them)."""
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
        self.row_names.setdefault(name, []).append(rid)
        self.m += n_rows

    def slack(self, p: Problem, name: str, size: int, cost=None, soft_key: str | None = None) -> IntArray | None:
        """Columns of a non-negative slack when ``soft_key`` (default ``name``) is soft, priced at
        ``cost`` (default: the penalty per MW of slack over one step)."""
        if (soft_key or name) not in p.soft:
            return None
        return self.var(f"slack_{name}", (size,), 0.0, INF, p.penalty_per_mwh * p.dt_h if cost is None else cost)

    def lp(self) -> MatrixLP:
        A = sp.csr_matrix(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.k))),
            shape=(self.m, self.n),
        )
        A.sum_duplicates()
        lp = MatrixLP(
            np.concatenate(self.cost),
            A,
            np.concatenate(self.rlo),
            np.concatenate(self.rhi),
            np.concatenate(self.lo),
            np.concatenate(self.hi),
            self.cols,
            {k: np.concatenate(v) for k, v in self.row_names.items()},
        )
        if self.subst:
            lp = self._substituted(lp)
        lp.A.eliminate_zeros()
        return lp

    def _substituted(self, lp: MatrixLP) -> MatrixLP:
        """``lp`` with the columns of :attr:`subst` replaced by their expressions: with all columns
        ``= P @ v + k``, the matrix becomes ``A @ P``, the row bounds shift by ``A @ k`` and the costs
        become ``P.T @ c`` plus the constant ``c @ k``."""
        gone = np.zeros(self.n, bool)
        k = np.zeros(self.n)
        r, c, v = [], [], []
        for name, (cols, coef, const) in self.subst.items():
            var = self.cols[name]
            gone[var.ravel()] = True
            k[var.ravel()] = np.broadcast_to(const, var.shape).ravel()
            r.append(np.broadcast_to(var[..., None], cols.shape).ravel())
            c.append(cols.ravel())
            v.append(np.broadcast_to(coef, cols.shape).ravel())
        kept = np.flatnonzero(~gone)
        new = np.full(self.n, -1)
        new[kept] = np.arange(kept.size)
        P = sp.csr_matrix(
            (np.concatenate([np.ones(kept.size), *v]), (np.concatenate([kept, *r]), new[np.concatenate([kept, *c])])),
            shape=(self.n, kept.size),
        )
        shift = lp.A @ k
        return MatrixLP(
            P.T @ lp.c,
            (lp.A @ P).tocsr(),
            lp.row_lo - shift,
            lp.row_hi - shift,
            lp.col_lo[kept],
            lp.col_hi[kept],
            lp.cols,
            lp.rows,
            float(lp.c @ k),
            (P, k),
        )


def increments(p: Problem) -> tuple[Array, Array] | None:
    """Breakpoints of the throughput curve from ``x_lo`` to ``x_hi`` (``[G, K + 1]``) and the
    throughput at them, when the segments are the pieces of one concave curve in order; None
    otherwise (and with job stops, whose throughput rows are the curve's perspective). Checked at the
    midpoint of every piece: a concave function equal to its chord at both ends and the middle is
    linear in between."""
    if p.stops is not None:
        return None
    a, s = p.seg_a, p.seg_b
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (a[:, 1:] - a[:, :-1]) / (s[:, :-1] - s[:, 1:])
    cross = np.where(np.isfinite(cross), cross, -np.inf)  # parallel pieces (padding): no width
    pts = np.concatenate([p.x_lo[:, None], cross, p.x_hi[:, None]], axis=1)
    pts = np.maximum.accumulate(np.clip(pts, p.x_lo[:, None], p.x_hi[:, None]), axis=1)

    def thr(x: Array) -> Array:
        return np.min(a[:, None, :] + s[:, None, :] * x[..., None], axis=2)

    ys = thr(pts)
    mid = thr(0.5 * (pts[:, 1:] + pts[:, :-1]))
    if not np.allclose(mid, 0.5 * (ys[:, 1:] + ys[:, :-1]), rtol=1e-12, atol=1e-12):
        return None
    return pts, ys


def variables(b: _Builder, p: Problem, incremental: tuple[Array, Array] | None = None) -> None:
    """Columns ``x`` (bounds as in :func:`optimization.backend_pyomo.cap_bounds`), ``y``,
    ``grid_mw`` with their objective terms, and the BESS columns; with ``incremental`` (from
    :func:`increments`) also the pieces ``seg_d``, which ``x`` and ``y`` are written in."""
    T, G = p.busy_mw.shape
    dt_s = p.dt_h * S_PER_H
    x_lo = p.x_lo
    if p.stops is not None:  # the stop rows hold the lower bound x_lo (1 - s)
        x_lo = np.where(np.isin(np.arange(G), p.stops.group), 0.0, p.x_lo)
    x_up = p.x_upper()
    b.var("x", (T, G), x_lo, x_up)
    b.var("y", (T, G), 0.0, INF, -p.value_per_token * p.tokens_per_s * dt_s)
    if incremental is not None:
        pts, ys = incremental
        width = np.clip(np.minimum(pts[None, :, 1:], x_up[..., None]) - pts[None, :, :-1], 0.0, None)
        dx = np.diff(pts, axis=1)
        slope = np.divide(np.diff(ys, axis=1), dx, out=np.zeros_like(dx), where=dx > 0)
        d = b.var("seg_d", width.shape, 0.0, width)
        b.subst["x"] = (d, 1.0, np.broadcast_to(p.x_lo, (T, G)))
        b.subst["y"] = (d, slope, np.broadcast_to(ys[:, 0], (T, G)))
    if p.stops is not None:
        M = p.stops.group.size
        b.var("stop_share", (T, M), *p.stops.share_bounds(p.hold_steps))
        b.var("stop_start", (T, M), 0.0, INF)
        b.var("stop_end", (T, M), 0.0, INF)
    b.var("grid_mw", (T,), -INF, INF, (p.price_per_mwh + p.carbon_cost_per_mwh) * p.dt_h)
    if p.bess is not None:
        e = p.bess
        b.var("bess_charge_mw", (T,), 0.0, e.p_max_mw)
        b.var("bess_discharge_mw", (T,), 0.0, e.p_max_mw)
        soc_lo = np.full(T, e.e_min_mwh)
        soc_lo[-1] = max(e.e_min_mwh, e.e0_mwh)
        b.var("bess_soc_mwh", (T,), soc_lo, e.e_max_mwh)


def throughput(b: _Builder, p: Problem) -> None:
    """``y - b_k x <= a_k`` for every segment k (none when ``y`` is written in increments)."""
    if "y" in b.subst:
        return
    T, G = p.busy_mw.shape
    x, y = b.cols["x"], b.cols["y"]
    K = p.seg_a.shape[1]
    yk = np.repeat(y[:, :, None], K, axis=2).reshape(-1, 1)
    xk = np.repeat(x[:, :, None], K, axis=2).reshape(-1, 1)
    terms = [(yk, 1.0), (xk, -np.broadcast_to(p.seg_b, (T, G, K)).reshape(-1, 1))]
    seg_a = np.broadcast_to(p.seg_a, (T, G, K))
    for cols, mask in _stop_cols(b, p):  # y <= a (1 - s) + b x
        terms.append((np.repeat(cols[:, :, None], K, axis=2).reshape(-1, 1), (seg_a * mask[:, None]).reshape(-1, 1)))
    b.rows("throughput", terms, -INF, seg_a.ravel())


def _stop_cols(b: _Builder, p: Problem) -> list[tuple[IntArray, NDArray[np.bool_]]]:
    """Per stop kind: columns of ``stop_share`` per step and group ``[T, G]`` (column 0 with a zero
    coefficient where the group has no such mode) and the groups' mask."""
    if p.stops is None:
        return []
    s = b.cols["stop_share"]
    return [(np.where(mask, s[:, idx], 0), mask) for idx, mask in p.stops.per_kind(p.n_groups)]


def _stop_gpu_terms(b: _Builder, p: Problem, t: IntArray, scale: Array) -> list[tuple[NDArray, NDArray]]:
    """Terms of the stops' GPU power [MW] at steps ``t``, times ``scale`` per row."""
    st = p.stops
    if st is None:
        return []
    sc = scale[:, None]
    return [
        (b.cols["stop_share"][t], sc * st.idle_mw[t]),
        (b.cols["stop_start"][t], sc * st.start_mwh[t] / p.dt_h),
        (b.cols["stop_end"][t], sc * st.end_mwh[t] / p.dt_h),
    ]


def stops(b: _Builder, p: Problem) -> None:
    """``x_lo (1 - s) <= x <= x_hi (1 - s)`` per stopping group; ``v >= s[t] - s[t-1]``, ``e >= s[t-1] -
    s[t]`` (``s[-1] = s0``)."""
    st = p.stops
    if st is None:
        return
    T = p.n_steps
    x, s, v, e = b.cols["x"], b.cols["stop_share"], b.cols["stop_start"], b.cols["stop_end"]
    g = np.unique(st.group)
    hi = p.x_upper()[:, g]
    lo = np.broadcast_to(p.x_lo[g], hi.shape)
    share = [(cols[:, g], mask[g]) for cols, mask in _stop_cols(b, p)]
    xs = x[:, g].reshape(-1, 1)
    b.rows("stop_lo", [(xs, 1.0)] + [(c.reshape(-1, 1), (lo * m).reshape(-1, 1)) for c, m in share], lo.ravel(), INF)
    b.rows("stop_hi", [(xs, 1.0)] + [(c.reshape(-1, 1), (hi * m).reshape(-1, 1)) for c, m in share], -INF, hi.ravel())
    prev = np.concatenate([s[:1], s[:-1]]).reshape(-1, 1)
    first = np.broadcast_to((np.arange(T) > 0)[:, None], s.shape).reshape(-1, 1).astype(float)
    s0 = np.zeros(s.shape)
    s0[0] = st.s0
    b.rows("stop_start", [(v.reshape(-1, 1), 1.0), (s.reshape(-1, 1), -1.0), (prev, first)], -s0.ravel(), INF)
    b.rows("stop_end", [(e.reshape(-1, 1), 1.0), (s.reshape(-1, 1), 1.0), (prev, -first)], s0.ravel(), INF)


def power_chain(b: _Builder, p: Problem) -> None:
    """``grid - b_c sum_g busy x (+ dis - ch) >= a_c + b_c idle`` for every cut c."""
    T = p.n_steps
    x, grid = b.cols["x"], b.cols["grid_mw"]
    C = p.cut_a_mw.shape[1]
    tc = np.repeat(np.arange(T), C)
    cb = p.cut_b.ravel()
    terms = [(grid[tc][:, None], 1.0), (x[tc], -cb[:, None] * p.busy_mw[tc])]
    if p.bess is not None:
        terms += [(b.cols["bess_discharge_mw"][tc][:, None], 1.0), (b.cols["bess_charge_mw"][tc][:, None], -1.0)]
    terms += _stop_gpu_terms(b, p, tc, -cb)
    b.rows("power_chain", terms, (p.cut_a_mw + p.cut_b * p.idle_mw[:, None]).ravel(), INF)


def _limit(b: _Builder, p: Problem, name: str, rhs: Array, lhs: list[tuple[NDArray, NDArray]], t: NDArray) -> None:
    """``lhs - s <= rhs`` at steps ``t`` (``s`` only when the limit is soft)."""
    if t.size == 0:
        return
    s = b.slack(p, name, t.size)
    if s is not None:
        lhs = [*lhs, (s[:, None], -1.0)]
    b.rows(name, lhs, -INF, rhs)


#: Per-step limits: family -> the ``Problem`` attribute whose finite entries have a row.
STEP_LIMITS = {"import_limit": "import_limit_mw", "dr": "dr_cap_mw", "heat": "heat_cap_mw"}


def _rows_at(p: Problem, name: str) -> NDArray[np.bool_]:
    """Where family ``name`` has a row in the Pyomo model ([T], or [T, G] for ``die``)."""
    return p.die_rows() if name == "die" else np.isfinite(getattr(p, STEP_LIMITS[name]))


def _steps(b: _Builder, p: Problem, name: str) -> tuple[NDArray, ...]:
    """Indices of the rows of family ``name``: where it has one, or everywhere with ``every_step``."""
    mask = _rows_at(p, name)
    return np.nonzero(np.ones_like(mask) if b.every_step else mask)


def import_limit(b: _Builder, p: Problem) -> None:
    (t,) = _steps(b, p, "import_limit")
    _limit(b, p, "import_limit", p.import_limit_mw[t], [(b.cols["grid_mw"][t][:, None], 1.0)], t)


def dr_events(b: _Builder, p: Problem) -> None:
    (t,) = _steps(b, p, "dr")
    _limit(b, p, "dr", p.dr_cap_mw[t], [(b.cols["grid_mw"][t][:, None], 1.0)], t)


def heat_rejection(b: _Builder, p: Problem) -> None:
    (t,) = _steps(b, p, "heat")
    terms = [(b.cols["x"][t], p.busy_mw[t]), *_stop_gpu_terms(b, p, t, np.ones(t.size))]
    _limit(b, p, "heat", (p.heat_cap_mw - p.liquid_base_mw)[t], terms, t)


def cdu_limits(b: _Builder, p: Problem) -> None:
    """``sum_{g in z} busy x - s <= room`` per step and CDU (rows of :meth:`Problem.cdu_rows`); the
    member list is padded with the CDU's first group at coefficient 0."""
    if not p.cdu_rooms_mw:
        return
    t, z, members = p.cdu_rows()
    if not t.size:
        return
    g = members[z]
    gi = np.where(g >= 0, g, g[:, :1])
    coef = np.where(g >= 0, p.busy_mw[t[:, None], gi], 0.0)
    for name, room in p.cdu_rooms_mw.items():
        terms = [(b.cols["x"][t[:, None], gi], coef)]
        s = b.slack(p, name, t.size, soft_key="cdu")
        if s is not None:
            terms.append((s[:, None], -1.0))
        b.rows(name, terms, -INF, room[t, z])


def tiers(b: _Builder, p: Problem) -> None:
    """Tier rows of :meth:`Problem.tier_row_blocks`, block by block, steps inside: ``x - s <= rho / (d B)`` over one
    group (:meth:`Problem.tier_row_form`: a matrix that stays put between re-plans; the slack priced per MW), ``sum_g
    d B x - s <= rho`` over several (the member list padded with the first group at coefficient 0)."""
    ks = p.tier_row_blocks()
    if not ks.size:
        return
    k1, _, rhs, scale = p.tier_row_form()
    members = p.tier_members()
    kk, tt = (a.ravel() for a in np.meshgrid(ks, np.arange(p.n_steps), indexing="ij"))
    g = members[kk]
    gi = np.where(g >= 0, g, g[:, :1])
    one = (k1[kk] >= 0)[:, None]
    coef = np.where(g >= 0, np.where(one, 1.0, p.tiers.direction[kk[:, None], gi] * p.busy_mw[tt[:, None], gi]), 0.0)
    terms = [(b.cols["x"][tt[:, None], gi], coef)]
    s = b.slack(p, "tier", kk.size, p.penalty_per_mwh * p.dt_h * scale[kk, tt])
    if s is not None:
        terms.append((s[:, None], -1.0))
    b.rows("tier", terms, -INF, rhs[kk, tt])


def import_ramp(b: _Builder, p: Problem) -> None:
    """Both directions, one shared slack per step (the first step against ``grid0`` if given)."""
    T, grid = p.n_steps, b.cols["grid_mw"]
    cur, prev, shift = grid[1:], grid[:-1], np.zeros(T - 1)
    if p.grid0_mw is not None:
        cur, prev, shift = grid, np.concatenate([[-1], grid[:-1]]), np.r_[p.grid0_mw, np.zeros(T - 1)]
    if not cur.size:
        return
    up = [(cur[:, None], 1.0)]
    dn = [(cur[:, None], -1.0)]
    has = prev >= 0
    if has.any():
        up.append((np.where(has, prev, cur)[:, None], np.where(has, -1.0, 0.0)[:, None]))
        dn.append((np.where(has, prev, cur)[:, None], np.where(has, 1.0, 0.0)[:, None]))
    s = b.slack(p, "ramp", cur.size)
    if s is not None:
        up.append((s[:, None], -1.0))
        dn.append((s[:, None], -1.0))
    b.rows("ramp_up", up, -INF, p.ramp_mw_per_step + shift)
    b.rows("ramp_down", dn, -INF, p.ramp_mw_per_step - shift)


def die_temperature(b: _Builder, p: Problem) -> None:
    """Soft only (hard folds into the bounds of ``x``): ``x - s <= x_die``."""
    if "die" not in p.soft:
        return
    td, gd = _steps(b, p, "die")
    if td.size:
        s = b.slack(p, "die", td.size, p.penalty_per_mwh * p.dt_h * p.busy_mw[td, gd])
        b.rows("die", [(b.cols["x"][td, gd][:, None], 1.0), (s[:, None], -1.0)], -INF, p.x_die_max[td, gd])


def smoothing(b: _Builder, p: Problem) -> None:
    """``|x[t] - x[t-1]| <= r`` (and against ``x0`` at the first step when given)."""
    if p.x_ramp_per_step is None:
        return
    T, G = p.busy_mw.shape
    x = b.cols["x"]
    r = np.broadcast_to(p.x_ramp_per_step, (T - 1, G)).ravel()
    if T > 1:
        b.rows("smoothing", [(x[1:].reshape(-1, 1), 1.0), (x[:-1].reshape(-1, 1), -1.0)], -r, r)
    if p.x0 is not None:
        b.rows("smoothing", [(x[0][:, None], 1.0)], p.x0 - p.x_ramp_per_step, p.x0 + p.x_ramp_per_step)


def bess_balance(b: _Builder, p: Problem) -> None:
    """``soc[t] - soc[t-1] - eta_c dt ch + dt / eta_d dis = 0`` (``soc[-1] = e0``)."""
    e = p.bess
    if e is None:
        return
    T = p.n_steps
    soc, ch, dis = b.cols["bess_soc_mwh"], b.cols["bess_charge_mw"], b.cols["bess_discharge_mw"]
    terms = [
        (soc[:, None], 1.0),
        (ch[:, None], -e.eta_charge * p.dt_h),
        (dis[:, None], p.dt_h / e.eta_discharge),
    ]
    rhs = np.zeros(T)
    rhs[0] = e.e0_mwh
    if T > 1:
        prev = np.concatenate([[soc[0]], soc[:-1]])[:, None]
        terms.append((prev, np.where(np.arange(T) > 0, -1.0, 0.0)[:, None]))
    b.rows("bess_balance", terms, rhs, rhs)


def hold(b: _Builder, p: Problem) -> None:
    """``x[t] = x[0]`` (and the BESS net power) over the first ``hold_steps`` steps."""
    if p.hold_steps <= 1:
        return
    x = b.cols["x"]
    th = np.arange(1, p.hold_steps)
    b.rows("hold", [(x[th].reshape(-1, 1), 1.0), (np.tile(x[0], th.size)[:, None], -1.0)], 0.0, 0.0)
    if p.stops is not None:
        s = b.cols["stop_share"]
        b.rows("hold_stops", [(s[th].reshape(-1, 1), 1.0), (np.tile(s[0], th.size)[:, None], -1.0)], 0.0, 0.0)
    if p.bess is not None:
        ch, dis = b.cols["bess_charge_mw"], b.cols["bess_discharge_mw"]
        first = (np.full((th.size, 1), dis[0]), np.full((th.size, 1), ch[0]))
        terms = [(dis[th][:, None], 1.0), (ch[th][:, None], -1.0), (first[0], -1.0), (first[1], 1.0)]
        b.rows("hold_bess", terms, 0.0, 0.0)


def flex_tiers(b: _Builder, p: Problem) -> None:
    """``sum w y (+ s) >= share`` per window; the slack is priced per window's uncapped energy."""
    windows = p.flex_coefficients()
    if not windows:
        return
    y = b.cols["y"]
    s = b.slack(p, "flex", len(windows), np.array([p.penalty_per_mwh * e_mwh for *_, e_mwh in windows]))
    for i, (tt, gg, w, share, _) in enumerate(windows):
        terms = [(y[tt, gg][None, :], w[None, :])]
        if s is not None:
            terms.append((s[i : i + 1, None], 1.0))
        b.rows("flex", terms, share, INF)


#: Families in assembly order (columns first; the row order differs from the Pyomo model's).
FAMILIES = (
    variables,
    throughput,
    power_chain,
    import_limit,
    dr_events,
    heat_rejection,
    cdu_limits,
    tiers,
    import_ramp,
    die_temperature,
    smoothing,
    bess_balance,
    hold,
    flex_tiers,
    stops,
)


def matrix_lp(p: Problem, every_step: bool = False, incremental: bool | None = None) -> MatrixLP:
    """Assemble the dispatch LP of ``p`` (families as in :mod:`optimization.backend_pyomo`).

    ``every_step=True`` gives the step limits and soft die rows a row at every step, with an
    infinite right-hand side where the Pyomo model has none (a DR event or limit outside the
    horizon): the same optimum, and an LP whose structure does not change as limits enter or leave
    a sliding horizon (:class:`WarmHighs`). :func:`model_slacks` maps its slacks back.
    ``incremental`` writes throughput in increments (module docstring; default: when ``p`` has CDU
    limits, i.e. class x CDU grouping) where the curves allow it (:func:`increments`)."""
    b = _Builder(every_step)
    use = p.cdu_of_group is not None if incremental is None else incremental
    variables(b, p, increments(p) if use else None)
    for family in FAMILIES[1:]:
        family(b, p)
    return b.lp()


def model_slacks(p: Problem, values: dict[str, Array]) -> dict[str, Array]:
    """Values of an ``every_step`` LP with each slack cut to the rows of the Pyomo model (where
    the limit exists)."""
    out = dict(values)
    for name in (*STEP_LIMITS, "die"):
        key = f"slack_{name}"
        if key in out:
            out[key] = out[key][_rows_at(p, name).ravel()]
    return out


def status_text(h: highspy.Highs) -> str:
    """``"optimal"`` or a lower-case description of the model status (e.g. ``"time limit
    reached"``)."""
    st = h.getModelStatus()
    return "optimal" if st == highspy.HighsModelStatus.kOptimal else h.modelStatusToString(st).lower()


class QuietHighs(highspy.Highs):
    """``highspy.Highs`` that prints nothing, not even its banner ("Running HiGHS ... Copyright"), which HiGHS
    logs at the first call after construction unless ``output_flag`` is already false: highspy's constructor
    makes that call (``enableCallbacks`` -> ``setCallback``), so the option is set first, here. Its log stays
    available: set ``output_flag`` (or ``log_to_console``) true after construction."""

    def enableCallbacks(self) -> None:  # noqa: N802 (highspy's name)
        self.setOptionValue("output_flag", False)
        super().enableCallbacks()


class HighsLP:
    """A :class:`MatrixLP` loaded into one ``highspy.Highs`` object (``highs``), with the options
    set. The object keeps the model and, after a solve, its basis: change column bounds, row bounds
    or costs in place through ``highs`` (indices from ``lp.cols``/``lp.rows``) and :meth:`run`
    again to re-solve from the previous basis."""

    def __init__(self, lp: MatrixLP, options: DispatchOptions) -> None:
        self.lp = lp
        self.highs = h = QuietHighs()
        for k, v in options.highs_options().items():
            h.setOptionValue(k, v)
        model = highspy.HighsLp()
        model.num_col_, model.num_row_ = lp.shape[1], lp.shape[0]
        model.col_cost_, model.col_lower_, model.col_upper_ = lp.c, lp.col_lo, lp.col_hi
        model.row_lower_, model.row_upper_ = lp.row_lo, lp.row_hi
        model.offset_ = lp.offset
        a = lp.A
        model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        model.a_matrix_.start_, model.a_matrix_.index_, model.a_matrix_.value_ = a.indptr, a.indices, a.data
        model.a_matrix_.num_col_, model.a_matrix_.num_row_ = lp.shape[1], lp.shape[0]
        h.passModel(model)

    def run(self) -> tuple[str, float, Array | None, float]:
        """Solve ``min c @ v``: (status, minimum, primal vector or None without a feasible one,
        solve seconds)."""
        h = self.highs
        t0 = time.perf_counter()
        h.run()
        seconds = time.perf_counter() - t0
        status = status_text(h)
        info = h.getInfo()
        if info.primal_solution_status != 2:  # 2 = feasible
            return status, np.nan, None, seconds
        return status, float(info.objective_function_value), np.asarray(h.getSolution().col_value), seconds


def solve_highspy(p: Problem, options: DispatchOptions) -> Solution:
    """Assemble ``p`` as a matrix, solve it with highspy, and name the values."""
    t0 = time.perf_counter()
    lp = matrix_lp(p)
    model = HighsLP(lp, options)
    build_s = time.perf_counter() - t0  # assembly and loading into HiGHS
    status, minimum, v, solve_s = model.run()
    values = lp.unpack(v) if v is not None else {}
    return Solution(status, -minimum, "highspy", build_s, solve_s, values)


def _structure(lp: MatrixLP, options: DispatchOptions) -> dict[str, object]:
    """What must not change for an LP to be updated in place: sizes of the column and row families,
    and the solver options (the sparsity pattern is compared separately)."""
    return {
        **{f"columns {k}": v.shape for k, v in lp.cols.items()},
        **{f"rows {k}": v.shape for k, v in lp.rows.items()},
        "options": tuple(sorted(options.highs_options().items())),
    }


@dataclass
class WarmHighs:
    """A dispatch LP kept between solves (the MPC's re-plans): when the next problem has the same
    structure (shape, row and column families, sparsity pattern, solver options), only the costs,
    column bounds, row bounds and the matrix coefficients that changed are written into the kept
    :class:`HighsLP`, and HiGHS re-solves from the previous basis. The kept LP has its step limits
    at every step (``matrix_lp(p, every_step=True)``), so DR events and limits entering or leaving
    the horizon only change bounds. Otherwise (e.g. the groups change, the first step gains a
    measured import) the model is built cold. ``warm``/``cold`` count the solves of each kind;
    ``last_cold_reason`` says why the latest cold build was needed (which families changed)."""

    warm: int = 0
    cold: int = 0
    last_cold_reason: str = ""
    _model: HighsLP | None = field(default=None, repr=False)
    _key: dict | None = field(default=None, repr=False)

    def solve(self, p: Problem, options: DispatchOptions) -> Solution:
        """Like :func:`solve_highspy`, updating the kept model in place when the structure allows."""
        t0 = time.perf_counter()
        lp = matrix_lp(p, every_step=True)
        reason = self._mismatch(lp, options)
        if reason:
            self._model, self._key = HighsLP(lp, options), _structure(lp, options)
            self.cold, self.last_cold_reason = self.cold + 1, reason
        else:
            self._update(lp)
            self.warm += 1
        build_s = time.perf_counter() - t0
        status, minimum, v, solve_s = self._model.run()
        if status != "optimal":
            self._model = None  # never start the next re-plan from a failed state
        values = model_slacks(p, lp.unpack(v)) if v is not None else {}
        return Solution(status, -minimum, "highspy", build_s, solve_s, values)

    def _mismatch(self, lp: MatrixLP, options: DispatchOptions) -> str:
        """Why ``lp`` cannot update the kept model ("" when it can)."""
        if self._model is None:
            return "no kept model"
        key = _structure(lp, options)
        if key != self._key:
            changed = [k for k in {**self._key, **key} if key.get(k) != self._key.get(k)]
            return "structure changed: " + ", ".join(changed)
        old = self._model.lp.A
        if not (np.array_equal(lp.A.indptr, old.indptr) and np.array_equal(lp.A.indices, old.indices)):
            return "sparsity pattern changed"
        return ""

    def _update(self, lp: MatrixLP) -> None:
        """Write what changed from the kept LP into the kept ``Highs`` object (its basis stays)."""
        h, old = self._model.highs, self._model.lp
        n, m = lp.shape[1], lp.shape[0]
        cols, rows = np.arange(n, dtype=np.int32), np.arange(m, dtype=np.int32)
        if not np.array_equal(lp.c, old.c):
            h.changeColsCost(n, cols, lp.c)
        if lp.offset != old.offset:
            h.changeObjectiveOffset(lp.offset)
        if not (np.array_equal(lp.col_lo, old.col_lo) and np.array_equal(lp.col_hi, old.col_hi)):
            h.changeColsBounds(n, cols, lp.col_lo, lp.col_hi)
        if not (np.array_equal(lp.row_lo, old.row_lo) and np.array_equal(lp.row_hi, old.row_hi)):
            h.changeRowsBounds(m, rows, lp.row_lo, lp.row_hi)
        changed = np.flatnonzero(lp.A.data != old.A.data)
        if changed.size:
            row_of = np.repeat(np.arange(m), np.diff(lp.A.indptr))
            for r, k, v in zip(
                row_of[changed].tolist(), lp.A.indices[changed].tolist(), lp.A.data[changed].tolist(), strict=True
            ):
                h.changeCoeff(r, k, v)
        self._model.lp = lp
