"""The Power page's steering panel: one MaxLPS allocation (issue 22) from a live snapshot, as tables.

The live twin does not steer; the panel shows what :class:`optimization.steering_control.SteeringController` would
allocate now, from the present snapshot alone (no state kept between snapshots: the demand is not peak-held and the
budgets carry no integral action). It sees, as :class:`twin.simulation.power_loop.Measurement`: per GPU the demand
(each rack's uncapped demand per GPU, ``rack_gpu_demand_w_per_gpu``, repeated over its GPUs), per rack the GPU power
drawn, every element's load, the routing in force (the open elements), the grid import; the site budget is the import
limit in force. The snapshot has no cooling room: the site cooling row never binds here. The resource groups and the
policy bundle are those in force in the runner (``meta["steering"]``, changed at run time by its ``resource_group``
and ``power_policy`` commands: :mod:`twin.live.runner`); the controller's groups are rebuilt only when they change.
The allocation is MaxLPS's under every policy, within the policy's bounds (MaxQ: every GPU at most at its efficiency
cap); under MaxP and MaxQ the GPUs would hold static limits instead, which the page says.

Tables (SI inside; the page converts):

- per element carrying GPU power, and the site import (:func:`tier_table`): its budget at its input (continuous
  limit; the site: the import limit in force) and load, the budget steering derives on the GPU power through it, the
  GPU limits allocated through it and the GPUs' demand through it (``S @ x``: ``S[e, r]`` the share of rack ``r``'s
  power element ``e`` carries), and whether it binds (its node's budget cut a guarantee or a request, and the
  element sets it);
- per resource group (:func:`group_table`): priority, guarantee and maximum per GPU, GPUs, demand, allocation and
  satisfaction, the mean over the group's GPUs with demand of ``min(limit, demand) / demand`` (docs/maxlps.md, after
  nvPAX);
- the guarantees that do not fit and the nodes over budget at every GPU's lowest limit, named (:func:`warnings`).
"""

from __future__ import annotations

import threading
import time as wall
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from factory_twin.models.units import KW, MW
from factory_twin.optimization.steering import Allocation
from factory_twin.optimization.steering_control import ScenarioBudgets, SteeringController
from factory_twin.twin.facility.resource_groups import ResourceGroups
from factory_twin.twin.live.runner import Snapshot, steering_meta
from factory_twin.twin.simulation.power_loop import Measurement
from numpy.typing import NDArray

Array = NDArray[np.float64]
SITE_ROW = "site import"
BIND_TOL = 1e-9  # relative: an element whose budget equals its node's within this sets it


class InForceBudgets(ScenarioBudgets):
    """Element budgets = continuous limits; the site import = ``site_w`` [W], the import limit in force of the
    snapshot (set before each allocation)."""

    def __init__(self, f):
        super().__init__(f)
        self.site_w = np.inf

    def __call__(self, time: np.datetime64, scenario, m=None) -> tuple[Array, float]:
        return self.limit_w, self.site_w


@dataclass(frozen=True)
class Steered:
    """One allocation from a snapshot: the measurement, the allocation, the budgets on GPU power per element and
    the site rows [W] and the time the allocation took [s]."""

    m: Measurement
    allocation: Allocation
    gpu_budget_w: Array
    import_limit_w: float
    compute_s: float


class SnapshotSteering:
    """A steering controller for facility ``f`` (built once: costly at campus scale) and one allocation per snapshot
    (:meth:`__call__`, cached for the last snapshot; thread-safe), under the groups in force (:meth:`follow`)."""

    def __init__(self, f):
        self.f = f
        self.budgets = InForceBudgets(f)
        self.ctl = SteeringController(f, budgets=self.budgets)
        self.base = self.ctl.groups  # the facility's own groups
        self.in_force = steering_meta(self.base)
        self.rebuilds = 0  # times the controller's groups were rebuilt for a change (follow)
        self._lock = threading.Lock()
        self._closed: bytes | None = None
        self._routing = None
        self._snap: Snapshot | None = None
        self._steered: Steered | None = None

    def routing(self, closed: NDArray[np.bool_]):
        """The routing for the open/closed state ``closed`` (the same object while it does not change, so the
        controller keeps its tree)."""
        key = np.asarray(closed, bool).tobytes()
        if key != self._closed:
            self._closed, self._routing = key, self.f.topology.routing(closed)
        return self._routing

    def measurement(self, snap: Snapshot) -> Measurement:
        """:class:`Measurement` of ``snap`` (module docstring); ``ValueError`` when it is not of this facility or has
        no step yet."""
        f = self.f
        if snap.meta.get("now") is None:
            raise ValueError("no plant step yet")
        demand = snap.get("rack_gpu_demand_w_per_gpu")
        if demand is None or demand.shape != (f.n_racks,) or snap.get("el_name", np.empty(0)).size != f.topology.n:
            raise ValueError(f"the snapshot is not of facility {f.spec.name!r} (or has no demand or diagram)")
        gpus = f.gpus.astype(np.int64)
        return Measurement(
            time=np.datetime64(snap.meta["time"], "s"),
            gpu_demand_w=np.repeat(np.asarray(demand, np.float32), gpus),
            rack_gpu_w=np.asarray(snap["rack_gpu_power_w"], float) * f.gpus,
            element_in_w=np.asarray(snap["el_load_kw"], float) * KW,
            routing=self.routing(snap["el_closed"]),
            grid_w=float(snap.meta["now"]["grid_import_mw"]) * MW,
            ambient=(np.nan, np.nan),
            cooling_room_w=np.inf,
            scenario=None,
        )

    def follow(self, steering: Mapping[str, Any] | None) -> None:
        """Put a snapshot's ``meta["steering"]`` in force in the controller (``None``: the facility's own groups);
        its bounds and cells are rebuilt once, and only when the groups or the policy change."""
        want = self.in_force if steering is None else steering
        if want == self.in_force:
            return
        groups = groups_from_meta(self.base, want)
        self.ctl.groups = groups  # set_policy rebuilds bounds and cells from ctl.groups: every change at once
        self.ctl.set_policy(groups.policy)
        self.ctl.mode = "steer"  # MaxLPS's allocation within the policy's bounds (module docstring)
        self.in_force = steering_meta(groups)
        self.rebuilds += 1

    def __call__(self, snap: Snapshot) -> Steered:
        """One allocation for ``snap`` (the cached one when it is the last snapshot seen)."""
        with self._lock:
            if snap is self._snap and self._steered is not None:
                return self._steered
            t0 = wall.perf_counter()
            m = self.measurement(snap)
            self.follow(snap.meta.get("steering"))
            limit_w = float(snap.meta["import_limit"]["mw"]) * MW
            self.budgets.site_w = limit_w
            ctl = self.ctl
            ctl.held, ctl.rack_limit_w = None, None  # from this snapshot alone (module docstring)
            ctl(m)
            alloc, gpu_budget_w = ctl.last, ctl.gpu_budget_w
            self._snap = snap
            self._steered = Steered(m, alloc, gpu_budget_w, limit_w, wall.perf_counter() - t0)
            return self._steered


def groups_from_meta(base: ResourceGroups, steering: Mapping[str, Any]) -> ResourceGroups:
    """``base`` (the facility's groups) with the policy and the groups' settings of ``meta["steering"]``
    (:func:`twin.live.runner.steering_meta`; ``None``: the default); ``ValueError`` when they are not its groups."""
    rows = steering["groups"]
    if tuple(r["name"] for r in rows) != base.names:
        raise ValueError(f"the snapshot's resource groups are not the facility's ({', '.join(base.names)})")

    def w(key: str) -> NDArray:
        return np.array([np.nan if r[key] is None else float(r[key]) for r in rows])

    prio = np.array([int(r["priority"]) for r in rows], np.int64)
    return replace(base, priority=prio, guarantee_w=w("guarantee_w"), max_w=w("max_w"), policy=steering["policy"])


def binding_rows(ctl: SteeringController, s: Steered) -> NDArray[np.bool_]:
    """Per element and site row (import, cooling): True where the element's node cut a guarantee or a request
    (a budget filled by surplus, with every demand met, does not bind) and the element's budget sets the node's (A
    and B of a pair with equal budgets both)."""
    tree = ctl.tree
    node_budget, _ = tree.node_budgets(s.gpu_budget_w)
    member_budget = s.gpu_budget_w[tree.member_element] / tree.member_share
    cut = [n for n, levels in s.allocation.binding.items() if any(not lv.startswith("surplus") for lv in levels)]
    bound = np.isin(tree.member_node, cut)
    sets = member_budget <= node_budget[tree.member_node] * (1 + BIND_TOL)
    out = np.zeros(s.gpu_budget_w.size, bool)
    out[tree.member_element[bound & sets]] = True
    return out


def tier_table(ctl: SteeringController, snap: Snapshot, s: Steered) -> dict[str, NDArray]:
    """Per element carrying GPU power, then the site import (module docstring): ``name``, ``depth`` (-1: the site),
    ``limit_w``, ``load_w``, ``gpu_budget_w``, ``allocation_w``, ``demand_w`` [W] and ``binding``."""
    f, m = ctl.f, s.m
    shares = ctl.shares
    rack_demand_w = np.asarray(snap["rack_gpu_demand_w_per_gpu"], float) * f.gpus
    rack_limit_w = s.allocation.rack_limit_w
    carries = np.diff(shares.indptr) > 0
    n_el = f.topology.n
    keep = np.append(np.flatnonzero(carries), n_el)  # elements with GPU power below them, then the site import
    return {
        "name": np.append(np.asarray(snap["el_name"], str), SITE_ROW)[keep],
        "depth": np.append(np.asarray(snap["el_depth"], np.int64), -1)[keep],
        "limit_w": np.append(f.topology.continuous_limit_w, s.import_limit_w)[keep],
        "load_w": np.append(m.element_in_w, m.grid_w)[keep],
        "gpu_budget_w": s.gpu_budget_w[keep],
        "allocation_w": np.append(shares @ rack_limit_w, rack_limit_w.sum())[keep],
        "demand_w": np.append(shares @ rack_demand_w, rack_demand_w.sum())[keep],
        "binding": binding_rows(ctl, s)[keep],
    }


def tier_rows(table: dict[str, NDArray], max_depth: int, n: int) -> tuple[NDArray[np.int64], int]:
    """Rows of ``table`` to show: the site first, then the elements at most ``max_depth`` below the feeds (0: the
    feeds), binding ones first, then by allocation over GPU budget, at most ``n`` rows; and how many elements were
    candidates."""
    depth = table["depth"]
    cand = np.flatnonzero((depth >= 0) & (depth <= max_depth))
    with np.errstate(divide="ignore", invalid="ignore"):
        used = np.nan_to_num(table["allocation_w"] / table["gpu_budget_w"], nan=0.0, posinf=0.0)
    order = cand[np.lexsort((-used[cand], ~table["binding"][cand]))]
    return np.concatenate([np.flatnonzero(depth < 0), order[: max(n - 1, 0)]]), cand.size


@dataclass(frozen=True)
class GroupRow:
    """A resource group's row: priority (lower first), guarantee and maximum [W per GPU; the defaults resolved],
    GPUs, demand and allocation [W], satisfaction [-] (module docstring; NaN without demand)."""

    name: str
    priority: int
    guarantee_w: float
    max_w: float
    gpus: int
    demand_w: float
    allocation_w: float
    satisfaction: float


def group_table(ctl: SteeringController, s: Steered) -> list[GroupRow]:
    """One :class:`GroupRow` per resource group, in priority order."""
    groups = ctl.groups
    g = ctl.bounds.gpu_group
    demand = np.asarray(s.m.gpu_demand_w, float)
    limit = np.asarray(s.allocation.limit_w, float)
    n = groups.n
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(demand > 0, np.minimum(limit, demand) / demand, 0.0)
    active = np.bincount(g, demand > 0, n)
    sat = np.bincount(g, ratio, n) / np.where(active > 0, active, np.nan)
    dem, alloc = np.bincount(g, demand, n), np.bincount(g, limit, n)
    rows = [
        GroupRow(
            r["group"],
            r["priority"],
            r["guarantee_w"],
            r["max_w"],
            r["gpus"],
            float(dem[i]),
            float(alloc[i]),
            float(sat[i]),
        )
        for i, r in enumerate(groups.table(ctl.f))
    ]
    return sorted(rows, key=lambda r: r.priority)


def warnings(s: Steered) -> list[str]:
    """The allocator's guarantees that do not fit and its power-brake nodes, as sentences (kW)."""
    a = s.allocation
    out = [
        f"guarantee of group {group!r} does not fit under {label}: {short / KW:,.1f} kW short"
        for label, group, short in a.infeasible
    ]
    out += [f"{label}: {x / KW:,.1f} kW over its budget with every GPU at its lowest limit" for label, x in a.brake]
    return out
