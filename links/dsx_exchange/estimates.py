"""The slow plant parameters estimated at every tick (:mod:`estimator` has the filter): each CDU's exchanger
UA at nominal flows and each rack's coolant-side resistance (rise per watt). A CDU's UA is updated only
while its data is trusted (no sensor or data alarm on it or its racks, its checks quiet); the variance of
each UA sample is propagated from the sensors' noise and resolution.
"""

from __future__ import annotations

import math

import numpy as np
from factory_twin.links.dsx_exchange.clock import TICK_S
from factory_twin.links.dsx_exchange.design import Design
from factory_twin.links.dsx_exchange.diagnosis import Check
from factory_twin.links.dsx_exchange.estimator import ScalarKalman, ua_nominal_from_measurements
from factory_twin.links.dsx_exchange.pointmap import PointMap
from factory_twin.links.dsx_exchange.points import SIGNALS
from factory_twin.twin.facility.assembly import Facility

UA_INPUTS = ("sec_return_c", "sec_supply_c", "pri_supply_c", "sec_flow_lpm", "pri_flow_lpm")
CDU_CHECKS = ("cdu_supply", "cdu_return", "cdu_flow", "cdu_pri_supply", "cdu_balance", "cdu_valve")


class Estimates:
    """UA per CDU and coolant-side resistance per rack, each a :class:`ScalarKalman` over the entities."""

    def __init__(self, f: Facility, pointmap: PointMap, design: Design) -> None:
        self.f, self.map, self.design = f, pointmap, design
        self.ua = ScalarKalman.start(design.ua, 0.2, 0.3)
        self.rack_r = ScalarKalman.start(np.full(f.n_racks, np.nan), 0.0, 0.05)

    def _ua_sample(self, x: dict[str, np.ndarray]) -> np.ndarray:
        f, cool, d = self.f, self.f.spec.cooling, self.design
        return ua_nominal_from_measurements(
            x["sec_return_c"],
            x["sec_supply_c"],
            x["pri_supply_c"],
            d.rho_cp_tcs * x["sec_flow_lpm"],
            d.rho_cp_fws * x["pri_flow_lpm"],
            f.c_fws_max_w_k,
            cool.cdu.arrangement,
            cool.cdu.ua_flow_exponent,
        )

    def update(self, v: dict, flagged: dict, checks: dict[str, Check], suspect: np.ndarray) -> None:
        """One tick: ``flagged`` and ``checks`` from the sensor checks, ``suspect`` CDUs' data untrusted."""
        x = {k: v[("cdu", k)] for k in UA_INPUTS}
        z = self._ua_sample(x)
        r = self._ua_variance(x, z)
        trusted = ~suspect
        for name in CDU_CHECKS:
            trusted &= ~flagged[name] & (np.abs(checks[name].zf) < 3.0)
        self.ua.update(z, r, TICK_S, trusted)
        P, Ts, Tr = v[("rack", "power_kw")], v[("rack", "supply_c")], v[("rack", "return_c")]
        with np.errstate(invalid="ignore", divide="ignore"):
            zr = (Tr - Ts) / P
            rr = (2 * 0.06**2) / P**2 + ((Tr - Ts) * 200.0 / P**2) ** 2
        self.rack_r.update(zr, rr, TICK_S, ~suspect[self.f.rack_cdu] & (P > 1.0))

    def _ua_variance(self, base: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
        """Variance of one UA solution, propagated from each input's noise and resolution (finite steps)."""
        var = np.zeros(self.f.n_cdus)
        for k in UA_INPUTS:
            x = dict(base)
            x[k] = base[k] + self._sd(("cdu", k))
            var += (self._ua_sample(x) - z) ** 2
        return var

    def _sd(self, key: tuple[str, str]) -> float:
        """One reading's standard deviation in internal units (noise and resolution of its signal)."""
        s = next(s for s in SIGNALS if (s.entity, s.name) == key)
        m = next((m for m in self.map.points.values() if (m.entity, m.signal) == key), None)
        scale = m.scale if m is not None else 1.0
        return math.sqrt(s.noise**2 + s.resolution**2 / 12.0) * scale

    def state(self) -> dict:
        return {"ua": self.ua.state(), "rack_r": self.rack_r.state()}

    def restore(self, s: dict) -> None:
        self.ua.restore(s["ua"])
        self.rack_r.restore(s["rack_r"])


__all__ = ["Estimates"]
