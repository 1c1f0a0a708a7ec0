"""Process faults at every tick: ``pump_failure`` (a CDU's secondary flow below ``PUMP_FLOW_FRACTION`` of
design while the sum of its racks' flows agrees, for three ticks) and ``hx_fouling`` (its UA estimate below
``FOULING_FRACTION`` of design by more than three standard deviations, its data trusted, for
``FOULING_PERSIST`` ticks). An alarm clears when its condition is gone.
"""

from __future__ import annotations

import numpy as np
from factory_twin.links.dsx_exchange.design import Design
from factory_twin.links.dsx_exchange.diagnosis import FOULING_FRACTION, PUMP_FLOW_FRACTION, AlarmLog
from factory_twin.links.dsx_exchange.estimator import ScalarKalman
from factory_twin.links.dsx_exchange.points import Catalog
from factory_twin.links.dsx_exchange.sensor_checks import group_sum
from factory_twin.models.units import M3_S_PER_L_MIN
from factory_twin.twin.facility.assembly import Facility

FOULING_PERSIST = 6
PUMP_PERSIST = 3


class ProcessFaults:
    """Consecutive ticks each CDU has met the pump and the fouling condition."""

    def __init__(self, f: Facility, catalog: Catalog, alarms: AlarmLog, design: Design) -> None:
        self.f, self.cat, self.alarms, self.design = f, catalog, alarms, design
        self.pump_over = np.zeros(f.n_cdus, int)
        self.fouling_over = np.zeros(f.n_cdus, int)

    @property
    def flow_loss(self) -> np.ndarray:
        """CDUs whose loop is losing flow (the sensor checks leave them alone)."""
        return self.pump_over > 0

    def update(self, t_ms: int, v: dict, ua: ScalarKalman, suspect: np.ndarray) -> None:
        still: set[str] = set()
        d = self.design
        Vs = v[("cdu", "sec_flow_lpm")]
        rack_sum = group_sum(v[("rack", "flow_lpm")], self.f.rack_cdu, self.f.n_cdus)
        with np.errstate(invalid="ignore"):
            low = (Vs < PUMP_FLOW_FRACTION * d.v_sec) & (np.abs(rack_sum - Vs) < 0.1 * d.v_sec)
        self.pump_over = np.where(low, self.pump_over + 1, 0)
        for c in np.flatnonzero(self.pump_over >= PUMP_PERSIST):
            eid = self.cat.cdu_ids[c]
            still.add(AlarmLog.key("pump_failure", eid, None))
            ev = {
                "sec_flow_lpm": Vs[c] / M3_S_PER_L_MIN,
                "design_lpm": d.v_sec[c] / M3_S_PER_L_MIN,
                "rack_flow_sum_lpm": rack_sum[c] / M3_S_PER_L_MIN,
                "pump_pct": 100 * v[("cdu", "pump_pct")][c],
            }
            self.alarms.raise_(t_ms, eid, "pump_failure", ev)
        ratio = ua.theta / d.ua
        sure = (d.ua * FOULING_FRACTION - ua.theta) > 3 * ua.sd
        foul = (ratio < FOULING_FRACTION) & sure & ~suspect
        self.fouling_over = np.where(foul, self.fouling_over + 1, 0)
        for c in np.flatnonzero(self.fouling_over >= FOULING_PERSIST):
            eid = self.cat.cdu_ids[c]
            still.add(AlarmLog.key("hx_fouling", eid, None))
            ev = {
                "ua_estimate_w_k": ua.theta[c],
                "ua_sd_w_k": ua.sd[c],
                "ua_design_w_k": d.ua[c],
                "ua_drop": 1 - ratio[c],
                "valve_pct": 100 * v[("cdu", "valve_pct")][c],
            }
            self.alarms.raise_(t_ms, eid, "hx_fouling", ev)
        self.alarms.clear_missing(t_ms, ("pump_failure", "hx_fouling"), still)


__all__ = ["FOULING_PERSIST", "ProcessFaults"]
