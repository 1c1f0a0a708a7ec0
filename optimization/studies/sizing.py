"""Interconnection sizing: firm vs non-firm MW that a balancing area can take for a curtailment budget.

The grid serves ``F`` [MW] firm (every hour; for example behind network upgrades that raise each
season's threshold by ``F``) and ``N`` [MW] non-firm on top, curtailed Duke-style when the area
would pass its historical seasonal peak::

    c_t = max(0, D_t + F + N - (T_season + F)) = max(0, D_t + N - T_season)      [MW]
    r(N; F) = mean_y sum_{t in y} c_t / ((F + N) H_y) = r_duke(N) N / (F + N)    [1]

and ``N(F, b)`` is the root of ``r(N; F) = b``. ``r_duke(N) N`` is convex in ``N`` and zero at 0, so
``r(N; F)`` is non-decreasing in ``N`` and the root is found by bisection (vectorized over ``F``). At
``F = 0`` it is the Duke headroom; a flat area (all gaps zero) gives the closed form
``N = b F / (1 - b)``. The facility's own limits (envelope depth per event length) are added by
:func:`optimization.studies.flexible_headroom.flexible_headroom` with ``firm_mw``.

Source of the curtailment rule: Norris et al., *Rethinking Load Growth*, Duke NI R 25-01 (2025),
App. C; the firm/non-firm split follows non-firm interconnection offers such as PG&E Flex Connect
(see ``docs/studies.md``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from factory_twin.models import checks
from factory_twin.optimization.studies.headroom import HeadroomBasis
from numpy.typing import ArrayLike, NDArray


def nonfirm_mw(basis: HeadroomBasis, budget: float, firm_mw: ArrayLike, iters: int = 200) -> NDArray[np.float64]:
    """Non-firm MW ``N(F, b)`` [MW] for firm ``firm_mw`` [MW] (array) at ``budget`` [1] in (0, 1)."""
    b = float(checks.in_range("budget", budget, 0.0, 1.0))
    if not 0.0 < b < 1.0:
        raise ValueError(f"budget: must lie in (0, 1), got {budget!r}")
    f = checks.nonnegative("firm_mw", firm_mw)

    def rate(n: NDArray[np.float64]) -> NDArray[np.float64]:
        return basis.rate(n) * n / (f + n)

    lo, hi = np.zeros_like(f), np.full_like(f, basis.peak_mw)
    while np.any(rate(hi) < b):  # r(N; F) -> 1 as N grows
        hi = np.where(rate(hi) < b, 2.0 * hi, hi)
    for _ in range(iters):  # bisection on all F at once; stops at float resolution
        mid = 0.5 * (lo + hi)
        below = rate(np.maximum(mid, 1e-300)) < b
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        if np.all(hi - lo <= 1e-12 * hi):
            break
    return 0.5 * (lo + hi)


def sizing(basis: HeadroomBasis, budgets: tuple[float, ...], firm_mw: ArrayLike) -> xr.Dataset:
    """Dataset over ``budget`` [%] and ``firm_mw`` [MW]: ``nonfirm_mw``, ``total_mw`` and
    ``nonfirm_share`` (``N / (F + N)``), for a flat new load."""
    f = checks.nonnegative("firm_mw", firm_mw)
    n = np.array([nonfirm_mw(basis, b, f) for b in budgets])  # one vectorized root per budget
    return xr.Dataset(
        {
            "nonfirm_mw": (("budget", "firm_mw"), n, {"units": "MW"}),
            "total_mw": (("budget", "firm_mw"), f + n, {"units": "MW"}),
            "nonfirm_share": (("budget", "firm_mw"), n / (f + n), {"units": "1"}),
        },
        coords={"budget": 100.0 * np.asarray(budgets, float), "firm_mw": ("firm_mw", f, {"units": "MW"})},
    )
