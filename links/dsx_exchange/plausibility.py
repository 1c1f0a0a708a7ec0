"""What a reading can plausibly be, per point, in internal units: a value outside its range is not in the unit
its metadata states (a kelvin or degF reading on a degC point, W on a kW meter) or not a reading at all, and
is rejected at intake; a liquid temperature that jumps further than the loop can move between two samples is
held until the point's next value confirms it (a step) or not (an outlier, rejected).

Ranges [estimate], each wide enough for every design the spec can describe and narrow enough to catch the
usual unit mix-ups:

- liquid temperatures (rack, CDU, heat rejection, setpoints): -20 to 80 degC. Water and glycol loops of
  liquid-cooled racks run above -20 degC (glycol heat-rejection loops in winter) and below the GPUs'
  throttle temperature (87 degC at GB300) less the die-to-coolant rise; ASHRAE W45 supplies with 60-65 degC
  returns fit with margin. A kelvin reading (>= 253) is always outside; degF is outside above 27 degC
  (80.6 degF), below that the jump rule catches it (a degF reading is 20 K or more off above -15 degC).
- flows: -5 % (a meter's zero offset) to 200 % of the point's design flow (rack flow, CDU secondary design,
  CDU primary with its valve open); pumps are sized at ~120-150 % of design. GPM on an L/min point (x 0.26)
  stays inside: the diagnosis sees it, for one sample the residual filters' clipping keeps it harmless.
- rack power: -5 % to 150 % of the rack's PSU input rating (PSUs cannot draw much beyond their rating);
  meters: +-150 % of the PSU rating of every rack downstream of the meter (by ``servesId``), +-150 % of the
  whole campus's where no rack is downstream (mechanical, heat rejection, BESS); negative for a BESS.
- percentages (pump, valve, fan, state of charge): -1 to 101 %; states: the states the metadata lists.

Jump: a liquid temperature moving more than 20 K between two values of one point (the loops' thermal mass
keeps a real change between two 10-100 s samples to a few K; a degF reading of a degC point is 32 K or more
off above 0 degC, a kelvin one 273 K). Other signals have no jump rule: a pump trip or a load step moves
flows and powers by their whole range at once.
"""

from __future__ import annotations

import numpy as np
from factory_twin.links.dsx_exchange.design import Design
from factory_twin.links.dsx_exchange.points import SIGNALS, Catalog
from factory_twin.twin.facility.assembly import Facility

T_MIN_C, T_MAX_C = -20.0, 80.0
FLOW_MIN, FLOW_MAX = -0.05, 2.0  # of design
POWER_MIN, POWER_MAX = -0.05, 1.5  # of the PSU input rating downstream
PCT_MIN, PCT_MAX = -0.01, 1.01  # fractions
JUMP_K = 20.0


class Plausibility:
    """``lo``, ``hi`` and ``jump`` arrays over each signal's entities (NaN: no bound)."""

    def __init__(self, f: Facility, catalog: Catalog, design: Design) -> None:
        rack_cap = f.psu_count * f.psu_rating_w
        rack_flow = f.rack_m_dot_kg_s / f.tcs.rho_kg_m3(float(f.spec.cooling.tcs.supply_setpoint_c))
        meter_cap = np.array([self._downstream(catalog, m, rack_cap) for m in catalog.meters])
        self.bounds: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for s in SIGNALS:
            n = len(catalog.entity_ids(s.entity))
            lo, hi, jump = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
            if s.unit == "C":
                lo[:], hi[:] = T_MIN_C, T_MAX_C
                if not s.is_setpoint and not s.integration:
                    jump[:] = JUMP_K
            elif s.unit == "LPM":
                design_flow = {"rack": rack_flow, "sec_flow_lpm": design.v_sec, "pri_flow_lpm": design.v_pri_max}
                d = design_flow["rack" if s.entity == "rack" else s.name]
                lo[:], hi[:] = FLOW_MIN * d, FLOW_MAX * d
            elif s.unit == "kW" and s.entity == "rack":
                lo[:], hi[:] = POWER_MIN * rack_cap, POWER_MAX * rack_cap
            elif s.unit == "kW" and s.entity == "meter":
                lo[:], hi[:] = -POWER_MAX * meter_cap, POWER_MAX * meter_cap
            elif s.unit == "%":
                lo[:], hi[:] = PCT_MIN, PCT_MAX
            elif s.states is not None:
                codes = [v for v, _ in s.states]
                lo[:], hi[:] = min(codes), max(codes)
            self.bounds[(s.entity, s.name)] = (lo, hi, jump)

    @staticmethod
    def _downstream(catalog: Catalog, meter: str, rack_cap: np.ndarray) -> float:
        """PSU input rating of every rack downstream of ``meter`` by ``servesId`` (the campus's if none)."""
        racks, todo = set(), [meter]
        rack_index = {r: i for i, r in enumerate(catalog.rack_ids)}
        while todo:
            for served in catalog.meters.get(todo.pop(), []):
                if served in rack_index:
                    racks.add(rack_index[served])
                else:
                    todo.append(served)
        return float(rack_cap[list(racks)].sum()) if racks else float(rack_cap.sum())

    def of(self, entity: str, signal: str, index: int) -> tuple[float, float, float]:
        lo, hi, jump = self.bounds[(entity, signal)]
        return float(lo[index]), float(hi[index]), float(jump[index])


__all__ = ["JUMP_K", "Plausibility"]
