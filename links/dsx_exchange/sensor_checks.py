"""Sensor diagnosis at every tick: the residual checks of :mod:`diagnosis` fed with the usable readings, and
each persistent residual attributed to the one sensor that explains it (``sensor_bias``, ``sensor_drift``,
``sensor_stuck`` on that point), with the evidence in the point's own unit. A verdict stands until its check
has been quiet for a while.
"""

from __future__ import annotations

import numpy as np
from factory_twin.links.dsx_exchange.clock import TICK_S
from factory_twin.links.dsx_exchange.contract import UNITS
from factory_twin.links.dsx_exchange.design import Design
from factory_twin.links.dsx_exchange.diagnosis import AlarmLog, Check, group_median
from factory_twin.links.dsx_exchange.pointmap import PointMap
from factory_twin.links.dsx_exchange.points import SIGNALS
from factory_twin.links.dsx_exchange.readings import Readings
from factory_twin.models.units import KW, M3_S_PER_L_MIN
from factory_twin.twin.facility.assembly import Facility

SENSOR_KINDS = ("sensor_bias", "sensor_drift", "sensor_stuck")
SUSPECT_KINDS = (*SENSOR_KINDS, "stale", "value_rejected", "bad_quality")  # alarms that make an entity's data untrusted
Z_EXPLAINS = 2.5  # a neighbouring check this far out (filtered z) explains a disagreement
Z_ROBUST = 4.0  # a rack sensor this far from its peers' prediction counts with the prediction in CDU sums
DISPLAY_UNIT = {"C": "degC", "LPM": "L/min", "F": "degF"}
# (check, point, sign of its residual against the balance's) for the sensors that also enter the primary-
# secondary heat balance: a secondary supply reading high lowers the secondary heat (balance up); a secondary
# return or flow reading high raises it (balance down); a primary supply reading high lowers the primary heat
BALANCE_EXPLAINED_BY = (
    ("cdu_return", "sec_return_c", -1.0),
    ("cdu_supply", "sec_supply_c", 1.0),
    ("cdu_flow", "sec_flow_lpm", -1.0),
    ("cdu_pri_supply", "pri_supply_c", -1.0),
)
CANONICAL_UNIT = {(s.entity, s.name): s.unit for s in SIGNALS}


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

    def __init__(self, f: Facility, pointmap: PointMap, alarms: AlarmLog, design: Design, readings: Readings) -> None:
        self.f, self.map, self.alarms, self.design, self.readings = f, pointmap, alarms, design, readings
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
            # the same relation seen from the valve's side (its reading's history, when the valve is blamed)
            "cdu_valve_position": Check("cdu_valve_position", "cdu", "valve_pct", 15.0 * M3_S_PER_L_MIN, nc),
        }
        cat = pointmap.cat
        meters = list(cat.meters)
        self.row_meter = np.array([meters.index(f"M-{c}") for c in cat.cdu_ids])
        # which entity a check's index is, for each kind of entity an alarm may name
        rack_i = {r: i for i, r in enumerate(cat.rack_ids)}
        cdu_i = {c: i for i, c in enumerate(cat.cdu_ids)}
        self.check_index = {name: rack_i if ch.entity == "rack" else cdu_i for name, ch in self.checks.items()}
        self.check_index["row_power"] = {f"M-{c}": i for i, c in enumerate(cat.cdu_ids)}

    def residuals(self, v: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Each check's residual and the value of the sensor it judges (internal units)."""
        f, d = self.f, self.design
        rc, nc = f.rack_cdu, f.n_cdus
        ck = self.checks
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
            rack_return = (Tr - Ts) - med_rise[rc] * P / V
            rack_flow = V - med_v[rc]
            # the CDU sums count a rack's sensor that its peers contradict with what they predict for it:
            # a flow meter whose residual the rack's rise confirms (same sign), a return off its prediction
            flow_bad = (np.abs(rack_flow) > Z_ROBUST * ck["rack_flow"].sigma) & (
                np.abs(rack_return) > Z_ROBUST * ck["rack_return"].sigma
            )
            flow_bad &= np.sign(rack_flow) == np.sign(rack_return)
            V_eff = np.where(flow_bad, med_v[rc], V)
            Tr_pred = med_ts[rc] + med_rise[rc] * P / V_eff
            Tr_eff = np.where(np.abs(Tr - Tr_pred) > Z_ROBUST * ck["rack_return"].sigma, Tr_pred, Tr)
            res = {
                "rack_supply": Ts - med_ts[rc],
                "rack_return": rack_return,
                "rack_flow": rack_flow,
                "rack_power": P - (Tr - Ts) * V / med_rise[rc],
                "row_power": row_meter - group_sum(P, rc, nc),
                "cdu_supply": Tss - med_ts,
                "cdu_return": Tsr - group_sum(Tr_eff * V_eff, rc, nc) / group_sum(V_eff, rc, nc),
                "cdu_flow": Vs - group_sum(V_eff, rc, nc),
                "cdu_pri_supply": Tps - np.nanmedian(Tps) if np.isfinite(Tps).any() else Tps,
                "cdu_balance": (d.rho_cp_fws * Vp * (Tpr - Tps) - d.rho_cp_tcs * Vs * (Tsr - Tss)) / f.cdu_design_q_w,
                "cdu_valve": Vp - valve * d.v_pri_max,
            }
            res["cdu_valve_position"] = -res["cdu_valve"]
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
            "cdu_valve_position": valve,
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
        self._attribute(t_ms, flagged, res, v)
        return flagged

    def _attribute(self, t_ms: int, flagged: dict, res: dict, v: dict) -> None:
        rc = self.f.rack_cdu
        still: set[str] = set()
        ck = self.checks
        z = {name: ch.zf for name, ch in ck.items()}

        def sensor(check: str, i: int, entity: str, signal: str, e: int | None = None, extra: dict | None = None):
            """Blame point ``entity/signal`` of entity index ``e`` (default ``i``) on check ``check``'s index."""
            e = i if e is None else e
            kind, ev = ck[check].classify(i)
            eid = self.map.cat.entity_ids(entity)[e]
            point = f"{entity}/{signal}"
            for other in SENSOR_KINDS:
                if AlarmLog.key(other, eid, point) in self.alarms.active:
                    kind = other  # keep the first verdict while it lasts
            still.add(AlarmLog.key(kind, eid, point))
            ev = self._in_point_units(ev | (extra or {}), check, entity, signal, e, i, v)
            self.alarms.raise_(t_ms, eid, kind, ev, point)

        def explains(check: str, i, sign: float) -> bool:
            """Check ``check`` is out at ``i`` (filtered) with the residual sign ``sign``."""
            return abs(z[check][i]) > Z_EXPLAINS and np.sign(res[check][i]) == sign

        # a rack's power and its coolant rise disagree (rack_return and rack_power are that one relation
        # seen from either side): the sensor that explains it is blamed
        for i in np.flatnonzero(flagged["rack_return"] | flagged["rack_power"]):
            c, s_ret = rc[i], np.sign(res["rack_return"][i])
            if explains("rack_flow", i, s_ret):
                sensor("rack_flow", i, "rack", "flow_lpm")
            elif explains("rack_supply", i, -s_ret):
                sensor("rack_supply", i, "rack", "supply_c")
            elif explains("row_power", c, -np.sign(res["rack_power"][i])):
                sensor("rack_power", i, "rack", "power_kw", extra={"row_balance_w": float(res["row_power"][c])})
            else:
                sensor("rack_return", i, "rack", "return_c")
        for i in np.flatnonzero(flagged["rack_supply"]):
            sensor("rack_supply", i, "rack", "supply_c")
        for i in np.flatnonzero(flagged["rack_flow"]):
            sensor("rack_flow", i, "rack", "flow_lpm")
        # the row meter, when no rack power of its row explains its balance
        for c in np.flatnonzero(flagged["row_power"]):
            racks = np.flatnonzero(rc == c)
            s_row = np.sign(res["row_power"][c])
            if not any(explains("rack_power", i, -s_row) for i in racks):
                sensor("row_power", c, "meter", "power_kw", e=int(self.row_meter[c]))
        for c in np.flatnonzero(flagged["cdu_supply"]):
            sensor("cdu_supply", c, "cdu", "sec_supply_c")
        for c in np.flatnonzero(flagged["cdu_return"]):
            sensor("cdu_return", c, "cdu", "sec_return_c")
        for c in np.flatnonzero(flagged["cdu_flow"]):
            sensor("cdu_flow", c, "cdu", "sec_flow_lpm")
        for c in np.flatnonzero(flagged["cdu_pri_supply"]):
            sensor("cdu_pri_supply", c, "cdu", "pri_supply_c")
        secondary_ok = ~(
            flagged["cdu_supply"] | flagged["cdu_return"] | flagged["cdu_flow"] | flagged["cdu_pri_supply"]
        )
        # flow vs valve: a primary flow meter off moves the heat balance too (same sign), a valve reading does not
        for c in np.flatnonzero(flagged["cdu_valve"] & secondary_ok):
            if explains("cdu_balance", c, np.sign(res["cdu_valve"][c])):
                sensor("cdu_valve", c, "cdu", "pri_flow_lpm")
            else:
                sensor("cdu_valve_position", c, "cdu", "valve_pct")
        # the heat balance: a sensor of the secondary side or the primary supply that moves it the same way
        # explains it (they have checks of their own, less sensitive than the balance), else the primary return
        for c in np.flatnonzero(flagged["cdu_balance"] & secondary_ok & ~flagged["cdu_valve"]):
            s_bal = np.sign(res["cdu_balance"][c])
            for check, signal, sign in BALANCE_EXPLAINED_BY:
                if explains(check, c, sign * s_bal):
                    sensor(check, c, "cdu", signal)
                    break
            else:
                sensor("cdu_balance", c, "cdu", "pri_return_c")
        # a sensor verdict stands until its check has been quiet for a while (and a stuck value moved)
        for k, rec in self.alarms.active.items():
            if rec["kind"] in SENSOR_KINDS and k not in still and not self._recovered(rec):
                still.add(k)
        self.alarms.clear_missing(t_ms, SENSOR_KINDS, still)

    def _point_unit(self, entity: str, signal: str, e: int) -> tuple[str, float, float]:
        """The unit the point's metadata states (the signal's own if unmapped): label, scale, offset."""
        pt = self.readings[(entity, signal)].points[e]
        m = self.map.points.get(pt) if pt is not None else None
        unit = m.unit if m is not None and m.unit else CANONICAL_UNIT[(entity, signal)]
        scale, offset = UNITS.get(unit, (1.0, 0.0))
        return DISPLAY_UNIT.get(unit, unit), scale, offset

    def _in_point_units(self, ev: dict, check: str, entity: str, signal: str, e: int, i: int, v: dict) -> dict:
        """Evidence in the unit of the blamed point (differences scaled, values scaled and offset), z added."""
        label, scale, offset = self._point_unit(entity, signal, e)
        out = {"check": ev["check"], "unit": label, "z": float(self.checks[check].zf[i])}
        r, sigma = ev.get("residual"), ev["sigma"]
        if check == "cdu_balance":  # a heat imbalance [fraction of design]: as heat and as the return's error
            q = self.f.cdu_design_q_w[i]
            c_pri = self.design.rho_cp_fws * v[("cdu", "pri_flow_lpm")][i]
            out["heat_imbalance_kw"] = None if r is None else r * q / KW
            r, sigma = (None if r is None else r * q / c_pri), sigma * q / c_pri
        elif signal == "valve_pct":  # the valve reading's error: the flow it implies that the meter does not see
            vmax = self.design.v_pri_max[i]
            r, sigma = (None if r is None else r / vmax), sigma / vmax
        out["residual"] = None if r is None or not np.isfinite(r) else r / scale
        out["sigma"] = sigma / scale
        if "unchanged_value" in ev:
            out["unchanged_value"] = (ev["unchanged_value"] - offset) / scale
        if "slope_per_tick" in ev:
            out["drift_per_h"] = ev["slope_per_tick"] / scale * 3600.0 / TICK_S
            out["r2"] = ev["r2"]
        if "row_balance_w" in ev:
            out["row_balance_kw"] = ev["row_balance_w"] / KW
        return out

    def _recovered(self, rec: dict) -> bool:
        name = rec["evidence"].get("check", "")
        ch = self.checks.get(name)
        if ch is None:
            return True
        i = self.check_index[name].get(rec["entity"])
        if i is None:
            return True
        if not ch.quiet(i):
            return False
        if rec["kind"] == "sensor_stuck":  # moved since: compared in the point's unit, as the evidence has it
            entity, _, signal = rec["point"].partition("/")
            _, scale, offset = self._point_unit(entity, signal, self.map.index[entity][rec["entity"]])
            was = rec["evidence"].get("unchanged_value")
            now = (ch.latest_value(i) - offset) / scale
            return was is None or not abs(now - was) <= 1e-6 * max(1.0, abs(was))
        return True

    def state(self) -> dict:
        return {k: c.state() for k, c in self.checks.items()}

    def restore(self, s: dict) -> None:
        for k, c in self.checks.items():
            c.restore(s.get(k, {}))


__all__ = ["SENSOR_KINDS", "SUSPECT_KINDS", "SensorChecks", "group_sum", "suspect_cdus"]
