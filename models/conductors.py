"""Conductors of the power distribution: resistance, I^2 R loss, sizing by ampacity, copper mass.

Resistance of one conductor at temperature ``T`` (IEC 60028 standard annealed copper, 100 % IACS)::

    R = rho_20 (1 + alpha_20 (T - 20)) L / A                  [ohm], rho_20 in ohm mm2/m, L in m, A in mm2

Loss of a circuit carrying real power ``P`` at voltage ``V`` over conductors of resistance ``R`` each:

* ``dc``: two-wire (positive and return), ``I = P / V``, ``P_loss = 2 I^2 R = 2 P^2 R / V^2``
* ``ac3``: balanced three-phase, ``I = P / (sqrt(3) V_LL pf)``, ``P_loss = 3 I^2 R = P^2 R / (V_LL pf)^2``
  (a balanced neutral carries no current)

Both are ``f P_r (P / P_r)^2`` with ``f`` the loss at the rating ``P_r`` over ``P_r``: the busway form of
:func:`models.power.busway_loss_w`, which the one-line diagram evaluates. A bolted fault at the end of a DC
feeder of loop resistance ``R`` and inductance ``L`` fed at ``V`` rises from the load current ``i_0`` as
``i(t) = V/R + (i_0 - V/R) exp(-t R / L)`` (:mod:`models.protection` clears it). Sources and values:
``data/conductors.toml``.
"""

from __future__ import annotations

import math

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
SYSTEMS = ("dc", "ac3")
CURRENT_CARRYING = {"dc": 2, "ac3": 3}  # conductors that carry load current (a balanced neutral does not)


def resistance_ohm(
    length_m: ArrayLike, area_mm2: ArrayLike, rho20_ohm_mm2_m: float, alpha_per_k: float, temp_c: ArrayLike
) -> Array:
    """Resistance of one conductor [ohm]: ``rho_20 (1 + alpha (T - 20)) L / A`` (IEC 60028).

    ``length_m`` [m] >= 0, ``area_mm2`` cross-section [mm2] > 0, ``rho20_ohm_mm2_m`` resistivity at 20 degC
    [ohm mm2/m] > 0, ``alpha_per_k`` [1/K], ``temp_c`` conductor temperature [degC].
    """
    rho = checks.positive("rho20_ohm_mm2_m", rho20_ohm_mm2_m) * (1.0 + alpha_per_k * (np.asarray(temp_c, float) - 20.0))
    return rho * checks.nonnegative("length_m", length_m) / checks.positive("area_mm2", area_mm2)


def line_current_a(p_w: ArrayLike, voltage_v: ArrayLike, system: str, power_factor: ArrayLike = 1.0) -> Array:
    """Conductor current [A] of a ``dc`` (``P / V``) or ``ac3`` (``P / (sqrt(3) V_LL pf)``) circuit at ``p_w`` [W]."""
    _system(system)
    p, v = checks.nonnegative("p_w", p_w), checks.positive("voltage_v", voltage_v)
    if system == "dc":
        return p / v
    pf = checks.in_range("power_factor", power_factor, 0.0, 1.0)
    checks.positive("power_factor", pf)
    return p / (math.sqrt(3.0) * v * pf)


def circuit_loss_w(
    p_w: ArrayLike, voltage_v: ArrayLike, r_ohm: ArrayLike, system: str, power_factor: ArrayLike = 1.0
) -> Array:
    """I^2 R loss [W] of a circuit carrying ``p_w`` [W] at ``voltage_v`` [V] over conductors of ``r_ohm`` [ohm] each
    (module docstring: ``dc`` two-wire, ``ac3`` balanced three-phase)."""
    i = line_current_a(p_w, voltage_v, system, power_factor)
    return CURRENT_CARRYING[system] * i**2 * checks.nonnegative("r_ohm", r_ohm)


def loss_fraction_at_rating(
    rating_w: ArrayLike, voltage_v: ArrayLike, r_ohm: ArrayLike, system: str, power_factor: ArrayLike = 1.0
) -> Array:
    """``f`` of :func:`models.power.busway_loss_w`: the I^2 R loss at the rating over the rating [-]."""
    r = checks.positive("rating_w", rating_w)
    return circuit_loss_w(r, voltage_v, r_ohm, system, power_factor) / r


def busbar_area_mm2(current_a: ArrayLike, current_density_a_mm2: float) -> Array:
    """Busbar cross-section [mm2] carrying ``current_a`` [A] at a design current density [A/mm2]."""
    return checks.nonnegative("current_a", current_a) / checks.positive("current_density_a_mm2", current_density_a_mm2)


def parallel_runs(current_a: ArrayLike, ampacity_a: float) -> Array:
    """Parallel cable sets [-] (at least one) so that each carries at most its ampacity ``ampacity_a`` [A]."""
    i = checks.nonnegative("current_a", current_a)
    return np.maximum(np.ceil(i / checks.positive("ampacity_a", ampacity_a) - 1e-12), 1.0)


def copper_mass_kg(area_mm2: ArrayLike, length_m: ArrayLike, conductors: ArrayLike, density_kg_m3: float) -> Array:
    """Mass [kg] of ``conductors`` conductors of ``area_mm2`` [mm2] over ``length_m`` [m] at ``density_kg_m3``."""
    a = checks.nonnegative("area_mm2", area_mm2) * 1e-6
    return np.asarray(conductors, float) * a * checks.nonnegative("length_m", length_m) * density_kg_m3


def dc_fault_current_a(t_s: ArrayLike, voltage_v: float, r_ohm: float, l_h: float, i0_a: float = 0.0) -> Array:
    """Current [A] ``t_s`` [s] after a bolted fault at the end of a DC loop of resistance ``r_ohm`` [ohm] and
    inductance ``l_h`` [H] fed at ``voltage_v`` [V], from the load current ``i0_a`` [A]."""
    t = checks.nonnegative("t_s", t_s)
    v, r, lh = (checks.positive(n, x) for n, x in (("voltage_v", voltage_v), ("r_ohm", r_ohm), ("l_h", l_h)))
    i_inf = v / r
    return i_inf + (i0_a - i_inf) * np.exp(-t * r / lh)


def time_to_current_s(i_a: ArrayLike, voltage_v: float, r_ohm: float, l_h: float, i0_a: float = 0.0) -> Array:
    """Time [s] for the fault current of :func:`dc_fault_current_a` to reach ``i_a`` [A] (0 if already there, inf
    if it never does: above the prospective current ``V / R``)."""
    i = np.asarray(i_a, float)
    v, r, lh = (checks.positive(n, x) for n, x in (("voltage_v", voltage_v), ("r_ohm", r_ohm), ("l_h", l_h)))
    i_inf = v / r
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -(lh / r) * np.log((i_inf - i) / (i_inf - i0_a))
    return np.where(i <= i0_a, 0.0, np.where(i < i_inf, t, np.inf))


def dc_fault_i2t_a2s(t_s: ArrayLike, voltage_v: float, r_ohm: float, l_h: float, i0_a: float = 0.0) -> Array:
    """Let-through ``integral_0^t i^2 dt`` [A^2 s] of :func:`dc_fault_current_a` (closed form)."""
    t = checks.nonnegative("t_s", t_s)
    a = voltage_v / r_ohm
    b = i0_a - a
    tau = l_h / r_ohm
    return a * a * t + 2 * a * b * tau * (1 - np.exp(-t / tau)) + b * b * tau / 2 * (1 - np.exp(-2 * t / tau))


def _system(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"system: must be one of {SYSTEMS}, got {system!r}")
