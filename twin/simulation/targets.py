"""Grid targets of a run: the import limit and demand-response targets, and where a run missed them.

DR baseline, one definition for the plan (the MPC's DR rows), the recorder and the live runner (the ``dr_baseline_mw``
and ``dr_target_mw`` meters of :mod:`twin.simulation.meters`), the checker below and the dashboard's table and alarm:
the counterfactual uncapped import, as demand-response programmes measure a baseline (the load the site would have
drawn had no event been called, never a load already curtailed by an earlier event): here the steady site model
with every GPU uncapped under the scenario's utilization and weather at that time
(:func:`twin.simulation.design.uncapped_import_w`). An event's target, ``(1 - depth) x baseline(t)``, holds from the
end of its ramp (``start + ramp``) to its end, as :class:`twin.scenario.grid_signals.DREvent` states; where events
overlap the tighter binds (the largest depth among those holding, :func:`held_depth`). Over the ramp the plan
approaches the target along :meth:`~twin.scenario.grid_signals.DREvent.depth_at` on the same baseline; nothing is
checked there. A record holds the mean import over the interval that ends at its time stamp, so it is compared
against the looser of the targets at the two ends of that interval (NaN at either end: not checked). A target
counts as missed where the import exceeds it by more than ``REL_TOL`` of the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models.units import MW, S_PER_H
from numpy.typing import ArrayLike, NDArray

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


def dr_baseline_mw(f, scenario, times: ArrayLike) -> NDArray[np.float64]:
    """The DR baseline [MW] at ``times``: the counterfactual uncapped import (see the module docstring)."""
    from factory_twin.twin.simulation.design import uncapped_import_w

    return uncapped_import_w(f, scenario, times) / MW


def dr_target_mw(depth: ArrayLike, baseline_mw: ArrayLike) -> NDArray[np.float64]:
    """The DR target [MW]: ``(1 - depth) x baseline`` where a reduction is required (``depth > 0``), NaN elsewhere."""
    d = np.asarray(depth, float)
    return np.where(d > 0, (1 - d) * np.asarray(baseline_mw, float), np.nan)


def held_depth(events, times: ArrayLike) -> NDArray[np.float64]:
    """The depth [-] each of ``times`` is held to: the largest among the events past their ramp and not over (0 where
    none)."""
    t = np.asarray(times, "datetime64[s]")
    out = np.zeros(t.shape)
    for ev in events:
        held = (t >= ev.start + np.timedelta64(int(round(ev.ramp_s)), "s")) & (t < ev.end)
        out = np.where(held, np.maximum(out, ev.depth), out)
    return out


def dr_over(scenario, baseline, times: ArrayLike) -> tuple[NDArray, NDArray, NDArray]:
    """(depth [-], baseline [MW], target [MW]) at ``times`` under ``scenario``'s DR events: the depth asked for
    (ramping in, :meth:`twin.scenario.scenario.Scenario.dr_depth`), the DR baseline wherever it is non-zero
    (``baseline(times)``: :func:`dr_baseline_mw` of the facility and scenario; NaN elsewhere) and the target held
    (:func:`held_depth`; NaN over ramps and outside events)."""
    t = np.asarray(times, "datetime64[s]")
    depth = scenario.dr_depth(t)
    base = np.full(t.shape, np.nan)
    on = depth > 0
    if on.any():
        base[on] = baseline(t[on])
    return depth, base, dr_target_mw(held_depth(scenario.dr_events, t), base)


def events_within(events, start: np.datetime64, end: np.datetime64) -> list:
    """The events whose time of reduction (``start`` to ``end`` of the event) overlaps ``[start, end)`` of a run."""
    t0, t1 = np.datetime64(start, "s"), np.datetime64(end, "s")
    return [ev for ev in events if ev.start < t1 and ev.end > t0]


@dataclass(frozen=True)
class EventTarget:
    """One DR event's own target at ``time`` (the end of its ramp, the present time while it holds, or its last
    second once over) and whether it is the one that binds there (no tighter overlapping event)."""

    time: np.datetime64
    baseline_mw: float
    target_mw: float
    binding: bool


def event_targets_at(events, baseline, now: np.datetime64) -> list[EventTarget]:
    """:class:`EventTarget` of every event, each at ``now`` clamped into its full-depth window (from the end of its
    ramp to its last second); ``baseline(times)`` gives the DR baseline [MW] (:func:`dr_baseline_mw` of the
    facility and scenario)."""
    if not events:
        return []
    one = np.timedelta64(1, "s")
    now = np.datetime64(now, "s")
    at = np.array(
        [min(max(now, ev.start + np.timedelta64(int(round(ev.ramp_s)), "s")), ev.end - one) for ev in events],
        "datetime64[s]",
    )
    base = np.asarray(baseline(at), float)
    tightest = held_depth(events, at)
    return [
        EventTarget(at[i], float(base[i]), (1 - ev.depth) * float(base[i]), bool(ev.depth >= tightest[i] - 1e-12))
        for i, ev in enumerate(events)
    ]


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


def run_misses(ds) -> list[Miss]:
    """Misses of a simulated run (``twin.simulate``'s Dataset, with its recorded ``dr_target_mw`` meter)."""
    t = ds.time.values
    imp = ds.grid_import_mw.values
    return missed_targets(t, imp, ds.import_limit_mw.values, ds.dr_target_mw.values, float(ds.attrs["record_s"]))


def target_attrs(misses: list[Miss]) -> dict[str, object]:
    """NetCDF attributes that state whether the run met its grid targets."""
    return {
        "targets_met": int(not misses),
        "missed_targets": "; ".join(map(str, misses)) if misses else "none",
    }


__all__ = [
    "REL_TOL",
    "EventTarget",
    "Miss",
    "dr_baseline_mw",
    "dr_over",
    "dr_target_mw",
    "event_targets_at",
    "events_within",
    "held_depth",
    "missed_targets",
    "run_misses",
    "target_attrs",
]
