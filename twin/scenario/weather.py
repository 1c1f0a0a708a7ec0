"""Weather: a synthesized typical year from climate normals, or an EPW file.

Typical-year model (hourly, local standard time):

    T_db(t) = Tmean(doy) + A(doy) cos(2 pi (hour - 15) / 24) + a(day)
    T_dew(t) = Tdew(doy) + k_dew a(day)

``Tmean``/``A`` are the monthly mean of and half-range between daily max and min, interpolated linearly
between mid-month days; ``Tdew`` comes from the monthly mean temperature and relative humidity (Magnus
formula, Alduchov & Eskridge 1996: b = 17.625, c = 243.04 degC); ``a`` is a seeded AR(1) day-to-day anomaly
centred within each month (so monthly means stay the normals) and scaled so the 0.4 % hottest hours
reach the ASHRAE 0.4 % design dry bulb. Wet bulb follows
from dry bulb, humidity and pressure (psychrolib). Sources of the normals: ``data/climate/normals.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from factory_twin.models.fluids import wet_bulb_c
from factory_twin.models.units import S_PER_H
from numpy.typing import NDArray
from scipy.optimize import brentq

from factory_twin import data

MAGNUS_B, MAGNUS_C = 17.625, 243.04  # Alduchov & Eskridge (1996)
PEAK_HOUR = 15.0  # hour of the daily maximum, local solar time (typical continental diurnal cycle)
AR1_PHI = 0.7  # day-to-day persistence of synoptic anomalies [estimate]
DEW_ANOMALY_FACTOR = 0.6  # share of a warm anomaly that also raises the dew point [estimate]
DESIGN_QUANTILE = 0.996  # ASHRAE 0.4 % cooling design condition
HOURS = np.arange(8760)


@dataclass(frozen=True, eq=False)
class Weather:
    """Hourly weather over one year (hour of year 0 = 1 Jan 00:00 local)."""

    name: str
    dry_bulb_c: NDArray[np.float64]
    rel_humidity: NDArray[np.float64]
    pressure_pa: float

    def __post_init__(self) -> None:
        if self.dry_bulb_c.shape != (8760,) or self.rel_humidity.shape != (8760,):
            raise ValueError(f"weather {self.name}: need 8760 hourly values, got {self.dry_bulb_c.shape}")

    @cached_property
    def wet_bulb_c(self) -> NDArray[np.float64]:
        return _wet_bulb(self.dry_bulb_c, self.rel_humidity, self.pressure_pa)

    def at(self, times: NDArray[np.datetime64], offset_k: float = 0.0) -> tuple[NDArray, NDArray]:
        """Dry and wet bulb [degC] at ``times`` (linear in time, year wraps), shifted by ``offset_k``.

        A what-if offset raises dry and wet bulb alike (humidity ratio is not held), the conservative choice
        for evaporative heat rejection.
        """
        hour = _hour_of_year(times)
        db = np.interp(hour, np.r_[HOURS, 8760], np.r_[self.dry_bulb_c, self.dry_bulb_c[0]])
        wb = np.interp(hour, np.r_[HOURS, 8760], np.r_[self.wet_bulb_c, self.wet_bulb_c[0]])
        return db + offset_k, wb + offset_k


def _wet_bulb(db: NDArray, rh: NDArray, p: float) -> NDArray:
    return wet_bulb_c(db, rh, p)


def _hour_of_year(times: NDArray[np.datetime64]) -> NDArray[np.float64]:
    t = np.asarray(times, dtype="datetime64[s]")
    year_start = t.astype("datetime64[Y]").astype("datetime64[s]")
    hour = (t - year_start).astype(np.float64) / S_PER_H
    return np.minimum(hour, 8760.0 - 1e-9)  # 31 Dec of a leap year repeats the last day


def climate_normals() -> dict[str, dict]:
    with data.path("climate", "normals.toml").open("rb") as f:
        return tomllib.load(f)


@lru_cache(maxsize=8)
def typical_year(climate: str, seed: int = 0) -> Weather:
    """Synthesize an hourly typical year for a built-in climate (``seoul``, ``ulsan``)."""
    normals = climate_normals()
    if climate not in normals:
        raise ValueError(f"climate: unknown built-in climate {climate!r}; known: {sorted(normals)}")
    n = normals[climate]
    tmax, tmin = np.asarray(n["daily_max_c"], float), np.asarray(n["daily_min_c"], float)
    rh_m = np.asarray(n["rel_humidity_pct"], float) / 100.0
    day = HOURS / 24.0
    mid = (np.arange(12) + 0.5) * 365.0 / 12.0
    per = np.r_[mid - 365.0, mid, mid + 365.0]

    def monthly(v: NDArray) -> NDArray:
        return np.interp(day, per, np.tile(v, 3))

    tmean, amp = monthly((tmax + tmin) / 2), monthly((tmax - tmin) / 2)
    tdew_m = _dew_point(monthly((tmax + tmin) / 2), monthly(rh_m))
    rng = np.random.default_rng(seed)
    z = np.empty(365)
    z[0] = rng.standard_normal()
    for i in range(1, 365):
        z[i] = AR1_PHI * z[i - 1] + np.sqrt(1 - AR1_PHI**2) * rng.standard_normal()
    month = np.searchsorted(np.cumsum([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]), np.arange(365), side="right")
    z -= (np.bincount(month, z, 12) / np.bincount(month, minlength=12))[month]  # monthly means stay the normals
    anomaly = np.repeat(z, 24)
    base = tmean + amp * np.cos(2 * np.pi * ((HOURS % 24) - PEAK_HOUR) / 24.0)

    def excess(sigma: float) -> float:
        return float(np.quantile(base + sigma * anomaly, DESIGN_QUANTILE) - n["design_dry_bulb_c"])

    sigma = brentq(excess, 0.0, 15.0) if excess(0.0) < 0 else 0.0
    db = base + sigma * anomaly
    dew = np.minimum(tdew_m + DEW_ANOMALY_FACTOR * sigma * anomaly, db)
    return Weather(f"typical year {n['station']}", db, _rel_humidity(db, dew), float(n["pressure_pa"]))


def _dew_point(t_c: NDArray, rh: NDArray) -> NDArray:
    g = np.log(rh) + MAGNUS_B * t_c / (MAGNUS_C + t_c)
    return MAGNUS_C * g / (MAGNUS_B - g)


def _rel_humidity(t_c: NDArray, dew_c: NDArray) -> NDArray:
    return np.exp(MAGNUS_B * dew_c / (MAGNUS_C + dew_c) - MAGNUS_B * t_c / (MAGNUS_C + t_c))


def read_epw(path: str | Path) -> Weather:
    """Read an EnergyPlus weather file (8 header lines, then 8760 hourly rows).

    Columns used (EnergyPlus Auxiliary Programs, Weather Converter, EPW format): 7 dry bulb [degC],
    9 relative humidity [%], 10 station pressure [Pa].
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weather: EPW file not found: {p}")
    rows = [line.split(",") for line in p.read_text(encoding="latin-1").splitlines()[8:] if line.strip()]
    short = next((i for i, r in enumerate(rows) if len(r) < 10), None)
    if short is not None:
        raise ValueError(
            f"weather: {p}: data row {short + 1} has {len(rows[short])} fields; EPW rows have 35 (10 are read)"
        )
    rows = [r for r in rows if not (r[1] == "2" and r[2] == "29")]  # drop 29 Feb of a leap-year file
    if len(rows) != 8760:
        raise ValueError(f"weather: {p} has {len(rows)} hourly rows after the header, expected 8760")
    try:
        db = np.array([float(r[6]) for r in rows])
        rh = np.array([float(r[8]) for r in rows]) / 100.0
        pa = np.array([float(r[9]) for r in rows])
    except (IndexError, ValueError) as e:
        raise ValueError(f"weather: {p}: malformed EPW data row ({e})") from None
    if np.any((db < -70) | (db > 70)) or np.any((rh < 0) | (rh > 1.1)):
        raise ValueError(f"weather: {p}: dry bulb or humidity outside physical range (missing-value codes?)")
    return Weather(f"EPW {p.name}", db, np.clip(rh, 0.01, 1.0), float(np.median(pa)))


def load_weather(climate: str, base_dir: Path | None = None) -> Weather:
    """A built-in climate name or a path to an ``.epw`` file (relative to ``base_dir``)."""
    if climate.lower().endswith(".epw"):
        p = Path(climate)
        return read_epw(p if p.is_absolute() or base_dir is None else base_dir / p)
    return typical_year(climate)
