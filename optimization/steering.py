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
on the path from the root, so the solve is one sweep up the forest (at each node that binds, a sweep over the
breakpoints of its cells, exact up to rounding) and one pass down. A node whose residual budget is already negative
before a level (its floors do not fit) gets :math:`P = \infty`: its GPUs stay at what earlier levels gave (at worst
``lo``: the power brake), and the node is reported. A node that binds during a ``guarantee`` level names the
guarantees it cannot meet (:attr:`Allocation.infeasible`).
When every node's budget covers the maxima of the GPUs below it, every level fits and each GPU gets its maximum
(the levels' spans add up to ``max - lo``): the step is then one comparison over the nodes, whatever the demand.

GPUs are grouped in *cells* (a run of GPUs of one rack and one resource group): a level's spans are summed per
cell, the solve works on cells, and the limits come back per GPU in one pass. The loops are compiled
(:mod:`optimization.steering_kernels`, numba): a step is three kernel calls, with no Python loop over racks, nodes or
GPUs.

Baselines for comparison (:func:`equal_share`, :func:`greedy_proportional`) follow the usual definitions; see
docs/maxlps.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property

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
    their bounds; per-GPU quantities stay in GPU order (rack by rack), a cell's GPUs ``start:start + length``.

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
    def cell_node(self) -> IntArray:
        """``[heights, cells]``: the node of each height above each cell (``tree.n_nodes``, a sink: none)."""
        node = self.tree.rack_node[:, self.rack]
        return np.where(node >= 0, node, self.tree.n_nodes)

    @cached_property
    def cell_priority(self) -> IntArray:
        return self.priority[self.group]

    @cached_property
    def floor_w(self) -> Array:
        """Per cell, the sum of its GPUs' lowest limits [W]: where every step starts."""
        return self.unit_gpus * self.length * self.lo_w

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

    @cached_property
    def level_steps(self) -> tuple[list[tuple[str, int | None]], IntArray, Array, IntArray, Array, Array | None]:
        """The allocation's steps in order (level, priority; ``None``: every priority), the index of each one's level
        in ``LEVELS`` and, stacked per step, each cell's cut weight, its class index and the class values (padded),
        and the mask of the cells each step concerns (``None`` with a single priority)."""
        one = len(self.priorities) == 1
        steps = [(lv, p) for lv in LEVELS[:2] for p in self.priorities] + [(lv, None) for lv in LEVELS[2:]]
        k, cls, values = [], [], []
        for _, p in steps:
            kk, (v, c) = (
                (self.kappa, self.kappa_class)
                if p is not None
                else (self.kappa if self.kappa_surplus is None else self.kappa_surplus, self.kappa_surplus_class)
            )
            k.append(kk)
            cls.append(c)
            values.append(v)
        width = max(v.size for v in values)
        k_values = np.ones((len(steps), width))
        for j, v in enumerate(values):
            k_values[j, : v.size] = v
        every = np.ones(self.n, bool)
        mine = None if one else np.stack([every if p is None else self.cell_priority == p for _, p in steps])
        step_level = np.array([LEVELS.index(lv) for lv, _ in steps], np.int64)
        return steps, step_level, np.stack(k), np.stack(cls).astype(np.int64), k_values, mine

    @cached_property
    def node_cells(self) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray, IntArray, IntArray]:
        """For :func:`optimization.steering_kernels.solve_levels`: the lowest node above each cell, the node above
        each cell at each height (``[cells, heights]``), per height the cells sorted by that node and each node's
        run (``ptr[h, n]:ptr[h, n + 1]``), the nodes of each height (``nodes[h_ptr[h]:h_ptr[h + 1]]``, bottom-up)
        and each node's parent."""
        cn = self.cell_node
        order = np.argsort(cn, axis=1, kind="stable")
        ptr = np.stack([np.searchsorted(cn[h][order[h]], np.arange(self.tree.n_nodes + 2)) for h in range(cn.shape[0])])
        nodes = self.tree.nodes_bottom_up
        h_ptr = np.concatenate(([0], np.cumsum([x.size for x in self.tree.heights]))).astype(np.int64)
        path = np.ascontiguousarray(cn.T, np.int64)
        first = self.tree.rack_first_node[self.rack]
        return first, path, order.astype(np.int64), ptr.astype(np.int64), nodes, h_ptr, self.tree.node_parent


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


def allocate(
    cells: Cells, demand_w: Array, node_budget_w: Array, binding_element: IntArray | None = None
) -> Allocation:
    """Limits per GPU [W] for demands ``demand_w`` [W per GPU] within ``node_budget_w`` [W of summed limits per
    node of ``cells.tree``] (module docstring)."""
    tree = cells.tree
    budget = np.asarray(node_budget_w, float)
    if budget.shape != (tree.n_nodes,) or np.isnan(budget.sum()):  # budgets are > -inf: a sum is NaN only by a NaN
        raise ValueError(f"node_budget_w: expected {tree.n_nodes} budgets [W], got shape {budget.shape}")
    if np.shape(demand_w) != (tree.n_gpus,):
        raise ValueError(f"demand_w: expected {tree.n_gpus} values [W], got shape {np.shape(demand_w)}")
    if np.all(cells.node_hi_w <= budget + TOL_W):  # every level fits: each GPU at its maximum, whatever it demands
        rack_hi = np.bincount(cells.rack, cells.unit_gpus * cells.length * cells.hi_w, tree.n_racks)
        return Allocation(cells.hi_gpus, budget, cells.node_hi_w.copy(), rack_limit_w=rack_hi)
    k = _kernels()
    d = np.asarray(demand_w)
    c = cells
    bounds = (c.start, c.length, c.margin_w, c.lo_w, c.hi_w, c.guarantee_w, c.idle_w)
    sums = k.span_sums(d, *bounds, c.unit_gpus)
    steps, step_level, k_all, cls_all, k_values, mine = c.level_steps
    w_all = sums if len(steps) == len(LEVELS) else sums[step_level] * mine
    phi, price, q_all, used0, used, rack_total, brakes, bound_levels = k.solve_levels(
        w_all, step_level, k_all, cls_all, k_values, *c.node_cells, budget, c.floor_w, c.rack, tree.n_racks, TOL_W
    )
    out = Allocation(k.gpu_limits(d, *bounds, phi, np.empty(d.size, c.dtype)), budget, used, rack_limit_w=rack_total)
    if brakes:
        over = np.flatnonzero(budget - used0 < -TOL_W)
        out.brake = [(tree.node_label(int(n)), float(used0[n] - budget[n])) for n in over]
    for j in np.flatnonzero(bound_levels).tolist():  # the steps some node's budget cut
        level, p = steps[j]
        name = level if p is None else f"{level}@{p}"
        out.price[name] = price[j]
        bound = np.flatnonzero(q_all[j] > 0).tolist()
        for n in bound:
            out.binding.setdefault(n, []).append(name)
        if level == "guarantee":
            short = w_all[j] * (1.0 - phi[0])
            for n in bound:
                below = c.cell_node[tree.node_height[n]] == n
                by_group = np.bincount(c.group[below], short[below], len(c.names))
                label = tree.node_label(n, None if binding_element is None else int(binding_element[n]))
                groups = np.flatnonzero(by_group > TOL_W)
                out.infeasible += [(label, c.names[g], float(by_group[g])) for g in groups]
    return out


@cache
def _kernels():
    """:mod:`optimization.steering_kernels`, imported at the first step that needs it (numba loads in ~0.5 s)."""
    from factory_twin.optimization import steering_kernels

    return steering_kernels


def _node_sums(tree: SteeringTree, cells: Cells, per_cell: Array) -> Array:
    """Sum over each node's racks of a per-cell quantity."""
    rack = np.bincount(cells.rack, per_cell, tree.n_racks)
    return np.asarray(tree.node_racks @ rack).ravel()


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
    tree, c = cells.tree, cells
    r = _kernels().request_w(np.asarray(demand_w), c.start, c.length, c.margin_w, c.lo_w, c.hi_w,
                             np.empty(tree.n_gpus))  # fmt: skip
    rack_req = c.unit_gpus * np.bincount(tree.gpu_rack, r, tree.n_racks)
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
    return np.maximum(r * rack_scale[tree.gpu_rack], np.repeat(c.lo_w, c.length)).astype(c.dtype)
