"""The one-line diagram as the steering allocator sees it: a laminar family of rack sets, each with a budget.

Every element of the diagram that carries GPU power constrains the racks below it: with ``s_e`` the share of each of
its racks' power it carries (1 on a single path, 1/2 on each of an A/B pair, as
:meth:`twin.facility.topology.Topology.routing` splits it) and ``A_r`` the sum of the GPU power limits of rack ``r``::

    s_e sum_{r below e} A_r <= B_e      <=>      sum_{r below e} A_r <= B_e / s_e

Elements with the same rack set (the A and B busways of a block, the transformer, switchboard and UPS of one path)
give one **node** whose budget is the smallest ``B_e / s_e`` of its members (the member that binds is named).
Steering needs the nodes to be *laminar*: any two rack sets are nested or disjoint, so they form a forest (a
node's parent is the smallest node that contains it) and each element's racks carry equal shares. Both hold for
radial and 2N diagrams (every reference facility); a diagram where they do not (e.g. a distributed-redundant
"catcher" feeding racks of several blocks) is refused naming the elements, as the allocator's exact solve
(:mod:`optimization.steering`) relies on the forest.

Racks are the leaves; a rack's GPUs are contiguous (``rack_first_gpu``), as in
:class:`links.redfish.layout.NodeLayout`, so per-GPU limits push through the Redfish link unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
SHARE_TOL = 1e-9


@dataclass(frozen=True, eq=False)
class SteeringTree:
    """Nodes (rack sets with a budget) over racks, and the GPUs of every rack.

    ``node_racks`` is the boolean nodes x racks membership, ``node_parent`` the smallest node containing each
    node (-1: a root), ``rack_node[h, r]`` the node of height ``h`` that contains rack ``r`` (-1: none),
    ``member_element``/``member_node`` the diagram elements of each node and ``member_share`` the share of
    their racks' power each carries under the routing the tree was built for. ``rack_gpus`` GPUs per rack.
    """

    names: tuple[str, ...]  # element names of the diagram
    node_racks: sp.csr_matrix
    node_parent: IntArray
    node_height: IntArray
    rack_node: IntArray  # [H, R]
    member_element: IntArray
    member_node: IntArray
    member_share: Array
    rack_gpus: IntArray

    @property
    def n_nodes(self) -> int:
        return self.node_parent.size

    @property
    def n_racks(self) -> int:
        return self.rack_gpus.size

    @cached_property
    def rack_first_gpu(self) -> IntArray:
        return np.concatenate(([0], np.cumsum(self.rack_gpus)[:-1])).astype(np.int64)

    @property
    def n_gpus(self) -> int:
        return int(self.rack_gpus.sum())

    @cached_property
    def gpu_rack(self) -> IntArray:
        return np.repeat(np.arange(self.n_racks), self.rack_gpus)

    @cached_property
    def node_gpus(self) -> Array:
        return np.asarray(self.node_racks @ self.rack_gpus.astype(float)).ravel()

    @cached_property
    def heights(self) -> tuple[IntArray, ...]:
        """Node indices by height (0: no node below), bottom-up."""
        return tuple(np.flatnonzero(self.node_height == h) for h in range(self.rack_node.shape[0]))

    def node_label(self, n: int, binding: int | None = None) -> str:
        """The node's element names (``binding``: the member element that binds, named first)."""
        els = self.member_element[self.member_node == n].tolist()
        if binding is not None and binding in els:
            els.remove(binding)
            els.insert(0, binding)
        return " | ".join(self.names[e] for e in els)

    def node_budgets(self, element_budget_w: Array) -> tuple[Array, IntArray]:
        """Node budgets ``min_e B_e / s_e`` over member elements [W of GPU limits summed over the node's racks]
        and the binding element of each node (the first member at the smallest), from budgets per element
        ``element_budget_w`` [W of GPU power]."""
        from factory_twin.optimization.steering_kernels import node_budgets

        b = np.asarray(element_budget_w, float)
        return node_budgets(b, self.member_element, self.member_node, self.member_share, self.n_nodes)

    def through(self, rack_w: Array) -> Array:
        """Per element (every row of ``names``), the GPU power (or limits) through it: its share of the sum of
        ``rack_w`` [W] over its node's racks (0 for an element that carries no rack)."""
        from factory_twin.optimization.steering_kernels import through_elements

        members = (self.member_element, self.member_node, self.member_share)
        return through_elements(np.asarray(rack_w, float), self.rack_first_node, self.nodes_bottom_up,
                                self.node_parent, *members, len(self.names))  # fmt: skip

    @cached_property
    def rack_first_node(self) -> IntArray:
        """The lowest node above each rack (``n_nodes``: none)."""
        has = self.rack_node >= 0
        if not has.size:
            return np.full(self.n_racks, self.n_nodes, np.int64)
        h = np.argmax(has, axis=0)  # the first height with a node
        return np.where(has.any(axis=0), self.rack_node[h, np.arange(self.n_racks)], self.n_nodes).astype(np.int64)

    @cached_property
    def nodes_bottom_up(self) -> IntArray:
        """Every node, by height from the racks up."""
        return np.concatenate(self.heights).astype(np.int64) if self.heights else np.zeros(0, np.int64)


def rack_shares(topology, routing) -> sp.csr_matrix:
    """``S[e, r]``: the share of rack ``r``'s power that passes element ``e`` under ``routing`` (elements x racks),
    summed over every path: direct shares plus the children's shares times the share the element carries of each
    child, height by height from the racks up."""
    n = topology.n
    out = sp.csr_matrix(routing.rack)
    for lv, child in zip(topology.levels, routing.child, strict=True):
        if child is None:
            continue
        add = sp.csr_matrix(child) @ out  # rows: the elements of this level
        fill = sp.csr_matrix((np.ones(lv.size), (lv, np.arange(lv.size))), (n, lv.size))
        out = (out + fill @ add).tocsr()
    return out


def tree_from_shares(
    names: tuple[str, ...], shares: sp.csr_matrix, rack_gpus: IntArray, energized: BoolArray | None = None
) -> SteeringTree:
    """Build the :class:`SteeringTree` from the elements x racks share matrix (elements that carry no rack power,
    e.g. mechanical transformers, or that are not energized, drop out); ``ValueError`` naming the elements when
    an element's racks carry unequal shares or two rack sets overlap without nesting."""
    s = sp.csr_matrix(shares)
    s.eliminate_zeros()
    n_racks = s.shape[1]
    live = np.diff(s.indptr) > 0
    if energized is not None:
        live &= np.asarray(energized, bool)
    els = np.flatnonzero(live)
    share = np.empty(els.size)
    for k, e in enumerate(els.tolist()):
        row = s.data[s.indptr[e] : s.indptr[e + 1]]
        if row.max() - row.min() > SHARE_TOL:
            raise ValueError(
                f"steering: element {names[e]!r} carries unequal shares of its racks ({row.min():.3g}-{row.max():.3g});"
                " the allocator needs every element's racks fed alike"
            )
        share[k] = row[0]
    pattern = sp.csr_matrix((np.ones(s.nnz), s.indices, s.indptr), s.shape)[els]
    pattern.sort_indices()
    keys = [pattern.indices[pattern.indptr[k] : pattern.indptr[k + 1]].tobytes() for k in range(els.size)]
    uniq: dict[bytes, int] = {}
    member_node = np.array([uniq.setdefault(key, len(uniq)) for key in keys], np.int64)
    n_nodes = len(uniq)
    first = np.unique(member_node, return_index=True)[1]
    node_racks = pattern[first].astype(bool).tocsr()
    size = np.diff(node_racks.indptr)
    # parent: the smallest strictly larger node that contains the node's first rack; then check containment
    rows_of_rack = node_racks.T.tocsr()
    parent = np.full(n_nodes, -1)
    for n in range(n_nodes):
        r0 = node_racks.indices[node_racks.indptr[n]]
        cand = rows_of_rack.indices[rows_of_rack.indptr[r0] : rows_of_rack.indptr[r0 + 1]]
        cand = cand[size[cand] > size[n]]
        if cand.size:
            parent[n] = cand[np.argmin(size[cand])]
    counts = np.asarray(node_racks.sum(axis=0)).ravel()  # nodes containing each rack
    for n in range(n_nodes):
        racks = node_racks.indices[node_racks.indptr[n] : node_racks.indptr[n + 1]]
        p = parent[n]
        ok = p < 0 or np.all(np.isin(racks, node_racks.indices[node_racks.indptr[p] : node_racks.indptr[p + 1]]))
        chain = 0
        q = n
        while q >= 0:
            chain += 1
            q = parent[q]
        if not ok or np.any(counts[racks] < chain):
            raise ValueError(
                f"steering: the racks of {names[els[np.flatnonzero(member_node == n)[0]]]!r} and of another element "
                "overlap without one containing the other; the allocator needs nested rack sets (a radial or 2N "
                "diagram)"
            )
    chain_ok = np.zeros(n_racks, bool)
    # every rack's containing nodes must be exactly the chain from its smallest node up
    smallest = np.full(n_racks, -1)
    for r in range(n_racks):
        cand = rows_of_rack.indices[rows_of_rack.indptr[r] : rows_of_rack.indptr[r + 1]]
        if not cand.size:
            chain_ok[r] = True
            continue
        smallest[r] = cand[np.argmin(size[cand])]
        chain = []
        q = smallest[r]
        while q >= 0:
            chain.append(q)
            q = parent[q]
        chain_ok[r] = len(chain) == cand.size
    if not chain_ok.all():
        r = int(np.flatnonzero(~chain_ok)[0])
        nodes = rows_of_rack.indices[rows_of_rack.indptr[r] : rows_of_rack.indptr[r + 1]]
        els = ", ".join(repr(names[els_[0]]) for els_ in (els[member_node == n] for n in nodes))
        raise ValueError(
            f"steering: rack {r} hangs below elements whose rack sets overlap without nesting ({els}); "
            "the allocator needs nested rack sets (a radial or 2N diagram)"
        )
    height = np.zeros(n_nodes, np.int64)
    order = np.argsort(size, kind="stable")  # children are smaller than their parents
    for n in order.tolist():
        p = parent[n]
        if p >= 0:
            height[p] = max(height[p], height[n] + 1)
    n_h = int(height.max()) + 1 if n_nodes else 0
    rack_node = np.full((n_h, n_racks), -1, np.int64)
    coo = node_racks.tocoo()
    rack_node[height[coo.row], coo.col] = coo.row
    return SteeringTree(
        names=tuple(names),
        node_racks=node_racks.astype(float).tocsr(),
        node_parent=parent,
        node_height=height,
        rack_node=rack_node,
        member_element=els.astype(np.int64),
        member_node=member_node,
        member_share=share,
        rack_gpus=np.asarray(rack_gpus, np.int64),
    )


def tree_of(topology, routing, rack_gpus: IntArray) -> SteeringTree:
    """The :class:`SteeringTree` of a compiled one-line diagram under ``routing`` (open paths drop out, survivors
    carry the whole of their racks)."""
    return tree_from_shares(topology.names, rack_shares(topology, routing), rack_gpus, routing.energized)
