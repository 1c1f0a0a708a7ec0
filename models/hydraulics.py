"""Hydraulics: pump and system curves, pump power, Darcy pipe friction, plug-flow delay."""

from __future__ import annotations

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
G_M_S2 = 9.80665  # standard gravity [m/s2] (CGPM 1901)
RE_LAMINAR = 2040.0  # end of laminar pipe flow, Avila et al., Science 333 (2011) 192 (as in fluids)


def pump_head_m(q: ArrayLike, h0_m: ArrayLike, a: ArrayLike, speed: ArrayLike = 1.0) -> Array:
    """Pump curve ``H = n^2 H0 - a Q^2`` [m] (physics.md 1.4).

    Parameters
    ----------
    q : array_like
        Flow [m3/s, or any unit consistent with ``a``], >= 0.
    h0_m : array_like
        Shut-off head at full speed [m], > 0.
    a : array_like
        Curve coefficient [m/(flow unit)^2], >= 0.
    speed : array_like
        Speed ratio n [-], >= 0.
    """
    q = checks.nonnegative("q", q)
    n = checks.nonnegative("speed", speed)
    return n**2 * checks.positive("h0_m", h0_m) - checks.nonnegative("a", a) * q**2


def system_head_m(q: ArrayLike, h_static_m: ArrayLike, k: ArrayLike) -> Array:
    """System curve ``H = H_static + K Q^2`` [m].

    Parameters
    ----------
    q : array_like
        Flow [m3/s, or any unit consistent with ``k``], >= 0.
    h_static_m : array_like
        Static (elevation) head [m], >= 0; ~0 for closed loops.
    k : array_like
        Loss coefficient [m/(flow unit)^2], > 0.
    """
    q = checks.nonnegative("q", q)
    return checks.nonnegative("h_static_m", h_static_m) + checks.positive("k", k) * q**2


def pump_operating_point(
    h0_m: ArrayLike, a: ArrayLike, h_static_m: ArrayLike, k: ArrayLike, speed: ArrayLike = 1.0
) -> tuple[Array, Array]:
    """Pump x system curve: ``Q = sqrt((n^2 H0 - H_s)/(a + K))``, ``H = H_s + K Q^2``.

    If the pump cannot lift the static head (``n^2 H0 <= H_s``) there is no flow and the pump sits
    at its shut-off head ``n^2 H0``. Returns ``(q, head_m)``, q in the flow unit of ``a``, ``k``.

    Parameters
    ----------
    h0_m, a : array_like
        Pump curve, see :func:`pump_head_m` [m, m/(flow unit)^2].
    h_static_m, k : array_like
        System curve, see :func:`system_head_m` [m, m/(flow unit)^2].
    speed : array_like
        Speed ratio n [-], >= 0.
    """
    h0 = checks.positive("h0_m", h0_m)
    a = checks.nonnegative("a", a)
    hs = checks.nonnegative("h_static_m", h_static_m)
    k = checks.positive("k", k)
    lift = checks.nonnegative("speed", speed) ** 2 * h0 - hs
    q = np.sqrt(np.maximum(lift, 0.0) / (a + k))
    return q, np.where(lift > 0, hs + k * q**2, lift + hs)


def affinity(q: ArrayLike, head_m: ArrayLike, p_w: ArrayLike, speed_ratio: ArrayLike) -> tuple[Array, Array, Array]:
    """Pump affinity laws ``Q ~ n``, ``H ~ n^2``, ``P ~ n^3``: ``(q, head_m, p_w)`` at new speed.

    Valid only along a system curve through the origin (no static head, ``H = K Q^2``), e.g. a
    closed TCS or facility loop. With static head (towers, open circuits) the operating point moves
    along the system curve instead: use :func:`pump_operating_point` (physics.md 1.4; case V13).

    Parameters
    ----------
    q : array_like
        Flow [any unit], >= 0.
    head_m : array_like
        Head [m], >= 0.
    p_w : array_like
        Shaft power [W], >= 0.
    speed_ratio : array_like
        n_new / n_old [-], >= 0.
    """
    n = checks.nonnegative("speed_ratio", speed_ratio)
    return (
        checks.nonnegative("q", q) * n,
        checks.nonnegative("head_m", head_m) * n**2,
        checks.nonnegative("p_w", p_w) * n**3,
    )


def pump_power_w(
    v_dot_m3_s: ArrayLike,
    head_m: ArrayLike,
    rho_kg_m3: ArrayLike,
    eta_pump: ArrayLike,
    eta_vfd: ArrayLike = 1.0,
    g_m_s2: ArrayLike = G_M_S2,
) -> Array:
    """Electric pump power ``P = rho g V_dot H / (eta_pump eta_vfd)`` [W] (physics.md 1.4).

    Parameters
    ----------
    v_dot_m3_s : array_like
        Volume flow [m3/s], >= 0.
    head_m : array_like
        Pump head [m], >= 0.
    rho_kg_m3 : array_like
        Fluid density [kg/m3], > 0.
    eta_pump : array_like
        Pump (and motor) efficiency [-], within (0, 1].
    eta_vfd : array_like
        Variable-frequency-drive efficiency [-], within (0, 1].
    g_m_s2 : array_like
        Gravitational acceleration [m/s2]; default standard gravity.
    """
    eta = checks.positive("eta_pump", checks.in_range("eta_pump", eta_pump, 0.0, 1.0))
    eta = eta * checks.positive("eta_vfd", checks.in_range("eta_vfd", eta_vfd, 0.0, 1.0))
    hyd = checks.nonnegative("v_dot_m3_s", v_dot_m3_s) * checks.nonnegative("head_m", head_m)
    return checks.positive("rho_kg_m3", rho_kg_m3) * checks.positive("g_m_s2", g_m_s2) * hyd / eta


def friction_factor_darcy(re: ArrayLike, rel_roughness: ArrayLike, iterations: int = 30) -> Array:
    """Darcy friction factor: ``64/Re`` below Re = 2040, else the Colebrook-White equation
    ``1/sqrt(f) = -2 log10(eps/(3.7 D) + 2.51/(Re sqrt(f)))`` solved by fixed-point iteration in
    ``1/sqrt(f)`` (contraction factor < 0.2, so ``iterations`` = 30 reaches machine precision).

    Parameters
    ----------
    re : array_like
        Reynolds number [-], > 0.
    rel_roughness : array_like
        Roughness over diameter eps/D [-], >= 0.
    iterations : int
        Fixed-point iterations [-].
    """
    re = checks.positive("re", re)
    a = checks.nonnegative("rel_roughness", rel_roughness) / 3.7
    b = 2.51 / np.maximum(re, RE_LAMINAR)  # laminar entries take 64/Re below; keep the log defined
    x = np.full(np.broadcast(a, b).shape, 8.0)
    for _ in range(iterations):
        x = -2.0 * np.log10(a + b * x)
    return np.where(re < RE_LAMINAR, 64.0 / re, 1.0 / x**2)


def pipe_pressure_drop_pa(
    v_dot_m3_s: ArrayLike,
    length_m: ArrayLike,
    diameter_m: ArrayLike,
    roughness_m: ArrayLike,
    rho_kg_m3: ArrayLike,
    mu_pa_s: ArrayLike,
) -> Array:
    """Darcy-Weisbach friction loss of a straight round pipe ``dp = f (L/D) rho v^2 / 2`` [Pa].

    ``v = 4 V_dot / (pi D^2)``, ``Re = rho v D / mu``, f from :func:`friction_factor_darcy`.
    Zero flow gives zero loss.

    Parameters
    ----------
    v_dot_m3_s : array_like
        Volume flow [m3/s], >= 0.
    length_m, diameter_m : array_like
        Pipe length and inner diameter [m], > 0.
    roughness_m : array_like
        Absolute wall roughness [m], >= 0.
    rho_kg_m3 : array_like
        Density [kg/m3], > 0.
    mu_pa_s : array_like
        Dynamic viscosity [Pa s], > 0.
    """
    q = checks.nonnegative("v_dot_m3_s", v_dot_m3_s)
    d = checks.positive("diameter_m", diameter_m)
    rho = checks.positive("rho_kg_m3", rho_kg_m3)
    v = 4.0 * q / (np.pi * d**2)
    re = rho * v * d / checks.positive("mu_pa_s", mu_pa_s)
    f = friction_factor_darcy(np.where(re > 0, re, 1.0), checks.nonnegative("roughness_m", roughness_m) / d)
    return np.where(re > 0, f * checks.positive("length_m", length_m) / d * rho * v**2 / 2.0, 0.0)


class PlugFlowDelay:
    """Plug-flow transport delay over many pipes at once (a delay line, not a first-order lag).

    Each pipe holds volume ``V``. Fluid that enters is stacked behind the fluid already inside and
    leaves once the volume that entered after it equals ``V`` (``int V_dot dt = V``, physics.md
    1.3), so the delay is ``V / V_dot`` at constant flow and stretches or shrinks with the flow.
    Internally every pipe keeps the cumulative inflow volume ``c`` and the cumulative integral
    ``F = int T dc`` at parcel boundaries; ``T`` is piecewise constant in ``c``, so ``F`` is
    piecewise linear and exact. Over a step the outlet window is ``[C - V, C + dV - V]`` and the
    outlet temperature is its mean ``(F(C + dV - V) - F(C - V)) / dV``, so
    ``inflow - outflow = change of stored energy`` holds to round-off. Drained
    parcels are dropped, so memory per pipe is the number of parcels inside.

    Parameters
    ----------
    volume_m3 : array_like
        Pipe volumes [m3], > 0, one per pipe (1-D).
    t_init_c : array_like
        Initial uniform temperature of each pipe [degC], broadcast to the pipes.
    """

    def __init__(self, volume_m3: ArrayLike, t_init_c: ArrayLike) -> None:
        v = np.atleast_1d(checks.positive("volume_m3", volume_m3)).astype(float)
        if v.ndim != 1:
            raise ValueError(f"volume_m3: must be 1-D (one per pipe), got shape {v.shape}")
        t = np.broadcast_to(checks.finite("t_init_c", t_init_c), v.shape)
        self.volume_m3 = v
        self._c = np.stack([-v, np.zeros_like(v)], axis=1)
        self._f = np.stack([np.zeros_like(v), t * v], axis=1)
        self._n = np.full(v.size, 2)  # valid breakpoints per pipe; columns beyond repeat the last one

    def _at(self, pos: Array) -> tuple[Array, Array]:
        """``F(pos)`` and ``T`` just downstream of ``pos`` (the fluid at the outlet) per pipe."""
        c, f = self._c, self._f
        hi = np.clip(np.sum(c <= pos[:, None], axis=1), 1, c.shape[1] - 1)[:, None]
        lo = hi - 1
        c_lo, c_hi = np.take_along_axis(c, lo, 1)[:, 0], np.take_along_axis(c, hi, 1)[:, 0]
        f_lo, f_hi = np.take_along_axis(f, lo, 1)[:, 0], np.take_along_axis(f, hi, 1)[:, 0]
        dc = c_hi - c_lo
        slope = np.divide(f_hi - f_lo, dc, out=np.zeros_like(dc), where=dc > 0)
        return f_lo + (pos - c_lo) * slope, slope

    def push(self, t_in_c: ArrayLike, v_dot_m3_s: ArrayLike, dt_s: float) -> Array:
        """Advance one step: fluid at ``t_in_c`` enters at ``v_dot_m3_s`` for ``dt_s``.

        Returns the outlet temperature averaged over the step [degC] (volume-weighted; at zero flow,
        the temperature of the fluid standing at the outlet).

        Parameters
        ----------
        t_in_c : array_like
            Inlet temperature over the step [degC], per pipe.
        v_dot_m3_s : array_like
            Volume flow over the step [m3/s], >= 0, per pipe.
        dt_s : float
            Step length [s], > 0.
        """
        shape = self.volume_m3.shape
        t_in = np.broadcast_to(checks.finite("t_in_c", t_in_c), shape)
        dv = np.broadcast_to(checks.nonnegative("v_dot_m3_s", v_dot_m3_s), shape) * checks.positive("dt_s", dt_s)
        f_old, _ = self._at(self._c[:, -1] - self.volume_m3)
        grow = dv > 0
        if np.any(grow):
            if self._n[grow].max() == self._c.shape[1]:
                self._c = np.concatenate([self._c, self._c[:, -1:]], axis=1)
                self._f = np.concatenate([self._f, self._f[:, -1:]], axis=1)
            new = grow[:, None] & (np.arange(self._c.shape[1]) >= self._n[:, None])
            self._c = np.where(new, (self._c[:, -1] + dv)[:, None], self._c)
            self._f = np.where(new, (self._f[:, -1] + t_in * dv)[:, None], self._f)
            self._n = self._n + grow
        outlet = self._c[:, -1] - self.volume_m3
        f_new, t_here = self._at(outlet)
        t_out = np.where(grow, (f_new - f_old) / np.where(grow, dv, 1.0), t_here)
        self._drop_drained(outlet)
        return t_out

    def _drop_drained(self, outlet: Array) -> None:
        """Shift each pipe's breakpoints left past parcels that have left; rebase c and F to 0."""
        c, f = self._c, self._f
        k = np.maximum(np.sum(c <= outlet[:, None], axis=1) - 1, 0)  # keep one breakpoint <= outlet
        cols = np.minimum(np.arange(c.shape[1])[None, :] + k[:, None], c.shape[1] - 1)
        c, f = np.take_along_axis(c, cols, 1), np.take_along_axis(f, cols, 1)
        self._n = self._n - k
        width = int(self._n.max())
        self._c, self._f = c[:, :width] - c[:, :1], f[:, :width] - f[:, :1]

    def mean_temp_c(self) -> Array:
        """Volume-weighted mean temperature of each pipe's contents [degC]."""
        f_out, _ = self._at(self._c[:, -1] - self.volume_m3)
        return (self._f[:, -1] - f_out) / self.volume_m3

    def stored_energy_j(self, rho_cp_j_m3k: ArrayLike) -> Array:
        """Sensible heat in each pipe relative to 0 degC [J]: ``rho c_p int T dV``.

        Parameters
        ----------
        rho_cp_j_m3k : array_like
            Volumetric heat capacity [J/(m3 K)], > 0, per pipe or scalar.
        """
        return checks.positive("rho_cp_j_m3k", rho_cp_j_m3k) * self.mean_temp_c() * self.volume_m3


class ConstantFlowDelay:
    """Plug-flow delay at constant flow and a fixed step: an exact ring buffer over many pipes.

    With constant volume flow ``V_dot`` the transport delay is ``tau = V / V_dot = (n + phi) dt``
    (``n`` whole steps, ``0 <= phi < 1``). For inlet temperatures held over each step, the outlet mean
    over step k is exactly ``phi T_in[k-n-1] + (1 - phi) T_in[k-n]`` and the stored heat is
    ``rho c_p V_dot dt (T_in[k] + ... + T_in[k-n+1] + phi T_in[k-n])``, so inflow - outflow = change of
    stored heat to round-off. Same physics as :class:`PlugFlowDelay` (physics.md 1.3) at a fraction of
    the cost when the flow does not change.

    Parameters
    ----------
    volume_m3 : array_like
        Pipe volumes [m3], > 0, one per pipe (1-D).
    v_dot_m3_s : array_like
        Constant volume flow per pipe [m3/s], > 0.
    dt_s : float
        Step length [s], > 0.
    t_init_c : array_like
        Initial uniform temperature of each pipe [degC].
    """

    def __init__(self, volume_m3: ArrayLike, v_dot_m3_s: ArrayLike, dt_s: float, t_init_c: ArrayLike) -> None:
        v = np.atleast_1d(checks.positive("volume_m3", volume_m3)).astype(float)
        q = np.broadcast_to(checks.positive("v_dot_m3_s", v_dot_m3_s), v.shape).astype(float)
        self.dt_s = float(checks.positive("dt_s", dt_s))
        steps = v / (q * self.dt_s)
        self.n = np.floor(steps).astype(np.int64)
        self.phi = steps - self.n
        self.v_dot_m3_s = q
        self._buf = np.tile(np.broadcast_to(checks.finite("t_init_c", t_init_c), v.shape), (int(self.n.max()) + 2, 1))
        self._k = 0
        self._cols = np.arange(v.size)

    def push(self, t_in_c: ArrayLike) -> Array:
        """Advance one step with inlet ``t_in_c`` [degC]; return the outlet mean over the step [degC]."""
        m = self._buf.shape[0]
        self._k = (self._k + 1) % m
        self._buf[self._k] = checks.finite("t_in_c", t_in_c)
        b = self._buf
        return (
            self.phi * b[(self._k - self.n - 1) % m, self._cols]
            + (1 - self.phi) * b[(self._k - self.n) % m, self._cols]
        )

    def stored_energy_j(self, rho_cp_j_m3k: ArrayLike) -> Array:
        """Sensible heat in each pipe relative to 0 degC [J]."""
        m, b, k = self._buf.shape[0], self._buf, self._k
        depth = np.arange(m)[:, None]
        weight = np.where(depth < self.n, 1.0, np.where(depth == self.n, self.phi, 0.0))
        rows = (k - depth) % m
        contents = np.sum(weight * b[rows, self._cols], axis=0)
        return checks.positive("rho_cp_j_m3k", rho_cp_j_m3k) * self.v_dot_m3_s * self.dt_s * contents
