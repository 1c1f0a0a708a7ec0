r"""GPU power smoothing over a time series: power floor, ramp limits, stop delay, and what they cost.

Blackwell GPUs (GB200/GB300) expose a smoothing profile: a minimum power floor (share of TDP) that the
GPU burns up to when work drops, ramp-up and ramp-down rates (W/s), and a stop delay during which the
floor is held after real work ends before the ramp down. Per step:

.. math::
    u_k = \max(p^{dem}_k, F\,P_{TDP}\,a_k),\quad p_k = \mathrm{clip}(u_k, p_{k-1} - r_{dn}\Delta t,\
    p_{k-1} + r_{up}\Delta t),\quad p_k \le e\,P_{TDP}

(the ramp clip of :func:`models.gpu.smooth_power_w`) with :math:`a_k = 1` while the job runs and for
the stop delay after it stops, and ``e`` the electrical design power (EDP) multiple allowed above TDP.
The floor burns :math:`\sum (p - p^{dem})^+\Delta t`;
the ramp-up limit withholds :math:`\sum (p^{dem} - p)^+\Delta t` from the work (its throughput cost).

Source: arXiv 2508.14318 section IV-B (MPF <= 90 % TDP, EDP >= 1.1 TDP, 10.5 % energy at a 90 % floor);
NVML power-smoothing API (``PERCENT_TMP_FLOOR``, ``RAMP_UP_RATE``, ``RAMP_DOWN_RATE``,
``RAMP_DOWN_HYSTERESIS``); field guide grid-dynamics.md section 3.2 and case V5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from factory_twin.models import checks
from factory_twin.models.gpu import ramp_limit_unchecked
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class SmoothingProfile:
    """One smoothing profile: floor [share of TDP], ramp rates [W/s per GPU], stop delay [s], EDP limit
    [multiple of TDP]; ``inf`` rates mean no limit, ``floor_fraction = 0`` no floor."""

    floor_fraction: float = 0.0
    ramp_up_w_s: float = math.inf
    ramp_down_w_s: float = math.inf
    stop_delay_s: float = 0.0
    edp_fraction: float = math.inf

    def __post_init__(self) -> None:
        checks.in_range("floor_fraction", self.floor_fraction, 0.0, 1.0)
        for name in ("ramp_up_w_s", "ramp_down_w_s", "edp_fraction"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)!r}")
        checks.nonnegative("stop_delay_s", self.stop_delay_s)

    @property
    def active(self) -> bool:
        """Whether the profile changes anything."""
        return self.floor_fraction > 0 or math.isfinite(self.ramp_up_w_s) or math.isfinite(self.ramp_down_w_s)


@dataclass(frozen=True)
class SmoothedPower:
    """Result of :func:`smooth_series`: per-GPU power (groups x time) and its costs per group [J/GPU]."""

    power_w: Array
    burn_j: Array
    deficit_j: Array


def floor_active(running: ArrayLike, dt_s: float, stop_delay_s: float) -> BoolArray:
    """Where the floor holds: while running and for ``stop_delay_s`` after the last running step
    (groups x time; before the first running step the floor is off)."""
    run = np.asarray(running, bool)
    k = np.arange(run.shape[-1])
    last = np.maximum.accumulate(np.where(run, k, -(10**12)), axis=-1)
    return (k - last) * dt_s <= stop_delay_s + 1e-9 * dt_s


def smooth_series(
    demand_w: ArrayLike,
    tdp_w: ArrayLike,
    dt_s: float,
    profile: SmoothingProfile,
    running: ArrayLike | None = None,
    p0_w: ArrayLike | None = None,
    cap_w: ArrayLike | None = None,
) -> SmoothedPower:
    """Apply the profile to per-GPU demand (groups x time) held over steps of ``dt_s`` [s].

    ``running`` (groups x time, default all) marks real work for the floor and stop delay; ``p0_w``
    is the power before the first step (default the first demand); ``cap_w`` (groups x time) a power cap
    that binds the floor too (e.g. a job-start cap ramp). Loops over time, vectorized over groups.
    """
    dem = checks.nonnegative("demand_w", np.atleast_2d(demand_w))
    tdp = checks.positive("tdp_w", tdp_w) * np.ones(dem.shape[0])
    dt = float(checks.positive("dt_s", dt_s))
    run = np.ones(dem.shape, bool) if running is None else np.broadcast_to(running, dem.shape)
    floor = profile.floor_fraction * tdp[:, None] * floor_active(run, dt, profile.stop_delay_s)
    top = np.minimum(np.maximum(dem, floor), profile.edp_fraction * tdp[:, None])
    if cap_w is not None:
        top = np.minimum(top, checks.nonnegative("cap_w", cap_w))
    if not profile.active:
        out = top
    else:
        out = np.empty_like(dem)
        p = dem[:, 0].copy() if p0_w is None else np.broadcast_to(checks.nonnegative("p0_w", p0_w), tdp.shape)
        up, dn = profile.ramp_up_w_s * dt, profile.ramp_down_w_s * dt
        for k in range(dem.shape[1]):
            p = ramp_limit_unchecked(p, top[:, k], up, dn)
            out[:, k] = p
    return SmoothedPower(out, np.maximum(out - dem, 0.0).sum(axis=1) * dt, np.maximum(dem - out, 0.0).sum(axis=1) * dt)


# ----------------------------------------------------------------------------- closed forms (V3, V5)
def floor_burn_per_period_j(p_low_w: ArrayLike, floor_w: ArrayLike, duty: ArrayLike, period_s: ArrayLike) -> Array:
    r"""Energy burned by a floor over one sharp-edged iteration: :math:`(F - P_{low})^+ (1-d)T` [J]."""
    return np.maximum(np.asarray(floor_w, float) - np.asarray(p_low_w, float), 0.0) * (1 - np.asarray(duty)) * period_s


def floor_overhead(p_high_w: ArrayLike, p_low_w: ArrayLike, floor_w: ArrayLike, duty: ArrayLike) -> Array:
    r"""Floor burn as a share of the unsmoothed energy: :math:`(F - P_{low})^+(1-d)/\bar P` [-]."""
    lo = np.asarray(p_low_w, float)
    mean = lo + np.asarray(duty) * (np.asarray(p_high_w, float) - lo)
    return floor_burn_per_period_j(p_low_w, floor_w, duty, 1.0) / mean


def ramp_rate_per_gpu_w_s(site_ramp_w_s: ArrayLike, gpus: ArrayLike) -> Array:
    r"""Per-GPU ramp rate that keeps ``N`` GPUs moving together within a site ramp limit: :math:`r = R/N` [W/s]."""
    return np.asarray(site_ramp_w_s, float) / np.asarray(gpus, float)
