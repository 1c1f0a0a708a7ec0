"""Tier rows of the dispatch LP: every element of the one-line diagram within its continuous limit, at every step,
and optionally after the loss of any one path (N-1).

Which racks an element carries does not depend on the caps: with shares ``w`` (twin.facility.topology) the
share of group ``g``'s power that passes element ``e`` is ``G[e, g]`` (racks of a group draw alike). The load
of ``e`` (its input, with its own and its children's losses) is a function of the busy GPU power through it,
``D_e = sum_g G[e, g] B[t, g] x[t, g]`` (``B`` the group's busy MW at x = 1, as in the problem). It is
linearized per element and step by the chord through the site model's flows with every group at its lowest
cap and at its uncapped draw (at the forecast utilization, ambient and mechanical load), so ``L_e ~ L0 + lift +
beta (D_e - D0)``, raised by ``lift``, the most the load exceeds the chord at five evenly spaced positions of
the range: losses grow with the square of the load (convex: under the chord) but the PSUs' efficiency rises at
part load (concave: above it), so without the lift a plan at a row's limit overshot it by up to 0.04 %
(campus-100mw's UPS after a path loss). The row ``L_e <= limit_e`` (rating x
continuous derate) reads, with ``G[e] = s_e d`` (``d`` the element's direction, summing to 1)::

    sum_g d[g] B[t, g] x[t, g] <= rho_e[t] = (limit_e - L0 + beta D0) / (beta s_e)

Elements with the same direction (all busways of one group, every UPS of a block of one class, ...) share
one row with the smallest ``rho``, so the LP carries one row per direction and step, not one per element:
campus-1gw's 3,652 elements give 14 directions. N-1 (``DispatchOptions.n_minus_1``): for every redundant path
label (``path`` of the elements, e.g. A and B) the routing with all elements of that path open gives its own ``G``
and loads; the survivors' rows join the blocks of their direction (the smallest ``rho`` over every routing binds,
and the row names the element and the routing). Elements that carry no GPU power (mechanical
transformers) need no row; :func:`fixed_overloads` reports those over their limit whatever the caps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from factory_twin.models.units import MW
from factory_twin.optimization.groups import Groups
from numpy.typing import NDArray

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
NORMAL = "all paths closed"
SAMPLES = np.linspace(0.0, 1.0, 5)  # positions between the lowest cap and the uncapped draw the loads are taken at


@dataclass(frozen=True)
class Contingency:
    """One routing of the diagram: its label, who carries whom, the share of each group's power through each
    element (``G``, elements x groups) and the diagram reduced to classes of identical elements."""

    label: str
    routing: object
    share: Array
    reduced: object


@dataclass(frozen=True)
class TierStructure:
    """What the tier rows need that does not change with the forecast: the routings and the row blocks, one per
    direction ``d[k]`` over groups (over every routing). A block's candidates are (routing, class of identical
    elements, continuous limit) triples, ``cand`` padded with -1, with arrays over candidates: ``c_routing``,
    ``c_class`` (index into that routing's reduced classes), ``c_element`` (an element of the class, named in
    messages) and ``c_limit_mw``."""

    contingencies: tuple[Contingency, ...]
    direction: Array  # [K, G]
    cand: IntArray  # [K, P]
    c_routing: IntArray
    c_class: IntArray
    c_element: IntArray
    c_limit_mw: Array
    c_block: IntArray  # the block of each candidate
    c_row: IntArray  # the candidate's class among every routing's classes stacked (loads of element_loads)


@dataclass(frozen=True)
class TierRows:
    """The rows ``sum_g direction[k, g] B[t, g] x[t, g] <= rho[k, t]`` (``K`` blocks x ``T`` steps); ``element[k, t]``
    is the element that binds (the smallest rho over the block's elements and routings), ``routing[k, t]`` the
    routing it binds in (an index of ``labels``), ``mw_per_unit[k, t]`` its load per unit of the row's left side
    (turns a row's excess into MW of overload)."""

    direction: Array
    rho_mw: Array
    element: IntArray
    routing: IntArray
    mw_per_unit: Array
    labels: tuple[str, ...]
    names: tuple[str, ...]  # element names

    @property
    def n_blocks(self) -> int:
        return self.direction.shape[0]

    def where(self, k: int, t: int) -> str:
        """``ELEMENT (ROUTING)`` binding row ``k`` at step ``t``."""
        return f"{self.names[self.element[k, t]]} {self.labels[self.routing[k, t]]}"


def share_matrix(topology, routing, rack_group: IntArray, n_groups: int) -> Array:
    """``G[e, g]``: the share of group ``g``'s power (every rack of the group drawing alike) that passes element ``e``
    under ``routing``, through any path (dense, elements x groups)."""
    racks_per_group = np.bincount(rack_group, minlength=n_groups).astype(float)
    onehot = sp.csr_matrix(
        (1.0 / racks_per_group[rack_group], (np.arange(rack_group.size), rack_group)), (rack_group.size, n_groups)
    )
    return np.asarray((topology.rack_shares(routing) @ onehot).todense())


@lru_cache(maxsize=8)
def tier_structure(f, groups_key: tuple, rack_group_bytes: bytes, n_groups: int, n_minus_1: bool) -> TierStructure:
    """The :class:`TierStructure` of facility ``f`` for a grouping (cached: the key names the grouping)."""
    from factory_twin.twin.simulation.design import reduced

    topo = f.topology
    rack_group = np.frombuffer(rack_group_bytes, dtype=np.int64)
    routes = [(NORMAL, topo.routing())]
    if n_minus_1:
        paths = np.array([p or "" for p in topo.path])
        routes += [(f"after losing path {p}", topo.routing(paths != p)) for p in sorted(set(paths) - {""})]
    contingencies = tuple(
        Contingency(label, r, share_matrix(topo, r, rack_group, n_groups), reduced(f, r)) for label, r in routes
    )
    limit = topo.continuous_limit_w / MW
    dirs, rows = [], []  # candidate rows: (direction, routing, class, element, limit)
    for c, cont in enumerate(contingencies):
        s = cont.share.sum(axis=1)
        live = np.flatnonzero((s > 1e-12) & cont.routing.energized)
        for e in live.tolist():
            dirs.append(np.round(cont.share[e] / s[e], 12))
            rows.append((c, int(cont.reduced.class_of[e]), e, float(limit[e])))
    keys, block = np.unique(np.array(dirs), axis=0, return_inverse=True)
    block = block.ravel()
    seen: dict[tuple, int] = {}
    cands: list[list[int]] = [[] for _ in range(keys.shape[0])]
    c_routing, c_class, c_element, c_limit = [], [], [], []
    for k, (c, cls, e, lim) in zip(block.tolist(), rows, strict=True):
        key = (k, c, cls, lim)  # identical elements of one block and routing: one candidate
        if key in seen:
            continue
        seen[key] = len(c_routing)
        cands[k].append(len(c_routing))
        c_routing.append(c)
        c_class.append(cls)
        c_element.append(e)
        c_limit.append(lim)
    width = max(len(x) for x in cands)
    cand = np.full((keys.shape[0], width), -1)
    c_block = np.zeros(len(c_routing), np.int64)
    for k, x in enumerate(cands):
        cand[k, : len(x)] = x
        c_block[x] = k
    offset = np.cumsum([0] + [c.reduced.rep.size for c in contingencies])
    c_row = offset[np.array(c_routing)] + np.array(c_class)
    return TierStructure(contingencies, keys, cand, np.array(c_routing), np.array(c_class), np.array(c_element),
                         np.array(c_limit), c_block, c_row)  # fmt: skip


def structure_for(f, groups: Groups, n_minus_1: bool) -> TierStructure:
    """:func:`tier_structure` for ``groups`` (the cache key is the grouping's rack assignment)."""
    rg = np.ascontiguousarray(groups.rack_group, dtype=np.int64)
    return tier_structure(f, (groups.grouping, groups.n), rg.tobytes(), groups.n, bool(n_minus_1))


def element_loads(f, fc, groups: Groups, st: TierStructure, x_levels: Array) -> list[Array]:
    """Per routing, the load [MW] of each class of identical elements (``reduced.class_of`` maps elements to them)
    at the forecast's steps with every group at position ``x_levels`` between its lowest cap (0) and its uncapped
    draw (1) (``[classes, T, levels]``): rack inputs per rack type at the forecast utilization, the forecast's
    mechanical load (cooling) interpolated to those positions."""
    from factory_twin.twin.simulation.design import rack_totals, rack_types

    types = rack_types(f)
    r = types.rack
    u_cls = np.zeros((fc.utilization.shape[0], len(f.class_names)))
    u_cls[:, groups.cls] = fc.utilization
    u = u_cls[:, f.rack_class[r]][:, None, :]  # [T, 1, types]
    lo, hi = f.min_cap_w[r], f.demand_w[r]
    busy = lo + x_levels[:, None] * (hi - lo)  # [levels, types]
    rt = rack_totals(f, u * busy + (1 - u) * f.idle_w[r], types)
    rack_in = np.moveaxis(rt.rack_in_w, -1, 0)  # [types, T, levels]
    lev = np.linspace(0.0, 1.0, fc.cooling_mw.shape[1])  # the forecast's levels (optimization.linearization)
    mech = np.stack([np.interp(x_levels, lev, row) for row in fc.cooling_mw]) * MW
    return [f.topology.flow_reduced(c.reduced, rack_in, mech)[0] / MW for c in st.contingencies]


def tier_rows(f, fc, groups: Groups, busy_mw: Array, n_minus_1: bool) -> TierRows | None:
    """The tier rows of the plan (module docstring); None without a one-line diagram of the facility's own."""
    topo = f.topology
    if not topo.explicit:
        return None
    st = structure_for(f, groups, n_minus_1)
    loads = element_loads(f, fc, groups, st, SAMPLES)
    x0 = np.broadcast_to(groups.min_cap_w / groups.tdp_w, busy_mw.shape)
    x1 = np.broadcast_to(groups.demand_w / groups.tdp_w, busy_mw.shape)
    u0, u1 = st.direction @ (busy_mw * x0).T, st.direction @ (busy_mw * x1).T  # row left sides at the points [K, T]
    load = np.concatenate(loads)[st.c_row]  # [candidates, T, samples]
    k_of = st.c_block
    du = np.where(u1 > u0, u1 - u0, np.nan)[k_of]  # [candidates, T]
    chord = load[..., :1] + SAMPLES * (load[..., -1:] - load[..., :1])
    lift = np.max(load - chord, axis=-1).clip(0.0)  # the chord raised above the load at every sample
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (load[..., -1] - load[..., 0]) / du  # load per unit of the row's left side
        slope = np.where(np.isfinite(slope) & (slope > 0), slope, np.nan)
        r = u0[k_of] + (st.c_limit_mw[:, None] - load[..., 0] - lift) / slope
    r = np.where(np.isnan(r), np.inf, r)
    pad = np.where(st.cand >= 0, st.cand, 0)
    rp = np.where((st.cand >= 0)[..., None], r[pad], np.inf)  # [K, P, T]
    best = np.argmin(rp, axis=1)  # [K, T]
    win = np.take_along_axis(pad, best, axis=1)
    rho = np.take_along_axis(rp, best[:, None, :], axis=1)[:, 0]
    per_unit = np.nan_to_num(slope[win, np.arange(r.shape[1])], nan=1.0)
    keep = np.isfinite(rho).any(axis=1)
    return TierRows(
        st.direction[keep],
        np.where(np.isfinite(rho[keep]), rho[keep], 1e9),
        st.c_element[win][keep],
        st.c_routing[win][keep],
        per_unit[keep],
        tuple(c.label for c in st.contingencies),
        topo.names,
    )


def fixed_overloads(f, fc, groups: Groups, n_minus_1: bool) -> list[tuple[str, str, float]]:
    """Elements that carry no GPU power (mechanical transformers) yet exceed their continuous limit at some step
    whatever the caps: (element, routing, worst excess MW)."""
    topo = f.topology
    if not topo.explicit:
        return []
    st = structure_for(f, groups, n_minus_1)
    loads = element_loads(f, fc, groups, st, np.array([0.0]))
    limit = topo.continuous_limit_w / MW
    out = []
    for c, cont in enumerate(st.contingencies):
        no_gpu = (cont.share.sum(axis=1) <= 1e-12) & cont.routing.energized
        excess = loads[c][cont.reduced.class_of[no_gpu], :, 0].max(axis=1) - limit[no_gpu]
        for e, x in zip(np.flatnonzero(no_gpu)[excess > 1e-9], excess[excess > 1e-9], strict=True):
            out.append((topo.names[e], cont.label, float(x)))
    return out
