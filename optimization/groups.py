"""Racks -> dispatch groups (workload class x hall or class x CDU) and group caps -> rack caps.

Racks in a group share a rack type (a hall has one type, a CDU one class), hence the same TDP, idle,
minimum cap, curve and thermal resistance. For identical concave throughput curves under a shared
limit an equal cap inside a group is optimal, so the LP needs one cap per group, not per rack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]

GROUPINGS = ("hall", "cdu")
PER_GPU = ("tdp_w", "idle_w", "min_cap_w", "demand_w", "t_max_c")


@dataclass(frozen=True)
class Groups:
    """Group index of every rack and per-group data (per-GPU values are shared by the group's
    racks)."""

    grouping: str  # "hall" or "cdu": what ``zone`` indexes
    rack_group: IntArray
    cls: IntArray
    zone: IntArray
    names: tuple[str, ...]  # "class@zone"
    class_names: tuple[str, ...]  # workload class of each group
    gpus: Array
    non_gpu_w: Array
    tdp_w: Array
    idle_w: Array
    min_cap_w: Array
    demand_w: Array
    t_max_c: Array
    r_total_k_w: Array
    c_rack_w_k: Array

    @property
    def n(self) -> int:
        return self.cls.size


def make_groups(f, grouping: str = "hall") -> Groups:
    """Group the racks of facility ``f`` by workload class and ``grouping`` (``"hall"`` or
    ``"cdu"``).

    ``c_rack_w_k`` is the coolant heat-capacity rate of one rack [W/K] (``rack_m_dot_kg_s`` x c_p at
    the TCS setpoint) and ``r_total_k_w`` the die-to-coolant resistance [K/W]. Both may vary from
    rack to rack: the group keeps the worst rack (largest resistance, smallest flow), so that the
    group's die limit holds for every rack in it.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping: must be one of {GROUPINGS}, got {grouping!r}")
    zone_of_rack = f.rack_hall if grouping == "hall" else f.rack_cdu
    key = f.rack_class.astype(np.int64) * (int(zone_of_rack.max()) + 1) + zone_of_rack
    _, first, rack_group = np.unique(key, return_index=True, return_inverse=True)
    n = first.size
    r_total = f.r_die_plate_k_w + f.r_plate_coolant_k_w
    cp = f.tcs.cp_j_kgk(f.spec.cooling.tcs.supply_setpoint_c)
    per_gpu = {k: np.asarray(getattr(f, k), float) for k in PER_GPU}
    for k, v in per_gpu.items():
        if np.any(np.abs(v - v[first][rack_group]) > 1e-9 * np.abs(v).max()):
            raise ValueError(f"grouping: racks of one group differ in {k}; use grouping='cdu'")
    cls, zone = f.rack_class[first], zone_of_rack[first]
    zone_names = f.hall_names if grouping == "hall" else tuple(f"cdu-{i}" for i in range(f.n_cdus))
    names = tuple(f"{f.class_names[c]}@{zone_names[z]}" for c, z in zip(cls, zone, strict=True))
    return Groups(
        grouping=grouping,
        rack_group=rack_group,
        cls=cls,
        zone=zone,
        names=names,
        class_names=tuple(f.class_names[c] for c in cls),
        gpus=np.bincount(rack_group, f.gpus, n),
        non_gpu_w=np.bincount(rack_group, f.non_gpu_w, n),
        r_total_k_w=_worst(np.maximum, r_total, rack_group, n),
        c_rack_w_k=_worst(np.minimum, f.rack_m_dot_kg_s * cp, rack_group, n),
        **{k: v[first] for k, v in per_gpu.items()},
    )


def _worst(ufunc, values: Array, rack_group: IntArray, n: int) -> Array:
    """Per-group reduction (``np.maximum`` or ``np.minimum``) of a per-rack array."""
    out = np.full(n, np.inf if ufunc is np.minimum else -np.inf)
    ufunc.at(out, rack_group, values)
    return out


def disaggregate(
    groups: Groups, cap_w: Array, rack_min_w: Array | None = None, rack_max_w: Array | None = None
) -> Array:
    """Per-rack cap [W per GPU] from group caps ``cap_w`` [..., group]: every rack takes its group's
    cap.

    Optional per-rack bounds clip the result (the twin clips to ``[min_cap_w, tdp_w]`` anyway).
    """
    out = np.asarray(cap_w, float)[..., groups.rack_group]
    if rack_min_w is not None or rack_max_w is not None:
        out = np.clip(out, rack_min_w, rack_max_w)
    return out


def rack_caps_w(f, groups: Groups, cap_w: Array) -> Array:
    """Per-rack caps [W per GPU] to command from group caps ``cap_w`` [G]: a cap at the uncapped draw
    means "no cap" (TDP) for classes that draw ``min(demand, cap)`` (fitted draws already map to TDP);
    each rack takes its group's cap within ``[min_cap_w, tdp_w]``."""
    draws_cap = np.array([f.drawn[c] is None for c in groups.cls])
    at_top = (np.asarray(cap_w, float) >= groups.demand_w * (1 - 1e-9)) & draws_cap
    return disaggregate(groups, np.where(at_top, groups.tdp_w, cap_w), f.min_cap_w, f.tdp_w)


def group_caps_w(f, groups: Groups, drawn_w: Array) -> Array:
    """Group caps [W per GPU] under which busy GPUs draw ``drawn_w`` [..., group] (the LP's decision):
    the draw itself for classes that draw ``min(demand, cap)``, the inverse of the class's fitted draw
    (:meth:`twin.facility.assembly.Facility.cap_for_drawn_w`) for classes with ``drawn_power = "fit"``."""
    out = np.array(drawn_w, float)
    for c, d in enumerate(f.drawn):
        g = groups.cls == c
        if d is not None and g.any():
            out[..., g] = d.cap_for(out[..., g] / groups.tdp_w[g]) * groups.tdp_w[g]
    return out


def group_drawn_w(f, groups: Groups, rack_cap_w: Array) -> Array:
    """Mean power drawn per busy GPU of each group [W] under per-rack caps ``rack_cap_w``."""
    return aggregate(groups, f.drawn_w(np.asarray(rack_cap_w, float))) / np.bincount(groups.rack_group, None, groups.n)


def aggregate(groups: Groups, rack_values: Array, weights: Array | None = None) -> Array:
    """Sum (or the ``weights``-weighted mean when given) of a per-rack array over each group."""
    v = np.asarray(rack_values, float)
    if weights is None:
        return np.bincount(groups.rack_group, v, groups.n)
    w = np.asarray(weights, float)
    return np.bincount(groups.rack_group, v * w, groups.n) / np.bincount(groups.rack_group, w, groups.n)
