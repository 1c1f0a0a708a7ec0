"""The facility's design quantities the shadow twin measures the plant against, taken once from the spec."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.twin.facility.assembly import Facility


@dataclass(frozen=True)
class Design:
    """Coolant heat capacities per volume at the design setpoints [J/(m3 K)], design flows [m3/s] and UA [W/K]
    per CDU."""

    rho_cp_tcs: float  # technology cooling system (the racks' loop)
    rho_cp_fws: float  # facility water (the CDUs' primary side)
    v_sec: np.ndarray  # secondary (TCS) flow per CDU
    v_pri_max: np.ndarray  # primary flow per CDU with its valve fully open
    ua: np.ndarray  # exchanger UA at nominal flows per CDU

    @classmethod
    def of(cls, f: Facility) -> Design:
        cool = f.spec.cooling
        sp = float(cool.tcs.supply_setpoint_c)
        fws = float(cool.facility_water.supply_setpoint_c)
        rho_cp_fws = f.fws.rho_kg_m3(fws) * f.fws.cp_j_kgk(fws)
        return cls(
            rho_cp_tcs=f.tcs.rho_kg_m3(sp) * f.tcs.cp_j_kgk(sp),
            rho_cp_fws=rho_cp_fws,
            v_sec=f.tcs_v_dot_m3_s,
            v_pri_max=f.c_fws_max_w_k / rho_cp_fws,
            ua=f.cdu_ua_nom_w_k,
        )


__all__ = ["Design"]
