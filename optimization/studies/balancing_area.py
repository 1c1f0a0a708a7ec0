"""Seeded synthetic hourly load of a balancing area over several years, for offline headroom work.

Model (hour ``t``, day of year ``n``, hour of day ``h``)::

    sigma(n) = (1 + cos(2 pi (n - n_s) / 365)) / 2                          summer weight [1]
    S(n)     = a_s max(0, cos(2 pi (n - n_s)/365)) + a_w max(0, cos(2 pi (n - n_w)/365))
    F(n, h)  = sigma (a_ds + b_ds S) g(cos(2 pi (h - h_s)/24))
               + (1 - sigma) a_dw [g(cos(2 pi (h - h_w)/24)) + g(cos(2 pi (h - h_m)/12))] / 2
    x_t      = m + S + F - w [weekend] - k [holiday] + W_t
    D_t      = P x_t (1 + e_t) / max(x (1 + e)),     e_t = phi e_{t-1} + s_e N(0, 1)

``g(c) = 2 (exp(kappa (c - 1)) - exp(-2 kappa)) / (1 - exp(-2 kappa)) - 1`` narrows the daily peaks
(``g(c) = c`` at ``kappa = 0``). ``W_t`` are heat waves (Jun-Aug) and cold waves (Dec-Feb): Poisson
counts per year, durations uniform in whole days, a raised-cosine profile ``A sin^2(pi tau /
duration)`` times ``(1 + F / a_ds)`` so that the afternoon peak grows most. Holidays: 1 Jan, 4 Jul,
25 Dec, Memorial Day, Labor Day, Thanksgiving. The series is scaled so its largest hour equals
``peak_mw``.

Calibration target (Duke, *Rethinking Load Growth*, NI R 25-01, 2025): load factor 0.53 (22-BA mean
and median) and headroom of 76/98/126/215 GW over 744 GW of summed peaks, i.e. 10.2/13.2/16.9/28.9 %
of peak at 0.25/0.5/1/5 % curtailment. The default parameters were fitted to these numbers for seed
0 and years 2016-2024 (nine years, as Duke); ``docs/studies.md`` lists what they give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models import checks
from numpy.typing import NDArray
from scipy.signal import lfilter


@dataclass(frozen=True)
class BalancingAreaParams:
    """Parameters of the synthetic balancing-area load (fractions of the base load ``m`` = 1 unless
    noted).

    Shape and timing are generic US features (summer afternoon peak, winter morning and evening
    peaks); amplitudes, noise and wave sizes are fitted to the Duke 2025 load factor and headroom
    ratios (seed 0, 2016-2024), see the module docstring.
    """

    peak_mw: float = 10_000.0  # largest hour of the series [MW]
    base: float = 1.0  # m [1]
    summer_amp: float = 0.294  # a_s [1]
    winter_amp: float = 0.133  # a_w [1]
    summer_peak_doy: float = 200.0  # n_s, ~19 Jul [d]
    winter_peak_doy: float = 20.0  # n_w, ~20 Jan [d]
    diurnal_summer_amp: float = 0.189  # a_ds [1]
    diurnal_summer_gain: float = 0.374  # b_ds: extra summer swing per unit of S [1]
    diurnal_winter_amp: float = 0.243  # a_dw [1]
    diurnal_sharpness: float = 2.27  # kappa: 0 is a cosine, larger narrows the daily peaks [1]
    summer_peak_hour: float = 17.0  # h_s [h]
    winter_peak_hour: float = 19.0  # h_w [h]
    winter_morning_hour: float = 8.0  # h_m [h]
    weekend_drop: float = 0.06  # w [1]
    holiday_drop: float = 0.08  # k [1]
    ar1_phi: float = 0.947  # hourly persistence of the noise [1]
    ar1_sigma: float = 0.0202  # innovation standard deviation s_e [1]
    heat_waves_per_year: float = 0.6  # Poisson rate [1/yr]
    cold_waves_per_year: float = 0.4  # Poisson rate [1/yr]
    wave_days: tuple[int, int] = (1, 5)  # duration range, whole days [d]
    wave_amp: tuple[float, float] = (0.045, 0.176)  # A range [1]

    def __post_init__(self) -> None:
        checks.positive("peak_mw", self.peak_mw)
        checks.in_range("ar1_phi", self.ar1_phi, 0.0, 0.999999)
        for name in (
            "ar1_sigma",
            "heat_waves_per_year",
            "cold_waves_per_year",
            "weekend_drop",
            "holiday_drop",
        ):
            checks.nonnegative(name, getattr(self, name))
        lo, hi = self.wave_days
        if not 1 <= lo <= hi:
            raise ValueError(f"wave_days: need 1 <= min <= max, got {self.wave_days}")
        checks.nonnegative("wave_amp", self.wave_amp)
        checks.nonnegative("diurnal_sharpness", self.diurnal_sharpness)


def synthetic_load(
    params: BalancingAreaParams = BalancingAreaParams(),  # frozen, immutable default
    years: tuple[int, int] = (2016, 2024),
    seed: int = 0,
) -> tuple[NDArray[np.datetime64], NDArray[np.float64]]:
    """Hourly load [MW] over whole calendar years ``years[0]..years[1]`` (inclusive).

    Parameters
    ----------
    params : model parameters
    years : first and last calendar year [-]
    seed : seed of ``numpy.random.default_rng`` [-]

    Returns
    -------
    time : datetime64[h] array (no time zone; local standard time)
    load_mw : demand [MW], ``max(load_mw) == params.peak_mw``
    """
    y0, y1 = years
    if y1 < y0:
        raise ValueError(f"years: need first <= last, got {years}")
    p = params
    rng = np.random.default_rng(seed)
    t = np.arange(np.datetime64(f"{y0}-01-01T00", "h"), np.datetime64(f"{y1 + 1}-01-01T00", "h"))
    day = t.astype("datetime64[D]")
    hour = (t - day).astype(np.float64)
    doy = (day - day.astype("datetime64[Y]")).astype(np.float64)
    month = day.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (day - day.astype("datetime64[M]")).astype(np.int64) + 1
    weekday = (day.astype(np.int64) + 3) % 7  # Monday = 0 (1970-01-01 was a Thursday)

    phase_s = 2 * np.pi * (doy - p.summer_peak_doy) / 365.0
    sigma = 0.5 * (1.0 + np.cos(phase_s))
    seasonal = p.summer_amp * np.maximum(0.0, np.cos(phase_s)) + p.winter_amp * np.maximum(
        0.0, np.cos(2 * np.pi * (doy - p.winter_peak_doy) / 365.0)
    )
    swing_s = _peaked(np.cos(2 * np.pi * (hour - p.summer_peak_hour) / 24.0), p.diurnal_sharpness)
    swing_w = 0.5 * (
        _peaked(np.cos(2 * np.pi * (hour - p.winter_peak_hour) / 24.0), p.diurnal_sharpness)
        + _peaked(np.cos(2 * np.pi * (hour - p.winter_morning_hour) / 12.0), p.diurnal_sharpness)
    )
    diurnal = (
        sigma * (p.diurnal_summer_amp + p.diurnal_summer_gain * seasonal) * swing_s
        + (1.0 - sigma) * p.diurnal_winter_amp * swing_w
    )
    holiday = (
        ((month == 1) & (dom == 1))
        | ((month == 7) & (dom == 4))
        | ((month == 12) & (dom == 25))
        | ((month == 5) & (weekday == 0) & (dom > 24))  # Memorial Day: last Monday of May
        | ((month == 9) & (weekday == 0) & (dom <= 7))  # Labor Day: first Monday of September
        | ((month == 11) & (weekday == 3) & (dom >= 22) & (dom <= 28))  # Thanksgiving
    )
    x = p.base + seasonal + diurnal - p.weekend_drop * (weekday >= 5) - p.holiday_drop * holiday
    x = x + _waves(rng, t, y0, y1, p) * (1.0 + sigma * swing_s)

    e = rng.normal(0.0, p.ar1_sigma, t.size)
    e[0] /= np.sqrt(1.0 - p.ar1_phi**2)  # start in the stationary distribution
    x = x * (1.0 + lfilter([1.0], [1.0, -p.ar1_phi], e))
    if np.any(x <= 0):
        raise ValueError("params: the load goes non-positive; lower the amplitudes or the noise")
    return t, p.peak_mw * x / x.max()


def _peaked(c: NDArray, kappa: float) -> NDArray:
    """Map ``c = cos(theta)`` in [-1, 1] onto [-1, 1] with a narrower top: ``exp(kappa (c - 1))``
    rescaled."""
    if kappa == 0.0:
        return c
    lo = np.exp(-2.0 * kappa)
    return 2.0 * (np.exp(kappa * (c - 1.0)) - lo) / (1.0 - lo) - 1.0


def _waves(rng: np.random.Generator, t: NDArray, y0: int, y1: int, p: BalancingAreaParams) -> NDArray:
    """Sum of heat and cold waves [1] over the hourly grid ``t`` (one broadcast over waves x
    hours)."""
    n_years = y1 - y0 + 1
    n_heat = rng.poisson(p.heat_waves_per_year * n_years)
    n_cold = rng.poisson(p.cold_waves_per_year * n_years)
    year = rng.integers(y0, y1 + 1, n_heat + n_cold)
    days = rng.integers(p.wave_days[0], p.wave_days[1] + 1, n_heat + n_cold)
    # heat waves lie within Jun-Aug (day of year 151..243), cold waves within Dec-Feb (-31..59)
    lo, hi = (
        np.r_[np.full(n_heat, 151), np.full(n_cold, -31)],
        np.r_[np.full(n_heat, 243), np.full(n_cold, 59)],
    )
    start_doy = rng.uniform(lo, np.maximum(lo, hi - days))
    start = (year - 1970).astype("datetime64[Y]").astype("datetime64[h]") + np.round(start_doy * 24).astype(
        "timedelta64[h]"
    )
    dur_h = 24.0 * days
    amp = rng.uniform(*p.wave_amp, start.size)
    tau = (t[None, :] - start[:, None]).astype(np.float64)
    inside = (tau > 0) & (tau < dur_h[:, None])
    return np.sum(np.where(inside, amp[:, None] * np.sin(np.pi * tau / dur_h[:, None]) ** 2, 0.0), axis=0)
