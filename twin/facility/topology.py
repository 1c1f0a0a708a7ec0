"""The site's one-line diagram compiled into arrays: every tier's load is a sparse-matrix product over racks.

Elements (feeds, transformers, switchboards, UPS, busways, PDUs) form a DAG from the feeds down to the
racks; a rack or element with two parents is fed on two paths (A/B). The facility's ``[topology]``
(:mod:`twin.facility.topology_spec`) compiles into :class:`Topology`; a facility without one gets the
degenerate diagram of its aggregate chain (:func:`aggregate_topology`): feed -> transformer bank ->
UPS bank -> busway -> every rack, with the mechanical load on the transformers, which reproduces
:class:`models.power.PowerChain` exactly.

Flows (:meth:`Topology.flow`), element by element from the racks up (elements grouped by height, one
sparse product per height)::

    out_e = sum_r w_re P_r + sum_m w_me s_m P_mech + sum_c w_ce in_c      (children: racks, mechanical, elements)
    loss_e = the loss model of its kind (models.power) at out_e
    in_e = out_e + loss_e

``P_r`` is the rack input (after its PSUs), ``w_xe`` the share of child ``x`` carried by parent ``e``:
``1 / (live parents of x)`` on each energized parent (DPS splits a child's power evenly across its
parents), so A/B shares sum to the child's load, and when a path opens the survivors carry all of it.
An element is energized when it is closed and a parent is energized (feeds: when closed); a rack with
no energized parent is dark. The campus grid flow is the sum of the feeds' inputs.

Loading (:meth:`Topology.loading`): apparent power over the rated kVA (``S = P / pf``) for kVA-rated
elements, real power over the rated kW otherwise, both at the element's input; the continuous limit is
the rating times ``continuous_derate`` (the 80 % rule), headroom the limit minus the load [W].
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from factory_twin.models import protection as prot
from factory_twin.models.conductors import loss_fraction_at_rating
from factory_twin.models.power import busway_loss_w, transformer_loss_w, ups_loss_w
from factory_twin.models.units import KW, MW
from factory_twin.twin.facility.electrical import (
    conductor_data,
    conductor_resistance_ohm,
    converter_curve,
    loss_coefficients,
)
from factory_twin.twin.facility.spec import FacilitySpec, SpecError
from factory_twin.twin.facility.topology_spec import (
    CONVERTER_KINDS,
    INPUT_CURRENT,
    KINDS,
    OUTPUT_CURRENT,
    Element,
    NodePolicy,
    TopologySpec,
    TripDevice,
)
from numpy.typing import NDArray

from factory_twin import data

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

KIND_CODE = {k: i for i, k in enumerate(KINDS)}
TRANSFORMER = KIND_CODE["transformer"]
CONVERTERS = np.array([KIND_CODE[k] for k in CONVERTER_KINDS])  # UPS, rectifiers, DC-DC: the three-term loss
CONVERTER_GROUP = -2  # the loss group of the converters in Topology._kind_groups
_SELECTOR = re.compile(r"^(?P<hall>[^:]+)(?::(?P<first>\d+)(?:-(?P<last>\d+))?)?$")


def protection_presets() -> dict[str, TripDevice]:
    """Protective-device presets of ``data/protection.toml`` (sources in that file)."""
    with data.path("protection.toml").open("rb") as f:
        raw = tomllib.load(f)
    return {name: TripDevice.model_validate(v) for name, v in raw.items()}


@dataclass(frozen=True, eq=False)
class Routing:
    """Who carries whom for one open/closed state: ``energized`` elements, racks and mechanical loads
    that have power (``rack_on``, ``mech_on``), and the share matrices (``rack``: elements x racks,
    ``mech``: elements x mechanical loads, ``child[h]``: the elements of height ``h`` x all elements)."""

    closed: BoolArray
    energized: BoolArray
    rack_on: BoolArray
    mech_on: BoolArray
    rack: sp.csr_matrix
    mech: sp.csr_matrix
    child: tuple[sp.csr_matrix | None, ...]
    single_rack_parent: int  # element carrying every rack at weight 1 (the aggregate chain), else -1


@dataclass(frozen=True, eq=False)
class Reduced:
    """Classes of elements that carry the same load (:meth:`Topology.reduce`): each element's class, a representative
    element and the element count per class, classes by height, the class-to-class share matrices, the direct
    shares of rack types and mechanical loads, and which classes are energized."""

    class_of: IntArray
    rep: IntArray
    count: Array
    levels: tuple[IntArray, ...]
    child: tuple[sp.csr_matrix | None, ...]
    types: sp.csr_matrix
    mech: sp.csr_matrix
    energized: BoolArray


@dataclass(frozen=True)
class Flow:
    """Power through every element [W] (``[n_elements, ...]``): input (load), losses; the campus sum of
    element losses and the grid flow (sum of the feeds' inputs)."""

    in_w: Array
    loss_w: Array
    losses_w: Array
    grid_w: Array

    @property
    def out_w(self) -> Array:
        return self.in_w - self.loss_w


@dataclass(frozen=True, eq=False)
class Topology:
    """A compiled one-line diagram (module docstring). Arrays over elements unless stated.

    ``rating`` is in W (kW-rated) or VA (kVA-rated, ``kva`` True); ``rating_w`` the real-power equivalent
    (``rating x pf`` for kVA); losses per unit: transformer ``p0_w``/``pk_w`` at the unit rating, UPS
    ``c0..c2``, the others ``loss_fraction`` (I^2 R at the rating). Edges: element ``edge_child`` ->
    ``edge_parent``, rack ``rack_edge_rack`` -> ``rack_edge_parent``, mechanical load ``mech_edge_load``
    -> ``mech_edge_parent``. ``height`` counts element levels below (0: feeds only racks and loads),
    ``depth`` the longest path from a feed (0: the feeds)."""

    names: tuple[str, ...]
    kind: IntArray
    kva: BoolArray
    rating: Array
    power_factor: Array
    derate: Array
    units: Array
    p0_w: Array
    pk_w: Array
    c0: Array
    c1: Array
    c2: Array
    loss_fraction: Array
    setting: Array
    trip: prot.TripSettings
    redundancy: tuple[str | None, ...]
    path: tuple[str | None, ...]
    dps_model: tuple[str | None, ...]
    edge_child: IntArray
    edge_parent: IntArray
    rack_edge_rack: IntArray
    rack_edge_parent: IntArray
    mech_names: tuple[str, ...]
    mech_share: Array
    mech_edge_load: IntArray
    mech_edge_parent: IntArray
    n_racks: int
    explicit: bool
    policies: tuple[NodePolicy, ...] = ()
    device_names: tuple[str | None, ...] = ()
    voltage_v: Array | None = None  # busways with a conductor: nominal voltage [V] (NaN elsewhere)
    conductor_r_ohm: Array | None = None  # resistance of one conductor [ohm] (NaN elsewhere)
    length_m: Array | None = None  # conductor length [m] (NaN elsewhere)
    height: IntArray = field(init=False)
    depth: IntArray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.names)
        height, depth = np.zeros(n, np.int64), np.zeros(n, np.int64)
        order = _topological_order(n, self.edge_child, self.edge_parent)  # parents before children
        for e in order[::-1]:
            ch = self.edge_child[self.edge_parent == e]
            height[e] = 1 + height[ch].max() if ch.size else 0
        for e in order:
            pa = self.edge_parent[self.edge_child == e]
            depth[e] = 1 + depth[pa].max() if pa.size else 0
        object.__setattr__(self, "height", height)
        object.__setattr__(self, "depth", depth)

    # ------------------------------------------------------------------ structure
    @property
    def n(self) -> int:
        return len(self.names)

    @cached_property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @cached_property
    def levels(self) -> tuple[IntArray, ...]:
        """Element indices by height, from the racks up (the evaluation order)."""
        return tuple(np.flatnonzero(self.height == h) for h in range(int(self.height.max()) + 1))

    @cached_property
    def roots(self) -> IntArray:
        """The feeds (elements without parents)."""
        return np.setdiff1d(np.arange(self.n), self.edge_child)

    @cached_property
    def rating_w(self) -> Array:
        """Rating as real power [W]: kW ratings as given, kVA ratings times their power factor."""
        return np.where(self.kva, self.rating * self.power_factor, self.rating)

    @cached_property
    def continuous_limit_w(self) -> Array:
        """Largest continuous load [W]: the rating times the continuous derate (80 % rule)."""
        return self.rating_w * self.derate

    @cached_property
    def unit_rating(self) -> Array:
        return self.rating / self.units

    def kind_name(self, e: int) -> str:
        return KINDS[int(self.kind[e])]

    def children(self, e: int) -> IntArray:
        """Element children of element ``e``."""
        return self.edge_child[self.edge_parent == e]

    def parents(self, e: int) -> IntArray:
        return self.edge_parent[self.edge_child == e]

    def rack_parents(self, r: int) -> IntArray:
        return self.rack_edge_parent[self.rack_edge_rack == r]

    def rack_shares(self, routing: Routing) -> sp.csr_matrix:
        """``S[e, r]``: the share of rack ``r``'s power that passes element ``e`` under ``routing``, over every path
        (elements x racks, sparse). An element's load from the racks is ``S @ P_rack`` (before the losses of the
        elements below it): the matrix a per-GPU allocator needs to keep every tier inside its budget."""
        order = np.concatenate(self.levels)  # elements by height: a block only needs the rows below it
        pos = np.empty(self.n, np.int64)
        pos[order] = np.arange(self.n)
        blocks: list[sp.csr_matrix] = []
        done = 0
        for lv, child in zip(self.levels, routing.child, strict=True):
            block = routing.rack[lv]
            if child is not None:
                block = block + child[:, order[:done]] @ sp.vstack(blocks, format="csr")
            blocks.append(sp.csr_matrix(block))
            done += lv.size
        return sp.vstack(blocks, format="csr")[pos]

    def racks_below(self) -> sp.csr_matrix:
        """Boolean elements x racks: rack ``r`` hangs (on some path) below element ``e``."""
        below = sp.csr_matrix(
            (np.ones(self.rack_edge_rack.size), (self.rack_edge_parent, self.rack_edge_rack)), (self.n, self.n_racks)
        )
        up = sp.csr_matrix((np.ones(self.edge_child.size), (self.edge_parent, self.edge_child)), (self.n, self.n))
        out = below
        for _ in range(int(self.height.max())):
            below = (up @ below).tocsr()
            out = out + below
        out.data[:] = 1.0
        return out.astype(bool).tocsr()

    # ------------------------------------------------------------------ routing and flows
    def routing(self, closed: BoolArray | None = None) -> Routing:
        """Shares of every child on its parents for the open/closed state ``closed`` (default all closed)."""
        closed = np.ones(self.n, bool) if closed is None else np.asarray(closed, bool)
        if closed.shape != (self.n,):
            raise ValueError(f"closed: expected one flag per element ({self.n},), got {closed.shape}")
        energized = closed.copy()
        order = _topological_order(self.n, self.edge_child, self.edge_parent)
        has_parent = np.zeros(self.n, bool)
        has_parent[self.edge_child] = True
        for e in order:
            if has_parent[e]:
                energized[e] = closed[e] and bool(energized[self.edge_parent[self.edge_child == e]].any())

        def shares(child: IntArray, parent: IntArray, n_child: int) -> tuple[Array, BoolArray]:
            live = energized[parent].astype(float)
            n_live = np.bincount(child, live, n_child)
            w = np.divide(live, n_live[child], out=np.zeros_like(live), where=n_live[child] > 0)
            return w, n_live > 0

        w_rack, rack_on = shares(self.rack_edge_rack, self.rack_edge_parent, self.n_racks)
        w_mech, mech_on = shares(self.mech_edge_load, self.mech_edge_parent, len(self.mech_names))
        w_el, _ = shares(self.edge_child, self.edge_parent, self.n)
        rack = sp.csr_matrix((w_rack, (self.rack_edge_parent, self.rack_edge_rack)), (self.n, self.n_racks))
        mech = sp.csr_matrix(
            (w_mech * self.mech_share[self.mech_edge_load], (self.mech_edge_parent, self.mech_edge_load)),
            (self.n, len(self.mech_names)),
        )
        pos = np.full(self.n, -1)
        child = []
        for lv in self.levels:
            pos[lv] = np.arange(lv.size)
            sel = np.isin(self.edge_parent, lv)
            child.append(
                sp.csr_matrix((w_el[sel], (pos[self.edge_parent[sel]], self.edge_child[sel])), (lv.size, self.n))
                if sel.any()
                else None
            )
        single = -1
        parents = np.unique(self.rack_edge_parent)
        if self.rack_edge_rack.size == self.n_racks and parents.size == 1 and energized[parents[0]]:
            single = int(parents[0])
        return Routing(closed, energized, rack_on, mech_on, rack, mech, tuple(child), single)

    def flow(self, routing: Routing, rack_in_w: Array, mech_w: Array | float) -> Flow:
        """Element flows for rack inputs ``rack_in_w`` [W] (``[n_racks, ...]``) and the campus mechanical
        load ``mech_w`` [W] (broadcasts with the trailing shape); see the module docstring."""
        rack_in = np.asarray(rack_in_w, float)
        tail = rack_in.shape[1:]
        mech = np.asarray(mech_w, float)
        mech = mech if mech.shape == tail else np.broadcast_to(mech, tail)
        flat = rack_in.reshape(self.n_racks, -1)
        if routing.single_rack_parent >= 0:  # the aggregate chain: the same pairwise sum as the IT meter
            direct = np.zeros((self.n, flat.shape[1]))
            direct[routing.single_rack_parent] = flat.sum(axis=0)
        elif not tail:  # one set of rack inputs: a sparse product with a vector
            direct = (routing.rack @ rack_in)[:, None]
        else:
            direct = np.asarray(routing.rack @ flat)
        return self._up(routing, direct + self.mech_direct(routing, mech).reshape(self.n, -1), tail)

    def mech_direct(self, routing: Routing, mech_w: Array | float) -> Array:
        """Mechanical load each element feeds directly [W] (``[n_elements, *shape of mech_w]``): each element's
        share of the campus mechanical load (every mechanical load is a share of it)."""
        m = np.asarray(mech_w, float)
        return np.multiply.outer(self._mech_share_of(routing), m)

    def _mech_share_of(self, routing: Routing) -> Array:
        """Per element, the share of the campus mechanical load it feeds under ``routing`` (kept per routing)."""
        return self._kept_for("_mech_share", routing,
                              lambda: np.asarray(routing.mech @ np.ones(len(self.mech_names))).ravel())  # fmt: skip

    def _kept_for(self, name: str, obj, build):
        """``build()``, kept while ``obj`` (a routing, its matrices) is the one asked about (the last 16 kept)."""
        cache = self.__dict__.setdefault(name, {})
        hit = cache.get(id(obj))
        if hit is None or hit[0] is not obj:  # the object is held in the entry: its id cannot be reused meanwhile
            if len(cache) > 16:
                cache.clear()
            hit = cache[id(obj)] = (obj, build())
        return hit[1]

    def flow_direct(self, routing: Routing, direct_w: Array) -> Flow:
        """Element flows from the power each element feeds directly to racks and mechanical loads [W]
        (``[n_elements, ...]``; e.g. summed over rack types by the caller)."""
        d = np.asarray(direct_w, float)
        return self._up(routing, d.reshape(self.n, -1), d.shape[1:])

    def _up(self, routing: Routing, direct: Array, tail: tuple[int, ...]) -> Flow:
        in_w, loss, total = self._propagate(self.levels, routing.child, direct, self._all, routing.energized)
        grid = in_w[self.roots].sum(axis=0)
        shape = (self.n, *tail)
        return Flow(in_w.reshape(shape), loss.reshape(shape), total.reshape(tail), grid.reshape(tail))

    def _propagate(self, levels, child_mats, direct: Array, element: IntArray, energized: BoolArray, count=None):
        """Inputs and losses of the nodes (elements, or classes of :meth:`reduce` standing for ``count`` elements
        each, with parameters of ``element``) from their direct loads, height by height; the summed losses. A diagram
        of its own: each node's loss quadratic (:attr:`loss_quadratic`) in compiled code
        (:func:`twin.facility.flow_kernel.propagate_quadratic`); the aggregate chain: the models, level by level."""
        if self.explicit:
            from factory_twin.twin.facility.flow_kernel import propagate_quadratic

            order, indptr, indices, shares = self._children_csr(levels, child_mats, direct.shape[0])
            q0, q1, q2 = self.loss_quadratic if element is self._all else (q[element] for q in self.loss_quadratic)
            w = self._ones if count is None else np.asarray(count, float)
            return propagate_quadratic(order, indptr, indices, shares, np.ascontiguousarray(direct, float), q0, q1, q2,
                                       np.asarray(energized, bool), w)  # fmt: skip
        in_w = np.zeros_like(direct)
        loss = np.zeros_like(direct)
        total = np.zeros(direct.shape[1])
        for lv, child in zip(levels, child_mats, strict=True):
            out = direct[lv] if child is None else direct[lv] + child @ in_w
            lo = self._model_losses(element[lv], out)
            dead = ~energized[lv]
            if dead.any():  # an open element carries nothing and loses nothing (no-load losses included)
                lo[dead] = 0.0
            in_w[lv] = out + lo
            loss[lv] = lo
            total = total + (lo.sum(axis=0) if count is None else count[lv] @ lo)
        return in_w, loss, total

    def _children_csr(self, levels, child_mats, n: int) -> tuple[IntArray, IntArray, IntArray, Array]:
        """The nodes bottom-up and each node's children with their shares as one CSR over the nodes, from the
        per-height matrices (kept per set of matrices: a routing is reused every step)."""
        return self._kept_for("_children", child_mats, lambda: _children_csr(levels, child_mats, n))

    def reduce(self, routing: Routing, rack_type: IntArray, n_types: int) -> Reduced:
        """The diagram with the elements that carry the same load under ``routing`` merged into classes: same
        parameters, same element children (by class and share), same racks (by type ``rack_type`` and share) and
        mechanical loads. Flows over a campus of identical blocks then cost a few dozen nodes, not thousands."""
        nan = -1.0
        params = np.column_stack([self.kind, self.kva, self.rating, self.power_factor, self.units, self.loss_fraction,
                                  *(np.nan_to_num(a, nan=nan) for a in (self.p0_w, self.pk_w, self.c0, self.c1,
                                                                          self.c2)), routing.energized])  # fmt: skip
        pid = np.unique(params, axis=0, return_inverse=True)[1].ravel()
        onehot = sp.csr_matrix((np.ones(self.n_racks), (np.arange(self.n_racks), rack_type)), (self.n_racks, n_types))
        types = (routing.rack @ onehot).tocsr()
        mech = routing.mech.tocsr()
        class_of = np.full(self.n, -1)
        keys: dict[tuple, int] = {}
        reps: list[int] = []
        for lv, child in zip(self.levels, routing.child, strict=True):
            ch = child.tocsr() if child is not None else None
            for i, e in enumerate(lv.tolist()):
                sig_child: tuple = ()
                if ch is not None:
                    cols, w = ch.indices[ch.indptr[i] : ch.indptr[i + 1]], ch.data[ch.indptr[i] : ch.indptr[i + 1]]
                    agg = np.bincount(class_of[cols], w, len(reps)) if cols.size else np.zeros(0)
                    nz = np.flatnonzero(agg)
                    sig_child = tuple(zip(nz.tolist(), np.round(agg[nz], 12).tolist(), strict=True))
                row = slice(types.indptr[e], types.indptr[e + 1])
                sig_types = tuple(zip(types.indices[row].tolist(), np.round(types.data[row], 12).tolist(), strict=True))
                mrow = slice(mech.indptr[e], mech.indptr[e + 1])
                sig_mech = tuple(sorted(np.round(mech.data[mrow], 12).tolist()))
                key = (int(pid[e]), sig_child, sig_types, sig_mech)
                if key not in keys:
                    keys[key] = len(reps)
                    reps.append(e)
                class_of[e] = keys[key]
        rep = np.array(reps, np.int64)
        n_c = rep.size
        height = self.height[rep]
        levels = tuple(np.flatnonzero(height == h) for h in range(int(height.max()) + 1))
        child_mats = []
        for lv in levels:
            rows, cols, vals = [], [], []
            for i, c in enumerate(rep[lv].tolist()):
                kids = self.edge_child[self.edge_parent == c]
                if kids.size:
                    w = np.asarray(routing.child[self.height[c]][np.searchsorted(self.levels[self.height[c]], c)]
                                   .toarray()).ravel()[kids]  # fmt: skip
                    rows += [i] * kids.size
                    cols += class_of[kids].tolist()
                    vals += w.tolist()
            child_mats.append(sp.csr_matrix((vals, (rows, cols)), (lv.size, n_c)) if rows else None)
        count = np.bincount(class_of, minlength=n_c).astype(float)
        return Reduced(class_of, rep, count, levels, tuple(child_mats), types[rep], mech[rep], routing.energized[rep])

    def flow_reduced(self, red: Reduced, type_in_w: Array, mech_w: Array | float) -> tuple[Array, Array, Array, Array]:
        """Flows over :meth:`reduce`'s classes from the input of one rack of each type [W] (``[n_types, ...]``) and the
        mechanical load [W]: (input [W] and losses [W] of each class ``[n_classes, ...]``, campus losses and grid
        flow). An element's load is its class's: ``in_w[red.class_of[e]]``."""
        x = np.asarray(type_in_w, float)
        tail = x.shape[1:]
        m = np.broadcast_to(np.asarray(mech_w, float), tail).reshape(1, -1)
        direct = np.asarray(red.types @ x.reshape(x.shape[0], -1)) + np.asarray(
            red.mech @ np.broadcast_to(m, (red.mech.shape[1], m.shape[1]))
        )
        in_w, loss, total = self._propagate(red.levels, red.child, direct, red.rep, red.energized, red.count)
        roots = np.bincount(red.class_of[self.roots], minlength=red.rep.size).astype(float)
        grid = roots @ in_w
        n_c = red.rep.size
        return in_w.reshape((n_c, *tail)), loss.reshape((n_c, *tail)), total.reshape(tail), grid.reshape(tail)

    @cached_property
    def _all(self) -> IntArray:
        return np.arange(self.n)

    @cached_property
    def _ones(self) -> Array:
        out = np.ones(self.n)
        out.flags.writeable = False
        return out

    @cached_property
    def loss_quadratic(self) -> tuple[Array, Array, Array]:
        """Per element ``(q0 [W], q1 [-], q2 [1/W])`` with ``loss = q0 + q1 P + q2 P^2``: the kind's model of
        :mod:`models.power` evaluated at 0, ``R`` and ``2 R`` (``R`` the rating) and solved for its coefficients."""
        e = np.arange(self.n)
        r = self.rating_w
        lo = self._model_losses(e, np.stack([np.zeros(self.n), r, 2 * r], axis=1))
        q0 = lo[:, 0]
        q2 = (lo[:, 2] - 2 * lo[:, 1] + lo[:, 0]) / (2 * r * r)
        q1 = (lo[:, 1] - lo[:, 0]) / r - q2 * r
        return q0, q1, q2

    def _model_losses(self, lv: IntArray, out: Array) -> Array:
        """Losses [W] of the elements ``lv`` carrying ``out`` [W] by the functions of :mod:`models.power`."""
        loss = np.zeros_like(out)
        for sel, kind, par in self._kind_groups(lv):
            o = out[sel]
            if kind == TRANSFORMER:
                n, pf, rating, p0, pk = par
                loss[sel] = n * transformer_loss_w(o / (pf * n), rating, p0, pk)
            elif kind == CONVERTER_GROUP:
                n, rating, c0, c1, c2 = par
                loss[sel] = n * ups_loss_w(o / n, rating, c0, c1, c2)
            else:
                rating, f = par
                loss[sel] = busway_loss_w(o, rating, f)
        return loss

    def _kind_groups(self, lv: IntArray) -> list[tuple[IntArray, int, tuple[Array, ...]]]:
        """For elements ``lv``: (their positions, kind, loss parameters as columns) per loss model; elements without
        losses (f = 0) left out. Kept per ``lv`` (the engine asks for the same levels every plant step)."""
        cache = self.__dict__.setdefault("_groups_cache", {})
        key = lv.tobytes()
        if key in cache:
            return cache[key]
        k = self.kind[lv]
        groups = []
        conv = np.isin(k, CONVERTERS)
        for sel, code in ((np.flatnonzero(k == TRANSFORMER), TRANSFORMER), (np.flatnonzero(conv), CONVERTER_GROUP)):
            if sel.size:
                e = lv[sel]
                col = [a[e][:, None] for a in (self.units, self.power_factor, self.unit_rating, self.p0_w, self.pk_w)]
                if code == CONVERTER_GROUP:
                    col = [a[e][:, None] for a in (self.units, self.unit_rating, self.c0, self.c1, self.c2)]
                groups.append((sel, code, tuple(col)))
        sel = np.flatnonzero((k != TRANSFORMER) & ~conv & (self.loss_fraction[lv] > 0))
        if sel.size:
            e = lv[sel]
            groups.append((sel, -1, (self.rating_w[e][:, None], self.loss_fraction[e][:, None])))
        cache[key] = groups
        return groups

    def loading(self, in_w: Array) -> Array:
        """Load over rating [-] at the element inputs ``in_w`` [W] (``[n_elements, ...]``): ``S / S_r`` for
        kVA-rated elements (``S = P / pf``), ``P / P_r`` otherwise."""
        return np.asarray(in_w, float) / _col(self.rating_w, np.ndim(in_w))

    def headroom_w(self, in_w: Array) -> Array:
        """Continuous limit minus load [W] (negative: above the continuous limit)."""
        return _col(self.continuous_limit_w, np.ndim(in_w)) - np.asarray(in_w, float)

    def trip_multiple(self, in_w: Array) -> Array:
        """Load as a multiple of each protective device's current setting [-]."""
        return self.loading(in_w) / _col(self.setting, np.ndim(in_w))

    def dc_fault(self, e: int, load_w: float = 0.0) -> prot.DcFaultClearing:
        """A bolted fault at the far end of DC element ``e``'s conductor (a ``dc-busway`` given by its conductor),
        carrying ``load_w`` [W] before it, cleared by ``e``'s own instantaneous element
        (:func:`models.protection.dc_fault_clearing`): loop resistance two conductors, loop inductance the busbar's
        per metre (``data/conductors.toml``) times the length, pickup ``ii`` x the setting x the rated current."""
        if (
            OUTPUT_CURRENT[KINDS[int(self.kind[e])]] != "dc"
            or self.conductor_r_ohm is None
            or not np.isfinite(self.conductor_r_ohm[e])
        ):
            raise ValueError(f"{self.names[e]}: a DC fault needs a DC element given by its conductor (a dc-busway with "
                             "voltage_v, conductor_mm2, length_m)")  # fmt: skip
        if not np.isfinite(self.trip.ii[e]):
            raise ValueError(f"{self.names[e]}: no instantaneous element to clear a DC fault (its device has no ii)")
        v = float(self.voltage_v[e])
        l_h = conductor_data()["busbar"]["loop_inductance_h_per_m"] * float(self.length_m[e])
        pickup_a = float(self.trip.ii[e] * self.setting[e] * self.rating_w[e]) / v
        return prot.dc_fault_clearing(v, 2.0 * float(self.conductor_r_ohm[e]), l_h, pickup_a,
                                      float(self.trip.interrupt_s[e]), load_w / v)  # fmt: skip

    def rack_label(self, r: int, halls: tuple[str, ...], rack_hall: IntArray) -> str:
        first = int(np.flatnonzero(rack_hall == rack_hall[r])[0])
        return f"{halls[int(rack_hall[r])]}:{r - first}"


def _col(a: Array, ndim: int) -> Array:
    return a.reshape((-1,) + (1,) * (ndim - 1)) if ndim > 1 else a


def _topological_order(n: int, child: IntArray, parent: IntArray) -> list[int]:
    """Elements with every parent before its children (Kahn); raises ``ValueError`` on a cycle."""
    indeg = np.bincount(child, minlength=n)
    kids: list[list[int]] = [[] for _ in range(n)]
    for c, p in zip(child.tolist(), parent.tolist(), strict=True):
        kids[p].append(c)
    stack = [i for i in range(n) if indeg[i] == 0]
    order = []
    while stack:
        e = stack.pop()
        order.append(e)
        for c in kids[e]:
            indeg[c] -= 1
            if indeg[c] == 0:
                stack.append(c)
    if len(order) != n:
        raise ValueError("cycle")
    return order


# ---------------------------------------------------------------------- compile from the spec
def aggregate_topology(spec: FacilitySpec, n_racks: int) -> Topology:
    """The degenerate diagram of the aggregate chain (``grid.transformer``, ``grid.ups``, ``grid.busway``):
    feed ``grid`` (the import limit) -> ``transformers`` -> ``ups`` -> ``busway`` -> every rack, mechanical
    load on the transformers; no protective devices (the migration rule of files without a topology)."""
    g = spec.grid
    tx, ups, bus = g.transformer, g.ups, g.busway
    names = ("grid", "transformers", "ups", "busway")
    nan = np.full(4, np.nan)
    return Topology(
        names=names,
        kind=np.array([KIND_CODE[k] for k in ("feed", "transformer", "ups", "busway")]),
        kva=np.array([False, True, False, False]),
        rating=np.array(
            [
                g.import_limit_mw * MW,
                tx.count * tx.rating_mva * MW,
                ups.modules * ups.module_rating_mw * MW,
                bus.rating_mw * MW,
            ]
        ),
        power_factor=np.array([1.0, g.power_factor, 1.0, 1.0]),
        derate=np.ones(4),
        units=np.array([1.0, tx.count, ups.modules, 1.0]),
        p0_w=np.where(np.arange(4) == 1, tx.no_load_loss_kw * KW, nan),
        pk_w=np.where(np.arange(4) == 1, tx.load_loss_kw * KW, nan),
        c0=np.where(np.arange(4) == 2, ups.c0, nan),
        c1=np.where(np.arange(4) == 2, ups.c1, nan),
        c2=np.where(np.arange(4) == 2, ups.c2, nan),
        loss_fraction=np.array([0.0, 0.0, 0.0, bus.loss_fraction_at_rating]),
        setting=np.ones(4),
        trip=prot.TripSettings.none(4),
        redundancy=(None,) * 4,
        path=(None,) * 4,
        dps_model=(None,) * 4,
        edge_child=np.array([1, 2, 3]),
        edge_parent=np.array([0, 1, 2]),
        rack_edge_rack=np.arange(n_racks),
        rack_edge_parent=np.full(n_racks, 3),
        mech_names=("mechanical",),
        mech_share=np.ones(1),
        mech_edge_load=np.zeros(1, np.int64),
        mech_edge_parent=np.ones(1, np.int64),
        n_racks=n_racks,
        explicit=False,
        device_names=(None,) * 4,
    )


@dataclass
class _Expanded:
    """Elements after ``count`` expansion: the spec entry of each, its copy number and resolved fields."""

    spec_index: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    redundancy: list[str | None] = field(default_factory=list)
    parents: list[list[int]] = field(default_factory=list)
    racks: list[IntArray] = field(default_factory=list)


def compile_topology(spec: FacilitySpec, source: str = "<spec>") -> Topology:
    """The facility's :class:`Topology`: its ``[topology]`` checked and compiled, or the aggregate chain.

    Refused with :class:`SpecError` naming the element: unknown parents, a cycle, an orphan (an element
    other than a feed without parents, a feed with parents, a rack whose parents reach no feed), a
    missing rating, a rack on no path (fed by no element) or outside its hall, unknown devices,
    mechanical shares that do not sum to 1."""
    offsets = np.cumsum([0] + [h.cdus * h.racks_per_cdu for h in spec.halls])
    n_racks = int(offsets[-1])
    if spec.topology is None:
        dc = []
        for i, h in enumerate(spec.halls):
            try:
                if _rack_input(h.psu_curve) == "dc":
                    dc.append((f"halls.{i}.psu_curve", f"{h.psu_curve!r} takes DC: a DC-fed hall needs a [topology] "
                                                       "with its DC chain"))  # fmt: skip
            except ValueError as e:
                dc.append((f"halls.{i}.psu_curve", str(e)))
        if dc:
            raise SpecError(source, dc)
        return aggregate_topology(spec, n_racks)
    topo = spec.topology
    errors: list[tuple[str, str]] = []
    halls = {h.name: (int(offsets[i]), h.cdus * h.racks_per_cdu) for i, h in enumerate(spec.halls)}
    ex = _expand(topo.elements, halls, errors)
    index = {}
    for i, name in enumerate(ex.names):
        if name in index:
            errors.append((_key(ex, i), f"{name!r}: duplicate element name"))
        index.setdefault(name, i)
    n = len(ex.names)
    kinds = [topo.elements[s].kind for s in ex.spec_index]
    for i in range(n):
        el = topo.elements[ex.spec_index[i]]
        if el.rating_kw is None and el.rating_kva is None:
            errors.append((_key(ex, i), f"{ex.names[i]!r}: rating missing: give rating_kw or rating_kva"))
        if kinds[i] == "feed" and ex.parents[i]:
            errors.append((_key(ex, i), f"{ex.names[i]!r}: a feed has no parents, got {len(ex.parents[i])}"))
        if kinds[i] != "feed" and not ex.parents[i]:
            errors.append((_key(ex, i), f"{ex.names[i]!r} is an orphan: no parents and not a feed"))
    child = np.array([c for c, ps in enumerate(ex.parents) for _ in ps], np.int64)
    parent = np.array([p for ps in ex.parents for p in ps], np.int64)
    cycle = _cycle(n, child, parent)
    if cycle:
        errors.append(("topology.elements", f"cycle: {' -> '.join(ex.names[i] for i in cycle)}"))
    rack_r = np.concatenate(ex.racks) if ex.racks else np.zeros(0, np.int64)
    rack_p = np.concatenate([np.full(r.size, i) for i, r in enumerate(ex.racks)]) if ex.racks else rack_r
    fed = np.bincount(rack_r, minlength=n_racks) > 0
    if not fed.all():
        miss = np.flatnonzero(~fed)
        labels = [_rack_label(r, spec, offsets) for r in miss[:5]]
        more = f" (and {miss.size - 5} more)" if miss.size > 5 else ""
        errors.append(("topology.elements", f"rack {', '.join(labels)}{more} on no path: no element lists it in racks"))
    dup = np.unique(rack_p.astype(np.int64) * n_racks + rack_r, return_counts=True)[1]
    if np.any(dup > 1):
        errors.append(("topology.elements", "an element lists the same rack twice"))
    orphans = [i for i in range(n) if kinds[i] != "feed" and not ex.parents[i]]
    if orphans and not cycle:
        dead = _unreachable(n, child, parent, [i for i in range(n) if kinds[i] == "feed"])
        for r in np.flatnonzero(fed):
            ps = rack_p[rack_r == r]
            if all(p in dead for p in ps.tolist()):
                names = ", ".join(ex.names[p] for p in ps)
                errors.append(("topology.elements", f"rack {_rack_label(r, spec, offsets)} is an orphan: its parents "
                                                    f"({names}) reach no feed"))  # fmt: skip
                break
    devices = {**protection_presets(), **topo.devices}
    for i in range(n):
        prot_ref = topo.elements[ex.spec_index[i]].protection
        if isinstance(prot_ref, str) and prot_ref not in devices:
            errors.append((_key(ex, i) + ".protection", f"unknown device {prot_ref!r}; known: {sorted(devices)}"))
    mech = list(topo.mechanical)
    mech_parents = []
    for j, m in enumerate(mech):
        ps = []
        for ref in m.parents:
            if ref not in index:
                errors.append((f"topology.mechanical.{j}.parents", f"no element named {ref!r}"))
            else:
                ps.append(index[ref])
        mech_parents.append(ps)
    if mech and abs(sum(m.share for m in mech) - 1.0) > 1e-6:
        errors.append(("topology.mechanical", f"shares must sum to 1, got {sum(m.share for m in mech):g}"))
    errors += _curve_errors(topo, ex)
    if not errors:
        errors += _current_errors(spec, ex, kinds, child, parent, rack_r, rack_p, mech_parents, offsets)
    if errors:
        raise SpecError(source, errors)
    if not mech:
        first_feed = next(i for i in range(n) if kinds[i] == "feed")
        mech_names, mech_share, mech_parents = ("mechanical",), np.ones(1), [[first_feed]]
    else:
        mech_names, mech_share = tuple(m.name for m in mech), np.array([m.share for m in mech])
    return _arrays(spec, topo, ex, kinds, devices, child, parent, rack_r, rack_p, mech_names, mech_share,
                   mech_parents, n_racks)  # fmt: skip


def _arrays(spec, topo: TopologySpec, ex: _Expanded, kinds, devices, child, parent, rack_r, rack_p, mech_names,
            mech_share, mech_parents, n_racks) -> Topology:  # fmt: skip
    els = [topo.elements[s] for s in ex.spec_index]

    def col(attr: str, default: float = np.nan, scale: float = 1.0) -> Array:
        return np.array([getattr(e, attr) * scale if getattr(e, attr) is not None else default for e in els], float)

    kva = np.array([e.rating_kva is not None for e in els])
    rating = np.where(kva, col("rating_kva", 0.0, KW), col("rating_kw", 0.0, KW))
    pf = np.array([(e.power_factor or spec.grid.power_factor) if e.rating_kva is not None else 1.0 for e in els])
    coef = np.array([loss_coefficients(e.curve) if e.curve else (np.nan,) * 3 for e in els]).reshape(-1, 3)
    c0, c1, c2 = (np.where(np.isnan(coef[:, j]), col(name), coef[:, j]) for j, name in enumerate(("c0", "c1", "c2")))
    volt, area, length = col("voltage_v"), col("conductor_mm2"), col("length_m")
    r_cond = np.where(np.isfinite(area), conductor_resistance_ohm(np.nan_to_num(length), np.nan_to_num(area, nan=1.0)),
                      np.nan)  # fmt: skip
    dc = np.array([OUTPUT_CURRENT[e.kind] == "dc" for e in els])
    loss_fraction = col("loss_fraction_at_rating", 0.0)
    for i in np.flatnonzero(np.isfinite(r_cond)):
        loss_fraction[i] = float(
            loss_fraction_at_rating(rating[i] * pf[i], volt[i], r_cond[i], "dc" if dc[i] else "ac3", pf[i])
        )
    refs = [e.protection for e in els]
    trip_devs = [devices[r] if isinstance(r, str) else r for r in refs]
    return Topology(
        names=tuple(ex.names),
        kind=np.array([KIND_CODE[k] for k in kinds]),
        kva=kva,
        rating=rating,
        power_factor=pf,
        derate=col("continuous_derate"),
        units=col("units"),
        p0_w=col("no_load_loss_kw", scale=KW),
        pk_w=col("load_loss_kw", scale=KW),
        c0=c0,
        c1=c1,
        c2=c2,
        loss_fraction=loss_fraction,
        setting=np.array([d.setting if d is not None else 1.0 for d in trip_devs]),
        trip=trip_settings(trip_devs),
        redundancy=tuple(ex.redundancy),
        path=tuple(e.path for e in els),
        dps_model=tuple(e.dps_model for e in els),
        edge_child=child,
        edge_parent=parent,
        rack_edge_rack=rack_r.astype(np.int64),
        rack_edge_parent=rack_p.astype(np.int64),
        mech_names=mech_names,
        mech_share=mech_share,
        mech_edge_load=np.array([j for j, ps in enumerate(mech_parents) for _ in ps], np.int64),
        mech_edge_parent=np.array([p for ps in mech_parents for p in ps], np.int64),
        n_racks=n_racks,
        explicit=True,
        policies=tuple(topo.policies),
        device_names=tuple(r if isinstance(r, str) else (None if r is None else "inline") for r in refs),
        voltage_v=volt,
        conductor_r_ohm=r_cond,
        length_m=length,
    )


def _rack_input(psu_curve: str | None) -> str:
    """The current a hall's rack converter takes (the facility's grid.psu without a curve: AC)."""
    return "ac" if psu_curve is None else converter_curve(psu_curve).input


def _curve_errors(topo: TopologySpec, ex: _Expanded) -> list[tuple[str, str]]:
    """Converter curves that are unknown or that the three-term loss cannot follow (named per element)."""
    out = []
    for s in sorted(set(ex.spec_index)):
        el = topo.elements[s]
        if el.curve is None:
            continue
        try:
            loss_coefficients(el.curve)
        except ValueError as e:
            out.append((f"topology.elements.{s}.curve", f"{el.name!r}: {e}"))
    return out


def _current_errors(spec, ex: _Expanded, kinds, child, parent, rack_r, rack_p, mech_parents, offsets):
    """A parent must deliver the current its child takes: AC into transformers, switchboards, UPS and rectifiers,
    DC into DC switchboards, DC busways and DC-DC; racks take what their hall's ``psu_curve`` takes; mechanical
    loads take AC."""
    out = []
    for c, p in zip(child.tolist(), parent.tolist(), strict=True):
        takes, gives = INPUT_CURRENT[kinds[c]], OUTPUT_CURRENT[kinds[p]]
        if takes != gives:
            out.append((_key(ex, c), f"{ex.names[c]!r} ({kinds[c]}) takes {takes.upper()} but its parent "
                                     f"{ex.names[p]!r} ({kinds[p]}) delivers {gives.upper()}"))  # fmt: skip
    errors: dict[int, str] = {}
    hall_of = np.searchsorted(offsets, rack_r, side="right") - 1
    delivers_dc = np.array([OUTPUT_CURRENT[k] == "dc" for k in kinds], bool)
    for h, hall in enumerate(spec.halls):
        try:
            need = _rack_input(hall.psu_curve)
        except ValueError as e:
            out.append((f"halls.{h}.psu_curve", str(e)))
            continue
        bad = np.unique(rack_p[(hall_of == h) & (delivers_dc[rack_p] != (need == "dc"))])
        for q in bad.tolist():
            what = f"{ex.names[q]!r} ({kinds[q]}) delivers {OUTPUT_CURRENT[kinds[q]].upper()}"
            errors.setdefault(q, f"{what} to racks of {hall.name!r}, whose converters take {need.upper()} "
                                 f"(halls.{h}.psu_curve)")  # fmt: skip
    out += [(_key(ex, q), msg) for q, msg in errors.items()]
    for j, ps in enumerate(mech_parents):
        out += [(f"topology.mechanical.{j}.parents", f"{ex.names[q]!r} delivers DC; mechanical loads take AC")
                for q in ps if OUTPUT_CURRENT[kinds[q]] != "ac"]  # fmt: skip
    return out


def trip_settings(devices: list[TripDevice | None]) -> prot.TripSettings:
    """:class:`models.protection.TripSettings` of the elements' devices (None: no device)."""
    n = len(devices)
    out = prot.TripSettings.none(n)
    k = max([len(d.loads) for d in devices if d is not None] + [2])
    f = {name: np.array(getattr(out, name), float).copy() for name in
         ("pickup", "tr_s", "tms", "iec_a", "iec_p", "isd", "tsd_s", "ii", "memory_s", "interrupt_s")}  # fmt: skip
    code = np.zeros(n, np.int64)
    tm, ts = np.full((n, k), np.nan), np.full((n, k), np.nan)
    for i, d in enumerate(devices):
        if d is None:
            continue
        code[i] = prot.CHARACTERISTICS[d.characteristic]
        f["pickup"][i], f["memory_s"][i], f["tsd_s"][i] = d.pickup, d.memory_s, d.tsd_s
        f["interrupt_s"][i] = d.interrupt_s
        f["isd"][i] = d.isd if d.isd is not None else np.inf
        f["ii"][i] = d.ii if d.ii is not None else np.inf
        if d.characteristic == "i2t":
            f["tr_s"][i] = d.tr_s
        elif d.characteristic == "thermal":  # tau from the time at 6 x I_r (cold curve)
            f["tr_s"][i] = d.tr_s / math.log(36.0 / (36.0 - d.pickup**2))
        elif d.characteristic == "iec":
            f["iec_a"][i], f["iec_p"][i] = prot.IEC_CURVES[d.curve]
            f["tms"][i] = d.tms
        else:
            tm[i, : len(d.loads)], ts[i, : len(d.seconds)] = d.loads, d.seconds
    return prot.TripSettings(code, table_m=tm, table_s=ts, **f)


def _key(ex: _Expanded, i: int) -> str:
    return f"topology.elements.{ex.spec_index[i]}"


def _expand(elements: list[Element], halls: dict[str, tuple[int, int]], errors: list) -> _Expanded:
    """Copies of repeated elements with their parents and racks resolved (see the spec module)."""
    ex = _Expanded()
    groups: dict[str, list[int]] = {}
    for s, el in enumerate(elements):
        width = len(str(el.count))
        copies = []
        for c in range(1, el.count + 1):
            tag = f"{c:0{width}d}"
            copies.append(len(ex.names))
            ex.spec_index.append(s)
            ex.names.append(el.name.replace("{i}", tag))
            ex.redundancy.append(el.redundancy.replace("{i}", tag) if el.redundancy else None)
        groups[el.name] = copies
        racks = _select(el.racks, halls, f"topology.elements.{s}.racks", errors)
        if racks.size % el.count:
            errors.append((f"topology.elements.{s}.racks", f"{racks.size} racks do not split evenly over "
                                                           f"count = {el.count} copies"))  # fmt: skip
            racks = racks[: racks.size - racks.size % el.count]
        ex.racks += np.split(racks, el.count) if racks.size else [np.zeros(0, np.int64)] * el.count
    by_name = {name: i for i, name in enumerate(ex.names)}
    for s, el in enumerate(elements):
        copies = groups[el.name]
        resolved: list[list[int]] = [[] for _ in copies]
        for ref in el.parents:
            if "{i}" in ref:
                grp = groups.get(ref)
                if grp is None:
                    errors.append((f"topology.elements.{s}.parents", f"no repeated element named {ref!r}"))
                    continue
                if len(copies) % len(grp):
                    errors.append((f"topology.elements.{s}.parents", f"{len(copies)} copies do not split evenly "
                                                                     f"over the {len(grp)} of {ref!r}"))  # fmt: skip
                    continue
                for c in range(len(copies)):
                    resolved[c].append(grp[(c * len(grp)) // len(copies)])
            elif ref in by_name:
                for r in resolved:
                    r.append(by_name[ref])
            else:
                errors.append((f"topology.elements.{s}.parents", f"{el.name!r}: no element named {ref!r}"))
        ex.parents += resolved
    return ex


def _select(selectors: list[str], halls: dict[str, tuple[int, int]], key: str, errors: list) -> IntArray:
    """Global rack indices of ``HALL``, ``HALL:I`` or ``HALL:FIRST-LAST`` selectors, in order."""
    out = []
    for sel in selectors:
        m = _SELECTOR.match(sel.strip())
        if not m or m["hall"] not in halls:
            errors.append((key, f"{sel!r}: expected HALL, HALL:I or HALL:FIRST-LAST with a hall of {sorted(halls)}"))
            continue
        first, size = halls[m["hall"]]
        lo = int(m["first"]) if m["first"] is not None else 0
        hi = int(m["last"]) if m["last"] is not None else (lo if m["first"] is not None else size - 1)
        if not lo <= hi < size:
            errors.append((key, f"{sel!r}: rack {hi if hi >= size else lo} does not exist ({m['hall']} has racks "
                                f"0-{size - 1})"))  # fmt: skip
            continue
        out.append(np.arange(first + lo, first + hi + 1))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _rack_label(r: int, spec: FacilitySpec, offsets: IntArray) -> str:
    h = int(np.searchsorted(offsets, r, side="right") - 1)
    return f"{spec.halls[h].name}:{r - int(offsets[h])}"


def _cycle(n: int, child: IntArray, parent: IntArray) -> list[int]:
    """One cycle of the element graph (parent -> child ... -> the first again)."""
    kids: list[list[int]] = [[] for _ in range(n)]
    for c, p in zip(child.tolist(), parent.tolist(), strict=True):
        kids[p].append(c)
    state = [0] * n
    stack_path: list[int] = []

    def visit(v: int) -> list[int] | None:
        state[v] = 1
        stack_path.append(v)
        for c in kids[v]:
            if state[c] == 1:
                return [*stack_path[stack_path.index(c) :], c]
            if state[c] == 0:
                found = visit(c)
                if found:
                    return found
        state[v] = 2
        stack_path.pop()
        return None

    for v in range(n):
        if state[v] == 0:
            found = visit(v)
            if found:
                return found
    return []


def _unreachable(n: int, child: IntArray, parent: IntArray, feeds: list[int]) -> set[int]:
    """Elements no feed reaches."""
    kids: list[list[int]] = [[] for _ in range(n)]
    for c, p in zip(child.tolist(), parent.tolist(), strict=True):
        kids[p].append(c)
    seen, stack = set(feeds), list(feeds)
    while stack:
        for c in kids[stack.pop()]:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return set(range(n)) - seen


def explode_topology(spec: FacilitySpec, source: str = "<spec>") -> TopologySpec:
    """The facility's ``[topology]`` with every repeated element written out (``count = 1``, names and parents
    resolved, racks as ``HALL:FIRST-LAST`` runs), in the order of :func:`compile_topology`'s elements: the form in
    which single elements can be edited (e.g. one hall's chain replaced)."""
    if spec.topology is None:
        raise ValueError(f"{spec.name}: no [topology] to explode (the aggregate chain)")
    topo = spec.topology
    offsets = np.cumsum([0] + [h.cdus * h.racks_per_cdu for h in spec.halls])
    halls = {h.name: (int(offsets[i]), h.cdus * h.racks_per_cdu) for i, h in enumerate(spec.halls)}
    errors: list[tuple[str, str]] = []
    ex = _expand(topo.elements, halls, errors)
    if errors:
        raise SpecError(source, errors)
    out = []
    for i, name in enumerate(ex.names):
        el = topo.elements[ex.spec_index[i]]
        update = {"name": name, "count": 1, "parents": [ex.names[p] for p in ex.parents[i]],
                  "racks": _selectors(ex.racks[i], spec, offsets), "redundancy": ex.redundancy[i]}  # fmt: skip
        out.append(el.model_copy(update=update))
    return topo.model_copy(update={"elements": out})


def _selectors(racks: IntArray, spec: FacilitySpec, offsets: IntArray) -> list[str]:
    """Global rack indices as ``HALL:FIRST-LAST`` selectors of consecutive runs within a hall."""
    out: list[str] = []
    if not racks.size:
        return out
    hall = np.searchsorted(offsets, racks, side="right") - 1
    breaks = np.flatnonzero((np.diff(racks) != 1) | (np.diff(hall) != 0)) + 1
    for run in np.split(np.arange(racks.size), breaks):
        h = int(hall[run[0]])
        lo, hi = int(racks[run[0]] - offsets[h]), int(racks[run[-1]] - offsets[h])
        out.append(f"{spec.halls[h].name}:{lo}" if lo == hi else f"{spec.halls[h].name}:{lo}-{hi}")
    return out


def _children_csr(levels, child_mats, n: int) -> tuple[IntArray, IntArray, IntArray, Array]:
    """The nodes bottom-up and each node's children with their shares as one CSR over the nodes
    (:meth:`Topology._children_csr`), from the per-height matrices."""
    rows = sp.csr_matrix((n, n))
    for lv, child in zip(levels, child_mats, strict=True):
        c = sp.csr_matrix((len(lv), n)) if child is None else sp.csr_matrix(child)
        rows = rows + sp.csr_matrix((np.ones(len(lv)), (lv, np.arange(len(lv)))), (n, len(lv))) @ c
    stacked = sp.csr_matrix(rows)
    order = np.concatenate(levels).astype(np.int64) if levels else np.zeros(0, np.int64)
    return order, stacked.indptr.astype(np.int64), stacked.indices.astype(np.int64), stacked.data.astype(float)
