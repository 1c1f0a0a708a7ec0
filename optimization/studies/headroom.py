"""Curtailment-enabled headroom of a balancing area (the Duke *Rethinking Load Growth* method).

A constant new load ``L`` [MW] is added to every hour of a historical hourly load ``D_t`` [MW]. Each
hour is compared with its season's threshold, the highest load ever seen in that season's peak
months::

    T_summer = max D_t over Jun-Aug (all years),   T_winter = max D_t over Dec-Feb (all years)
    c_t(L)   = max(0, D_t + L - T_season(t))                     curtailed new load [MW]
    r_y(L)   = sum_{t in y} c_t / (L * H_y)                      yearly curtailment rate [1]
    r(L)     = mean_y r_y(L)

``H_y`` is the number of hours of year ``y`` in the series (8760 or 8784 for a complete year). The
headroom at a curtailment budget ``b`` is the root of ``r(L) = b`` (``scipy.optimize.brentq``). With
the gap ``g_t = T_season(t) - D_t >= 0`` the yearly sum has the exact sorted form
``sum_{g_t < L} (L - g_t) = k L - G_k`` (``k`` gaps below ``L``, ``G_k`` their sum), so ``r`` is
evaluated for any array of ``L`` without building the hourly matrix; ``r`` is continuous and
non-decreasing in ``L``.

Source: T. H. Norris, T. Profeta, D. Patino-Echeverri, A. Cowie-Haskell, *Rethinking Load Growth*,
NI R 25-01, Nicholas Institute, Duke University, Feb 2025, Appendix C (hdl.handle.net/10161/32077).
Shoulder months follow the paper (Apr, May, Sep, Oct with summer; Mar, Nov with winter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

DUKE_BUDGETS = (0.0025, 0.005, 0.01, 0.05)  # Duke 2025: curtailment limits studied [1]
DUKE_KEPT_FRACTIONS = (0.5, 0.75, 0.9)  # Duke 2025: depth bins (share of the new load kept) [1]
_HOUR = np.timedelta64(1, "h")


@dataclass(frozen=True)
class Seasons:
    """Month-to-season map (months 1-12); months not in ``summer_months`` are winter.

    Defaults are Duke 2025 (Appendix C): summer Apr-Oct, thresholds from Jun-Aug and Dec-Feb.
    """

    summer_months: tuple[int, ...] = (4, 5, 6, 7, 8, 9, 10)
    summer_peak_months: tuple[int, ...] = (6, 7, 8)
    winter_peak_months: tuple[int, ...] = (12, 1, 2)

    def __post_init__(self) -> None:
        for name in ("summer_months", "summer_peak_months", "winter_peak_months"):
            months = getattr(self, name)
            if not months or not set(months) <= set(range(1, 13)):
                raise ValueError(f"{name}: months must be a non-empty subset of 1..12, got {months}")
        if not set(self.summer_peak_months) <= set(self.summer_months):
            raise ValueError(f"summer_peak_months: must lie in summer_months, got {self.summer_peak_months}")
        if set(self.winter_peak_months) & set(self.summer_months):
            raise ValueError(f"winter_peak_months: must lie outside summer_months, got {self.winter_peak_months}")


DUKE_SEASONS = Seasons()


@dataclass(frozen=True, eq=False)
class HeadroomBasis:
    """Seasonal thresholds and hourly gaps of one load series, ready for ``r(L)`` evaluations.

    Build with :meth:`from_load`. Attributes: ``gap_mw`` (hourly ``T_season - D``), ``summer`` (hour
    in a summer month), ``year_start`` (index of each year's first hour), ``hours_per_year``,
    ``t_summer_mw``, ``t_winter_mw``, ``peak_mw``, ``mean_mw``.
    """

    gap_mw: NDArray[np.float64]
    summer: NDArray[np.bool_]
    year_start: NDArray[np.intp]
    hours_per_year: NDArray[np.int64]
    t_summer_mw: float
    t_winter_mw: float
    peak_mw: float
    mean_mw: float

    @classmethod
    def from_load(cls, time: ArrayLike, load_mw: ArrayLike, seasons: Seasons = DUKE_SEASONS) -> HeadroomBasis:
        """Thresholds and gaps of an hourly series.

        Parameters
        ----------
        time : numpy datetime64 array, consecutive whole hours (no gaps, no repeats) [-]
        load_mw : balancing-area demand at ``time`` [MW]
        seasons : month-to-season map
        """
        t = np.asarray(time)
        d = checks.nonnegative("load_mw", load_mw)
        if not np.issubdtype(t.dtype, np.datetime64) or t.ndim != 1 or t.size < 2:
            raise ValueError(f"time: need a 1-D datetime64 array of >= 2 hours, got {t.dtype} {t.shape}")
        if d.shape != t.shape:
            raise ValueError(f"load_mw: shape {d.shape} differs from time {t.shape}")
        th = t.astype("datetime64[h]")
        if np.any(th != t) or np.any(np.diff(th) != _HOUR):
            raise ValueError("time: must be consecutive whole hours without gaps or repeats")
        month = th.astype("datetime64[M]").astype(np.int64) % 12 + 1
        year = th.astype("datetime64[Y]").astype(np.int64)
        summer = np.isin(month, seasons.summer_months)
        peaks = []
        for name in ("summer_peak_months", "winter_peak_months"):
            in_peak = np.isin(month, getattr(seasons, name))
            if not in_peak.any():
                raise ValueError(f"time: no hours in {name} {getattr(seasons, name)}")
            peaks.append(float(d[in_peak].max()))
        gap = np.where(summer, peaks[0], peaks[1]) - d
        if np.any(gap < 0):
            i = int(np.argmax(gap < 0))
            raise ValueError(
                f"load_mw: {int(np.sum(gap < 0))} hours exceed their season threshold (first "
                f"{th[i]}, {d[i]:g} MW); shift the season map (a few BAs in Duke 2025 do)"
            )
        year_start = np.flatnonzero(np.r_[True, np.diff(year) != 0])
        return cls(
            gap_mw=gap,
            summer=summer,
            year_start=year_start,
            hours_per_year=np.diff(np.r_[year_start, t.size]),
            t_summer_mw=peaks[0],
            t_winter_mw=peaks[1],
            peak_mw=float(d.max()),
            mean_mw=float(d.mean()),
        )

    @property
    def n_years(self) -> int:
        return self.year_start.size

    def curtailment_mw(self, new_load_mw: ArrayLike) -> NDArray[np.float64]:
        """Hourly curtailment ``c_t`` [MW], shape ``new_load_mw.shape + (hours,)``."""
        new = checks.nonnegative("new_load_mw", new_load_mw)
        return np.maximum(0.0, new[..., None] - self.gap_mw)

    def rate_by_year(self, new_load_mw: ArrayLike) -> NDArray[np.float64]:
        """Yearly curtailment rate ``r_y(L)`` [1], shape ``new_load_mw.shape + (years,)``."""
        new = checks.positive("new_load_mw", new_load_mw)
        ends = np.r_[self.year_start[1:], self.gap_mw.size]
        out = np.empty((*new.shape, self.n_years))
        for y, (a, b) in enumerate(zip(self.year_start, ends, strict=True)):  # loop over years only
            g = np.sort(self.gap_mw[a:b])
            cum = np.r_[0.0, np.cumsum(g)]
            k = np.searchsorted(g, new, side="left")
            out[..., y] = (k * new - cum[k]) / (new * (b - a))
        return out

    def rate(self, new_load_mw: ArrayLike) -> NDArray[np.float64]:
        """Mean yearly curtailment rate ``r(L)`` [1], shape of ``new_load_mw``."""
        return self.rate_by_year(new_load_mw).mean(axis=-1)

    def solve(self, budget: float) -> float:
        """Headroom ``L`` [MW] with ``r(L) = budget`` (brentq), for ``budget`` [1] in (0, 1)."""
        b = float(checks.in_range("budget", budget, 0.0, 1.0))
        floor = np.mean(np.add.reduceat((self.gap_mw == 0.0).astype(np.int64), self.year_start) / self.hours_per_year)
        if not 0.0 < b < 1.0 or b <= floor:
            raise ValueError(f"budget: must lie in ({floor:g}, 1) for this series, got {b!r}")
        lo, hi = 1e-12 * self.peak_mw, self.peak_mw
        while self.rate(hi) < b:  # r -> 1 as L -> infinity, so this ends
            hi *= 2.0
        return float(brentq(lambda x: self.rate(x) - b, lo, hi, xtol=1e-12 * self.peak_mw, rtol=1e-15))


def headroom(
    time: ArrayLike,
    load_mw: ArrayLike,
    budgets: tuple[float, ...] = DUKE_BUDGETS,
    seasons: Seasons = DUKE_SEASONS,
    kept_fractions: tuple[float, ...] = DUKE_KEPT_FRACTIONS,
) -> xr.Dataset:
    """Duke curtailment-enabled headroom and curtailment statistics at each budget.

    Parameters
    ----------
    time : datetime64 array of consecutive whole hours [-]
    load_mw : hourly balancing-area demand [MW]
    budgets : mean yearly curtailment limits ``b`` [1] (Duke 2025: 0.25, 0.5, 1, 5 %)
    seasons : month-to-season map (Duke 2025 default)
    kept_fractions : depth bins: share of ``L`` still served in a curtailed hour [1]

    Returns
    -------
    xarray.Dataset over ``budget`` [%] (and ``kept_fraction``): ``headroom_mw``,
    ``headroom_pct_of_peak``, ``curtailment_rate`` (achieved), ``curtailed_hours_per_year``,
    ``events_per_year`` and ``mean_event_duration_h`` / ``max_event_duration_h`` (an event is a run
    of consecutive curtailed hours), ``share_keeping`` (curtailed hours with ``1 - c_t/L >=
    kept_fraction`` over all curtailed hours), ``curtailed_energy_mwh_per_year``, ``summer_share``
    of curtailed hours; scalars ``peak_mw``, ``t_summer_mw``, ``t_winter_mw``, ``load_factor`` (mean
    / peak).
    """
    basis = HeadroomBasis.from_load(time, load_mw, seasons)
    kept = checks.in_range("kept_fractions", kept_fractions, 0.0, 1.0)
    new = np.array([basis.solve(b) for b in budgets])  # one root per budget
    c = basis.curtailment_mw(new)  # (budget, hour)
    cut = c > 0.0
    n_cut = cut.sum(axis=1)
    starts = cut & ~np.pad(cut, ((0, 0), (1, 0)))[:, :-1]
    run_id = np.cumsum(starts.ravel()) * cut.ravel()
    run_len = np.bincount(run_id)[1:]
    max_run = np.zeros(new.size)
    np.maximum.at(max_run, np.nonzero(starts)[0], run_len)
    n_ev = starts.sum(axis=1)
    kept_share = 1.0 - c / new[:, None]
    keeping = (cut[:, None, :] & (kept_share[:, None, :] >= kept[None, :, None])).sum(axis=2)
    ny = basis.n_years
    share = np.where(n_cut[:, None] > 0, keeping / np.maximum(n_cut, 1)[:, None], np.nan)
    summer = np.where(n_cut > 0, (cut & basis.summer).sum(axis=1) / np.maximum(n_cut, 1), np.nan)
    return xr.Dataset(
        {
            "headroom_mw": ("budget", new, {"units": "MW"}),
            "headroom_pct_of_peak": ("budget", 100.0 * new / basis.peak_mw, {"units": "%"}),
            "curtailment_rate": ("budget", basis.rate(new), {"units": "1"}),
            "curtailed_hours_per_year": ("budget", n_cut / ny, {"units": "h/yr"}),
            "events_per_year": ("budget", n_ev / ny, {"units": "1/yr"}),
            "mean_event_duration_h": ("budget", n_cut / np.maximum(n_ev, 1), {"units": "h"}),
            "max_event_duration_h": ("budget", max_run, {"units": "h"}),
            "share_keeping": (("budget", "kept_fraction"), share, {"units": "1"}),
            "curtailed_energy_mwh_per_year": ("budget", c.sum(axis=1) / ny, {"units": "MWh/yr"}),
            "summer_share": ("budget", summer, {"units": "1"}),
            "peak_mw": ((), basis.peak_mw, {"units": "MW"}),
            "t_summer_mw": ((), basis.t_summer_mw, {"units": "MW"}),
            "t_winter_mw": ((), basis.t_winter_mw, {"units": "MW"}),
            "load_factor": ((), basis.mean_mw / basis.peak_mw, {"units": "1"}),
        },
        coords={
            "budget": ("budget", 100.0 * np.asarray(budgets, float), {"units": "%"}),
            "kept_fraction": ("kept_fraction", kept, {"units": "1"}),
        },
        attrs={"method": "Duke Rethinking Load Growth (NI R 25-01, 2025), App. C", "n_years": ny},
    )
