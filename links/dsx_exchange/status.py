"""What the connector reports and keeps: the status snapshot (``DIR/status.json``, the exit line), the
dashboard's consistent view, and ``DIR/state.json`` (clock, estimates, residual filters, active alarms,
requests), from which a restart resumes with the latest value of every point taken from the history.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from factory_twin.links.dsx_exchange.lag import publication_lag

if TYPE_CHECKING:
    from factory_twin.links.dsx_exchange.connect import Connector

STATE_VERSION = 1
LAG_RECENT_S = 30.0  # the "recent" lag figures cover samples taken this long before the latest [wall s]


def status(con: Connector) -> dict:
    """The live summary (``status.json``)."""
    it, est = con.intake, con.estimates
    at = np.array(it.lag_at)
    lag = publication_lag(at, at - np.array(it.lag_s))  # intake keeps arrival - stamp: back to the stamps
    p50, p99 = np.nanpercentile(lag, [50, 99]) if np.isfinite(lag).any() else (math.nan, math.nan)
    recent = lag[at >= at.max() - LAG_RECENT_S] if at.size else at
    r50, r99 = np.nanpercentile(recent, [50, 99]) if np.isfinite(recent).any() else (math.nan, math.nan)
    die_c = con.shadow.die_c
    return {
        "plant_time_ms": int(con.clock.now_ms),
        "ticks": con.ticks,
        "messages": it.received,
        "values": it.values_received,
        "history_rows": con.history.rows_written + con.history.pending,
        "connected": con.client.connected,
        "broker_error": "" if con.client.connected else con.client.unreachable(),  # why not, in words
        "outages": [
            {"start": o.start, "end": o.end, "seconds": o.seconds, "reason": o.reason}
            for o in con.client.outages
            if o.reason != "not yet connected"
        ],
        "blind_s": con.client.blind_seconds(),
        "points": con.readings.mapped_counts(),
        "point_map": con.map.report(),
        "unmapped_value_topics": len([p for p in it.rejections.unknown if p not in con.map.points]),
        "rejected": it.rejections.report(con.map.points),
        "clock": {
            "jumps": [j.as_dict() for j in con.clock.jumps[-20:]],
            "jumps_count": len(con.clock.jumps),
            "held": len(it.gate.held) + len(it.gate.spikes),
        },
        "dropped_at_stop": it.dropped_at_stop,
        "active_alarms": list(con.alarms.active.values()),
        "ua_estimate_w_k": dict(zip(con.cat.cdu_ids, np.round(est.ua.theta, 1).tolist(), strict=True)),
        "ua_ratio_min": float(np.nanmin(est.ua.theta / con.design.ua)),
        "requests": {con.cat.cdu_ids[c]: r for c, r in con.outbound.requests.items()},
        # publication to arrival on the wall clock, whatever the plant's pace (links.dsx_exchange.lag)
        "lag_p50_s": float(p50),
        "lag_p99_s": float(p99),
        "lag_recent_p50_s": float(r50),  # the last LAG_RECENT_S of intake: now, without start-up
        "lag_recent_p99_s": float(r99),
        "max_die_c": float(np.nanmax(die_c)) if np.isfinite(die_c).any() else None,
        "resumed": con.resumed,
        "busy_s": con.busy_s,
        "tick_s": con.tick_s,
        "flush_s": con.history.flush_s,
        "main_cpu_s": con.main_cpu_s,
    }


def points_parts(points: dict) -> str:
    """The parts of the mapped points (``status()["points"]``), as connect's exit line and the plant page say them."""
    return f"{points['bms']:,} from the BMS, {points['integration']:,} written by this integration"


def points_line(st: dict) -> str:
    """The mapped points in connect's exit line (``st``: :func:`status`)."""
    return f"{st['points']['mapped']:,} points mapped ({points_parts(st['points'])})"


def view(con: Connector) -> dict:
    """A consistent copy for readers in other threads (the dashboard): status, per-CDU measured and predicted
    values, point health counts."""
    f = con.f
    with con.lock:
        st = status(con)
        now = con.clock.now_ms
        v = con.readings.views(now) if now else {}
        health = con.readings.health(now)
        health["unmapped"] = st["point_map"]["unmapped_count"] + st["unmapped_value_topics"]
        pred = con.shadow.predicted
        nan_cdu, nan_rack = np.full(f.n_cdus, np.nan), np.full(f.n_racks, np.nan)
        cdu = {
            "id": list(con.cat.cdu_ids),
            "supply_measured_c": v.get(("cdu", "sec_supply_c"), nan_cdu).tolist(),
            "supply_predicted_c": pred.get("cdu_supply_c", nan_cdu).tolist(),
            "valve_measured_pct": (100 * v.get(("cdu", "valve_pct"), nan_cdu)).tolist(),
            "valve_predicted_pct": pred.get("cdu_valve_pct", nan_cdu).tolist(),
            "ua_ratio": (con.estimates.ua.theta / con.design.ua).tolist(),
        }
        rack = {
            "return_measured_c": v.get(("rack", "return_c"), nan_rack).tolist(),
            "return_predicted_c": pred.get("rack_return_c", nan_rack).tolist(),
            "die_c": con.shadow.die_c.tolist(),
        }
    return {"status": st, "health": health, "cdu": cdu, "rack": rack}


def summary_lines(st: dict) -> list[str]:
    """What the exit line adds to the counts: values not taken, by reason and point; unknown points by name;
    the clock's jumps and epoch units; messages dropped at the stop."""
    rej, clock = st["rejected"], st["clock"]
    lines = []
    if rej["total"]:
        reasons = ", ".join(f"{r} {n}" for r, n in rej["by_reason"].items() if n)
        worst = ", ".join(f"{p} ({sum(c.values())})" for p, c in list(rej["points"].items())[:5])
        lines.append(f"{rej['total']} values not taken ({reasons}) on {rej['points_count']} point(s): {worst}")
    if rej["unknown_points_count"]:
        names = ", ".join(list(rej["unknown_points"])[:5])
        more = rej["unknown_points_count"] - min(5, len(rej["unknown_points"]))
        names += f" and {more} more" if more else ""
        lines.append(f"values on {rej['unknown_points_count']} unknown point(s): {names}")
    if rej["epoch_units"]:
        units = ", ".join(f"{n} in {u}" for u, n in rej["epoch_units"].items())
        lines.append(f"timestamps not in ms, converted: {units}")
    for q in rej["quarantined_recent"][-3:]:
        lines.append(f"quarantined: {q['point']} stamped {q['offset_s']:+.0f} s from the plant clock")
    if clock["jumps_count"]:
        last = clock["jumps"][-1]
        lines.append(f"plant clock followed the site's {clock['jumps_count']} time(s), last {last['offset_s']:+.0f} s")
    if st["dropped_at_stop"]:
        lines.append(f"{st['dropped_at_stop']} message(s) queued at the stop not applied")
    return lines


def save_state(con: Connector) -> None:
    """``state.json`` and ``status.json``, each written atomically."""
    state = {
        "version": STATE_VERSION,
        "facility": con.f.spec.name,
        **con.clock.state(),
        **con.estimates.state(),
        "checks": con.sensors.state(),
        "alarms_active": con.alarms.active,
        "requests": con.outbound.state(),
    }
    atomic_write(con.dir / "state.json", json.dumps(state))
    atomic_write(con.dir / "status.json", json.dumps(status(con), default=float))


def load_state(con: Connector) -> bool:
    """Resume from ``state.json`` if there is one (False if not); ValueError if it is another facility's."""
    path = con.dir / "state.json"
    if not path.is_file():
        return False
    s = json.loads(path.read_text(encoding="utf-8"))
    if s.get("facility") != con.f.spec.name:
        raise ValueError(f"--state-dir {con.dir}: holds the state of {s.get('facility')!r}, not {con.f.spec.name!r}")
    con.clock.restore(s)
    con.estimates.restore(s)
    con.sensors.restore(s["checks"])
    con.alarms.active = dict(s.get("alarms_active", {}))
    con.outbound.restore(s.get("requests", {}))
    # the latest value of every point, applied when its metadata maps it again
    for point, ts, value, quality in con.history.latest().itertuples(index=False):
        con.intake.pending[point] = (None if value != value else float(value), int(ts), int(quality))
    return True


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = [
    "LAG_RECENT_S",
    "STATE_VERSION",
    "atomic_write",
    "load_state",
    "points_line",
    "points_parts",
    "save_state",
    "status",
    "summary_lines",
    "view",
]
