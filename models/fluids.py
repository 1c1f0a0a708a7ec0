"""Coolant properties (interpolated CoolProp tables); moist-air wet bulb and dew point.

Property calls sit in the engine's plant loop (every few seconds over hundreds of CDUs), so each
coolant samples CoolProp once on a 0.5 K grid over its valid range and evaluates a cubic spline
afterwards; the spline stays within 1e-7 relative of CoolProp (tests check <= 1e-4).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from factory_twin.models import checks
from factory_twin.models.units import T0_K
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import CubicSpline

Array = NDArray[np.float64]
GRID_STEP_K = 0.5  # spline knot spacing of the property tables [K]
WATER_RANGE_C = (1.0, 99.0)  # liquid water range served (kept off 0 degC and off boiling at 2 bar)
GLYCOL_T_MAX_C = 100.0  # upper limit of CoolProp's incompressible glycol fits (physics.md section 4)
_GLYCOL = re.compile(r"^(MPG|MEG)-(\d+(?:\.\d+)?)%$", re.IGNORECASE)
_PROPS = {"cp": "C", "rho": "D", "mu": "V", "k": "L"}


def _scalar_psychrolib():
    """psychrolib as the scalar library it is without numba: when numba can be imported, psychrolib imports it and
    turns every function into a numba ufunc compiled at its first call, which is not cached (3.5 s per process for
    the wet bulb, measured); this model calls it on scalars, memoized. numba is hidden from psychrolib's import
    only (``sys.modules[name] = None`` makes an import fail), and restored after."""
    if "psychrolib" in sys.modules:
        return sys.modules["psychrolib"]
    saved = {k: sys.modules[k] for k in ("numba",) if k in sys.modules}
    sys.modules["numba"] = None  # type: ignore[assignment]
    try:
        import psychrolib
    finally:
        del sys.modules["numba"]
        sys.modules.update(saved)
    return psychrolib


psychrolib = _scalar_psychrolib()
psychrolib.SetUnitSystem(psychrolib.SI)
# psychrolib is scalar; memoize so a repeated weather series costs a lookup per point.
_wet_bulb_scalar = lru_cache(maxsize=1 << 16)(psychrolib.GetTWetBulbFromRelHum)


def coolprop_name(name: str) -> str:
    """CoolProp fluid string for a coolant name.

    ``"water"`` -> ``"Water"``; ``"MPG-25%"`` -> ``"INCOMP::MPG[0.25]"`` (propylene glycol, mass
    fraction); ``"MEG-30%"`` -> ``"INCOMP::MEG[0.3]"`` (ethylene glycol).
    """
    if name.strip().lower() == "water":
        return "Water"
    m = _GLYCOL.match(name.strip())
    if m is None:
        raise ValueError(f"name: expected 'water', 'MPG-<pct>%' or 'MEG-<pct>%', got {name!r}")
    return f"INCOMP::{m.group(1).upper()}[{float(m.group(2)) / 100:g}]"


@cache
def _tables(name: str, p_pa: float) -> tuple[float, tuple[float, float], dict[str, CubicSpline]]:
    from CoolProp.CoolProp import PropsSI  # imported on first use: the import alone takes ~2 s

    fluid = coolprop_name(name)
    try:
        if fluid == "Water":
            t_freeze_c, (lo, hi) = 0.0, WATER_RANGE_C
        else:
            t_freeze_c = PropsSI("T_freeze", "T", 300.0, "P", p_pa, fluid) - T0_K
            lo, hi = t_freeze_c, GLYCOL_T_MAX_C
        t_c = np.linspace(lo, hi, int(np.ceil((hi - lo) / GRID_STEP_K)) + 1)
        splines = {
            key: CubicSpline(t_c, PropsSI(out, "T", t_c + T0_K, "P", p_pa, fluid)) for key, out in _PROPS.items()
        }
    except ValueError as e:  # CoolProp rejects e.g. a concentration outside its fit
        raise ValueError(f"name: CoolProp cannot evaluate {name!r} ({fluid}): {e}") from e
    return t_freeze_c, (float(lo), float(hi)), splines


@dataclass(frozen=True)
class Coolant:
    """Liquid coolant with vectorized properties over temperature.

    Tables are built once per ``(name, p_pa)`` from ``CoolProp.PropsSI(out, 'T', T, 'P', p, fluid)``
    and shared by every instance. Liquids are nearly incompressible, so one fixed pressure serves
    the loop; 2 bar is a typical closed-loop gauge-plus-static level.

    Parameters
    ----------
    name : str
        ``"water"`` or a glycol mixture by mass: ``"MPG-25%"`` (propylene), ``"MEG-30%"``
        (ethylene).
    p_pa : float
        Pressure at which the tables are evaluated [Pa].

    Notes
    -----
    Valid range: water 1-99 degC; glycols from CoolProp's freezing point (``T_freeze``) to 100 degC,
    the range of CoolProp's incompressible fits (Bell et al., Ind. Eng. Chem. Res. 53 (2014) 2498;
    physics.md sections 2.3 and 4). Temperatures outside it, or NaN, raise ``ValueError`` naming
    ``t_c`` and the range.
    """

    name: str
    p_pa: float = 2e5

    def __post_init__(self) -> None:
        checks.positive("p_pa", self.p_pa)
        _tables(self.name, float(self.p_pa))

    @property
    def t_freeze_c(self) -> float:
        """Freezing point [degC] (water: 0 degC ice point)."""
        return _tables(self.name, float(self.p_pa))[0]

    @property
    def valid_range_c(self) -> tuple[float, float]:
        """Temperature range served [degC], closed interval."""
        return _tables(self.name, float(self.p_pa))[1]

    def _eval(self, key: str, t_c: ArrayLike) -> Array:
        _, (lo, hi), splines = _tables(self.name, float(self.p_pa))
        return splines[key](checks.in_range("t_c", t_c, lo, hi))

    def cp_j_kgk(self, t_c: ArrayLike) -> Array:
        """Isobaric specific heat capacity [J/(kg K)] at ``t_c`` [degC]."""
        return self._eval("cp", t_c)

    def rho_kg_m3(self, t_c: ArrayLike) -> Array:
        """Density [kg/m3] at ``t_c`` [degC]."""
        return self._eval("rho", t_c)

    def mu_pa_s(self, t_c: ArrayLike) -> Array:
        """Dynamic viscosity [Pa s] at ``t_c`` [degC]."""
        return self._eval("mu", t_c)

    def k_w_mk(self, t_c: ArrayLike) -> Array:
        """Thermal conductivity [W/(m K)] at ``t_c`` [degC]."""
        return self._eval("k", t_c)


def _psychro_args(t_db_c: ArrayLike, rh_frac: ArrayLike, p_pa: ArrayLike, dew: bool) -> tuple:
    t = checks.in_range("t_db_c", t_db_c, -100.0, 200.0)  # psychrolib's SI validity range
    rh = checks.in_range("rh_frac", rh_frac, 0.0, 1.0)
    if dew:
        checks.positive("rh_frac", rh)
    return t, rh, checks.positive("p_pa", p_pa)


def wet_bulb_c(t_db_c: ArrayLike, rh_frac: ArrayLike, p_pa: ArrayLike = 101325.0) -> Array:
    """Thermodynamic wet-bulb temperature [degC] of moist air.

    Solves the ASHRAE psychrometric balance (Handbook Fundamentals 2017, ch. 1, eq. 33/35) with
    ``psychrolib.GetTWetBulbFromRelHum`` in SI units. psychrolib is scalar, so this maps it over
    the broadcast arrays with ``np.vectorize`` (a Python loop: about 30 us per new point, a cache
    lookup for a repeated one; fine for weather series, not for per-rack inner loops).

    Parameters
    ----------
    t_db_c : array_like
        Dry-bulb temperature [degC], within [-100, 200].
    rh_frac : array_like
        Relative humidity [-], within [0, 1].
    p_pa : array_like
        Atmospheric pressure [Pa]; default is the standard atmosphere.
    """
    t, rh, p = _psychro_args(t_db_c, rh_frac, p_pa, dew=False)
    return np.asarray(np.vectorize(_wet_bulb_scalar, otypes=[float])(t, rh, p))


def dew_point_c(t_db_c: ArrayLike, rh_frac: ArrayLike) -> Array:
    """Dew-point temperature [degC] (``psychrolib.GetTDewPointFromRelHum``, SI; ASHRAE 2017 ch. 1).

    Parameters
    ----------
    t_db_c : array_like
        Dry-bulb temperature [degC], within [-100, 200].
    rh_frac : array_like
        Relative humidity [-], within (0, 1].
    """
    t, rh, _ = _psychro_args(t_db_c, rh_frac, 1.0, dew=True)
    return np.asarray(np.vectorize(psychrolib.GetTDewPointFromRelHum, otypes=[float])(t, rh))
