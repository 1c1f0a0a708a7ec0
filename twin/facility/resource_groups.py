"""Resource groups and power policy bundles compiled into arrays over racks and GPUs.

A facility's ``[steering]`` (:mod:`twin.facility.steering_spec`) names the policy bundle in force (MaxP, MaxQ or
MaxLPS, presets of ``data/power_policies.toml``) and its resource groups; racks in no group form one group per
workload class. Each group has a priority (lower first, as NVIDIA DPS), a guarantee and a maximum per GPU [W].
:func:`gpu_bounds` turns them into what the steering allocator needs per GPU (GPUs rack by rack, as the Redfish
link numbers them): the lowest settable limit (``data/racks.toml`` ``gpu_min_limit_w``), the maximum (the group's,
at most TDP, and under MaxQ at most the efficiency cap), the guarantee (at least that lowest limit), the request
margin and the idle threshold (``data/power_policies.toml`` [steering]), and the cut weight of the GPU's workload
class (:func:`cut_weights`). Groups change at run time with :meth:`ResourceGroups.updated` (checked like the file).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from factory_twin.twin.facility.assembly import Facility, rack_catalog
from factory_twin.twin.facility.steering_spec import POLICIES, PRIORITY_MAX
from factory_twin.twin.facility.topology import _select
from numpy.typing import NDArray

from factory_twin import data

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
EFFICIENCY_GRID = 2001  # cap points between the minimum cap and the uncapped draw searched for the MaxQ cap


@lru_cache(maxsize=1)
def policy_presets() -> dict:
    """``data/power_policies.toml``: ``bundles`` (MaxP, MaxQ, MaxLPS) and the ``steering`` settings."""
    with data.path("power_policies.toml").open("rb") as fh:
        raw = tomllib.load(fh)
    missing = set(POLICIES) - set(raw["bundles"])
    if missing:
        raise ValueError(f"power_policies.toml: bundles {sorted(missing)} missing")
    return raw


@dataclass(frozen=True)
class ResourceGroups:
    """Resource groups of a facility: per group ``names``, ``priority``, ``guarantee_w`` and ``max_w`` [W per GPU,
    NaN: the rack type's default]; ``rack_group`` the group of every rack; ``policy`` the bundle in force."""

    names: tuple[str, ...]
    priority: IntArray
    guarantee_w: Array
    max_w: Array
    rack_group: IntArray
    policy: str

    @property
    def n(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"group: no resource group named {name!r}; groups: {', '.join(self.names)}")
        return self.names.index(name)

    def updated(
        self,
        name: str,
        priority: int | None = None,
        guarantee_w: float | None = None,
        max_w: float | None = None,
    ) -> ResourceGroups:
        """A copy with group ``name`` changed (run time: API, CLI, dashboard); ``ValueError`` naming the field."""
        g = self.index(name)
        pr, gu, mx = self.priority.copy(), self.guarantee_w.copy(), self.max_w.copy()
        if priority is not None:
            if isinstance(priority, bool) or int(priority) != priority or not 0 <= int(priority) <= PRIORITY_MAX:
                raise ValueError(f"priority: an integer in 0..{PRIORITY_MAX} (lower first), got {priority!r}")
            pr[g] = int(priority)
        for field_name, value, arr in (("guarantee_w", guarantee_w, gu), ("max_w", max_w, mx)):
            if value is None:
                continue
            v = float(value)
            if not np.isfinite(v) or v < 0 or (field_name == "max_w" and v == 0):
                raise ValueError(f"{field_name}: a finite power per GPU {'> 0' if field_name == 'max_w' else '>= 0'} "
                                 f"[W], got {value!r}")  # fmt: skip
            arr[g] = v
        if np.isfinite(gu[g]) and np.isfinite(mx[g]) and gu[g] > mx[g]:
            raise ValueError(f"guarantee_w: {gu[g]:g} W is above max_w {mx[g]:g} W for group {name!r}")
        return replace(self, priority=pr, guarantee_w=gu, max_w=mx)

    def with_policy(self, policy: str) -> ResourceGroups:
        if policy not in POLICIES:
            raise ValueError(f"policy: one of {', '.join(POLICIES)}, got {policy!r}")
        return replace(self, policy=policy)

    def table(self, f: Facility) -> list[dict]:
        """One row per group for people (CLI, dashboard): racks, GPUs, priority, guarantee and max [W per GPU]."""
        gpus = np.bincount(self.rack_group, f.gpus, self.n)
        racks = np.bincount(self.rack_group, minlength=self.n)
        gmin, gmax = _defaults(f, self)
        return [
            {"group": n, "racks": int(racks[i]), "gpus": int(gpus[i]), "priority": int(self.priority[i]),
             "guarantee_w": float(gmin[i]), "max_w": float(gmax[i])}
            for i, n in enumerate(self.names)
        ]  # fmt: skip


def resource_groups(f: Facility) -> ResourceGroups:
    """The facility's groups (module docstring); ``ValueError`` naming the key when a rack is in two groups."""
    spec = f.spec.steering
    offsets = np.cumsum([0] + [h.cdus * h.racks_per_cdu for h in f.spec.halls])
    halls = {h.name: (int(offsets[i]), h.cdus * h.racks_per_cdu) for i, h in enumerate(f.spec.halls)}
    rack_group = np.full(f.n_racks, -1, np.int64)
    names, prio, gu, mx = [], [], [], []
    errors: list[tuple[str, str]] = []
    for i, g in enumerate(spec.groups):
        if g.workload is not None:
            racks = np.flatnonzero((f.rack_class == f.class_names.index(g.workload)) & (rack_group < 0))
        else:
            racks = _select(g.racks, halls, f"steering.groups.{i}.racks", errors)
            taken = racks[rack_group[racks] >= 0]
            if taken.size:
                errors.append((f"steering.groups.{i}.racks", f"{taken.size} rack(s) already in group "
                                                             f"{names[rack_group[taken[0]]]!r}"))  # fmt: skip
        rack_group[racks] = len(names)
        names.append(g.name)
        prio.append(g.priority)
        gu.append(np.nan if g.guarantee_w is None else g.guarantee_w)
        mx.append(np.nan if g.max_w is None else g.max_w)
    if errors:
        raise ValueError("; ".join(f"{k}: {m}" for k, m in errors))
    for c, cls in enumerate(f.class_names):  # the rest: one group per workload class
        rest = (rack_group < 0) & (f.rack_class == c)
        if rest.any():
            name = cls if cls not in names else f"{cls}-other"
            rack_group[rest] = len(names)
            names.append(name)
            prio.append(0)
            gu.append(np.nan)
            mx.append(np.nan)
    return ResourceGroups(tuple(names), np.array(prio, np.int64), np.array(gu, float), np.array(mx, float),
                          rack_group, spec.policy)  # fmt: skip


def _defaults(f: Facility, groups: ResourceGroups) -> tuple[Array, Array]:
    """Per group: guarantee and maximum [W per GPU] with NaN replaced by the smallest minimum cap and TDP of its
    racks (for tables; per GPU the rack's own values apply)."""
    n = groups.n
    min_cap = np.full(n, np.inf)
    tdp = np.full(n, np.inf)
    np.minimum.at(min_cap, groups.rack_group, f.min_cap_w)
    np.minimum.at(tdp, groups.rack_group, f.tdp_w)
    return np.where(np.isnan(groups.guarantee_w), min_cap, groups.guarantee_w), np.where(
        np.isnan(groups.max_w), tdp, groups.max_w
    )


def min_limit_w(f: Facility) -> Array:
    """Lowest settable limit per rack [W per GPU] (``data/racks.toml`` ``gpu_min_limit_w``)."""
    cat = rack_catalog()
    per_hall = np.array([cat[h.rack_type]["gpu_min_limit_w"] for h in f.spec.halls], float)
    return per_hall[f.rack_hall]


def efficiency_cap_w(f: Facility) -> Array:
    """MaxQ's static cap per rack [W per GPU]: the cap in [minimum cap, uncapped draw] where the class's throughput
    per watt of the rack (GPU power plus the rack's non-GPU power per GPU) peaks, on the class's throughput-vs-cap
    curve (``data/gpu_curves.toml``)."""
    out = np.empty(f.n_racks)
    for c, curve in enumerate(f.curves):
        idx = np.flatnonzero(f.rack_class == c)
        if not idx.size:
            continue
        tdp, non_gpu = f.tdp_w[idx], f.non_gpu_w[idx] / f.gpus[idx]
        lo, hi = f.min_cap_w[idx] / tdp, np.minimum(f.demand_w[idx] / tdp, curve.x_demand)
        x = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, EFFICIENCY_GRID)[None, :]
        per_w = curve.throughput(x) / (x * tdp[:, None] + non_gpu[:, None])
        out[idx] = x[np.arange(idx.size), np.argmax(per_w, axis=1)] * tdp
    return out


def cut_weights(f: Facility) -> Array:
    """Cut weight per workload class [-]: the mean over classes of the value a watt buys, over the class's own,
    where value per watt = tokens/s per GPU x value per token x the curve's mean slope between the minimum cap and
    the uncapped draw per watt of TDP. Steering hands the surplus above the requests to a class with a smaller
    weight first (optimization.steering); guarantees and requests are cut in proportion to their spans (weight 1)."""
    tdp = np.array([f.tdp_w[f.rack_class == c].mean() if np.any(f.rack_class == c) else np.nan
                    for c in range(len(f.class_names))])  # fmt: skip
    v = []
    for c, (w, curve) in enumerate(zip(f.spec.workloads, f.curves, strict=True)):
        slope = (curve.y[-1] - curve.y[0]) / (curve.x[-1] - curve.x[0]) / tdp[c]
        v.append(w.tokens_per_s_per_gpu * w.value_per_mtok * 1e-6 * slope)
    v = np.array(v)
    ok = np.isfinite(v) & (v > 0)
    mean = v[ok].mean() if ok.any() else 1.0
    return np.where(ok, mean / np.where(ok, v, 1.0), 1.0)


def units_per_rack(f: Facility, gpus_per_unit: int) -> IntArray:
    """Steering units per rack: a unit is ``gpus_per_unit`` GPUs of one rack that share one demand (their mean) and
    one limit (1: every GPU on its own). ``ValueError`` unless it divides every rack's GPU count."""
    m = int(gpus_per_unit)
    n = f.gpus.astype(np.int64)
    if m != gpus_per_unit or m < 1 or np.any(n % m):
        counts = sorted(set(n.tolist()))
        raise ValueError(f"gpus_per_unit: must be a whole number >= 1 that divides every rack's GPU count {counts}, "
                         f"got {gpus_per_unit!r}")  # fmt: skip
    return n // m


@dataclass(frozen=True)
class GpuBounds:
    """What the allocator needs per GPU (GPU order rack by rack) and per group (module docstring)."""

    gpu_group: IntArray
    lo_w: Array
    hi_w: Array
    guarantee_w: Array
    margin_w: Array
    idle_w: Array
    kappa: Array
    priority: IntArray
    names: tuple[str, ...]


def gpu_bounds(f: Facility, groups: ResourceGroups, gpus_per_unit: int = 1) -> GpuBounds:
    """Per-GPU bounds of the groups under the policy in force (module docstring); with ``gpus_per_unit`` > 1 one
    entry per steering unit (:func:`units_per_rack`)."""
    st = policy_presets()["steering"]
    n_per_rack = units_per_rack(f, gpus_per_unit)
    lo = min_limit_w(f)
    hi = np.minimum(np.where(np.isnan(groups.max_w[groups.rack_group]), f.tdp_w, groups.max_w[groups.rack_group]),
                    f.tdp_w)  # fmt: skip
    if groups.policy == "MaxQ":
        hi = np.minimum(hi, efficiency_cap_w(f))
    gu = groups.guarantee_w[groups.rack_group]
    gu = np.clip(np.where(np.isnan(gu), f.min_cap_w, gu), lo, hi)
    hi = np.maximum(hi, lo)

    def per_gpu(a: Array) -> Array:
        return np.repeat(np.asarray(a, float), n_per_rack)

    return GpuBounds(
        gpu_group=per_gpu(groups.rack_group).astype(np.int64),
        lo_w=per_gpu(lo),
        hi_w=per_gpu(hi),
        guarantee_w=per_gpu(gu),
        margin_w=per_gpu(st["request_margin_fraction"] * f.tdp_w),
        idle_w=per_gpu(st["idle_factor"] * f.idle_w),
        kappa=per_gpu(cut_weights(f)[f.rack_class]),
        priority=groups.priority.copy(),
        names=groups.names,
    )
