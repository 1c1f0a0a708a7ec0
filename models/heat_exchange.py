"""Liquid-to-liquid heat exchange: eps-NTU relations, UA at off-design flow, CDU supply control.

All relations follow Incropera, DeWitt, Bergman & Lavine, *Fundamentals of Heat and Mass Transfer*,
6th ed. (2007), Table 11.3 (eps(NTU)) and Table 11.4 (NTU(eps)); see also physics.md section 1.2.
``NTU = UA / C_min``, ``C_r = C_min / C_max``, ``Q = eps C_min (T_h,in - T_c,in)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
ARRANGEMENTS = (
    "counterflow",
    "parallel",
    "crossflow_cmax_mixed",
    "crossflow_cmin_mixed",
    "crossflow_unmixed",
)


def _arrangement(arrangement: str) -> str:
    if arrangement not in ARRANGEMENTS:
        raise ValueError(f"arrangement: must be one of {ARRANGEMENTS}, got {arrangement!r}")
    return arrangement


def _one_minus_exp_over(a: Array, cr: Array) -> Array:
    """``(1 - exp(-cr a)) / cr`` with its limit ``a`` at ``cr = 0``."""
    pos = cr > 0
    return np.where(pos, -np.expm1(-cr * a) / np.where(pos, cr, 1.0), a)


def effectiveness(ntu: ArrayLike, cr: ArrayLike, arrangement: str = "counterflow") -> Array:
    """Heat-exchanger effectiveness eps(NTU, C_r) (Incropera 6th ed., Table 11.3).

    counterflow: ``eps = (1 - e^{-x}) / (1 - C_r e^{-x})``, ``x = NTU (1 - C_r)``; exactly
    ``NTU / (1 + NTU)`` at ``C_r = 1`` (evaluated with ``expm1``, so no cancellation near 1).
    parallel: ``eps = (1 - e^{-NTU (1 + C_r)}) / (1 + C_r)``.
    crossflow_cmax_mixed: ``eps = (1/C_r) (1 - exp(-C_r (1 - e^{-NTU})))``.
    crossflow_cmin_mixed: ``eps = 1 - exp(-(1/C_r) (1 - e^{-C_r NTU}))``.
    crossflow_unmixed: the Incropera *approximation* for both fluids unmixed,
    ``eps = 1 - exp[(NTU^0.22 / C_r) (e^{-C_r NTU^0.78} - 1)]`` (not the exact series).
    Every form tends to ``1 - e^{-NTU}`` at ``C_r = 0``.

    Parameters
    ----------
    ntu : array_like
        Number of transfer units UA/C_min [-], >= 0.
    cr : array_like
        Capacity-rate ratio C_min/C_max [-], within [0, 1].
    arrangement : str
        One of ``ARRANGEMENTS``.
    """
    n = checks.nonnegative("ntu", ntu)
    c = checks.in_range("cr", cr, 0.0, 1.0)
    n, c = np.broadcast_arrays(n, c)
    kind = _arrangement(arrangement)
    if kind == "counterflow":
        em1 = np.expm1(-n * (1.0 - c))  # e^{-x} - 1
        balanced = c == 1.0
        den = np.where(balanced, 1.0, (1.0 - c) - c * em1)
        return np.where(balanced, n / (1.0 + n), -em1 / den)
    if kind == "parallel":
        return -np.expm1(-n * (1.0 + c)) / (1.0 + c)
    if kind == "crossflow_cmax_mixed":
        return _one_minus_exp_over(-np.expm1(-n), c)
    if kind == "crossflow_cmin_mixed":
        return -np.expm1(-_one_minus_exp_over(n, c))
    return -np.expm1(-(n**0.22) * _one_minus_exp_over(n**0.78, c))


def effectiveness_max(cr: ArrayLike, arrangement: str = "counterflow") -> Array:
    """Supremum of eps as NTU -> inf [-] (the inverse needs ``eps`` below it).

    counterflow and crossflow_unmixed: 1; parallel: ``1/(1 + C_r)``; crossflow_cmax_mixed:
    ``(1 - e^{-C_r})/C_r``; crossflow_cmin_mixed: ``1 - e^{-1/C_r}``.

    Parameters
    ----------
    cr : array_like
        Capacity-rate ratio [-], within [0, 1].
    arrangement : str
        One of ``ARRANGEMENTS``.
    """
    c = checks.in_range("cr", cr, 0.0, 1.0)
    kind = _arrangement(arrangement)
    if kind == "parallel":
        return 1.0 / (1.0 + c)
    if kind == "crossflow_cmax_mixed":
        return _one_minus_exp_over(np.ones_like(c), c)
    if kind == "crossflow_cmin_mixed":
        pos = c > 0
        return np.where(pos, -np.expm1(-1.0 / np.where(pos, c, 1.0)), 1.0)
    return np.ones_like(c)


def ntu_from_effectiveness(
    eps: ArrayLike, cr: ArrayLike, arrangement: str = "counterflow", iterations: int = 200
) -> Array:
    """NTU giving effectiveness ``eps`` (inverse of :func:`effectiveness`; Incropera Table 11.4).

    Closed forms: counterflow ``NTU = ln((1 - eps C_r)/(1 - eps)) / (1 - C_r)`` (``eps/(1 - eps)``
    at ``C_r = 1``); parallel ``NTU = -ln(1 - eps (1 + C_r)) / (1 + C_r)``; crossflow_cmax_mixed
    ``NTU = -ln(1 + ln(1 - eps C_r)/C_r)``; crossflow_cmin_mixed
    ``NTU = -ln(1 + C_r ln(1 - eps)) / C_r``. crossflow_unmixed (approximation) has none and is
    solved by vectorized bisection on NTU (monotone in NTU), ``iterations`` halvings of the bracket.

    Parameters
    ----------
    eps : array_like
        Effectiveness [-], within [0, eps_max(C_r)) (see :func:`effectiveness_max`).
    cr : array_like
        Capacity-rate ratio [-], within [0, 1].
    arrangement : str
        One of ``ARRANGEMENTS``.
    iterations : int
        Bisection steps for crossflow_unmixed [-].
    """
    e = checks.nonnegative("eps", eps)
    c = checks.in_range("cr", cr, 0.0, 1.0)
    e, c = np.broadcast_arrays(e, c)
    kind = _arrangement(arrangement)
    e_max = effectiveness_max(c, kind)
    if np.any(e >= e_max):
        bad = e[e >= e_max].flat[0]
        raise ValueError(f"eps: must be below the {kind} limit eps_max(cr) (1 for cr=0), got {bad!r}")
    if kind == "counterflow":
        return np.where(
            c == 1.0,
            e / (1.0 - e),
            np.log1p(e * (1.0 - c) / (1.0 - e)) / np.where(c == 1.0, 1.0, 1.0 - c),
        )
    if kind == "parallel":
        return -np.log1p(-e * (1.0 + c)) / (1.0 + c)
    pos = c > 0
    cs = np.where(pos, c, 1.0)
    if kind == "crossflow_cmax_mixed":
        return -np.log1p(np.where(pos, np.log1p(-e * c) / cs, -e))
    if kind == "crossflow_cmin_mixed":
        return np.where(pos, -np.log1p(c * np.log1p(-e)) / cs, -np.log1p(-e))
    lo, hi = np.zeros_like(e), np.ones_like(e)
    while np.any(short := effectiveness(hi, c, kind) < e):
        hi = np.where(short, 2.0 * hi, hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = effectiveness(mid, c, kind) < e
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def hx_duty_w(
    t_hot_in_c: ArrayLike,
    t_cold_in_c: ArrayLike,
    c_hot_w_k: ArrayLike,
    c_cold_w_k: ArrayLike,
    ua_w_k: ArrayLike,
    arrangement: str = "counterflow",
) -> Array:
    """Heat duty ``Q = eps(NTU, C_r) C_min (T_h,in - T_c,in)`` [W] (< 0 if "hot" is colder).

    Parameters
    ----------
    t_hot_in_c, t_cold_in_c : array_like
        Inlet temperatures [degC].
    c_hot_w_k, c_cold_w_k : array_like
        Heat-capacity rates m_dot c_p [W/K], > 0.
    ua_w_k : array_like
        Overall conductance [W/K], >= 0.
    arrangement : str
        One of ``ARRANGEMENTS``.
    """
    dt = checks.finite("t_hot_in_c", t_hot_in_c) - checks.finite("t_cold_in_c", t_cold_in_c)
    ch, cc = checks.positive("c_hot_w_k", c_hot_w_k), checks.positive("c_cold_w_k", c_cold_w_k)
    ua = checks.nonnegative("ua_w_k", ua_w_k)
    c_min, c_max = np.minimum(ch, cc), np.maximum(ch, cc)
    return effectiveness(ua / c_min, c_min / c_max, arrangement) * c_min * dt


def hx_outlet_temps(
    t_hot_in_c: ArrayLike,
    t_cold_in_c: ArrayLike,
    c_hot_w_k: ArrayLike,
    c_cold_w_k: ArrayLike,
    ua_w_k: ArrayLike,
    arrangement: str = "counterflow",
) -> tuple[Array, Array, Array]:
    """Outlets [degC] and duty [W]: ``T_h,out = T_h,in - Q/C_h``, ``T_c,out = T_c,in + Q/C_c``.

    Parameters are those of :func:`hx_duty_w`. Returns ``(t_hot_out_c, t_cold_out_c, q_w)``.
    """
    q = hx_duty_w(t_hot_in_c, t_cold_in_c, c_hot_w_k, c_cold_w_k, ua_w_k, arrangement)
    return (
        np.asarray(t_hot_in_c, float) - q / np.asarray(c_hot_w_k, float),
        np.asarray(t_cold_in_c, float) + q / np.asarray(c_cold_w_k, float),
        q,
    )


def ua_at_flow(
    ua_nom_w_k: ArrayLike,
    m_hot: ArrayLike,
    m_hot_nom: ArrayLike,
    m_cold: ArrayLike,
    m_cold_nom: ArrayLike,
    exponent: ArrayLike = 0.8,
    hot_fraction: ArrayLike = 0.5,
) -> Array:
    """UA at off-design flows [W/K]: two film resistances in series, each ``hA ~ m^n``.

    ``1/UA = f/UA_nom (m_h/m_h,nom)^-n + (1 - f)/UA_nom (m_c/m_c,nom)^-n`` where ``f`` is the hot
    film's share of the total resistance at nominal flow; wall and fouling resistance are neglected.
    ``n = 0.8`` is the turbulent Dittus-Boelter Reynolds exponent (Incropera 6th ed., eq. 8.60).
    This is an **estimate** (physics.md 1.2): fit ``ua_nom`` (and ``f``, ``n`` if data allow) to the
    vendor's approach temperature. Zero flow on either side gives UA = 0. Flows may be in any unit
    (mass flow or heat-capacity rate) as long as each side's pair shares it.

    Parameters
    ----------
    ua_nom_w_k : array_like
        UA at nominal flows [W/K], >= 0.
    m_hot, m_hot_nom, m_cold, m_cold_nom : array_like
        Actual and nominal flows per side [kg/s or W/K], actual >= 0, nominal > 0.
    exponent : array_like
        Flow exponent n of each film coefficient [-], >= 0.
    hot_fraction : array_like
        Hot-side share f of the nominal thermal resistance [-], within [0, 1].
    """
    ua = checks.nonnegative("ua_nom_w_k", ua_nom_w_k)
    rh = checks.nonnegative("m_hot", m_hot) / checks.positive("m_hot_nom", m_hot_nom)
    rc = checks.nonnegative("m_cold", m_cold) / checks.positive("m_cold_nom", m_cold_nom)
    n = checks.nonnegative("exponent", exponent)
    f = checks.in_range("hot_fraction", hot_fraction, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        r = f * rh ** (-n) + (1.0 - f) * rc ** (-n)
    return ua / r


@dataclass(frozen=True)
class CduState:
    """Outcome of :func:`cdu_supply_control` (arrays over CDUs).

    t_supply_c [degC] TCS supply; q_w [W] duty; flow_fraction [-] facility-water valve position;
    c_fws_w_k [W/K] facility-water capacity rate through the exchanger; t_fws_return_c [degC]
    exchanger facility-side outlet (equals the supply when the valve is shut); at_capacity: the
    setpoint is not held.
    """

    t_supply_c: Array
    q_w: Array
    flow_fraction: Array
    c_fws_w_k: Array
    t_fws_return_c: Array
    at_capacity: NDArray[np.bool_]


def cdu_supply_control(
    t_tcs_return_c: ArrayLike,
    c_tcs_w_k: ArrayLike,
    t_fws_supply_c: ArrayLike,
    c_fws_max_w_k: ArrayLike,
    ua_nom_w_k: ArrayLike,
    setpoint_c: ArrayLike,
    arrangement: str = "counterflow",
    exponent: ArrayLike = 0.8,
    hot_fraction: ArrayLike = 0.5,
    iterations: int = 60,
) -> CduState:
    """CDU steady state with the facility-water valve holding the TCS supply setpoint.

    The TCS (hot) side runs at its nominal rate ``C_tcs``; the valve sets the facility-water rate
    ``C_fws = x C_fws,max`` and UA follows :func:`ua_at_flow` with the TCS side at nominal. The
    duty ``Q(x) = eps C_min (T_ret - T_fws,sup)`` rises monotonically with x, so x is found by
    vectorized bisection (``iterations`` halvings, no loop over CDUs) such that
    ``Q(x) = C_tcs (T_ret - T_set)``. If even ``x = 1`` falls short, the supply floats above the
    setpoint and ``at_capacity`` is set; if the facility water is no colder than the return, the
    valve shuts (Q = 0). If the return is at or below the setpoint, the valve shuts and the supply
    equals the return. Energy is conserved exactly:
    ``Q = C_tcs (T_ret - T_sup) = C_fws (T_fws,ret - T_fws,sup)``.

    Parameters
    ----------
    t_tcs_return_c : array_like
        TCS return (exchanger hot inlet) temperature [degC].
    c_tcs_w_k : array_like
        TCS heat-capacity rate [W/K], > 0.
    t_fws_supply_c : array_like
        Facility-water supply (cold inlet) temperature [degC].
    c_fws_max_w_k : array_like
        Facility-water capacity rate at full valve, also the nominal for UA scaling [W/K], > 0.
    ua_nom_w_k : array_like
        UA at nominal flows [W/K], >= 0.
    setpoint_c : array_like
        TCS supply setpoint [degC].
    arrangement : str
        One of ``ARRANGEMENTS``.
    exponent, hot_fraction : array_like
        UA flow scaling, see :func:`ua_at_flow`.
    iterations : int
        Bisection steps on the valve fraction [-]; 60 resolves it to machine precision.
    """
    t_ret = checks.finite("t_tcs_return_c", t_tcs_return_c)
    c_tcs = checks.positive("c_tcs_w_k", c_tcs_w_k)
    t_fws = checks.finite("t_fws_supply_c", t_fws_supply_c)
    c_max = checks.positive("c_fws_max_w_k", c_fws_max_w_k)
    ua_nom = checks.nonnegative("ua_nom_w_k", ua_nom_w_k)
    t_set = checks.finite("setpoint_c", setpoint_c)
    t_ret, c_tcs, t_fws, c_max, ua_nom, t_set = np.broadcast_arrays(t_ret, c_tcs, t_fws, c_max, ua_nom, t_set)

    def duty(x: Array) -> Array:
        c_fws = x * c_max
        ua = ua_at_flow(ua_nom, 1.0, 1.0, x, 1.0, exponent, hot_fraction)
        c_min, c_max_ = np.minimum(c_tcs, c_fws), np.maximum(c_tcs, c_fws)
        return effectiveness(ua / c_min, c_min / c_max_, arrangement) * c_min * (t_ret - t_fws)

    q_need = c_tcs * (t_ret - t_set)
    q_full = np.maximum(duty(np.ones_like(t_ret)), 0.0)
    needed = q_need > 0
    q, t_sup, short = _settle(t_ret, c_tcs, t_set, q_full)
    lo, hi = np.zeros_like(t_ret), np.ones_like(t_ret)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = duty(mid) < q_need
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    x = np.where(short, (q_full > 0).astype(float), np.where(needed, hi, 0.0))
    c_fws = x * c_max
    t_fws_ret = t_fws + np.divide(q, c_fws, out=np.zeros_like(q), where=c_fws > 0)
    return CduState(t_sup, q, x, c_fws, t_fws_ret, short)


def _settle(t_ret: Array, c_tcs: Array, t_set: Array, q_full: Array) -> tuple[Array, Array, NDArray[np.bool_]]:
    """Duty, supply temperature and the at-capacity flag of CDUs whose full-valve duty is ``q_full`` (>= 0):
    the setpoint duty ``C_tcs (T_ret - T_set)`` when the exchanger can give it, else the full-valve duty."""
    q_need = c_tcs * (t_ret - t_set)
    short = (q_need > 0) & (q_full < q_need)
    q = np.where(short, q_full, np.maximum(q_need, 0.0))
    t_sup = np.where(short, t_ret - q / c_tcs, np.minimum(t_set, t_ret))
    return q, t_sup, short


@dataclass(frozen=True, eq=False)
class ConstantFlowCdus:
    """:func:`cdu_supply_control` for CDUs whose exchanger flows never change (a three-way valve on the
    facility side: the branch flow is constant and the valve bypasses part of it), so the full-valve duty
    per kelvin of inlet difference, ``eps C_min``, is computed once. The engine calls :meth:`control` every
    plant step.

    Parameters: ``c_tcs_w_k`` and ``c_fws_w_k`` [W/K] the two capacity rates, ``ua_w_k`` [W/K] UA at those
    flows, ``setpoint_c`` [degC] TCS supply setpoint, ``arrangement`` one of ``ARRANGEMENTS``.
    """

    c_tcs_w_k: Array
    c_fws_w_k: Array
    ua_w_k: Array
    setpoint_c: float
    arrangement: str = "counterflow"

    def __post_init__(self) -> None:
        c_tcs = checks.positive("c_tcs_w_k", self.c_tcs_w_k)
        c_fws = checks.positive("c_fws_w_k", self.c_fws_w_k)
        ua = checks.nonnegative("ua_w_k", self.ua_w_k)
        checks.finite("setpoint_c", self.setpoint_c)
        c_min = np.minimum(c_tcs, c_fws)
        eps = effectiveness(ua / c_min, c_min / np.maximum(c_tcs, c_fws), _arrangement(self.arrangement))
        object.__setattr__(self, "c_tcs_w_k", c_tcs)
        object.__setattr__(self, "full_valve_w_k", eps * c_min)

    def control(self, t_tcs_return_c: Array, t_fws_supply_c: float) -> tuple[Array, NDArray[np.bool_]]:
        """TCS supply temperature [degC] and the at-capacity flag for return ``t_tcs_return_c`` [degC] and
        facility-water supply ``t_fws_supply_c`` [degC]; same results as :func:`cdu_supply_control`."""
        t_ret = np.asarray(t_tcs_return_c, float)
        if not np.isfinite(t_ret.sum() + t_fws_supply_c):
            checks.finite("t_tcs_return_c", t_ret)
            checks.finite("t_fws_supply_c", t_fws_supply_c)
        q_full = np.maximum(self.full_valve_w_k * (t_ret - t_fws_supply_c), 0.0)
        _, t_sup, short = _settle(t_ret, self.c_tcs_w_k, self.setpoint_c, q_full)
        return t_sup, short

    def max_duty_w(self, t_fws_supply_c: ArrayLike) -> Array:
        """Largest heat [W] each CDU removes while holding its TCS supply setpoint, at facility-water supply
        ``t_fws_supply_c`` [degC] (scalar or ``[..., 1]`` against the CDUs): with the return at
        ``T_set + Q / C_tcs`` the full-valve duty ``E (T_ret - T_fws)`` (``E = eps C_min``) equals Q at

        ``Q_max = E (T_set - T_fws) / (1 - E / C_tcs)``

        (0 when the facility water is no colder than the setpoint). A load above it floats the supply above
        the setpoint (:meth:`control` flags ``at_capacity``)."""
        t_fws = checks.finite("t_fws_supply_c", t_fws_supply_c)
        e = self.full_valve_w_k
        return np.maximum(e * (self.setpoint_c - t_fws) / (1.0 - e / self.c_tcs_w_k), 0.0)
