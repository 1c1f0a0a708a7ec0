r"""GPU power and performance: power-cap -> throughput curves, thermal throttling, power smoothing.

Throughput against drawn power is concave above a knee (dynamic power grows roughly with the cube
of clock frequency, throughput linearly) and convex below it (physics.md section 1.8). The optimizer
needs a concave piecewise-linear curve, :math:`thr(x) = \min_k (a_k + b_k x)`, which it enforces
with hypograph rows. Fitted curves ship in ``data/gpu_curves.toml`` (``bench/fit_gpu_curves.py``);
``twin/facility/curves.py`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ThroughputCurve:
    r"""Concave, non-decreasing piecewise-linear throughput against drawn power.

    ``x`` is the power drawn per GPU as a fraction of TDP, ``y`` the throughput normalized to 1 at
    the class's uncapped draw. Between breakpoints the curve is linear; above ``x_demand = x[-1]``
    it is flat (a cap above the uncapped draw does nothing). Below ``x_min = x[0]``, the minimum
    usable draw (the knee or minimum cap), the measured curve turns convex; that region is not
    modelled: the first segment is extended linearly (clipped at 0), the same function the LP rows
    describe, which over-estimates the measured convex region. Keep caps at or above ``x_min``.

    Parameters
    ----------
    x : array_like
        Breakpoints, strictly increasing [-, fraction of TDP].
    y : array_like
        Throughput at the breakpoints [-]; slopes must be >= 0 and non-increasing.

    Source: physics.md sections 1.8 and 2.5.
    """

    x: Array
    y: Array

    def __post_init__(self) -> None:
        x = checks.nonnegative("x", self.x).ravel().copy()
        y = checks.nonnegative("y", self.y).ravel().copy()
        if x.size < 2 or x.shape != y.shape:
            raise ValueError(f"x: need >= 2 breakpoints matching y, got {x.size} and {y.size}")
        if np.any(np.diff(x) <= 0):
            raise ValueError(f"x: breakpoints must be strictly increasing, got {x.tolist()}")
        b = np.diff(y) / np.diff(x)
        if np.any(b < 0) or np.any(np.diff(b) > 1e-12 * np.max(b)):
            raise ValueError(f"y: slopes must be >= 0 and non-increasing (concave), got {b.tolist()}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def rescaled(self, idle_from: float, idle_to: float) -> ThroughputCurve:
        """The curve moved to a GPU whose idle draw is ``idle_to`` of its TDP, measured on one idling at
        ``idle_from`` [-]: the same throughput at the same share of the dynamic range above idle,
        ``x' = i' + (x - i)(1 - i') / (1 - i)``. A scaling rule for GPUs without a measured sweep (DVFS power
        above idle sets the clock; idle and static power do no work) [estimate]."""
        i, j = (
            float(checks.in_range("idle_from", idle_from, 0.0, 0.9)),
            float(checks.in_range("idle_to", idle_to, 0, 0.9)),
        )
        return ThroughputCurve(j + (self.x - i) * (1.0 - j) / (1.0 - i), self.y)

    @classmethod
    def from_points(cls, x: ArrayLike, y: ArrayLike, x_min: float) -> ThroughputCurve:
        """Upper concave envelope of measured points with ``x >= x_min``, truncated at its maximum.

        The envelope (upper hull, monotone chain) keeps every point that is not below the chord of
        its neighbours; the part past the highest point is dropped (the curve is flat there).

        Parameters
        ----------
        x : array_like
            Drawn power per GPU as a fraction of TDP [-].
        y : array_like
            Normalized throughput [-].
        x_min : float
            Minimum usable draw (knee or minimum cap) [-]; lower points are ignored.
        """
        xs, ys = checks.nonnegative("x", x).ravel(), checks.nonnegative("y", y).ravel()
        keep = xs >= float(checks.nonnegative("x_min", x_min))
        order = np.argsort(xs[keep], kind="stable")
        px, py = xs[keep][order], ys[keep][order]
        hull: list[int] = []
        for i in range(px.size):  # monotone chain over a handful of measured points
            while len(hull) >= 2:
                j, k = hull[-2], hull[-1]
                cross = (px[k] - px[j]) * (py[i] - py[j]) - (py[k] - py[j]) * (px[i] - px[j])
                if cross < 0:  # k lies above the chord j -> i: keep it
                    break
                hull.pop()
            hull.append(i)
        top = int(np.argmax(py[hull]))
        idx = hull[: top + 1]
        return cls(px[idx], py[idx])

    @property
    def x_min(self) -> float:
        """Minimum usable draw (knee / minimum cap) [-, fraction of TDP]."""
        return float(self.x[0])

    @property
    def x_demand(self) -> float:
        """Uncapped draw [-, fraction of TDP]; throughput is flat above it."""
        return float(self.x[-1])

    def segments(self) -> tuple[Array, Array]:
        r"""``(intercepts a_k, slopes b_k)``: :math:`thr(x) = \min_k (a_k + b_k x)` for ``x >= 0``.

        One row per segment plus a flat row ``(y[-1], 0)`` for the region above ``x_demand``.
        """
        b = np.diff(self.y) / np.diff(self.x)
        a = self.y[:-1] - b * self.x[:-1]
        return np.append(a, self.y[-1]), np.append(b, 0.0)

    def throughput(self, x: ArrayLike) -> Array:
        """Normalized throughput [-] at drawn power fraction ``x`` [-] (vectorized)."""
        xv = checks.nonnegative("x", x)
        b0 = (self.y[1] - self.y[0]) / (self.x[1] - self.x[0])
        below = np.maximum(self.y[0] + b0 * (xv - self.x[0]), 0.0)
        return np.where(xv < self.x[0], below, np.interp(xv, self.x, self.y))


@dataclass(frozen=True, eq=False)
class ClassCurves:
    r"""The throughput curves of items (racks, GPUs) of several workload classes (``cls``: each item's index into
    ``curves``), evaluated together from each curve's lines (:meth:`ThroughputCurve.segments`, the LP's rows):
    :math:`thr(x) = \max(0, \min_k (a_k + b_k x))` for ``x >= 0``, the clip at 0 being the first segment's
    extension below ``x_min`` (:func:`models.piecewise.envelope_ratio_per_item`)."""

    curves: tuple[ThroughputCurve, ...]
    cls: NDArray[np.int64]

    def __post_init__(self) -> None:
        c = np.asarray(self.cls, np.int64)
        if c.size and (c.min() < 0 or c.max() >= len(self.curves)):
            raise ValueError(f"cls: class indices must be in [0, {len(self.curves)})")
        segs = [k.segments() for k in self.curves]
        width = max(a.size for a, _ in segs)
        a_all, b_all = np.full((len(segs), width), np.inf), np.zeros((len(segs), width))
        for i, (a, b) in enumerate(segs):
            a_all[i, : a.size], b_all[i, : b.size] = a, b
        object.__setattr__(self, "cls", c)
        object.__setattr__(self, "_lines", (a_all, b_all))

    def ratio(self, x: ArrayLike, x_ref: ArrayLike) -> Array:
        """``thr(x) / thr(x_ref)`` clipped to [0, 1] per item [-] (a reference throughput below 1e-12 counts as
        1e-12): the share of its throughput an item keeps at ``x`` rather than ``x_ref`` [-, fractions of TDP]."""
        from factory_twin.models.piecewise import envelope_ratio_per_item

        xv, rv = checks.nonnegative("x", x), checks.nonnegative("x_ref", x_ref)
        return envelope_ratio_per_item(xv, rv, self.cls, *self._lines)


@dataclass(frozen=True, eq=False)
class DrawnPower:
    r"""Mean power a GPU draws under a power cap: a clipped normal demand.

    The workload's instantaneous power, if no limit acted, is taken as normal with mean ``mu`` and
    standard deviation ``sigma``; the power controller holds it at or below ``eta`` x cap, so the mean
    draw is the mean of the clipped demand (all as fractions of TDP):

    .. math::
        \bar P(c) = E[\min(P, \eta c)] = \mu - \sigma\,[\varphi(z) - z\,(1 - \Phi(z))],
        \quad z = (\eta c - \mu) / \sigma

    It rises with the cap (slope ``eta`` (1 - Phi(z)) > 0) and is concave, so it has an inverse
    (:meth:`cap_for`). The uncapped draw is the draw at the cap's maximum, TDP (``x_demand``);
    ``mu`` may exceed TDP (the hardware limit, not the workload, binds at full power). Fitted per
    workload class to the A100 sweep by ``bench/fit_gpu_curves.py`` (``data/gpu_curves.toml``).

    Source: A100 DVFS power-cap sweep, Colangelo et al., arXiv 2507.00909 (drawn power per GPU
    against cap, 100-400 W); the clipped-normal form is this project's model.
    """

    mu: float
    sigma: float
    eta: float
    _table: tuple[Array, Array] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        checks.positive("mu", self.mu)
        checks.positive("sigma", self.sigma)
        checks.positive("eta", self.eta)
        c = np.linspace(0.0, 1.0, 2001)
        object.__setattr__(self, "_table", (c, self.drawn(c)))

    def drawn(self, cap: ArrayLike) -> Array:
        """Mean drawn power [-, fraction of TDP] at cap ``cap`` [-, fraction of TDP] (vectorized)."""
        z = (self.eta * np.asarray(cap, float) - self.mu) / self.sigma
        return self.mu - self.sigma * (np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) - z * ndtr(-z))

    @property
    def x_demand(self) -> float:
        """Uncapped draw: the draw at a cap of TDP [-]."""
        return float(self._table[1][-1])

    def cap_for(self, drawn: ArrayLike) -> Array:
        """The cap [-] whose mean draw is ``drawn`` [-] (inverse; clipped to caps in [0, 1])."""
        c, d = self._table
        return np.interp(np.asarray(drawn, float), d, c)


def power_drawn_w(demand_w: ArrayLike, cap_w: ArrayLike) -> Array:
    """Power a GPU draws under a cap, :math:`P = \\min(P_{demand}, P_{cap})` [W].

    Parameters
    ----------
    demand_w : array_like
        Uncapped draw [W].
    cap_w : array_like
        Power cap [W].
    """
    return np.minimum(checks.nonnegative("demand_w", demand_w), checks.nonnegative("cap_w", cap_w))


def thermal_throttle_limit_w(
    t_die_c: ArrayLike,
    t_coolant_c: ArrayLike,
    t_max_c: ArrayLike,
    r_total_k_w: ArrayLike,
    min_w: ArrayLike,
    was_throttled: ArrayLike | None = None,
    hysteresis_k: ArrayLike = 0.0,
) -> tuple[Array, NDArray[np.bool_]]:
    r"""Power limit imposed by thermal slowdown, and which GPUs are throttled.

    A controller, not physics (physics.md 1.1): when the die is at or above its maximum operating
    temperature, the GPU is held to the steady-state power that keeps the die at that temperature
    with the present coolant, floored at the minimum power:

    .. math::
        P_{lim} = \max\left(\frac{T_{max} - T_{coolant}}{R_{total}},\ P_{min}\right)
        \ \text{if}\ T_{die} \ge T_{max},\ \text{else}\ \infty

    With ``was_throttled`` given, a throttled GPU stays throttled until its die falls below
    ``T_max - hysteresis_k`` (slowdown releases with hysteresis instead of toggling every step).

    Parameters
    ----------
    t_die_c : array_like
        Die temperature [degC].
    t_coolant_c : array_like
        Temperature of the reference node [degC]: the local coolant, or the cold plate for a limit that
        acts within the die's own time constant (then ``r_total_k_w`` is the die-to-plate resistance).
    t_max_c : array_like
        GPU max operating temperature (software slowdown threshold) [degC].
    r_total_k_w : array_like
        Resistance from the die to the reference node [K/W].
    min_w : array_like
        Lowest power the limit may impose (minimum cap) [W].
    was_throttled : array_like of bool, optional
        Throttle state at the previous step.
    hysteresis_k : array_like
        Release hysteresis [K], >= 0 (rack catalog value; GPUs' slowdown hysteresis is not public
        [estimate]).

    Returns
    -------
    ``(limit_w, throttled)``: limit [W] (``inf`` where not throttled) and a boolean array.

    Source: threshold semantics from NVML / ``nvidia-smi -q`` (physics.md 2.1, H100 87 degC).
    """
    return ThermalThrottle(t_max_c, r_total_k_w, min_w, hysteresis_k).limit(t_die_c, t_coolant_c, was_throttled)


@dataclass(frozen=True, eq=False)
class ThermalThrottle:
    """The thermal slowdown of :func:`thermal_throttle_limit_w` with its constant parameters validated once
    (the engine calls :meth:`limit` every second over many GPUs).

    Parameters: ``t_max_c`` [degC], ``r_total_k_w`` (die to reference node) [K/W], ``min_w`` [W],
    ``hysteresis_k`` [K]; arrays broadcast over GPUs.
    """

    t_max_c: ArrayLike
    r_total_k_w: ArrayLike
    min_w: ArrayLike
    hysteresis_k: ArrayLike = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "t_max_c", checks.finite("t_max_c", self.t_max_c))
        object.__setattr__(self, "r_total_k_w", checks.positive("r_total_k_w", self.r_total_k_w))
        object.__setattr__(self, "min_w", checks.nonnegative("min_w", self.min_w))
        object.__setattr__(self, "hysteresis_k", checks.nonnegative("hysteresis_k", self.hysteresis_k))

    def limit(
        self, t_die_c: ArrayLike, t_ref_c: ArrayLike, was_throttled: ArrayLike | None = None
    ) -> tuple[Array, NDArray[np.bool_]]:
        """``(limit_w, throttled)`` for die temperature ``t_die_c`` and reference node ``t_ref_c`` [degC]."""
        t_die, t_ref = np.asarray(t_die_c, float), np.asarray(t_ref_c, float)
        if not np.isfinite(t_die.sum() + t_ref.sum()):  # NaN/inf propagate; named checks only then
            checks.finite("t_die_c", t_die)
            checks.finite("t_coolant_c", t_ref)
        throttled = t_die >= self.t_max_c
        if was_throttled is not None:
            throttled |= np.asarray(was_throttled, bool) & (t_die >= self.t_max_c - self.hysteresis_k)
        limit = np.where(throttled, np.maximum((self.t_max_c - t_ref) / self.r_total_k_w, self.min_w), np.inf)
        return limit, throttled


def smooth_power_w(
    p_prev_w: ArrayLike,
    p_target_w: ArrayLike,
    dt_s: ArrayLike,
    ramp_up_w_s: ArrayLike,
    ramp_down_w_s: ArrayLike,
    floor_w: ArrayLike,
) -> Array:
    r"""GPU power after one step of NVIDIA-style power smoothing (power floor, ramp-rate limits).

    .. math::
        P = \mathrm{clip}\big(\max(P_{target}, P_{floor}),\ P_{prev} - r_{down}\Delta t,\
        P_{prev} + r_{up}\Delta t\big)

    The floor raises the target (the GPU burns power rather than drop below it); the ramp limits
    then always hold, so a GPU that starts below the floor climbs to it at ``ramp_up_w_s``.

    Parameters
    ----------
    p_prev_w : array_like
        Power at the previous step [W].
    p_target_w : array_like
        Power the workload would draw now [W].
    dt_s : array_like
        Step length [s].
    ramp_up_w_s, ramp_down_w_s : array_like
        Largest rise and fall rates [W/s].
    floor_w : array_like
        Power floor [W].

    Source: NVML power-smoothing knobs (floor as percent of TMP, ``RAMP_UP_RATE`` and
    ``RAMP_DOWN_RATE`` in W/s) on GB300 NVL72, field-guide grid.md section 2.
    """
    prev = checks.nonnegative("p_prev_w", p_prev_w)
    target = checks.nonnegative("p_target_w", p_target_w)
    dt = checks.positive("dt_s", dt_s)
    up = checks.nonnegative("ramp_up_w_s", ramp_up_w_s)
    down = checks.nonnegative("ramp_down_w_s", ramp_down_w_s)
    floor = checks.nonnegative("floor_w", floor_w)
    return ramp_limit_unchecked(prev, np.maximum(target, floor), up * dt, down * dt)


def ramp_limit_unchecked(prev: Array, target: Array, up_step: float | Array, down_step: float | Array) -> Array:
    """The ramp clip of :func:`smooth_power_w` (floor already in ``target``) without argument checks, for
    inner time loops: ``clip(target, prev - down_step, prev + up_step)`` with steps in W."""
    return np.minimum(np.maximum(target, prev - down_step), prev + up_step)
