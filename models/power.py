"""Electrical power chain from the grid meter to the rack, and the site battery (BESS).

Chain order from the grid: transformer -> UPS -> busway/PDU -> rack PSU. The rack input is the IT
meter boundary, so PSU losses count as IT (the usual PUE convention). Mechanical load (pumps, fans,
chillers) hangs on the transformer secondary and bypasses the UPS and busway. Each loss upstream of
the IT meter is a convex quadratic in the power carried, so the chain inverts in closed form. (The
dispatch LP does not linearize this chain by itself: it draws secants through the whole steady site
model, see ``optimization.linearization``.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

# 80 PLUS Titanium, 230 V internal redundant: minimum efficiency at 10/20/50/100 % of rated load
# (https://en.wikipedia.org/wiki/80_Plus).
TITANIUM_LOAD_POINTS = (0.10, 0.20, 0.50, 1.00)
TITANIUM_EFFICIENCIES = (0.90, 0.94, 0.96, 0.91)
# Li-ion round-trip efficiency assumed by NREL ATB utility-scale storage
# (https://atb.nrel.gov/electricity/2023/utility-scale_battery_storage), split evenly.
ATB_ROUND_TRIP = 0.85


def transformer_loss_w(
    s_va: ArrayLike, rating_va: ArrayLike, no_load_loss_w: ArrayLike, load_loss_w: ArrayLike
) -> Array:
    """Transformer loss, ``P = P0 + Pk (S / S_r)^2``.

    Parameters
    ----------
    s_va : array_like
        Apparent power through the transformer [VA], >= 0.
    rating_va : array_like
        Rated apparent power ``S_r`` [VA], > 0.
    no_load_loss_w : array_like
        No-load (core) loss ``P0`` [W], >= 0.
    load_loss_w : array_like
        Load (winding I^2R) loss at rated current ``Pk`` [W], >= 0.

    Returns
    -------
    ndarray
        Loss [W]. Source: standard two-term transformer loss model (physics.md 1.5; 10 CFR 431.196).
    """
    x = checks.nonnegative("s_va", s_va) / checks.positive("rating_va", rating_va)
    p0 = checks.nonnegative("no_load_loss_w", no_load_loss_w)
    return p0 + checks.nonnegative("load_loss_w", load_loss_w) * x**2


def transformer_efficiency(
    s_va: ArrayLike,
    rating_va: ArrayLike,
    no_load_loss_w: ArrayLike,
    load_loss_w: ArrayLike,
    power_factor: ArrayLike,
) -> Array:
    """Transformer efficiency, ``eta = S pf / (S pf + P0 + Pk (S/S_r)^2)``.

    Parameters are those of :func:`transformer_loss_w` plus ``power_factor`` [-] in (0, 1]
    (DOE ratings use 1). Zero load gives 0 (or NaN when ``P0`` is also 0).
    """
    pf = checks.in_range("power_factor", power_factor, 0.0, 1.0)
    checks.positive("power_factor", pf)
    p_w = np.asarray(s_va, dtype=float) * pf
    loss = transformer_loss_w(s_va, rating_va, no_load_loss_w, load_loss_w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return p_w / (p_w + loss)


def transformer_optimal_load_fraction(no_load_loss_w: ArrayLike, load_loss_w: ArrayLike) -> Array:
    """Load fraction ``x* = sqrt(P0 / Pk)`` of peak efficiency (core loss equals winding loss
    there).

    ``no_load_loss_w`` [W] >= 0, ``load_loss_w`` [W] > 0. Source: d(eta)/dx = 0 of the two-term
    model.
    """
    p0 = checks.nonnegative("no_load_loss_w", no_load_loss_w)
    return np.sqrt(p0 / checks.positive("load_loss_w", load_loss_w))


def ups_loss_w(p_out_w: ArrayLike, rating_w: ArrayLike, c0: ArrayLike, c1: ArrayLike, c2: ArrayLike) -> Array:
    """Converter (UPS) loss, three-term curve ``P = P_r (c0 + c1 x + c2 x^2)``, ``x = P_out / P_r``.

    Parameters
    ----------
    p_out_w : array_like
        Output power [W], >= 0.
    rating_w : array_like
        Rated output ``P_r`` [W], > 0.
    c0, c1, c2 : array_like
        No-load, proportional and square-law loss coefficients [-] (per unit of ``P_r``), >= 0.

    Returns
    -------
    ndarray
        Loss [W]; efficiency is ``x / (x + c0 + c1 x + c2 x^2)``. Source: Schneider Electric,
        "Definitions of losses" (physics.md 1.5).
    """
    r = checks.positive("rating_w", rating_w)
    x = checks.nonnegative("p_out_w", p_out_w) / r
    k0, k1, k2 = (checks.nonnegative(n, c) for n, c in (("c0", c0), ("c1", c1), ("c2", c2)))
    return r * (k0 + k1 * x + k2 * x**2)


def fit_loss_coefficients(load_points: ArrayLike, efficiencies: ArrayLike) -> tuple[float, float, float]:
    """Coefficients ``(c0, c1, c2) >= 0`` of :func:`ups_loss_w` fitted to a converter's efficiency points.

    The loss per unit of rating at load ``x`` is ``x / eta - x = c0 + c1 x + c2 x^2``: linear in the
    coefficients, so non-negative least squares on the loss at the points gives them (scipy ``nnls``).
    ``load_points`` load fractions [-] > 0, strictly increasing, at least 3; ``efficiencies`` [-] in (0, 1].
    Source of the form: Schneider Electric, "Definitions of losses" (physics.md 1.5); a fixed-ratio DC-DC
    fits with ``c1 = 0`` (Vicor BCM datasheet loss model ``P_NL + I^2 R``).
    """
    from scipy.optimize import nnls

    x, eta = _psu_curve(load_points, efficiencies)
    if x.size < 3:
        raise ValueError(f"load_points: need >= 3 points to fit three coefficients, got {x.size}")
    coef, _ = nnls(np.column_stack([np.ones_like(x), x, x * x]), x / eta - x)
    return float(coef[0]), float(coef[1]), float(coef[2])


def converter_efficiency(x: ArrayLike, c0: float, c1: float, c2: float) -> Array:
    """Efficiency ``x / (x + c0 + c1 x + c2 x^2)`` [-] of the three-term loss of :func:`ups_loss_w` at load
    fractions ``x`` [-] > 0."""
    x = checks.positive("x", x)
    return x / (x + c0 + c1 * x + c2 * x * x)


def busway_loss_w(p_w: ArrayLike, rating_w: ArrayLike, loss_fraction_at_rating: ArrayLike) -> Array:
    """Busway/PDU conduction loss ``P = f P_r (P / P_r)^2`` (I^2R at fixed voltage and pf).

    ``p_w`` carried power [W] >= 0; ``rating_w`` [W] > 0; ``loss_fraction_at_rating`` ``f`` [-] in
    [0, 1): loss at rated power as a fraction of it.
    """
    r = checks.positive("rating_w", rating_w)
    f = checks.in_range("loss_fraction_at_rating", loss_fraction_at_rating, 0.0, 1.0)
    if np.any(f >= 1.0):
        raise ValueError("loss_fraction_at_rating: must be < 1")
    return f * r * (checks.nonnegative("p_w", p_w) / r) ** 2


def _psu_curve(load_points: ArrayLike, efficiencies: ArrayLike) -> tuple[Array, Array]:
    if isinstance(load_points, tuple) and isinstance(efficiencies, tuple):  # a facility's curve: checked once
        return _psu_curve_checked(load_points, efficiencies)
    return _check_psu_curve(load_points, efficiencies)


@lru_cache(maxsize=64)
def _psu_curve_checked(load_points: tuple, efficiencies: tuple) -> tuple[Array, Array]:
    x, eta = _check_psu_curve(load_points, efficiencies)
    x.flags.writeable = eta.flags.writeable = False
    return x, eta


def _check_psu_curve(load_points: ArrayLike, efficiencies: ArrayLike) -> tuple[Array, Array]:
    x = checks.positive("load_points", load_points)
    eta = checks.in_range("efficiencies", efficiencies, 0.0, 1.0)
    checks.positive("efficiencies", eta)
    if x.ndim != 1 or x.shape != eta.shape or x.size < 2:
        raise ValueError("load_points: must be 1-D, same length as efficiencies, >= 2 points")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"load_points: must be strictly increasing, got {x.tolist()}")
    return x, eta


def psu_input_w(
    p_out_w: ArrayLike,
    rating_w: ArrayLike,
    load_points: ArrayLike = TITANIUM_LOAD_POINTS,
    efficiencies: ArrayLike = TITANIUM_EFFICIENCIES,
) -> Array:
    """Rack PSU (AC -> DC) input power ``P_in = P_out / eta(P_out / P_r)``.

    Parameters
    ----------
    p_out_w : array_like
        DC output [W], >= 0.
    rating_w : array_like
        Installed PSU rating sharing that output [W], > 0 (count x unit rating: units share
        equally).
    load_points : array_like
        Load fractions of the efficiency curve [-], strictly increasing.
    efficiencies : array_like
        Efficiency at each load point [-], in (0, 1].

    Returns
    -------
    ndarray
        Input power [W]. Efficiency is linear between points and held at the end values outside
        them: below the first point the loss stays proportional to output (no standby floor), above
        the last (overload) the last efficiency applies; overload is not flagged. Default curve: 80
        PLUS Titanium, 230 V internal redundant, 90/94/96/91 % at 10/20/50/100 %
        (https://en.wikipedia.org/wiki/80_Plus).
    """
    from factory_twin.models.piecewise import interp  # numba: np.interp's values, faster for racks in no order

    xp, fp = _psu_curve(load_points, efficiencies)
    p = checks.nonnegative("p_out_w", p_out_w)
    x = p / checks.positive("rating_w", rating_w)
    return p / interp(x.ravel(), xp, fp).reshape(x.shape)


def three_phase_current_a(p_w: ArrayLike, v_ll_v: ArrayLike, pf: ArrayLike) -> Array:
    """Line current of a balanced three-phase feeder, ``I = P / (sqrt(3) V_LL pf)``.

    ``p_w`` real power [W] >= 0, ``v_ll_v`` line-to-line voltage [V] > 0, ``pf`` power factor [-]
    in (0, 1].
    """
    pf_ = checks.in_range("pf", pf, 0.0, 1.0)
    checks.positive("pf", pf_)
    v = checks.positive("v_ll_v", v_ll_v)
    return checks.nonnegative("p_w", p_w) / (math.sqrt(3.0) * v * pf_)


def _quadratic_root(a: float, b: float, rhs: Array, tol: Array) -> Array:
    """Non-negative root of ``a q^2 + b q = rhs`` (a >= 0, b > 0); 0 for ``-tol <= rhs < 0``
    (rounding), NaN below."""
    r = np.maximum(rhs, 0.0)
    q = 2.0 * r / (b + np.sqrt(b * b + 4.0 * a * r))  # cancellation-free form
    return np.where(rhs >= -tol, q, np.nan)


@dataclass(frozen=True)
class ChainFlow:
    """Power flows of one chain evaluation [W]; ``psu_loss_w`` per rack, the rest campus totals."""

    psu_loss_w: Array
    it_w: Array
    busway_loss_w: Array
    ups_loss_w: Array
    transformer_loss_w: Array
    mech_w: Array
    grid_w: Array

    @property
    def losses_w(self) -> Array:
        """Electrical losses upstream of the IT meter (busway + UPS + transformer) [W]."""
        return self.busway_loss_w + self.ups_loss_w + self.transformer_loss_w


@dataclass(frozen=True)
class PowerChain:
    """Campus power chain: identical parallel transformers and UPS modules share load equally.

    Parameters
    ----------
    transformer_count : int
        Transformers in parallel [-].
    transformer_rating_va, transformer_no_load_loss_w, transformer_load_loss_w : float
        Per transformer: rating ``S_r`` [VA], no-load loss ``P0`` [W], load loss at rating ``Pk``
        [W].
    ups_count : int
        UPS modules in parallel [-].
    ups_rating_w, ups_c0, ups_c1, ups_c2 : float
        Per module: rating [W] and three-term loss coefficients [-] (:func:`ups_loss_w`).
    busway_rating_w, busway_loss_fraction : float
        Aggregate busway/PDU rating [W] and loss at rating as a fraction of it [-].
    power_factor : float
        Site power factor at the transformer [-]: ``S = P / pf`` sets the winding loss.
    psu_load_points, psu_efficiencies : tuple of float
        Rack PSU efficiency curve (:func:`psu_input_w`); default 80 PLUS Titanium.

    Notes
    -----
    Forward, with IT input ``I`` (rack input, after PSUs) and mechanical load ``M``::

        U = I + busway(I);  V = U + n_u P_u (c0 + c1 u + c2 u^2), u = U / (n_u P_u)
        W = V + M;          G = W + n_t P0 + Pk (W / pf)^2 / (n_t S_r^2)

    Each stage is a convex increasing quadratic, so ``G(I, M)`` is jointly convex and ``max_it_w``
    inverts it exactly. Ratings only scale losses; overload is not flagged.
    """

    transformer_count: int
    transformer_rating_va: float
    transformer_no_load_loss_w: float
    transformer_load_loss_w: float
    ups_count: int
    ups_rating_w: float
    ups_c0: float
    ups_c1: float
    ups_c2: float
    busway_rating_w: float
    busway_loss_fraction: float
    power_factor: float
    psu_load_points: tuple[float, ...] = TITANIUM_LOAD_POINTS
    psu_efficiencies: tuple[float, ...] = TITANIUM_EFFICIENCIES

    def __post_init__(self) -> None:
        for name in ("transformer_count", "ups_count"):
            n = getattr(self, name)
            if isinstance(n, bool) or int(n) != n or n < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {n!r}")
        for name in ("transformer_rating_va", "ups_rating_w", "busway_rating_w", "power_factor"):
            checks.positive(name, getattr(self, name))
        for name in (
            "transformer_no_load_loss_w",
            "transformer_load_loss_w",
            "ups_c0",
            "ups_c1",
            "ups_c2",
        ):
            checks.nonnegative(name, getattr(self, name))
        checks.in_range("power_factor", self.power_factor, 0.0, 1.0)
        if not 0.0 <= self.busway_loss_fraction < 1.0:
            raise ValueError(f"busway_loss_fraction: must be in [0, 1), got {self.busway_loss_fraction!r}")
        _psu_curve(self.psu_load_points, self.psu_efficiencies)

    # Coefficients of each stage as ``out -> in = k0 + k1 out + k2 out^2``.
    @property
    def _busway(self) -> tuple[float, float, float]:
        return 0.0, 1.0, self.busway_loss_fraction / self.busway_rating_w

    @property
    def _ups(self) -> tuple[float, float, float]:
        r = self.ups_count * self.ups_rating_w
        return r * self.ups_c0, 1.0 + self.ups_c1, self.ups_c2 / r

    @property
    def _transformer(self) -> tuple[float, float, float]:
        n, s = self.transformer_count, self.transformer_rating_va * self.power_factor
        return n * self.transformer_no_load_loss_w, 1.0, self.transformer_load_loss_w / (n * s * s)

    def _upstream(self, it_w: ArrayLike, mech_w: ArrayLike) -> tuple[Array, ...]:
        i = checks.nonnegative("it_w", it_w)
        m = checks.nonnegative("mech_w", mech_w)
        bus = busway_loss_w(i, self.busway_rating_w, self.busway_loss_fraction)
        u = i + bus
        n_u, n_t = self.ups_count, self.transformer_count
        ups = n_u * ups_loss_w(u / n_u, self.ups_rating_w, self.ups_c0, self.ups_c1, self.ups_c2)
        w = u + ups + m
        s_va = w / (self.power_factor * n_t)
        tx = n_t * transformer_loss_w(
            s_va,
            self.transformer_rating_va,
            self.transformer_no_load_loss_w,
            self.transformer_load_loss_w,
        )
        return i, bus, u, ups, m, w, tx

    def forward(
        self,
        rack_dc_w: ArrayLike,
        mech_w: ArrayLike,
        *,
        psu_rating_w: ArrayLike,
        rack_axis: int | None = -1,
    ) -> ChainFlow:
        """Rack DC power and mechanical load -> per-stage losses and grid import.

        Parameters
        ----------
        rack_dc_w : array_like
            PSU DC output [W], >= 0: per rack (racks along ``rack_axis``, summed into the campus IT
            input; a scalar counts as one rack) or, with ``rack_axis=None``, campus totals (e.g.
            over time).
        mech_w : array_like
            Mechanical load on the transformer secondary [W], >= 0; broadcasts with the summed IT.
        psu_rating_w : array_like
            Installed PSU rating feeding each element of ``rack_dc_w`` [W], > 0 (PSU count x unit
            rating).
        rack_axis : int or None
            Axis of ``rack_dc_w`` over racks; ``None`` when it already holds totals.

        Returns
        -------
        ChainFlow
            ``grid_w = it_w + busway_loss_w + ups_loss_w + transformer_loss_w + mech_w``;
            ``it_w = sum(rack_dc_w + psu_loss_w)`` over racks.
        """
        dc = checks.nonnegative("rack_dc_w", rack_dc_w)
        rack_in = psu_input_w(dc, psu_rating_w, self.psu_load_points, self.psu_efficiencies)
        it = rack_in if rack_axis is None else np.sum(np.atleast_1d(rack_in), axis=rack_axis)
        return self.upstream(it, mech_w, psu_loss_w=rack_in - dc)

    def upstream(self, it_w: ArrayLike, mech_w: ArrayLike, psu_loss_w: ArrayLike = 0.0) -> ChainFlow:
        """The chain above the IT meter: IT input ``it_w`` [W] and mechanical load ``mech_w`` [W] ->
        busway, UPS and transformer losses and grid import (``psu_loss_w`` is only carried along)."""
        i, bus, _, ups, m, w, tx = self._upstream(it_w, mech_w)
        return ChainFlow(np.asarray(psu_loss_w, float), i, bus, ups, tx, m, w + tx)

    def max_it_w(self, grid_limit_w: ArrayLike, mech_w: ArrayLike) -> Array:
        """Largest IT input [W] whose grid import meets ``grid_limit_w`` [W] given ``mech_w`` [W].

        Inverts the three quadratic stages in closed form (cancellation-free root, exact to
        rounding). NaN where even zero IT does not fit (limit below mechanical load plus no-load
        losses). Ratings are not enforced: the caller caps IT at equipment limits if needed.
        """
        g = checks.nonnegative("grid_limit_w", grid_limit_w)
        m = checks.nonnegative("mech_w", mech_w)
        (t0, t1, t2), (u0, u1, u2), (b0, b1, b2) = self._transformer, self._ups, self._busway
        tol = 16 * np.finfo(float).eps * g  # intermediate flows are <= g
        v = _quadratic_root(t2, t1, g - t0, tol) - m  # UPS input
        return _quadratic_root(b2, b1, _quadratic_root(u2, u1, v - u0, tol) - b0, tol)


@dataclass(frozen=True)
class Bess:
    """Battery energy storage system.

    Parameters
    ----------
    energy_capacity_j : float
        Usable nameplate energy [J], > 0.
    power_limit_w : float
        Charge and discharge power limit at the site terminals [W], > 0.
    eta_charge, eta_discharge : float
        One-way efficiencies [-] in (0, 1]; default ``sqrt(0.85)`` each, the NREL ATB Li-ion round
        trip of 0.85 (https://atb.nrel.gov/electricity/2023/utility-scale_battery_storage) split
        evenly.
    soc_min, soc_max : float
        State-of-charge window as fractions of capacity [-], ``0 <= soc_min < soc_max <= 1``;
        default the full range (no reserve).
    """

    energy_capacity_j: float
    power_limit_w: float
    eta_charge: float = math.sqrt(ATB_ROUND_TRIP)
    eta_discharge: float = math.sqrt(ATB_ROUND_TRIP)
    soc_min: float = 0.0
    soc_max: float = 1.0

    def __post_init__(self) -> None:
        checks.positive("energy_capacity_j", self.energy_capacity_j)
        checks.positive("power_limit_w", self.power_limit_w)
        for name in ("eta_charge", "eta_discharge"):
            checks.positive(name, checks.in_range(name, getattr(self, name), 0.0, 1.0))
        checks.in_range("soc_min", self.soc_min, 0.0, 1.0)
        checks.in_range("soc_max", self.soc_max, 0.0, 1.0)
        if not self.soc_min < self.soc_max:
            raise ValueError(f"soc_min: must be < soc_max, got {self.soc_min!r} >= {self.soc_max!r}")

    @property
    def round_trip_efficiency(self) -> float:
        """``eta_RT = eta_charge * eta_discharge`` [-]."""
        return self.eta_charge * self.eta_discharge


def bess_step(energy_j: ArrayLike, p_w: ArrayLike, dt_s: ArrayLike, bess: Bess) -> tuple[Array, Array]:
    """Advance the stored energy by one step of held power.

    ``E_next = E + (eta_c P_ch - P_dis / eta_d) dt``, ``P_dis = max(p, 0)``, ``P_ch = max(-p, 0)``.

    Parameters
    ----------
    energy_j : array_like
        Stored energy [J], within ``[0, energy_capacity_j]``.
    p_w : array_like
        Requested terminal power [W]; > 0 discharges into the site, < 0 charges from it.
    dt_s : array_like
        Step length [s], > 0.
    bess : Bess
        Battery parameters.

    Returns
    -------
    energy_next_j, p_actual_w : ndarray
        Next stored energy [J] and the terminal power that actually flowed [W]: the request clipped
        to ``+-power_limit_w`` and to what the SOC window allows over the step (the window edge is
        then reached exactly). A battery outside its window may only move back toward it.
    """
    e = checks.in_range("energy_j", energy_j, 0.0, bess.energy_capacity_j)
    p = checks.finite("p_w", p_w)
    dt = checks.positive("dt_s", dt_s)
    e_min, e_max = bess.soc_min * bess.energy_capacity_j, bess.soc_max * bess.energy_capacity_j
    p_dis_soc = np.maximum(e - e_min, 0.0) * bess.eta_discharge / dt  # empties to the floor
    p_ch_soc = np.maximum(e_max - e, 0.0) / (bess.eta_charge * dt)  # fills to the ceiling
    p_act = np.clip(p, -np.minimum(bess.power_limit_w, p_ch_soc), np.minimum(bess.power_limit_w, p_dis_soc))
    de = (bess.eta_charge * np.maximum(-p_act, 0.0) - np.maximum(p_act, 0.0) / bess.eta_discharge) * dt
    # Where the SOC window bound the step, land on its edge exactly (no rounding drift).
    floor = (p >= p_dis_soc) & (p_dis_soc <= bess.power_limit_w)
    ceiling = (-p >= p_ch_soc) & (p_ch_soc <= bess.power_limit_w)
    e_next = np.where(floor, np.minimum(e, e_min), np.where(ceiling, np.maximum(e, e_max), e + de))
    return e_next, p_act
