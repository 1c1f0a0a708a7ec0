"""Facility heat rejection: dry coolers, evaporative (adiabatic / tower) coolers and chillers.

Coolers are approach-versus-fan-speed models (physics.md 1.3): the leaving-fluid temperature sits an
approach above the ambient reference (dry bulb or wet bulb) that grows with load and shrinks with
air flow. Chillers use the Carnot-fraction COP of Modelica Buildings
``Buildings.Fluid.Chillers.Carnot_y`` (structure only; https://github.com/lbl-srg/modelica-buildings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models import checks
from factory_twin.models.units import J_PER_KWH, M3_PER_L, T0_K
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
H_FG_J_KG = 2.4298e6  # latent heat of water at 30 degC [J/kg], CoolProp 8.0 saturated Water
RHO_WATER_KG_M3 = 997.05  # water at 25 degC, 1 atm [kg/m3], CoolProp 8.0 (physics.md 2.3)


@dataclass(frozen=True)
class CoolerState:
    """Outcome of :func:`dry_cooler` / :func:`evaporative_cooler` (arrays broadcast over time).

    t_min_out_c [degC] lowest leaving temperature at full fan speed for the requested duty;
    feasible: the setpoint is held at speed <= 1; speed [-] fan speed used (1 when infeasible, 0 at
    no load); fan_w [W]; fan_full_w_per_w [W/W] full-speed fan power per W of rated capacity;
    water_kg_s [kg/s].
    """

    t_min_out_c: Array
    feasible: NDArray[np.bool_]
    speed: Array
    fan_w: Array
    fan_full_w_per_w: Array
    water_kg_s: Array


def _approach_cooler(
    q_w: ArrayLike,
    t_out_set_c: ArrayLike,
    t_ref_c: ArrayLike,
    capacity_w: ArrayLike,
    design_approach_k: ArrayLike,
    fan_full_w_per_w: ArrayLike,
    speed_exponent: ArrayLike,
    ref_name: str,
) -> tuple[Array, Array, Array, Array, Array, Array]:
    q = checks.nonnegative("q_w", q_w)
    t_set = checks.finite("t_out_set_c", t_out_set_c)
    t_ref = checks.finite(ref_name, t_ref_c)
    cap = checks.positive("capacity_w", capacity_w)
    app = checks.positive("design_approach_k", design_approach_k)
    fan_full = checks.nonnegative("fan_full_w_per_w", fan_full_w_per_w)
    m = checks.positive("speed_exponent", speed_exponent)
    full_app = app * q / cap
    margin = t_set - t_ref
    with np.errstate(divide="ignore", invalid="ignore"):
        s_req = np.where(margin > 0, (full_app / np.where(margin > 0, margin, 1.0)) ** (1.0 / m), np.inf)
    s_req = np.where(q > 0, s_req, 0.0)
    feasible = s_req <= 1.0
    speed = np.where(feasible, s_req, 1.0)
    return (
        t_ref + full_app,
        feasible,
        speed,
        fan_full * cap * speed**3,
        fan_full * np.ones_like(speed),
        q,
    )


def dry_cooler(
    q_w: ArrayLike,
    t_out_set_c: ArrayLike,
    t_db_c: ArrayLike,
    capacity_w: ArrayLike,
    design_approach_k: ArrayLike,
    fan_full_w_per_w: ArrayLike,
    speed_exponent: ArrayLike = 1.0,
) -> CoolerState:
    """Dry cooler rejecting ``q_w`` with fans modulated to hold the leaving-fluid setpoint.

    Approach model: ``T_out - T_db = dT_des (Q/Q_cap) s^-m``. The approach is proportional to load
    at fixed air flow and inversely proportional to air flow (m = 1: air heat-capacity rate ~ fan
    speed s at constant air-side effectiveness) **[estimate]**; fit ``dT_des`` and m to rating
    tables (MDPI Energies 16(9):3661 (2023) surveys them). Speed needed for the setpoint:
    ``s = (dT_des (Q/Q_cap) / (T_set - T_db))^(1/m)``, feasible if ``s <= 1``; otherwise fans run at
    full speed and the fluid leaves at ``t_min_out_c = T_db + dT_des Q/Q_cap`` (>= T_db + approach).
    Fan power follows the fan affinity cube law ``P = P_full s^3`` with ``P_full = fan_full_w_per_w
    Q_cap`` (air side has no static head).

    Parameters
    ----------
    q_w : array_like
        Heat to reject [W], >= 0.
    t_out_set_c : array_like
        Leaving-fluid (facility-water supply) setpoint [degC].
    t_db_c : array_like
        Ambient dry bulb [degC].
    capacity_w : array_like
        Rated duty at the design approach and full fan speed [W], > 0.
    design_approach_k : array_like
        Leaving fluid minus dry bulb at rated duty and full speed [K], > 0.
    fan_full_w_per_w : array_like
        Fan power at full speed per W of rated capacity [W/W], >= 0.
    speed_exponent : array_like
        m, the air-flow exponent of the approach [-], > 0.
    """
    t_min, ok, s, fan, full, _ = _approach_cooler(
        q_w,
        t_out_set_c,
        t_db_c,
        capacity_w,
        design_approach_k,
        fan_full_w_per_w,
        speed_exponent,
        "t_db_c",
    )
    return CoolerState(t_min, ok, s, fan, full, np.zeros_like(s))


def evaporative_cooler(
    q_w: ArrayLike,
    t_out_set_c: ArrayLike,
    t_wb_c: ArrayLike,
    capacity_w: ArrayLike,
    design_approach_k: ArrayLike,
    fan_full_w_per_w: ArrayLike,
    water_l_per_kwh: ArrayLike | None = None,
    speed_exponent: ArrayLike = 1.0,
    h_fg_j_kg: ArrayLike = H_FG_J_KG,
    rho_water_kg_m3: ArrayLike = RHO_WATER_KG_M3,
) -> CoolerState:
    """Evaporative cooler (adiabatic dry cooler or cooling tower): approach to the wet bulb.

    Same approach and fan model as :func:`dry_cooler` with the wet bulb as reference,
    ``T_out - T_wb = dT_des (Q/Q_cap) s^-m``. Water: with ``water_l_per_kwh`` given, the make-up is
    ``Q water_l_per_kwh / 3.6e6 * 1e-3 * rho_w`` [kg/s] (includes blowdown and drift as the figure
    does); without it, the evaporation if all heat leaves as latent heat, ``Q / h_fg`` (the physical
    minimum, ~1.48 kg/kWh).

    Parameters
    ----------
    q_w, t_out_set_c, capacity_w, fan_full_w_per_w, speed_exponent : array_like
        As in :func:`dry_cooler` [W, degC, W, W/W, -].
    t_wb_c : array_like
        Ambient wet bulb [degC].
    design_approach_k : array_like
        Leaving fluid minus wet bulb at rated duty and full speed [K], > 0.
    water_l_per_kwh : array_like or None
        Make-up water per kWh of heat rejected [L/kWh], >= 0.
    h_fg_j_kg : array_like
        Latent heat of vaporization [J/kg]; default: saturated water at 30 degC (CoolProp 8.0).
    rho_water_kg_m3 : array_like
        Make-up water density [kg/m3]; default: 25 degC (CoolProp 8.0, physics.md 2.3).
    """
    t_min, ok, s, fan, full, q = _approach_cooler(
        q_w,
        t_out_set_c,
        t_wb_c,
        capacity_w,
        design_approach_k,
        fan_full_w_per_w,
        speed_exponent,
        "t_wb_c",
    )
    if water_l_per_kwh is None:
        water = q / checks.positive("h_fg_j_kg", h_fg_j_kg)
    else:
        per_j = checks.nonnegative("water_l_per_kwh", water_l_per_kwh) / J_PER_KWH * M3_PER_L
        water = q * per_j * checks.positive("rho_water_kg_m3", rho_water_kg_m3)
    return CoolerState(t_min, ok, s, fan, full, water * np.ones_like(s))


def chiller_cop_carnot(t_evap_c: ArrayLike, t_cond_c: ArrayLike, carnot_fraction: ArrayLike) -> Array:
    """Chiller COP as a fraction of Carnot: ``COP = eta_C T_evap / (T_cond - T_evap)`` (kelvin).

    Modelica Buildings ``Carnot_y`` (physics.md 1.3).

    Parameters
    ----------
    t_evap_c : array_like
        Refrigerant evaporating temperature [degC].
    t_cond_c : array_like
        Refrigerant condensing temperature [degC], > t_evap_c.
    carnot_fraction : array_like
        eta_C, the Carnot effectiveness [-], within (0, 1].
    """
    t_e = checks.in_range("t_evap_c", t_evap_c, -T0_K, np.inf) + T0_K
    lift = checks.finite("t_cond_c", t_cond_c) + T0_K - t_e
    if np.any(lift <= 0):
        raise ValueError(f"t_cond_c: must exceed t_evap_c, got a lift of {lift[lift <= 0].flat[0]!r} K")
    eta = checks.in_range("carnot_fraction", carnot_fraction, 0.0, 1.0)
    checks.positive("carnot_fraction", eta)
    return eta * t_e / lift


def chiller_power_w(
    q_w: ArrayLike,
    t_chw_supply_c: ArrayLike,
    t_cond_in_c: ArrayLike,
    carnot_fraction: ArrayLike,
    app_evap_k: ArrayLike = 2.0,
    app_cond_k: ArrayLike = 2.0,
    part_load_coeffs: tuple[float, ...] = (1.0,),
    q_nom_w: ArrayLike | None = None,
) -> Array:
    """Compressor power [W] to remove ``q_w``: ``P = Q / COP``.

    ``T_evap = T_chw,supply - dT_evap``, ``T_cond = T_cond,in + dT_cond``, ``COP = eta_C
    T_evap/(T_cond - T_evap) eta_PL(y)``, ``eta_PL = a_0 + a_1 y + a_2 y^2 + ...``, ``y = Q/Q_nom``
    (Modelica Buildings ``Carnot_y``: approach defaults 2 K for water-cooled heat exchangers,
    5 K for air; part-load default ``a = (1,)``). The condenser-water rise across the condenser
    is lumped into ``app_cond_k``. Zero duty draws zero power.

    Parameters
    ----------
    q_w : array_like
        Heat removed from the chilled water [W], >= 0.
    t_chw_supply_c : array_like
        Chilled (leaving) water temperature [degC].
    t_cond_in_c : array_like
        Heat-sink (condenser entering) temperature [degC].
    carnot_fraction : array_like
        eta_C [-], within (0, 1].
    app_evap_k, app_cond_k : array_like
        Refrigerant approaches at evaporator and condenser [K], >= 0.
    part_load_coeffs : tuple of float
        a_0, a_1, ... of eta_PL [-].
    q_nom_w : array_like or None
        Nominal duty for the part-load ratio [W], > 0; needed if ``part_load_coeffs`` has a y term.
    """
    q = checks.nonnegative("q_w", q_w)
    t_e = checks.finite("t_chw_supply_c", t_chw_supply_c) - checks.nonnegative("app_evap_k", app_evap_k)
    t_c = checks.finite("t_cond_in_c", t_cond_in_c) + checks.nonnegative("app_cond_k", app_cond_k)
    t_e, t_c, q = np.broadcast_arrays(t_e, t_c, q)
    on = q > 0
    eta = np.broadcast_to(checks.finite("carnot_fraction", carnot_fraction), q.shape)
    cop = chiller_cop_carnot(t_e[on], t_c[on], eta[on])
    if len(part_load_coeffs) > 1:
        if q_nom_w is None:
            raise ValueError("q_nom_w: required when part_load_coeffs has a part-load term")
        y = q / checks.positive("q_nom_w", q_nom_w)
        cop = cop * np.polynomial.polynomial.polyval(np.broadcast_to(y, q.shape)[on], part_load_coeffs)
    else:
        cop = cop * part_load_coeffs[0]
    p = np.zeros(q.shape)
    p[on] = q[on] / cop
    return p
