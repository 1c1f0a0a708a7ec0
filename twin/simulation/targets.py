"""Grid targets of a run: the import limit and demand-response targets, and where a run missed them.

DR baseline (one definition, the live runner's as well): the import recorded when the event was issued
(its announcement, ``start - notice``). The target, ``(1 - depth) x baseline``, holds from the end of the
ramp (``start + ramp``) to the event's end, as :class:`twin.scenario.grid_signals.DREvent` states. A record holds the
mean import over the interval that ends at its time stamp, so it is compared against the looser of the
targets at the two ends of that interval (a controller that tracks a ramping target exactly is not
flagged). A target counts as missed where the import exceeds it by more than ``REL_TOL`` of the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models.units import S_PER_H
from numpy.typing import NDArray

REL_TOL = 0.01  # share of the target; below it an excess is metering noise, not a miss


@dataclass(frozen=True)
class Miss:
    """One target missed: which, when first and worst, by how much [MW], for how long [h]."""

    target: str  # "DR" or "import limit"
    first: np.datetime64
    worst: np.datetime64
    import_mw: float
    target_mw: float
    hours: float

    @property
    def excess_mw(self) -> float:
        return self.import_mw - self.target_mw

    def __str__(self) -> str:
        return (
            f"{self.target} target missed from {self.first} for {self.hours:.2f} h; worst at {self.worst}: "
            f"import {self.import_mw:.2f} MW vs target {self.target_mw:.2f} MW (+{self.excess_mw:.2f} MW)"
        )


def dr_baselines(events, times: NDArray[np.datetime64], import_mw: NDArray[np.float64]) -> list[float]:
    """Baseline [MW] of each event: the recorded import at its announcement (the first record if earlier)."""
    t = np.asarray(times, "datetime64[s]")
    return [float(import_mw[max(int(np.searchsorted(t, ev.announced, side="right")) - 1, 0)]) for ev in events]


def dr_target_mw(events, baselines, times: NDArray[np.datetime64]) -> NDArray[np.float64]:
    """DR target [MW] at ``times``: ``(1 - depth) x baseline`` after each event's ramp, NaN elsewhere."""
    t = np.asarray(times, "datetime64[s]")
    out = np.full(t.shape, np.inf)
    for ev, base in zip(events, baselines, strict=True):
        held = (t >= ev.start + np.timedelta64(int(round(ev.ramp_s)), "s")) & (t < ev.end)
        out = np.where(held, np.minimum(out, (1 - ev.depth) * base), out)
    return np.where(np.isfinite(out), out, np.nan)


def missed_targets(
    times: NDArray[np.datetime64],
    import_mw: NDArray[np.float64],
    import_limit_mw: NDArray[np.float64],
    dr_target: NDArray[np.float64],
    record_s: float,
) -> list[Miss]:
    """Misses of the import limit and the DR target in a record of interval-mean imports (NaN: no target)."""
    imp = np.asarray(import_mw, float)
    misses = []
    for name, target in (("DR", dr_target), ("import limit", import_limit_mw)):
        target = np.asarray(target, float)
        looser = np.maximum(target, np.r_[target[:1], target[:-1]])  # NaN (no target) at either end: none
        over = np.isfinite(looser) & (imp > looser * (1 + REL_TOL))
        if not over.any():
            continue
        idx = np.flatnonzero(over)
        w = idx[np.argmax(imp[idx] - looser[idx])]
        t = np.asarray(times, "datetime64[s]")
        misses.append(Miss(name, t[idx[0]], t[w], float(imp[w]), float(looser[w]), idx.size * record_s / S_PER_H))
    return misses


def run_misses(ds, scenario) -> list[Miss]:
    """Misses of a simulated run (``twin.simulate``'s Dataset) under ``scenario``."""
    t = ds.time.values
    imp = ds.grid_import_mw.values
    target = dr_target_mw(scenario.dr_events, dr_baselines(scenario.dr_events, t, imp), t)
    return missed_targets(t, imp, ds.import_limit_mw.values, target, float(ds.attrs["record_s"]))


def target_attrs(misses: list[Miss]) -> dict[str, object]:
    """NetCDF attributes that state whether the run met its grid targets."""
    return {
        "targets_met": int(not misses),
        "missed_targets": "; ".join(map(str, misses)) if misses else "none",
    }


__all__ = ["REL_TOL", "Miss", "dr_baselines", "dr_target_mw", "missed_targets", "run_misses", "target_attrs"]
