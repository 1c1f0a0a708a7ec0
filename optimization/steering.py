r"""Per-GPU power steering: power limits for every GPU so that every tier of the one-line diagram stays inside its
budget, guarantees and priorities hold, and what is left goes where it buys the most throughput.

The allocation of one step is a sequence of *levels*, each raising some GPUs' limits over a span of watts
(``w_i`` for GPU ``i``; 0 when the level does not concern it) above what earlier levels gave (``a_i``):

1. ``guarantee``, by priority (DPS: a lower number is a higher priority): from the lowest settable limit ``lo``
   to ``f = max(lo, min(guarantee, request))``;
2. ``request``, by priority: from ``f`` to the request ``r = clip(demand + margin, lo, max)``;
3. ``surplus`` to active GPUs: from ``r`` to the GPU's maximum (burst room);
4. ``surplus`` to idle GPUs: the same for GPUs drawing no more than idle (nvPAX, arXiv 2605.01837, orders its
   phases the same way: requests by priority, fair surplus to active devices, the remainder to idle ones).

Each level solves, exactly, the quadratic program

.. math::
    \min_{\delta}\ \sum_i \frac{(w_i - \delta_i)^2}{2\,\kappa_i w_i}\quad
    \text{s.t.}\ \sum_{i\ \text{below}\ n} (a_i + \delta_i) \le B_n\ \ \forall\ \text{nodes } n,\quad
    0 \le \delta_i \le w_i

whose solution is :math:`\delta_i = w_i \max(0, 1 - \kappa_i P_i)`: every GPU gives up the same share
:math:`\kappa_i P_i` of its span per unit of the price :math:`P_i = \sum_{n \ni i} \mu_n` of the budgets above it.
``kappa`` is a GPU class's cut weight (:func:`twin.facility.resource_groups.cut_weights`): 1 in the guarantee
and request levels by default (every GPU gives up the same share of its span: the "proportional" power management of
every DPS bundle), and in the surplus levels the inverse of the throughput a watt buys at the top of the class's
throughput-vs-cap curve, so the surplus goes where it buys the most throughput.
On a laminar family of rack sets (:mod:`optimization.steering_tree`) the prices compose: with ``Q_n`` the price at
which node ``n``'s subtree alone meets its budget (0 if it fits), the price seen below ``n`` is the largest ``Q``
on the path from the root, so the solve is one sweep up the forest (an event sweep over the cells of each height,
exact up to rounding) and one pass down. A node whose residual budget is already negative before a level (its
floors do not fit) gets :math:`P = \infty`: its GPUs stay at what earlier levels gave (at worst ``lo``: the power
brake), and the node is reported. A node that binds during a ``guarantee`` level names the guarantees it cannot
meet (:attr:`Allocation.infeasible`).
When every node's budget covers the maxima of the GPUs below it, every level fits and each GPU gets its maximum
(the levels' spans add up to ``max - lo``): the step is then one comparison over the nodes, whatever the demand.

GPUs are grouped in *cells* (a run of GPUs of one rack and one resource group): a level's spans are summed per
cell, the solve works on cells, and the limits come back per GPU with one ``np.repeat`` per level, so a step costs a
few dozen vector operations over the GPUs and none per rack or per GPU in Python.

Baselines for comparison (:func:`equal_share`, :func:`greedy_proportional`) follow the usual definitions; see
docs/maxlps.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from factory_twin.optimization.steering_tree import SteeringTree
from numpy.typing import NDArray

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
LEVELS = ("guarantee", "request", "surplus-active", "surplus-idle")
TOL_W = 1e-6


@dataclass(frozen=True, eq=False)
class Cells:
    """GPUs of the steering problem grouped in cells: a run of GPUs of one rack and one resource group, which share
    their bounds. Per-GPU quantities live in a ``[cells, width]`` array (``width`` the longest cell; shorter cells
    are padded with GPUs bounded to 0 W), a view of the GPU order when every cell has the same length.

    Per cell (float64): ``lo_w`` lowest settable limit, ``hi_w`` the group's maximum, ``guarantee_w``, ``margin_w``
    the headroom a request adds to the demand, ``idle_w`` the draw at or below which a GPU counts as idle,
    ``kappa`` the cut weight of its workload class in the guarantee and request levels and ``kappa_surplus`` in the
    surplus levels; ``start``/``length`` (GPU run), ``rack``, ``group``. Per group:
    ``priority`` (lower first) and ``names``. ``dtype`` of the per-GPU arithmetic: float64 for exact checks,
    float32 at campus scale. ``unit_gpus``: the GPUs each slot stands for (a steering unit whose GPUs share one
    demand and one limit; 1: a slot is a GPU); limits and demands stay per GPU, sums count every GPU.
    """

    tree: SteeringTree
    start: IntArray
    length: IntArray
    rack: IntArray
    group: IntArray
    lo_w: Array
    hi_w: Array
    guarantee_w: Array
    margin_w: Array
    idle_w: Array
    priority: IntArray
    kappa: Array
    names: tuple[str, ...]
    kappa_surplus: Array | None = None
    dtype: type = np.float32
    unit_gpus: int = 1

    @property
    def n(self) -> int:
        return self.start.size

    @cached_property
    def width(self) -> int:
        return int(self.length.max()) if self.n else 0

    @cached_property
    def uniform(self) -> bool:
        return bool(self.n and np.all(self.length == self.width))

    @cached_property
    def slot(self) -> IntArray:
        """Flat index into the padded ``[cells, width]`` array of every GPU (GPU order)."""
        cell = np.repeat(np.arange(self.n), self.length)
        return cell * self.width + (np.arange(cell.size) - self.start[cell])

    @cached_property
    def pad(self) -> NDArray[np.bool_]:
        """``[cells, width]``: True where a slot holds a GPU."""
        return np.arange(self.width)[None, :] < self.length[:, None]

    def to_cells(self, per_gpu: Array, fill: float = 0.0) -> Array:
        """A per-GPU array as ``[cells, width]`` (a view when the cells are uniform)."""
        x = np.asarray(per_gpu, self.dtype)
        if self.uniform:
            return x.reshape(self.n, self.width)
        out = np.full(self.n * self.width, fill, self.dtype)
        out[self.slot] = x
        return out.reshape(self.n, self.width)

    def to_gpus(self, per_cell_slot: Array) -> Array:
        """``[cells, width]`` back to GPU order."""
        flat = np.asarray(per_cell_slot).reshape(-1)
        return flat if self.uniform else flat[self.slot]

    def col(self, per_cell: Array) -> Array:
        """A per-cell value as a ``[cells, 1]`` column in the arithmetic's dtype."""
        return np.asarray(per_cell, self.dtype)[:, None]

    @cached_property
    def cell_node(self) -> IntArray:
        """``[heights, cells]``: the node of each height above each cell (``tree.n_nodes``, a sink: none)."""
        node = self.tree.rack_node[:, self.rack]
        return np.where(node >= 0, node, self.tree.n_nodes)

    @cached_property
    def cell_priority(self) -> IntArray:
        return self.priority[self.group]

    @cached_property
    def node_hi_w(self) -> Array:
        """Per node, the sum of the maxima of the GPUs below it [W]: every level fits when each budget covers it."""
        return _node_sums(self.tree, self, self.unit_gpus * self.length * self.hi_w)

    @cached_property
    def hi_gpus(self) -> Array:
        """Every GPU's maximum, in GPU order (read-only)."""
        out = np.repeat(self.hi_w, self.length).astype(self.dtype)
        out.flags.writeable = False
        return out

    @cached_property
    def kappa_class(self) -> tuple[Array, IntArray]:
        """The distinct cut weights of the guarantee and request levels, and each cell's index into them."""
        return np.unique(self.kappa, return_inverse=True)

    @cached_property
    def kappa_surplus_class(self) -> tuple[Array, IntArray]:
        """The same for the surplus levels' cut weights."""
        return np.unique(self.kappa if self.kappa_surplus is None else self.kappa_surplus, return_inverse=True)

    @cached_property
    def priorities(self) -> list[int]:
        """The cells' priorities, highest (lowest number) first."""
        return np.unique(self.cell_priority).tolist()

    @property
    def cell_kappa(self) -> Array:
        return self.kappa


def make_cells(
    tree: SteeringTree,
    gpu_group: IntArray,
    lo_w: Array,
    hi_w: Array,
    guarantee_w: Array,
    margin_w: Array,
    idle_w: Array,
    priority: IntArray,
    kappa: Array,
    names: tuple[str, ...],
    dtype=np.float32,
    kappa_surplus: Array | None = None,
    unit_gpus: int = 1,
) -> Cells:
    """:class:`Cells` from the resource group of every GPU (``gpu_group``, GPU order rack by rack as
    ``tree.rack_first_gpu``; an index into ``priority``, ``kappa``, ``names``) and bounds per group (arrays over
    groups) or per GPU (then equal within each cell). Checks shapes and bounds, naming the argument."""
    n = tree.n_gpus
    g = np.asarray(gpu_group, np.int64)
    if g.shape != (n,) or (n and (g.min() < 0 or g.max() >= len(names))):
        raise ValueError(f"gpu_group: expected {n} group indices in [0, {len(names)})")
    rack = tree.gpu_rack
    brk = np.flatnonzero((np.diff(rack) != 0) | (np.diff(g) != 0)) + 1
    start = np.concatenate(([0], brk)).astype(np.int64) if n else np.zeros(0, np.int64)
    length = np.diff(np.append(start, n)).astype(np.int64)
    per_cell = {}
    for name, a in (("lo_w", lo_w), ("hi_w", hi_w), ("guarantee_w", guarantee_w), ("margin_w", margin_w),
                    ("idle_w", idle_w), ("kappa", kappa),
                    ("kappa_surplus", kappa if kappa_surplus is None else kappa_surplus)):  # fmt: skip
        v = np.asarray(a, float)
        if v.ndim == 0:
            v = np.full(n, float(v))
        elif v.shape == (len(names),):
            v = v[g]
        elif v.shape != (n,):
            raise ValueError(f"{name}: expected a value, one per group ({len(names)}) or one per GPU ({n})")
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValueError(f"{name}: must be finite and >= 0")
        c = v[start] if n else v
        if n and np.any(v != np.repeat(c, length)):
            raise ValueError(f"{name}: must be equal for the GPUs of one rack and one resource group")
        per_cell[name] = c
    if np.any(per_cell["hi_w"] < per_cell["lo_w"]):
        i = int(np.argmax(per_cell["hi_w"] < per_cell["lo_w"]))
        raise ValueError(f"hi_w: the maximum of cell {i} ({per_cell['hi_w'][i]:g} W) is below its lowest limit "
                         f"({per_cell['lo_w'][i]:g} W)")  # fmt: skip
    if np.any(~(per_cell["kappa"] > 0)) or np.any(~(per_cell["kappa_surplus"] > 0)):
        raise ValueError("kappa: cut weights must be > 0")
    pr = np.asarray(priority, np.int64)
    if pr.shape != (len(names),):
        raise ValueError(f"priority: one integer per group ({len(names)}), got shape {pr.shape}")
    return Cells(tree, start, length, rack[start], g[start], priority=pr, names=tuple(names), dtype=dtype,
                 unit_gpus=int(unit_gpus), **per_cell)  # fmt: skip


@dataclass
class Allocation:
    """One step's limits [W per GPU] and what bound them.

    ``node_budget_w``/``node_limit_w``: each node's budget and the sum of the limits below it [W];
    ``price[level]`` per cell (0: nothing cut at that level); ``binding`` the nodes whose own budget bound at some
    level (node -> level names); ``infeasible`` guarantees that did not fit: (node label, group, shortfall [W]);
    ``brake``: nodes over budget with every GPU at its lowest limit (node label, excess [W]); ``rack_limit_w``
    the limits summed per rack [W]."""

    limit_w: Array
    node_budget_w: Array
    node_limit_w: Array
    price: dict[str, Array] = field(default_factory=dict)
    binding: dict[int, list[str]] = field(default_factory=dict)
    infeasible: list[tuple[str, str, float]] = field(default_factory=list)
    brake: list[tuple[str, float]] = field(default_factory=list)
    rack_limit_w: Array = field(default_factory=lambda: np.zeros(0))  # the limits summed per rack [W]


@dataclass(frozen=True)
class Requests:
    """Per-GPU request ``r = clip(demand + margin, lo, max)``, floor ``f = max(lo, min(guarantee, r))`` and
    ``active`` (demand above idle) as ``[cells, width]`` arrays, and per cell the sums of the four levels' spans
    (guarantee ``f - lo``, request ``r - f``, surplus to active and to idle GPUs ``max - r``)."""

    r: Array
    f: Array
    active: NDArray[np.bool_]
    r_active: Array
    sums: dict[str, Array]


def requests(cells: Cells, demand_w: Array) -> Requests:
    """The :class:`Requests` for ``demand_w`` [W per GPU]."""
    c = cells
    d = c.to_cells(demand_w)
    lo, hi = c.col(c.lo_w), c.col(c.hi_w)
    r = d + c.col(c.margin_w)
    np.maximum(r, lo, out=r)
    np.minimum(r, hi, out=r)
    f = np.minimum(c.col(c.guarantee_w), r)
    np.maximum(f, lo, out=f)
    if not c.uniform:  # padding slots count nothing
        r *= c.pad
        f *= c.pad
    active = d > c.col(c.idle_w)
    r_act = r * active
    u = c.unit_gpus
    sum_f, sum_r, sum_ra = (u * x.sum(axis=1, dtype=float) for x in (f, r, r_act))
    n_act = u * np.count_nonzero(active, axis=1)
    n = u * c.length
    sums = {
        "guarantee": sum_f - n * c.lo_w,
        "request": sum_r - sum_f,
        "surplus-active": n_act * c.hi_w - sum_ra,
        "surplus-idle": (n - n_act) * c.hi_w - (sum_r - sum_ra),
    }
    return Requests(r, f, active, r_act, {k: np.maximum(v, 0.0) for k, v in sums.items()})


def allocate(
    cells: Cells, demand_w: Array, node_budget_w: Array, binding_element: IntArray | None = None
) -> Allocation:
    """Limits per GPU [W] for demands ``demand_w`` [W per GPU] within ``node_budget_w`` [W of summed limits per
    node of ``cells.tree``] (module docstring)."""
    tree = cells.tree
    budget = np.asarray(node_budget_w, float)
    if budget.shape != (tree.n_nodes,) or np.any(np.isnan(budget)):
        raise ValueError(f"node_budget_w: expected {tree.n_nodes} budgets [W], got shape {budget.shape}")
    if np.shape(demand_w) != (tree.n_gpus,):
        raise ValueError(f"demand_w: expected {tree.n_gpus} values [W], got shape {np.shape(demand_w)}")
    if np.all(cells.node_hi_w <= budget + TOL_W):  # every level fits: each GPU at its maximum, whatever it demands
        rack_hi = np.bincount(cells.rack, cells.unit_gpus * cells.length * cells.hi_w, tree.n_racks)
        return Allocation(cells.hi_gpus, budget, cells.node_hi_w.copy(), rack_limit_w=rack_hi)
    req = requests(cells, demand_w)
    total = cells.unit_gpus * cells.length * cells.lo_w
    kappa = cells.cell_kappa
    prio = cells.cell_priority
    phi = {k: np.ones(cells.n) for k in LEVELS}
    out = Allocation(np.empty(0), budget, np.zeros(tree.n_nodes))
    used = _node_sums(tree, cells, total)  # the limits below each node so far
    over = np.flatnonzero(budget - used < -TOL_W)
    out.brake = [(tree.node_label(int(n)), float(used[n] - budget[n])) for n in over]
    one = len(cells.priorities) == 1
    steps = [(lv, p) for lv in LEVELS[:2] for p in cells.priorities] + [(lv, None) for lv in LEVELS[2:]]
    for level, p in steps:
        w = req.sums[level] if p is None or one else np.where(prio == p, req.sums[level], 0.0)
        if not np.any(w > 0):
            continue
        span = _node_sums(tree, cells, w)
        add = used + span
        if np.all(add <= budget + TOL_W):  # the whole level fits: nothing is cut
            total = total + w
            used = add
            continue
        k, k_class = (kappa, cells.kappa_class) if p is not None else (cells.kappa_surplus, cells.kappa_surplus_class)
        price, q = _prices(tree, cells.cell_node, w, k, budget - used, k_class, span)
        share = np.maximum(1.0 - k * price, 0.0)  # price >= 0, k > 0: at most 1
        sel = w > 0
        phi[level][sel] = share[sel]
        out.price[level if p is None else f"{level}@{p}"] = np.where(sel, price, 0.0)
        total = total + w * share
        used = used + _node_sums(tree, cells, w * share)
        for n in np.flatnonzero(q > 0).tolist():
            out.binding.setdefault(n, []).append(level if p is None else f"{level}@{p}")
        if level == "guarantee":
            short = w * (1.0 - share)
            for n in np.flatnonzero(q > 0).tolist():
                below = cells.cell_node[tree.node_height[n]] == n
                by_group = np.bincount(cells.group[below], short[below], len(cells.names))
                label = tree.node_label(n, None if binding_element is None else int(binding_element[n]))
                groups = np.flatnonzero(by_group > TOL_W)
                out.infeasible += [(label, cells.names[g], float(by_group[g])) for g in groups]
    out.limit_w = cells.to_gpus(_limits(cells, req, phi))
    out.rack_limit_w = np.bincount(cells.rack, total, tree.n_racks)
    out.node_limit_w = used
    return out


def _limits(cells: Cells, req: Requests, phi: dict[str, Array]) -> Array:
    """``a = lo + (f - lo) phi_g + (r - f) phi_r + (max - r) phi_s`` per GPU (``phi_s`` the active or idle surplus
    share), written as ``f (phi_g - phi_r) + r (phi_r - phi_i) - r_active (phi_a - phi_i) + active max (phi_a -
    phi_i) + lo (1 - phi_g) + max phi_i``, skipping the terms whose coefficient is 0 in every cell."""
    g, r_, a, i = (phi[k] for k in LEVELS)
    c = cells
    out = np.broadcast_to(c.col(c.lo_w * (1 - g) + c.hi_w * i), req.r.shape).copy()
    for x, k in ((req.f, g - r_), (req.r, r_ - i), (req.r_active, i - a)):
        if np.any(k != 0):
            out += x * c.col(k)
    if np.any(a != i):
        out += req.active * c.col(c.hi_w * (a - i))
    return out


def _node_sums(tree: SteeringTree, cells: Cells, per_cell: Array) -> Array:
    """Sum over each node's racks of a per-cell quantity."""
    rack = np.bincount(cells.rack, per_cell, tree.n_racks)
    return np.asarray(tree.node_racks @ rack).ravel()


def _prices(tree: SteeringTree, cell_node: IntArray, w: Array, kappa: Array, resid: Array,
            kappa_class: tuple[Array, IntArray], span_w: Array) -> tuple[Array, Array]:  # fmt: skip
    """Price per cell and each node's own price ``Q_n`` for spans ``w`` per cell under residual budgets ``resid``
    per node (module docstring): height by height, each node's ``H_n(Q) = sum_c w_c max(0, 1 - kappa_c max(Q,
    m_c))`` (``m_c`` the largest price of the nodes below it on the cell's path) is a continuous, non-increasing,
    piecewise-linear function; ``Q_n`` is where it meets ``resid_n`` (0 if ``H_n(0)`` fits, inf if
    ``resid_n < 0``). ``cell_node`` as :attr:`Cells.cell_node`; ``kappa_class`` the distinct weights and each cell's
    index into them: the cells no price below holds yet (``m_c = 0``) enter the sweep summed per node and weight, a
    few events per node instead of two per cell. ``span_w``: each node's sum of ``w`` (``H_n(0)`` while no price
    below holds a cell), so a height where no node binds costs a comparison over its nodes."""
    n = tree.n_nodes
    m = np.zeros(w.size)
    q_node = np.zeros(n + 1)
    q1 = 1.0 / kappa
    pos = w > 0
    held = np.zeros(0, np.int64)  # the cells a price below holds (m > 0)
    a0 = np.append(span_w, 0.0)  # H_n(0) while no price below holds a cell
    for h, nodes in enumerate(tree.heights):
        if not nodes.size:
            continue
        cn = cell_node[h]
        if held.size:  # H_n(0) = the spans below less what the prices below already take
            take = w[held] * np.minimum(1.0, kappa[held] * m[held])
            a0 = np.append(span_w, 0.0) - np.bincount(cn[held], take, n + 1)
        need = nodes[a0[nodes] > resid[nodes] + TOL_W]
        if not need.size:
            continue  # no node binds at this height: no price changes
        q_node[need[resid[need] < -TOL_W]] = np.inf
        solve = need[resid[need] >= -TOL_W]
        if solve.size:
            solving = np.zeros(n + 1, bool)
            solving[solve] = True
            on = solving[cn] & pos & (m < q1)
            values, cls = kappa_class  # cells at m_c = 0: one start and one end event per node and weight
            agg = on & (m == 0)
            ws = np.bincount(cn[agg] * values.size + cls[agg], w[agg], (n + 1) * values.size)
            nz = np.flatnonzero(ws)
            a_node, a_k, a_w = nz // values.size, values[nz % values.size], ws[nz]
            on &= m > 0
            nn, ww, kk, mm = cn[on], w[on], kappa[on], m[on]
            ev_node = np.concatenate((nn, a_node, nn, a_node))
            ev_q = np.concatenate((mm, np.zeros(a_w.size), 1.0 / kk, 1.0 / a_k))
            ev_da = np.concatenate((ww * kk * mm, np.zeros(a_w.size), -ww, -a_w))
            ev_db = np.concatenate((ww * kk, a_w * a_k, -ww * kk, -a_w * a_k))
            order = np.lexsort((ev_q, ev_node))
            ev_node, ev_q, ev_da, ev_db = ev_node[order], ev_q[order], ev_da[order], ev_db[order]
            cs_a, cs_b = np.cumsum(ev_da), np.cumsum(ev_db)
            first = np.searchsorted(ev_node, ev_node, side="left")
            before_a = np.where(first > 0, cs_a[first - 1], 0.0)
            before_b = np.where(first > 0, cs_b[first - 1], 0.0)
            a_after = a0[ev_node] + cs_a - before_a
            b_after = cs_b - before_b
            h_at = a_after - b_after * ev_q
            rn = np.maximum(resid[ev_node], 0.0)
            hit = np.flatnonzero(h_at <= rn + TOL_W)
            k_first = hit[np.unique(ev_node[hit], return_index=True)[1]]
            node_k = ev_node[k_first]
            is_first = k_first == first[k_first]
            prev = np.maximum(k_first - 1, 0)
            a_prev = np.where(is_first, a0[node_k], a_after[prev])
            b_prev = np.where(is_first, 0.0, b_after[prev])
            with np.errstate(divide="ignore", invalid="ignore"):
                qs = np.where(b_prev > 0, (a_prev - np.maximum(resid[node_k], 0.0)) / b_prev, ev_q[k_first])
            q_node[node_k] = np.maximum(qs, 0.0)
        if np.any(q_node[need] > 0):
            m = np.maximum(m, q_node[cn])
            held = np.flatnonzero(m > 0)
    return m, q_node[:n]


# ----------------------------------------------------------------------------------------------- baselines
def equal_share(cells: Cells, node_budget_w: Array) -> Array:
    """Static equal-share limits [W per GPU]: every GPU gets the smallest equal share ``B_n / N_n`` of the nodes
    above it (``N_n`` GPUs below node ``n``), clipped to its bounds; the same every step whatever the demand."""
    tree = cells.tree
    share = np.asarray(node_budget_w, float) / np.maximum(cells.unit_gpus * tree.node_gpus, 1)
    rack_share = np.full(tree.n_racks, np.inf)
    for h in range(tree.rack_node.shape[0]):
        n = tree.rack_node[h]
        rack_share = np.where(n >= 0, np.minimum(rack_share, share[np.maximum(n, 0)]), rack_share)
    per_cell = rack_share[cells.rack]
    limit = np.minimum(np.maximum(per_cell, cells.lo_w), cells.hi_w)
    return np.repeat(limit, cells.length).astype(cells.dtype)


def greedy_proportional(cells: Cells, demand_w: Array, node_budget_w: Array) -> Array:
    """Greedy proportional limits [W per GPU]: from the roots down, each node hands its children its allocation in
    proportion to their requests and caps each child at the child's own budget, without handing on what a capped
    child leaves (the greedy part); a GPU's limit is its request times the product of the scale factors above it,
    at least its lowest limit."""
    tree = cells.tree
    req = requests(cells, demand_w)
    rack_req = np.bincount(cells.rack, cells.unit_gpus * req.r.sum(axis=1, dtype=float), tree.n_racks)
    node_req = np.asarray(tree.node_racks @ rack_req).ravel()
    budget = np.asarray(node_budget_w, float)
    alloc = np.minimum(node_req, budget)  # roots: what they can give
    scale_node = np.ones(tree.n_nodes)
    for h in range(tree.rack_node.shape[0] - 1, -1, -1):  # top down
        nodes = tree.heights[h]
        p = tree.node_parent[nodes]
        pp = np.maximum(p, 0)
        given = np.where(p >= 0, alloc[pp] * node_req[nodes] / np.maximum(node_req[pp], 1e-300), node_req[nodes])
        alloc[nodes] = np.minimum(given, budget[nodes])
        scale_node[nodes] = np.where(node_req[nodes] > 0, alloc[nodes] / np.maximum(node_req[nodes], 1e-300), 1.0)
    rack_scale = np.ones(tree.n_racks)
    found = np.zeros(tree.n_racks, bool)
    for h in range(tree.rack_node.shape[0]):  # the smallest node above a rack holds the product of the factors
        n = tree.rack_node[h]
        now = (n >= 0) & ~found
        rack_scale[now] = scale_node[n[now]]
        found |= now
    limit = np.maximum(req.r * cells.col(rack_scale[cells.rack]), cells.col(cells.lo_w))
    return cells.to_gpus(limit)
