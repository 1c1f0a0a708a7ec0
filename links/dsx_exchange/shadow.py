"""The shadow twin's unmeasured states, from measured inputs at every tick: die temperatures (steady two-node
RC of the rack type from measured rack power and coolant; PSU efficiency curve, non-GPU share), and each
CDU's supply temperature and valve as the model predicts them with the estimated UA
(:func:`models.heat_exchange.cdu_supply_control`); each rack's return from its supply, power and estimated
resistance.
"""

from __future__ import annotations

import numpy as np
from factory_twin.links.dsx_exchange.design import Design
from factory_twin.links.dsx_exchange.estimates import Estimates
from factory_twin.models.heat_exchange import cdu_supply_control
from factory_twin.twin.facility.assembly import Facility


class Shadow:
    """Die temperatures [degC], GPU power [W/GPU] per rack and the predictions of the latest tick."""

    def __init__(self, f: Facility, design: Design) -> None:
        self.f, self.design = f, design
        self.die_c = np.full(f.n_racks, np.nan)
        self.p_gpu = np.full(f.n_racks, np.nan)
        self.predicted: dict[str, np.ndarray] = {}

    def update(self, v: dict, est: Estimates) -> None:
        f, cool = self.f, self.f.spec.cooling
        P, Ts, Tr = v[("rack", "power_kw")], v[("rack", "supply_c")], v[("rack", "return_c")]
        eta = f.psu_efficiency(P / (f.psu_count * f.psu_rating_w))
        self.p_gpu = np.clip((P * eta - f.non_gpu_w) / f.gpus, 0.0, None)
        t_cool = 0.5 * (Ts + Tr)
        self.die_c = t_cool + self.p_gpu * (f.r_die_plate_k_w + f.r_plate_coolant_k_w)
        Tsr, Tps, sp = v[("cdu", "sec_return_c")], v[("cdu", "pri_supply_c")], v[("cdu", "setpoint_c")]
        Vs = v[("cdu", "sec_flow_lpm")]
        ok = np.isfinite(Tsr) & np.isfinite(Tps) & np.isfinite(sp) & np.isfinite(Vs) & (Vs > 0)
        pred_sup, pred_valve = np.full(f.n_cdus, np.nan), np.full(f.n_cdus, np.nan)
        if ok.any():
            ctl = cdu_supply_control(
                Tsr[ok],
                self.design.rho_cp_tcs * Vs[ok],
                Tps[ok],
                f.c_fws_max_w_k[ok],
                est.ua.theta[ok],
                sp[ok],
                arrangement=cool.cdu.arrangement,
                exponent=cool.cdu.ua_flow_exponent,
                iterations=30,
            )
            pred_sup[ok], pred_valve[ok] = ctl.t_supply_c, 100 * ctl.flow_fraction
        self.predicted = {
            "cdu_supply_c": pred_sup,
            "cdu_valve_pct": pred_valve,
            "rack_return_c": Ts + est.rack_r.theta * P,
        }


__all__ = ["Shadow"]
