"""Sensor diagnosis at every tick: the residual checks of :mod:`diagnosis` fed with the usable readings, and
each persistent residual attributed to the one sensor that explains it (``sensor_bias``, ``sensor_drift``,
``sensor_stuck`` on that point). A verdict stands until its check has been quiet for a while.
"""

from __future__ import annotations

import numpy as np
from factory_twin.links.dsx_exchange.design import Design
from factory_twin.links.dsx_exchange.diagnosis import AlarmLog, Check, group_median
from factory_twin.links.dsx_exchange.pointmap import PointMap
from factory_twin.models.units import KW, M3_S_PER_L_MIN
from factory_twin.twin.facility.assembly import Facility

SENSOR_KINDS = ("sensor_bias", "sensor_drift", "sensor_stuck")
SUSPECT_KINDS = (*SENSOR_KINDS, "stale", "bad_quality")  # alarms that make an entity's data untrusted


def group_sum(x: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Sum per group; NaN if any member is NaN (a balance with a missing term says nothing)."""
    s = np.bincount(groups, np.nan_to_num(x), n)
    bad = np.bincount(groups, ~np.isfinite(x), n) > 0
    return np.where(bad, np.nan, s)


def suspect_cdus(alarms: AlarmLog, pointmap: PointMap, f: Facility) -> np.ndarray:
    """CDUs with a sensor or data alarm on themselves or their racks (their data is not trusted)."""
    out = np.zeros(f.n_cdus, bool)
    cdu, rack = pointmap.cat.cdu_index, pointmap.index["rack"]
    for eid in alarms.entities_with(SUSPECT_KINDS):
        if eid in cdu:
            out[cdu[eid]] = True
        elif eid in rack:
            out[f.rack_cdu[rack[eid]]] = True
    return out


class SensorChecks:
    """The residual checks over racks and CDUs, and the sensor alarms they raise."""

    def __init__(self, f: Facility, pointmap: PointMap, alarms: AlarmLog, design: Design) -> None:
        self.f, self.map, self.alarms, self.design = f, pointmap, alarms, design
        nr, nc = f.n_racks, f.n_cdus
        self.checks = {
            # sigma: the spread of each residual on a clean plant (sensor noise, resolution, transients of
            # load steps), measured with the emulator over load steps: |z| stays below ~2 there
            "rack_supply": Check("rack_supply", "rack", "supply_c", 0.05, nr),
            "rack_return": Check("rack_return", "rack", "return_c", 0.08, nr),
            "rack_flow": Check("rack_flow", "rack", "flow_lpm", 1.2 * M3_S_PER_L_MIN, nr),
            "rack_power": Check("rack_power", "rack", "power_kw", 1.5 * KW, nr),
            "row_power": Check("row_power", "cdu", "row_power", 1.5 * KW, nc),
            "cdu_supply": Check("cdu_supply", "cdu", "sec_supply_c", 0.04, nc),
            "cdu_return": Check("cdu_return", "cdu", "sec_return_c", 0.15, nc),
            "cdu_flow": Check("cdu_flow", "cdu", "sec_flow_lpm", 12.0 * M3_S_PER_L_MIN, nc),
            "cdu_pri_supply": Check("cdu_pri_supply", "cdu", "pri_supply_c", 0.04, nc),
            "cdu_balance": Check("cdu_balance", "cdu", "pri_balance", 0.01, nc),
            "cdu_valve": Check("cdu_valve", "cdu", "pri_flow_lpm", 15.0 * M3_S_PER_L_MIN, nc),
        }
        meters = list(pointmap.cat.meters)
        self.row_meter = np.array([meters.index(f"M-{c}") for c in pointmap.cat.cdu_ids])

    def residuals(self, v: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Each check's residual and the value of the sensor it judges (internal units)."""
        f, d = self.f, self.design
        rc, nc = f.rack_cdu, f.n_cdus
        P, Ts, Tr, V = (
            v[("rack", "power_kw")],
            v[("rack", "supply_c")],
            v[("rack", "return_c")],
            v[("rack", "flow_lpm")],
        )
        Tss, Tsr = v[("cdu", "sec_supply_c")], v[("cdu", "sec_return_c")]
        Tps, Tpr = v[("cdu", "pri_supply_c")], v[("cdu", "pri_return_c")]
        Vs, Vp, valve = v[("cdu", "sec_flow_lpm")], v[("cdu", "pri_flow_lpm")], v[("cdu", "valve_pct")]
        row_meter = v[("meter", "power_kw")][self.row_meter]
        with np.errstate(invalid="ignore", divide="ignore"):
            med_ts = group_median(Ts, rc, nc)
            norm_rise = (Tr - Ts) * V / P
            med_rise = group_median(norm_rise, rc, nc)
            med_v = group_median(V, rc, nc)
            res = {
                "rack_supply": Ts - med_ts[rc],
                "rack_return": (Tr - Ts) - med_rise[rc] * P / V,
                "rack_flow": V - med_v[rc],
                "rack_power": P - (Tr - Ts) * V / med_rise[rc],
                "row_power": row_meter - group_sum(P, rc, nc),
                "cdu_supply": Tss - med_ts,
                "cdu_return": Tsr - group_sum(Tr * V, rc, nc) / group_sum(V, rc, nc),
                "cdu_flow": Vs - group_sum(V, rc, nc),
                "cdu_pri_supply": Tps - np.nanmedian(Tps) if np.isfinite(Tps).any() else Tps,
                "cdu_balance": (d.rho_cp_fws * Vp * (Tpr - Tps) - d.rho_cp_tcs * Vs * (Tsr - Tss)) / f.cdu_design_q_w,
                "cdu_valve": Vp - valve * d.v_pri_max,
            }
        values = {
            "rack_supply": Ts,
            "rack_return": Tr,
            "rack_flow": V,
            "rack_power": P,
            "row_power": row_meter,
            "cdu_supply": Tss,
            "cdu_return": Tsr,
            "cdu_flow": Vs,
            "cdu_pri_supply": Tps,
            "cdu_balance": Tpr,
            "cdu_valve": Vp,
        }
        return res, values

    def update(self, t_ms: int, v: dict, flow_loss: np.ndarray) -> dict[str, np.ndarray]:
        """Feed every check; raise and clear sensor alarms; return the flagged masks by check name (none
        on a CDU losing flow, ``flow_loss``: that moves every related sensor, it is the process)."""
        res, values = self.residuals(v)
        flagged = {name: ch.update(res[name], values[name]) for name, ch in self.checks.items()}
        for name, ch in self.checks.items():
            mask = flow_loss[self.f.rack_cdu] if ch.entity == "rack" else flow_loss
            flagged[name] = flagged[name] & ~mask
        self._attribute(t_ms, flagged, res)
        return flagged

    def _attribute(self, t_ms: int, flagged: dict, res: dict) -> None:
        rc = self.f.rack_cdu
        still: set[str] = set()
        ck = self.checks

        def sensor(check: str, entity: str, i: int, signal: str, extra: dict | None = None) -> None:
            kind, ev = ck[check].classify(i)
            eid = self.map.cat.entity_ids(entity)[i]
            point = f"{entity}/{signal}"
            for other in SENSOR_KINDS:
                if AlarmLog.key(other, eid, point) in self.alarms.active:
                    kind = other  # keep the first verdict while it lasts
            still.add(AlarmLog.key(kind, eid, point))
            self.alarms.raise_(t_ms, eid, kind, ev | (extra or {}), point)

        # racks: a power meter fault shows in the row balance and in that rack's return check (same sign)
        row_z = ck["row_power"].zf
        rack_flow_cdus = set(rc[flagged["rack_flow"]].tolist())
        # the rack's power and its coolant rise disagree (rack_return and rack_power are that one relation
        # seen from either side): the row meter says which of the two sensors is wrong
        for i in np.flatnonzero(flagged["rack_return"] | flagged["rack_power"]):
            c = rc[i]
            if abs(row_z[c]) > 2.5 and np.sign(res["rack_power"][i]) == -np.sign(res["row_power"][c]):
                sensor("rack_power", "rack", i, "power_kw", {"row_balance_w": float(res["row_power"][c])})
            else:
                sensor("rack_return", "rack", i, "return_c")
        for i in np.flatnonzero(flagged["rack_supply"]):
            sensor("rack_supply", "rack", i, "supply_c")
        for i in np.flatnonzero(flagged["rack_flow"]):
            sensor("rack_flow", "rack", i, "flow_lpm")
        for c in np.flatnonzero(flagged["cdu_supply"]):
            sensor("cdu_supply", "cdu", c, "sec_supply_c")
        for c in np.flatnonzero(flagged["cdu_return"]):
            sensor("cdu_return", "cdu", c, "sec_return_c")
        for c in np.flatnonzero(flagged["cdu_flow"]):
            if c not in rack_flow_cdus:
                sensor("cdu_flow", "cdu", c, "sec_flow_lpm")
        for c in np.flatnonzero(flagged["cdu_pri_supply"]):
            sensor("cdu_pri_supply", "cdu", c, "pri_supply_c")
        secondary_ok = ~(
            flagged["cdu_supply"] | flagged["cdu_return"] | flagged["cdu_flow"] | flagged["cdu_pri_supply"]
        )
        for c in np.flatnonzero(flagged["cdu_valve"] & secondary_ok):
            sensor("cdu_valve", "cdu", c, "pri_flow_lpm")
        for c in np.flatnonzero(flagged["cdu_balance"] & secondary_ok & ~flagged["cdu_valve"]):
            sensor("cdu_balance", "cdu", c, "pri_return_c")
        # a sensor verdict stands until its check has been quiet for a while (and a stuck value moved)
        for k, rec in self.alarms.active.items():
            if rec["kind"] in SENSOR_KINDS and k not in still and not self._recovered(rec):
                still.add(k)
        self.alarms.clear_missing(t_ms, SENSOR_KINDS, still)

    def _recovered(self, rec: dict) -> bool:
        ch = self.checks.get(rec["evidence"].get("check", ""))
        if ch is None:
            return True
        i = self.map.index[ch.entity].get(rec["entity"])
        if i is None:
            return True
        if not ch.quiet(i):
            return False
        if rec["kind"] == "sensor_stuck":
            return ch.latest_value(i) != rec["evidence"].get("unchanged_value")
        return True

    def state(self) -> dict:
        return {k: c.state() for k, c in self.checks.items()}

    def restore(self, s: dict) -> None:
        for k, c in self.checks.items():
            c.restore(s.get(k, {}))


__all__ = ["SENSOR_KINDS", "SUSPECT_KINDS", "SensorChecks", "group_sum", "suspect_cdus"]
