"""Data checks at every tick: ``stale`` points (no value for twice the republish period; ``value_rejected``
when values did come but none was taken, see :mod:`rejections`), ``bad_quality``,
the BMS's ``heartbeat_loss`` (no heartbeat for three periods) and ``metadata_missing`` (expected points with
no metadata one republish period after start). Stale and heartbeat verdicts wait out the clock's grace
after a reconnect or resume; an alarm clears when its condition is gone.
"""

from __future__ import annotations

import numpy as np
from factory_twin.links.dsx_exchange.clock import GRACE_S, HEARTBEAT_LOSS_S, STALE_S, PlantClock
from factory_twin.links.dsx_exchange.contract import GOOD
from factory_twin.links.dsx_exchange.diagnosis import AlarmLog
from factory_twin.links.dsx_exchange.pointmap import PointMap
from factory_twin.links.dsx_exchange.readings import Readings

KINDS = ("stale", "value_rejected", "bad_quality", "heartbeat_loss", "metadata_missing")


def data_checks(
    t_ms: int, readings: Readings, clock: PlantClock, alarms: AlarmLog, pointmap: PointMap, rejected: dict[str, dict]
) -> None:
    """Raise and clear the data alarms for plant time ``t_ms``; ``rejected``: by point, its latest value not taken."""
    still: set[str] = set()
    in_grace = clock.in_grace(t_ms)
    for (entity, name), g in readings.meas.items():
        if readings.written_by_us[(entity, name)] or entity == "bms" or not g.mapped.any():
            continue  # values the integration writes; the BMS's heartbeats are judged as heartbeats
        ids = pointmap.cat.entity_ids(entity)
        last = np.where(g.ts > 0, g.ts, g.since)
        stale = g.mapped & (t_ms - last > STALE_S * 1000) & (last > 0)
        bad = g.mapped & (g.ts > 0) & (g.quality != GOOD)
        point_name = f"{entity}/{name}"
        for i in np.flatnonzero(stale):
            rej = rejected.get(g.points[i])
            came = rej is not None and rej["ts_ms"] is not None and t_ms - rej["ts_ms"] <= STALE_S * 1000
            kind = "value_rejected" if came else "stale"
            k = AlarmLog.key(kind, ids[i], point_name)
            if in_grace and k not in alarms.active:
                continue
            still.add(k)
            ev = {"topic": g.points[i], "age_s": (t_ms - last[i]) / 1000}
            if came:
                ev |= {"reason": rej["reason"], "value": rej["value"], "detail": rej["detail"]}
            alarms.raise_(t_ms, ids[i], kind, ev, point_name)
        for i in np.flatnonzero(bad):
            still.add(AlarmLog.key("bad_quality", ids[i], point_name))
            m = pointmap.points.get(g.points[i])
            value = float(g.value[i]) if m is None else (float(g.value[i]) - m.offset) / m.scale
            ev = {"topic": g.points[i], "quality": int(g.quality[i]), "value": value, "unit": m.unit if m else None}
            alarms.raise_(t_ms, ids[i], "bad_quality", ev, point_name)
    hb = readings[("bms", "heartbeat_ms")]
    k = AlarmLog.key("heartbeat_loss", "BMS", None)
    if hb.mapped[0] and hb.ts[0] > 0 and t_ms - hb.ts[0] > HEARTBEAT_LOSS_S * 1000 and not in_grace:
        still.add(k)
        alarms.raise_(t_ms, "BMS", "heartbeat_loss", {"last_heartbeat_ms": int(hb.ts[0])})
    elif not (hb.mapped[0] and hb.ts[0] > 0 and t_ms - hb.ts[0] <= HEARTBEAT_LOSS_S * 1000) and k in alarms.active:
        still.add(k)  # unmapped, never heard, or lost within the grace: the verdict stands
    if t_ms - clock.first_ms > GRACE_S * 1000:
        for eid, name in pointmap.missing():
            entity = "rack" if name in ("power_kw", "supply_c", "return_c", "flow_lpm") else "cdu"
            k = AlarmLog.key("metadata_missing", eid, f"{entity}/{name}")
            still.add(k)
            alarms.raise_(t_ms, eid, "metadata_missing", {"signal": name}, f"{entity}/{name}")
    if not in_grace:  # a jump of the site's clock is shown until the data checks judge again
        alarms.clear(t_ms, "clock_jump", "BMS")
    alarms.clear_missing(t_ms, KINDS, still)


__all__ = ["KINDS", "data_checks"]
