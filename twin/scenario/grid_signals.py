"""Grid signals over time: energy price, carbon intensity, import limit; demand-response events.

CSV format (one header row, then rows at a regular time step; ``time`` in ISO 8601 local time):

    time, price_per_mwh, carbon_kg_per_mwh, import_limit_mw

Any subset of the value columns may be present. Other units are converted when the column says so:
``price_per_kwh`` (x1000), ``carbon_g_per_kwh`` (= kg/MWh), ``carbon_t_per_mwh`` (x1000),
``import_limit_kw`` (/1000). Any other column is an error that names it.
"""

from __future__ import annotations

import csv
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from factory_twin.models.units import S_PER_H, S_PER_MIN
from numpy.typing import NDArray

from factory_twin import data

# Largest plausible value of each quantity (above it the column's unit is most likely wrong)
PLAUSIBLE_MAX = {
    "import_limit_mw": (1e4, "MW (10 GW is beyond any single grid connection; kW in a _mw column?)"),
    "carbon_kg_per_mwh": (2000.0, "kg/MWh (coal is ~1000; g/kWh equals kg/MWh, t/MWh needs carbon_t_per_mwh)"),
}

COLUMNS = {
    "price_per_mwh": ("price_per_mwh", 1.0),
    "price_per_kwh": ("price_per_mwh", 1000.0),
    "carbon_kg_per_mwh": ("carbon_kg_per_mwh", 1.0),
    "carbon_g_per_kwh": ("carbon_kg_per_mwh", 1.0),
    "carbon_t_per_mwh": ("carbon_kg_per_mwh", 1000.0),
    "import_limit_mw": ("import_limit_mw", 1.0),
    "import_limit_kw": ("import_limit_mw", 1e-3),
}

#: Default ramp-in and notice of a demand-response event [s] (scenario files, studies, DREvent).
DR_RAMP_S = 900.0
DR_NOTICE_S = 3600.0


@dataclass(frozen=True)
class DREvent:
    """A demand-response event: import <= (1 - depth) x baseline from ``start + ramp`` to ``end``."""

    start: np.datetime64
    duration_s: float
    depth: float
    ramp_s: float = DR_RAMP_S
    notice_s: float = DR_NOTICE_S

    def __post_init__(self) -> None:
        for name, v, lo, hi in (
            ("depth", self.depth, 0.0, 1.0),
            ("duration_h", self.duration_s / S_PER_H, 1e-9, 1e4),
            ("ramp_min", self.ramp_s / S_PER_MIN, 0.0, 1e4),
            ("notice_min", self.notice_s / S_PER_MIN, 0.0, 1e5),
        ):
            if not lo <= v <= hi or not np.isfinite(v):
                raise ValueError(f"dr_events.{name}: must be within [{lo:g}, {hi:g}], got {v!r}")
        if self.ramp_s > self.duration_s:
            raise ValueError(f"dr_events.ramp_min: ramp {self.ramp_s / S_PER_MIN:g} min is longer than the event")

    @property
    def end(self) -> np.datetime64:
        return self.start + np.timedelta64(int(round(self.duration_s)), "s")

    @property
    def announced(self) -> np.datetime64:
        return self.start - np.timedelta64(int(round(self.notice_s)), "s")

    def depth_at(self, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
        """Required reduction fraction over time: ramps in over ``ramp_s`` from ``start``, holds to ``end``.

        After ``end`` the site may ramp back at its ramp limit; the event itself imposes nothing.
        """
        t = (np.asarray(times, "datetime64[s]") - self.start).astype(float)
        ramp = np.clip(t / self.ramp_s, 0.0, 1.0) if self.ramp_s > 0 else (t >= 0).astype(float)
        return np.where((t >= 0) & (t < self.duration_s), self.depth * ramp, 0.0)


@dataclass(frozen=True, eq=False)
class GridSignals:
    """Time series on a regular grid; ``None`` import limit means the facility's contracted limit."""

    time: NDArray[np.datetime64]
    price_per_mwh: NDArray[np.float64]
    carbon_kg_per_mwh: NDArray[np.float64]
    import_limit_mw: NDArray[np.float64] | None
    currency: str = "KRW"

    def at(self, times: NDArray[np.datetime64], name: str) -> NDArray[np.float64]:
        """Series ``name`` held constant over each interval (step function), at ``times``."""
        series = getattr(self, name)
        t = np.asarray(times, "datetime64[s]")
        if t.size and (t.min() < self.time[0] or t.max() > self.time[-1] + self.step):
            raise ValueError(
                f"grid signals cover {self.time[0]} .. {self.time[-1] + self.step}, requested {t.min()} .. {t.max()}"
            )
        idx = np.clip(np.searchsorted(self.time, t, side="right") - 1, 0, self.time.size - 1)
        return series[idx]

    def check_covers(self, start: np.datetime64, end: np.datetime64) -> None:
        """Raise ``ValueError`` before a run when the signals do not cover ``start .. end``."""
        first, last = self.time[0], self.time[-1] + self.step
        if np.datetime64(start, "s") < first or np.datetime64(end, "s") > last:
            raise ValueError(
                f"grid.signals: cover {first} .. {last}, but the run needs {np.datetime64(start, 's')} .. "
                f"{np.datetime64(end, 's')}; extend the CSV or shorten the run"
            )

    @property
    def step(self) -> np.timedelta64:
        return self.time[1] - self.time[0] if self.time.size > 1 else np.timedelta64(3600, "s")


def builtin_price_day(name: str = "kr-smp") -> dict:
    """A built-in daily profile from ``data/grid/profiles.toml``."""
    with data.path("grid", "profiles.toml").open("rb") as f:
        profiles = tomllib.load(f)
    if name not in profiles:
        raise ValueError(f"grid.signals: unknown built-in profile {name!r}; known: {sorted(profiles)}")
    return profiles[name]


def daily_signals(name: str, start: np.datetime64, days: int) -> GridSignals:
    """Repeat a built-in hourly day profile over ``days`` days from midnight of ``start``."""
    prof = builtin_price_day(name)
    t0 = np.asarray(start, "datetime64[D]").astype("datetime64[s]")
    time = t0 + np.arange(24 * days) * np.timedelta64(3600, "s")
    price = np.tile(np.asarray(prof["price_per_mwh"], float), days)
    carbon = np.tile(np.asarray(prof["carbon_kg_per_mwh"], float), days)
    return GridSignals(time, price, carbon, None, prof.get("currency", "KRW"))


def read_signals_csv(path: Path, currency: str = "KRW") -> GridSignals:
    """Read grid signals from CSV (format in the module docstring); errors name the row or column."""
    if not path.is_file():
        raise FileNotFoundError(f"grid.signals: CSV file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: not a UTF-8 CSV text file ({e})") from None
    if len(rows) < 2:
        raise ValueError(f"{path}: no data rows")
    header = [h.strip() for h in rows[0]]
    if not header or header[0] != "time":
        raise ValueError(f"{path}: first column must be 'time', got {header[0] if header else ''!r}")
    unknown = [h for h in header[1:] if h not in COLUMNS]
    if unknown:
        raise ValueError(f"{path}: unknown column(s) {unknown} (unit mismatch?); accepted: {sorted(COLUMNS)}")
    stamps = []
    for i, r in enumerate(rows[1:], start=2):
        try:
            stamps.append(np.datetime64(r[0].strip(), "s"))
        except (IndexError, ValueError):
            stamps.append(np.datetime64("NaT"))
        if np.isnat(stamps[-1]):
            raise ValueError(f"{path}: row {i}, column 'time': expected an ISO 8601 time, got {(r or [''])[0]!r}")
    time = np.array(stamps, "datetime64[s]")
    steps = np.diff(time).astype(float)
    if steps.size and (np.any(steps <= 0) or np.any(steps != steps[0])):
        bad = int(np.flatnonzero((steps <= 0) | (steps != steps[0]))[0])
        raise ValueError(f"{path}: gap or irregular step at row {bad + 3} ({time[bad]} -> {time[bad + 1]})")
    out: dict[str, NDArray] = {}
    for j, h in enumerate(header[1:], start=1):
        key, scale = COLUMNS[h]
        vals = []
        for i, r in enumerate(rows[1:], start=2):
            try:
                vals.append(float(r[j]))
            except (IndexError, ValueError):
                raise ValueError(f"{path}: row {i}, column {h!r}: missing or non-numeric value") from None
        v = np.array(vals) * scale
        if not np.all(np.isfinite(v)) or (key == "import_limit_mw" and np.any(v <= 0)):
            raise ValueError(f"{path}: column {h!r} must be finite{' and > 0' if key == 'import_limit_mw' else ''}")
        top = float(np.max(v))
        if key in PLAUSIBLE_MAX and top > PLAUSIBLE_MAX[key][0]:
            row = int(np.argmax(v)) + 2
            warnings.warn(
                f"{path}: row {row}, column {h!r} = {top / scale:g} is implausible: above {PLAUSIBLE_MAX[key][0]:g} "
                f"{PLAUSIBLE_MAX[key][1]}",
                stacklevel=2,
            )
        out[key] = v
    n = time.size
    return GridSignals(
        time,
        out.get("price_per_mwh", np.zeros(n)),
        out.get("carbon_kg_per_mwh", np.zeros(n)),
        out.get("import_limit_mw"),
        currency,
    )
