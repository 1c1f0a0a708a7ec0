"""Diagnoses from the residual pattern across related sensors, and the alarm log ``DIR/alarms.jsonl``.

Every check compares a measurement with what its neighbours say it should be, in units of the expected
spread (z). A single sensor gone wrong breaks the checks it takes part in and only those; a process fault
moves the related sensors together and keeps every balance closed, while a parameter estimate or a
process variable leaves its normal range:

=====================  ===================================================  ============================
check                  residual                                              a lone failure points at
=====================  ===================================================  ============================
rack supply            T_sup,rack - median of the CDU's rack supplies        that rack's supply sensor
rack return            T_ret - T_sup - median(rise V/P) P / V                that rack's return sensor
rack flow              V_rack - median of the CDU's rack flows               that rack's flow meter
rack power             P - (T_ret - T_sup) V / median(rise V/P)              (the rack return's other side)
row power              row meter - sum of rack powers                        the row (CDU busway) meter
CDU secondary supply   T_sec,sup - median of its racks' supplies             the CDU supply sensor
CDU secondary return   T_sec,ret - flow-weighted mean of rack returns (*)    the CDU return sensor
CDU secondary flow     V_sec - sum of rack flows (*)                         the CDU secondary flow meter
CDU primary supply     T_pri,sup - median over all CDUs                      the CDU primary supply sensor
CDU primary balance    (Q_pri - Q_sec) / Q_design                            primary return (see below)
CDU valve              V_pri - valve position x V_pri,max                    primary flow meter or valve
=====================  ===================================================  ============================

(*) robust: a rack return (flow) more than 4 sigma from what its peers predict for it counts with the
prediction, so one bad rack sensor cannot move its CDU's check.

Attribution (``sensor_checks``): when a rack's return and power disagree, the sensor that explains every
residual is blamed: its flow meter if the rack flow check is off with the same sign (a flow bias moves the
predicted rise), its supply sensor if the rack supply check is off with the opposite sign, its power meter
if the row balance is off with the opposite sign, else its return sensor. A row balance off while no rack
power of the row explains it blames the row meter. A valve check off with the primary balance closed
blames the valve position; with the balance off the same way, the primary flow meter. A primary balance off
blames the secondary supply, return or flow sensor or the primary supply whose own check is off in the
direction that explains it, else the primary return sensor.

Process faults: a CDU whose secondary flow is below ``PUMP_FLOW_FRACTION`` of design while the sum of its
rack flows agrees (``pump_failure``); a CDU whose UA estimate has fallen below ``FOULING_FRACTION`` of
design with the balances closed (``hx_fouling``). A flagged sensor is named ``sensor_stuck`` when its value
has not changed while its residual moved, ``sensor_drift`` when the residual grows steadily, else
``sensor_bias``. Data faults: ``stale`` (no value for twice the republish period), ``bad_quality``,
``heartbeat_loss`` (no BMS heartbeat for three periods), ``metadata_missing``; ``clock_jump`` (the BMS's
clock moved outside the plant clock's window without a reconnect, see ``clock``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

Z_ALARM = 5.0  # |filtered z| above this ...
PERSIST_TICKS = 6  # ... for this many consecutive ticks raises a sensor alarm
Z_CLIP = 20.0  # one tick moves the filtered z by at most EWMA_ALPHA x this: a lone spike cannot hold it out
EWMA_ALPHA = 0.25
WINDOW = 60  # ticks of residual and value history kept per check (10 min at 10 s)
STUCK_TICKS = 12  # an unchanged value over this many ticks while the residual moved = stuck
PUMP_FLOW_FRACTION = 0.8
FOULING_FRACTION = 0.85


class AlarmLog:
    """Active alarms and their append-only log; each raise/clear is one JSON line, flushed and fsynced."""

    def __init__(self, path: Path, active: dict | None = None) -> None:
        self.path = Path(path)
        self.active: dict[str, dict] = dict(active or {})
        self._fh = self.path.open("a", encoding="utf-8")
        self.raised = 0

    @staticmethod
    def key(kind: str, entity: str, point: str | None) -> str:
        return f"{kind}|{entity}|{point or ''}"

    def raise_(self, time_ms: int, entity: str, kind: str, evidence: dict, point: str | None = None) -> bool:
        k = self.key(kind, entity, point)
        if k in self.active:
            return False
        rec = {"time_ms": int(time_ms), "state": "raised", "entity": entity, "kind": kind, "point": point}
        rec["evidence"] = _jsonable(evidence)
        self.active[k] = rec
        self._write(rec)
        self.raised += 1
        return True

    def clear(self, time_ms: int, kind: str, entity: str, point: str | None = None) -> None:
        rec = self.active.pop(self.key(kind, entity, point), None)
        if rec is not None:
            self._write({"time_ms": int(time_ms), "state": "cleared", "entity": entity, "kind": kind, "point": point})

    def clear_missing(self, time_ms: int, kinds: Iterable[str], still: set[str]) -> None:
        """Clear active alarms of ``kinds`` whose keys are not in ``still``."""
        kinds = set(kinds)
        for k, rec in list(self.active.items()):
            if rec["kind"] in kinds and k not in still:
                self.clear(time_ms, rec["kind"], rec["entity"], rec["point"])

    def entities_with(self, kinds: Iterable[str]) -> set[str]:
        kinds = set(kinds)
        return {r["entity"] for r in self.active.values() if r["kind"] in kinds}

    def _write(self, rec: dict) -> None:
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return round(x, 6) if np.isfinite(x) else None
    return x


def group_median(values: Array, groups: NDArray[np.int64], n_groups: int) -> Array:
    """Median of the finite ``values`` of each group (NaN for a group without any), vectorized."""
    finite = np.isfinite(values)
    v, g = values[finite], groups[finite]
    out = np.full(n_groups, np.nan)
    if v.size == 0:
        return out
    order = np.lexsort((v, g))
    v, g = v[order], g[order]
    counts = np.bincount(g, minlength=n_groups)
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    lo = start + (counts - 1) // 2
    hi = start + counts // 2
    out[has] = 0.5 * (v[lo[has]] + v[hi[has]])
    return out


@dataclass
class Check:
    """One residual over an entity array, filtered and persisted; rings of residual and raw value."""

    name: str
    entity: str
    signal: str
    sigma: float
    n: int

    def __post_init__(self) -> None:
        self.zf = np.zeros(self.n)
        self.over = np.zeros(self.n, int)
        self.r_ring = np.full((WINDOW, self.n), np.nan)
        self.v_ring = np.full((WINDOW, self.n), np.nan)
        self.k = 0

    def update(self, residual: Array, value: Array) -> NDArray[np.bool_]:
        """Feed one tick; returns where the check is persistently out (|z| > Z_ALARM for PERSIST_TICKS)."""
        z = np.clip(residual / self.sigma, -Z_CLIP, Z_CLIP)
        ok = np.isfinite(z)
        self.zf = np.where(ok, (1 - EWMA_ALPHA) * self.zf + EWMA_ALPHA * z, self.zf)
        out = ok & (np.abs(self.zf) > Z_ALARM)
        self.over = np.where(out, self.over + 1, np.where(ok, 0, self.over))
        self.r_ring[self.k % WINDOW] = residual
        self.v_ring[self.k % WINDOW] = value
        self.k += 1
        return self.over >= PERSIST_TICKS

    def _series(self, ring: Array, i: int) -> Array:
        n = min(self.k, WINDOW)
        idx = (np.arange(self.k - n, self.k)) % WINDOW
        return ring[idx, i]

    def classify(self, i: int) -> tuple[str, dict]:
        """``sensor_stuck`` / ``sensor_drift`` / ``sensor_bias`` for entity ``i`` from its recent history."""
        r, v = self._series(self.r_ring, i), self._series(self.v_ring, i)
        fin = np.isfinite(r) & np.isfinite(v)
        r, v = r[fin], v[fin]
        ev = {"check": self.name, "residual": float(r[-1]) if r.size else None, "sigma": self.sigma}
        if r.size >= STUCK_TICKS:
            tail_v, tail_r = v[-STUCK_TICKS:], r[-STUCK_TICKS:]
            if np.all(tail_v == tail_v[0]) and np.ptp(tail_r) > 3 * self.sigma:
                ev["unchanged_value"] = float(tail_v[0])
                return "sensor_stuck", ev
        # departure: the samples since the residual last sat near zero
        quiet = np.flatnonzero(np.abs(r) < 2 * self.sigma)
        dep = r[quiet[-1] + 1 :] if quiet.size else r
        if dep.size >= 6:
            t = np.arange(dep.size, dtype=float)
            slope, icpt = np.polyfit(t, dep, 1)
            fit = slope * t + icpt
            ss_res, ss_tot = float(np.sum((dep - fit) ** 2)), float(np.sum((dep - dep.mean()) ** 2))
            r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 0.0
            growth = abs(slope) * (dep.size - 1)
            if r2 > 0.8 and growth > 2 * self.sigma and np.sign(slope) == np.sign(dep[-1]):
                ev |= {"slope_per_tick": float(slope), "r2": r2}
                return "sensor_drift", ev
        return "sensor_bias", ev

    def quiet(self, i: int) -> bool:
        """The residual has stayed within 2 sigma over the whole window (a flagged sensor recovered)."""
        r = self._series(self.r_ring, i)
        r = r[np.isfinite(r)]
        return r.size >= WINDOW // 2 and bool(np.all(np.abs(r) < 2 * self.sigma))

    def latest_value(self, i: int) -> float:
        return float(self.v_ring[(self.k - 1) % WINDOW, i])

    def state(self) -> dict:
        return {"zf": self.zf.tolist(), "over": self.over.tolist()}

    def restore(self, d: dict) -> None:
        zf = np.asarray(d.get("zf", []), float)
        if zf.shape == self.zf.shape:
            self.zf, self.over = zf, np.asarray(d["over"], int)


__all__ = ["AlarmLog", "Check", "group_median"]
