"""Liquid cooling: coolant rise, flow rules, stream mixing; re-exports the cooling models.

Heat exchange (eps-NTU, UA scaling, CDU control) lives in :mod:`models.heat_exchange`, heat
rejection (dry / evaporative coolers, chillers) in :mod:`models.heat_rejection`, pumps, pipes and
the plug-flow delay in :mod:`models.hydraulics`; import them from here.
"""

from __future__ import annotations

import numpy as np
from factory_twin.models import checks
from factory_twin.models.heat_exchange import (
    ARRANGEMENTS,
    CduState,
    ConstantFlowCdus,
    cdu_supply_control,
    effectiveness,
    effectiveness_max,
    hx_duty_w,
    hx_outlet_temps,
    ntu_from_effectiveness,
    ua_at_flow,
)
from factory_twin.models.heat_rejection import (
    CoolerState,
    chiller_cop_carnot,
    chiller_power_w,
    dry_cooler,
    evaporative_cooler,
)
from factory_twin.models.hydraulics import (
    ConstantFlowDelay,
    PlugFlowDelay,
    affinity,
    friction_factor_darcy,
    pipe_pressure_drop_pa,
    pump_head_m,
    pump_operating_point,
    pump_power_w,
    system_head_m,
)
from factory_twin.models.units import KW, M3_S_PER_L_MIN
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ARRANGEMENTS",
    "CduState",
    "ConstantFlowCdus",
    "ConstantFlowDelay",
    "CoolerState",
    "PlugFlowDelay",
    "affinity",
    "cdu_supply_control",
    "chiller_cop_carnot",
    "chiller_power_w",
    "coolant_rise_k",
    "dry_cooler",
    "effectiveness",
    "effectiveness_max",
    "evaporative_cooler",
    "flow_for_rise",
    "flow_rule_kg_s",
    "friction_factor_darcy",
    "hx_duty_w",
    "hx_outlet_temps",
    "mix_streams",
    "ntu_from_effectiveness",
    "pipe_pressure_drop_pa",
    "pump_head_m",
    "pump_operating_point",
    "pump_power_w",
    "system_head_m",
    "ua_at_flow",
]

Array = NDArray[np.float64]


def coolant_rise_k(q_w: ArrayLike, m_dot_kg_s: ArrayLike, cp_j_kgk: ArrayLike) -> Array:
    """Coolant temperature rise ``dT = Q / (m_dot c_p)`` [K] (steady energy balance).

    Parameters
    ----------
    q_w : array_like
        Heat picked up [W].
    m_dot_kg_s : array_like
        Mass flow [kg/s], > 0.
    cp_j_kgk : array_like
        Specific heat [J/(kg K)], > 0.
    """
    q = checks.finite("q_w", q_w)
    return q / (checks.positive("m_dot_kg_s", m_dot_kg_s) * checks.positive("cp_j_kgk", cp_j_kgk))


def flow_for_rise(q_w: ArrayLike, rise_k: ArrayLike, cp_j_kgk: ArrayLike) -> Array:
    """Mass flow that carries ``q_w`` with a rise of ``rise_k``: ``m_dot = Q / (c_p dT)`` [kg/s].

    Parameters
    ----------
    q_w : array_like
        Heat [W], >= 0.
    rise_k : array_like
        Temperature rise [K], > 0.
    cp_j_kgk : array_like
        Specific heat [J/(kg K)], > 0.
    """
    q = checks.nonnegative("q_w", q_w)
    return q / (checks.positive("cp_j_kgk", cp_j_kgk) * checks.positive("rise_k", rise_k))


def flow_rule_kg_s(q_w: ArrayLike, l_min_per_kw: ArrayLike, rho_kg_m3: ArrayLike) -> Array:
    """Rack flow from a volumetric flow rule: ``m_dot = rho (Q/1 kW) r / 60000`` [kg/s].

    OCP guidance is 1.25-2.0 L/min per kW, typically 1.5 (physics.md 2.2); there is no default.

    Parameters
    ----------
    q_w : array_like
        Rack heat to the liquid [W], >= 0.
    l_min_per_kw : array_like
        Flow rule r [L/min per kW], > 0.
    rho_kg_m3 : array_like
        Coolant density [kg/m3], > 0.
    """
    q = checks.nonnegative("q_w", q_w)
    v_dot = q / KW * checks.positive("l_min_per_kw", l_min_per_kw) * M3_S_PER_L_MIN
    return v_dot * checks.positive("rho_kg_m3", rho_kg_m3)


def mix_streams(m_dot_kg_s: ArrayLike, t_c: ArrayLike, into: ArrayLike | None = None, n: int | None = None) -> Array:
    """Adiabatic mixing at a header: ``T = sum(m_dot T) / sum(m_dot)`` [degC] (constant c_p).

    Without ``into``, streams are summed over the last axis. With ``into`` (1-D group index per
    stream, e.g. ``rack_cdu``), each group mixes separately in one ``np.bincount`` pass and ``n``
    sets the number of groups (default ``max(into) + 1``). A group with zero total flow has no
    defined temperature and returns NaN. Using enthalpies instead differs by ~1e-6 relative for
    water at 30-40 degC (physics.md case V11).

    Parameters
    ----------
    m_dot_kg_s : array_like
        Stream mass flows [kg/s], >= 0.
    t_c : array_like
        Stream temperatures [degC].
    into : array_like of int, optional
        Group index of each stream, >= 0.
    n : int, optional
        Number of groups.
    """
    m = checks.nonnegative("m_dot_kg_s", m_dot_kg_s)
    m, t = np.broadcast_arrays(m, checks.finite("t_c", t_c))
    if into is None:
        mt, ms = np.sum(m * t, axis=-1), np.sum(m, axis=-1)
    else:
        g = np.asarray(into)
        if g.shape != m.shape or g.ndim != 1 or not np.issubdtype(g.dtype, np.integer) or np.any(g < 0):
            raise ValueError(f"into: must be non-negative integers, one per stream {m.shape}, got {g.shape}")
        mt, ms = np.bincount(g, m * t, n), np.bincount(g, m, n)
    return np.divide(mt, ms, out=np.full(np.shape(ms), np.nan), where=ms > 0)
