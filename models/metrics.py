"""Facility efficiency and per-token metrics, instantaneous or over any matching interval.

Every ratio here returns NaN where its denominator is zero (no IT load, no tokens): the metric is
undefined there, and NaN leaves a gap in a plot or a mean taken with ``np.nanmean`` instead of an
infinity. Negative powers or rates, and non-finite inputs, raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

import numpy as np
from factory_twin.models import checks
from factory_twin.models.units import J_PER_MWH, TOKENS_PER_MTOK
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def _ratio(num: Array, den: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def pue(total_facility_w: ArrayLike, it_w: ArrayLike) -> Array:
    """Power usage effectiveness ``PUE = P_total / P_IT``.

    Parameters
    ----------
    total_facility_w : array_like
        Facility power at the utility meter [W] (IT + electrical losses + cooling + other), >= 0.
        Energies [J] over the same interval give the annual-style PUE.
    it_w : array_like
        IT power at the IT meter boundary [W], >= 0 (this project meters the rack input, so PSU
        losses count as IT).

    Returns
    -------
    ndarray
        PUE [-]; NaN where ``it_w == 0``. Source: The Green Grid / ISO/IEC 30134-2 (physics.md 1.6).
    """
    total = checks.nonnegative("total_facility_w", total_facility_w)
    return _ratio(total, checks.nonnegative("it_w", it_w))


def ppue(it_w: ArrayLike, subsystem_w: ArrayLike) -> Array:
    """Partial PUE of one subsystem ``pPUE = (P_IT + P_sub) / P_IT``.

    ``it_w`` IT power [W] >= 0; ``subsystem_w`` power of the subsystem inside the boundary (e.g. the
    cooling plant, or the electrical losses) [W] >= 0. NaN where ``it_w == 0``. Source: The Green
    Grid, White Paper #49 "PUE: a comprehensive examination of the metric" (2012).
    """
    it = checks.nonnegative("it_w", it_w)
    return _ratio(it + checks.nonnegative("subsystem_w", subsystem_w), it)


def energy_per_token_j(power_w: ArrayLike, tokens_per_s: ArrayLike) -> Array:
    """Energy per token ``e = P / r`` [J/token].

    ``power_w`` power attributed to the tokens [W] >= 0 (IT or facility, caller's choice);
    ``tokens_per_s`` token rate [1/s] >= 0. NaN where ``tokens_per_s == 0``.
    """
    p = checks.nonnegative("power_w", power_w)
    return _ratio(p, checks.nonnegative("tokens_per_s", tokens_per_s))


def cost_per_mtok(power_w: ArrayLike, price_per_mwh: ArrayLike, tokens_per_s: ArrayLike) -> Array:
    """Electricity cost per million tokens ``c = P price / (3.6e9 r) * 1e6``.

    Parameters
    ----------
    power_w : array_like
        Power [W], >= 0.
    price_per_mwh : array_like
        Energy price [currency/MWh], finite (may be negative in surplus hours).
    tokens_per_s : array_like
        Token rate [1/s], >= 0.

    Returns
    -------
    ndarray
        [currency per 1e6 tokens]; NaN where ``tokens_per_s == 0``.
    """
    price = checks.finite("price_per_mwh", price_per_mwh)
    return energy_per_token_j(power_w, tokens_per_s) * price * TOKENS_PER_MTOK / J_PER_MWH


def carbon_per_mtok(power_w: ArrayLike, carbon_kg_per_mwh: ArrayLike, tokens_per_s: ArrayLike) -> Array:
    """Emissions per million tokens ``m = P I / (3.6e9 r) * 1e6``.

    ``power_w`` [W] >= 0; ``carbon_kg_per_mwh`` grid carbon intensity [kg CO2/MWh] (= g/kWh) >= 0;
    ``tokens_per_s`` [1/s] >= 0. Returns [kg CO2 per 1e6 tokens]; NaN where ``tokens_per_s == 0``.
    """
    ci = checks.nonnegative("carbon_kg_per_mwh", carbon_kg_per_mwh)
    return energy_per_token_j(power_w, tokens_per_s) * ci * TOKENS_PER_MTOK / J_PER_MWH
