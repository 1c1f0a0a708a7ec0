r"""Voltage ride-through of a power-electronic campus load: sag events at the POI, UPS/rectifier cease and
reconnect, the protection's disturbance counter, and the load lost and restored over time.

Per step, with voltage ``V`` [pu] at the POI (PERC1-style logic plus an explicit counter):

.. math::
    V_f \leftarrow V + (V_f - V)e^{-\Delta t/T_v}

- cease: the share ``F_cease`` of the load drops when ``V_f < V_cease`` has lasted ``T_cease``;
- reconnect: after ``V_f > V_recon`` has lasted ``T_recon`` the ceased load returns linearly over
  ``T_ramp`` (the share ``F_recon`` of it; the rest stays off);
- counter: every new disturbance (``V_f`` falling below ``V_count``; starts closer than ``merge_s`` to the
  previous one are the same) is counted; ``count`` of them within ``window_s`` latch a transfer to
  backup that drops the whole load until a manual reset (not modelled: it stays off).

Envelope check (:func:`envelope_allows`): a deviation at ``V`` for ``t`` is within the requirement if
``t <= T_allow(V)`` from the band table (ERCOT NOGRR 282 in ``data/grid_codes``).

Sources: PowerWorld PERC1 and LDELEC load models (defaults Vcease 0.5, Tcease 0.01 s, Vrecon 0.6,
Trecon 0.05 s, Tramp 1 s, Tv 0.02 s); NERC incident review of 10 Jul 2024 (three dips in about a minute
moved ~1,500 MW to backup); ERCOT NOGRR 282; field guide grid-dynamics.md section 4 and cases V6-V8, V10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Dip:
    """A rectangular voltage depression: start [s], duration [s], residual voltage [pu]."""

    start_s: float
    duration_s: float
    residual_pu: float

    def __post_init__(self) -> None:
        checks.nonnegative("duration_s", self.duration_s)
        checks.nonnegative("residual_pu", self.residual_pu)


def voltage_series(t_s: ArrayLike, dips: Sequence[Dip], nominal_pu: float = 1.0) -> Array:
    """POI voltage over time [pu]: nominal except inside dips (the lowest residual where they overlap)."""
    t = checks.finite("t_s", t_s)
    v = np.full(t.shape, float(nominal_pu))
    for d in dips:
        inside = (t >= d.start_s) & (t < d.start_s + d.duration_s)
        v = np.where(inside, np.minimum(v, d.residual_pu), v)
    return v


@dataclass(frozen=True)
class Protection:
    """UPS/rectifier behaviour and the site protection (voltages in pu, times in s).

    ``count = 0`` disables the disturbance counter (ERCOT NOGRR 282 prohibits counting sags to transfer).
    Defaults: PowerWorld PERC1 defaults, no counter.
    """

    v_cease: float = 0.5
    t_cease_s: float = 0.01
    f_cease: float = 1.0
    v_recon: float = 0.6
    t_recon_s: float = 0.05
    t_ramp_s: float = 1.0
    f_recon: float = 1.0
    tv_s: float = 0.02
    v_count: float = 0.9
    count: int = 0
    window_s: float = 60.0
    merge_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("v_cease", "v_recon", "v_count"):
            checks.positive(name, getattr(self, name))
        for name in ("t_cease_s", "t_recon_s", "t_ramp_s", "tv_s", "window_s", "merge_s"):
            checks.nonnegative(name, getattr(self, name))
        checks.in_range("f_cease", self.f_cease, 0.0, 1.0)
        checks.in_range("f_recon", self.f_recon, 0.0, 1.0)
        if self.count < 0 or int(self.count) != self.count:
            raise ValueError(f"count: must be an integer >= 0, got {self.count!r}")


@dataclass(frozen=True)
class RideThrough:
    """Result of :func:`ride_through`: share of the load online, filtered voltage, latch time [s] or nan."""

    online: Array
    v_filtered: Array
    latch_s: float
    disturbances_s: Array


def disturbance_latch_s(events_s: ArrayLike, count: int, window_s: float, merge_s: float = 0.0) -> float:
    """Time the counter latches: the first event that makes ``count`` events within ``window_s``
    (events closer than ``merge_s`` to the previous kept one merge into it); nan if never."""
    kept: list[float] = []
    for t in np.sort(checks.finite("events_s", events_s)):
        if kept and t - kept[-1] < merge_s:
            continue
        kept.append(float(t))
        if count and len(kept) >= count and t - kept[-count] <= window_s:
            return float(t)
    return math.nan


def ride_through(t_s: ArrayLike, v_pu: ArrayLike, prot: Protection) -> RideThrough:
    """Share of the pre-event load online over time (at rest, fully online at 1 pu before ``t_s[0]``)."""
    t = checks.finite("t_s", t_s)
    v = checks.nonnegative("v_pu", v_pu)
    dt = np.diff(t, prepend=t[0])
    online = np.empty_like(v)
    vf_out = np.empty_like(v)
    vf, below, above = 1.0, 0.0, 0.0  # at rest at nominal voltage before the record
    ceased, returning, ramp_t, latched = False, False, 0.0, False
    events: list[float] = []
    was_low = vf < prot.v_count
    latch = math.nan
    ramp_rate = math.inf if prot.t_ramp_s == 0 else 1 / prot.t_ramp_s
    level = 1.0
    for k in range(t.size):
        vf = float(v[k]) + (vf - float(v[k])) * (math.exp(-dt[k] / prot.tv_s) if prot.tv_s > 0 else 0.0)
        below = below + dt[k] if vf < prot.v_cease else 0.0
        above = above + dt[k] if vf > prot.v_recon else 0.0
        low = vf < prot.v_count
        if low and not was_low and (not events or t[k] - events[-1] >= prot.merge_s):
            events.append(float(t[k]))
            if prot.count and not latched:
                latched = not math.isnan(disturbance_latch_s(events, prot.count, prot.window_s, prot.merge_s))
                latch = float(t[k]) if latched else latch
        was_low = low
        if not ceased and below >= prot.t_cease_s - 1e-12 and vf < prot.v_cease:
            ceased, returning = True, False
            level = 1.0 - prot.f_cease
        elif ceased and above >= prot.t_recon_s - 1e-12:
            ceased, returning, ramp_t = False, True, 0.0
        if returning:
            ramp_t += dt[k]
            level = min(1.0 - prot.f_cease + prot.f_cease * prot.f_recon * min(ramp_t * ramp_rate, 1.0), 1.0)
            if ramp_t * ramp_rate >= 1.0:
                returning = False
        online[k] = 0.0 if latched else level
        vf_out[k] = vf
    return RideThrough(online, vf_out, latch, np.array(events))


def envelope_allows(v_pu: ArrayLike, duration_s: ArrayLike, bands: Sequence[tuple[float, float, float]]) -> Array:
    """Whether a deviation at ``v_pu`` lasting ``duration_s`` must be ridden through: ``t <= T_allow(V)``.

    ``bands`` are ``(v_low, v_high, t_allow_s)`` with ``v_low <= V < v_high`` (``inf`` = continuous);
    a voltage in no band is not covered (False).
    """
    v = checks.nonnegative("v_pu", v_pu)
    t = checks.nonnegative("duration_s", duration_s)
    allow = np.full(np.broadcast(v, t).shape, -np.inf)
    for lo, hi, ta in bands:
        allow = np.where((v >= lo) & (v < hi), ta, allow)
    return t <= allow


# ----------------------------------------------------------------------------- closed forms (V6, V10)
def bridge_energy_j(power_w: ArrayLike, durations_s: ArrayLike, efficiency: float = 1.0) -> Array:
    r"""Energy a UPS supplies to carry ``P`` through outages: :math:`P\sum t/\eta` [J]."""
    return np.asarray(power_w, float) * np.sum(durations_s) / efficiency


def constant_power_current_ratio(v_pu: ArrayLike) -> Array:
    r"""Current of a constant-power front end relative to nominal: :math:`I/I_0 = 1/V` [-]."""
    return 1 / checks.positive("v_pu", v_pu)


def initial_rocof_hz_s(lost_w: ArrayLike, system_va: ArrayLike, inertia_s: ArrayLike, f0_hz: float = 60.0) -> Array:
    r"""Initial rate of change of frequency after losing load ``ΔP``: :math:`\Delta P f_0/(2HS)` [Hz/s], upward."""
    return np.asarray(lost_w, float) * f0_hz / (2 * np.asarray(inertia_s, float) * np.asarray(system_va, float))
