"""Protective devices: how long an overloaded element may carry its load before it opens.

Every characteristic is a function of the load multiple ``m`` = current over the device's current
setting ``I_r`` (at fixed voltage: apparent power over the rated apparent power of the protected
element times the setting). Vectorized over devices; a device's characteristic is one of:

* ``I2T``, long-time I^2 t of electronic LV trip units (Siemens SENTRON 3WA1 equipment manual
  02/2023, 92310000002-06, §3.2 p. 205: ``t_r`` set at 6 x I_r, I^2 t = const)::

      t(m) = t_r (6 / m)^2                 for m >= pickup (timing starts in the 1.05-1.2 x I_r band,
                                           IEC 60947-2; Siemens 3WJ manual §2.2.5.1)

* ``THERMAL``, a thermal image (IEC 60255-149 thermal electrical relays; it reproduces the Schneider
  MicroLogic 6.2 A long-time points 400 / 16 / 11 s at 1.5 / 6 / 7.2 x I_r with ``k = 1.2``,
  ``tau = t_r / ln(36 / 34.56)``)::

      d theta / dt = (m^2 - theta) / tau,  trip at theta = k^2:  t = tau ln((m^2 - theta_0) / (m^2 - k^2))

* ``IEC``, inverse-time overcurrent relays of IEC 60255-151 (MV feeders; constants in
  :data:`IEC_CURVES`)::

      t(G) = TMS A / (G^P - 1),   G = m / pickup > 1

* ``TABLE``, an overload table (UPS inverters, transformers): allowed time ``t_k`` at load ``m_k``,
  linear in log t vs log m between points and along the end segments beyond them; no limit below
  ``pickup`` (the continuous rating).

Each may add a definite-time short-time element (``m >= isd`` held for ``tsd_s``, I^2 t off) and an
instantaneous element (``m >= ii``: trips in the step; Siemens 3WJ: < 50 ms). ``interrupt_s`` is the time from
the instantaneous pickup to the current's interruption: tens of milliseconds for air and moulded-case breakers
(3WJ < 50 ms), "at least several milliseconds" for mechanical DC breakers (Atom Power, US 11,437,211
background), under 10 us for solid-state breakers (ARPA-E BREAKERS GaN units at 380 V / 20 A and 1000 V / 10 A;
ABB: "in microseconds"; research-nextgen.md B.6). A bolted DC fault (:func:`dc_fault_clearing`) is cleared that
long after its current, rising through the feeder's inductance (:mod:`models.conductors`), meets the pickup.

Time-varying load (the engine's interval means): the integrating characteristics (``I2T``, ``IEC``,
``TABLE``) accumulate the operate integral ``F = integral dt / t(m(t))`` and trip at ``F = 1`` (IEEE
C37.112-1996, the integral form of an inverse-time relay), so a held load trips at exactly ``t(m)``
and a shorter overload does not. Below pickup ``F`` decays as ``exp(-dt / memory_s)``: the thermal
memory (MicroLogic: 20 min; the exponential form is this model's assumption; ``memory_s = 0`` resets at
once, the IEC 60255-151 instantaneous reset). The thermal image carries its own memory: ``theta``
cools toward ``m^2`` with ``tau``, so an element that carried load trips sooner (the "hot curve").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]

NONE, I2T, THERMAL, IEC, TABLE = range(5)
CHARACTERISTICS = {"none": NONE, "i2t": I2T, "thermal": THERMAL, "iec": IEC, "table": TABLE}
I2T_REFERENCE_MULTIPLE = 6.0  # t_r is set at 6 x I_r (Siemens 3WA1 §3.2; Schneider MicroLogic "@ 6 Ir")

#: IEC 60255-151 Table 1 inverse-time constants (A [s], P [-]), as listed in the ABB Relion 670
#: technical manual 1MRK505222-UUS C, Table 729.
IEC_CURVES = {
    "standard": (0.14, 0.02),
    "very": (13.5, 1.0),
    "extremely": (80.0, 2.0),
    "long-time": (120.0, 1.0),
    "short-time": (0.05, 0.04),
}


def i2t_time_s(m: ArrayLike, tr_s: ArrayLike, pickup: ArrayLike = 1.1) -> Array:
    """Long-time I^2 t trip time ``t = t_r (6 / m)^2`` [s] for ``m >= pickup``, inf below.

    ``m`` load multiple of I_r [-] >= 0; ``tr_s`` time at 6 x I_r [s] > 0; ``pickup`` [-] > 0.
    Source: Siemens SENTRON 3WA1 equipment manual 02/2023, §3.2 p. 205.
    """
    m = checks.nonnegative("m", m)
    tr = checks.positive("tr_s", tr_s)
    with np.errstate(divide="ignore"):
        t = tr * (I2T_REFERENCE_MULTIPLE / m) ** 2
    return np.where(m >= checks.positive("pickup", pickup), t, np.inf)


def thermal_time_s(m: ArrayLike, tau_s: ArrayLike, k: ArrayLike = 1.2, theta0: ArrayLike = 0.0) -> Array:
    """Thermal-image trip time ``t = tau ln((m^2 - theta_0) / (m^2 - k^2))`` [s] from image ``theta_0``.

    ``m`` load multiple [-] >= 0; ``tau_s`` heating time constant [s] > 0; ``k`` trip threshold multiple
    [-] > 0; ``theta_0`` image at the start [per unit of I_r^2] >= 0 (0: cold). inf where ``m <= k``
    (the image never reaches ``k^2``), 0 where ``theta_0 >= k^2``. Source: IEC 60255-149 (thermal
    electrical relays), cold and hot curves.
    """
    m2 = checks.nonnegative("m", m) ** 2
    k2 = checks.positive("k", k) ** 2
    th = checks.nonnegative("theta0", theta0)
    tau = checks.positive("tau_s", tau_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = tau * np.log((m2 - th) / (m2 - k2))
    return np.where(th >= k2, 0.0, np.where(m2 > k2, t, np.inf))


def iec_time_s(g: ArrayLike, tms: ArrayLike, curve: str = "standard") -> Array:
    """IEC 60255-151 inverse-time operate time ``t = TMS A / (G^P - 1)`` [s], inf for ``G <= 1``.

    ``g`` current over the pickup setting [-] >= 0; ``tms`` time multiplier [-] > 0; ``curve`` a key
    of :data:`IEC_CURVES`.
    """
    if curve not in IEC_CURVES:
        raise ValueError(f"curve: must be one of {sorted(IEC_CURVES)}, got {curve!r}")
    a, p = IEC_CURVES[curve]
    return _iec(checks.nonnegative("g", g), checks.positive("tms", tms), a, p)


def _iec(g: Array, tms: Array, a: ArrayLike, p: ArrayLike) -> Array:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = tms * a / (g**p - 1.0)
    return np.where(g > 1.0, t, np.inf)


def table_time_s(m: ArrayLike, loads: ArrayLike, seconds: ArrayLike, floor: ArrayLike | None = None) -> Array:
    """Allowed time [s] at load multiple ``m`` from an overload table: points ``loads`` [-] increasing,
    ``seconds`` [s] decreasing and > 0; log-log linear between points and along the end segments beyond
    them; inf below ``floor`` [-] (default: the first point; a lower floor, e.g. the continuous rating 1,
    extends the first segment down to it).

    One table (1-D ``loads``/``seconds``) applies to any shape of ``m``; ``[n, K]`` tables (one per
    device, padded with NaN, >= 2 points each) take ``m`` of shape ``(n,)``.
    """
    m = checks.nonnegative("m", m)
    x, y = np.asarray(loads, float), np.asarray(seconds, float)
    if x.shape != y.shape or x.shape[-1] < 2 or x.ndim not in (1, 2):
        raise ValueError(f"loads: must match seconds and hold >= 2 points, got {x.shape} and {y.shape}")
    shape = m.shape
    if x.ndim == 1:
        x, y, m = np.broadcast_to(x, (m.size, x.size)), np.broadcast_to(y, (m.size, y.size)), m.ravel()
    elif m.shape != x.shape[:1]:
        raise ValueError(f"m: expected one value per table {x.shape[:1]}, got {m.shape}")
    n_pts = np.sum(np.isfinite(x), axis=1)
    lx = np.log(np.where(np.isfinite(x), x, 1.0))
    ly = np.log(np.where(np.isfinite(y), y, 1.0))
    with np.errstate(divide="ignore"):
        lm = np.log(m)
    k = np.arange(1, x.shape[1])
    j = np.sum((lm[:, None] >= lx[:, 1:]) & (k <= n_pts[:, None] - 2), axis=1)  # segment: points j, j + 1
    r = np.arange(x.shape[0])
    x0, x1, y0, y1 = lx[r, j], lx[r, j + 1], ly[r, j], ly[r, j + 1]
    t = np.exp(y0 + (lm - x0) * (y1 - y0) / (x1 - x0))
    lo = x[:, 0] if floor is None else np.broadcast_to(np.asarray(floor, float), x.shape[:1])
    return np.where(m >= lo, t, np.inf).reshape(shape)


@dataclass(frozen=True)
class TripSettings:
    """Settings of ``n`` protective devices (arrays of length ``n``; see the module docstring).

    ``characteristic`` codes (:data:`CHARACTERISTICS`); ``pickup`` where timing starts (``k`` of the
    thermal image); ``tr_s`` (I2T: time at 6 x I_r; THERMAL: ``tau``); ``tms``, ``iec_a``, ``iec_p``
    (IEC); ``table_m``, ``table_s`` ``[n, K]`` padded with NaN (TABLE); ``isd``, ``tsd_s`` short time
    and ``ii`` instantaneous multiples (inf: none); ``memory_s`` decay of the operate integral below
    pickup (0: instantaneous reset); ``interrupt_s`` from the instantaneous pickup to interruption [s]
    (default 0).
    """

    characteristic: IntArray
    pickup: Array
    tr_s: Array
    tms: Array
    iec_a: Array
    iec_p: Array
    table_m: Array
    table_s: Array
    isd: Array
    tsd_s: Array
    ii: Array
    memory_s: Array
    interrupt_s: Array = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = self.characteristic.shape
        if self.interrupt_s is None:
            object.__setattr__(self, "interrupt_s", np.zeros(n))
        checks.nonnegative("interrupt_s", self.interrupt_s)
        for name in ("pickup", "tr_s", "tms", "iec_a", "iec_p", "isd", "tsd_s", "ii", "memory_s", "interrupt_s"):
            if np.shape(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected shape {n}, got {np.shape(getattr(self, name))}")
        if self.table_m.shape != self.table_s.shape or self.table_m.shape[:1] != n:
            raise ValueError(f"table_m/table_s: expected [{n[0]}, K], got {self.table_m.shape}, {self.table_s.shape}")

    @property
    def n(self) -> int:
        return self.characteristic.size

    @classmethod
    def none(cls, n: int) -> TripSettings:
        """``n`` elements without a protective device (never trip)."""
        z, inf = np.zeros(n), np.full(n, np.inf)
        return cls(np.zeros(n, np.int64), np.ones(n), np.ones(n), np.ones(n), z, z, np.full((n, 2), np.nan),
                   np.full((n, 2), np.nan), inf, z.copy(), inf.copy(), z.copy())  # fmt: skip

    def long_time_s(self, m: Array) -> Array:
        """Trip time of each integrating characteristic (I2T, IEC, TABLE) from cold under a held multiple
        ``m`` [-] (inf for the others and below pickup)."""
        t = np.full(self.n, np.inf)
        c = self.characteristic
        for code in (I2T, IEC, TABLE):
            sel = np.flatnonzero(c == code)
            if not sel.size:
                continue
            if code == I2T:
                t[sel] = i2t_time_s(m[sel], self.tr_s[sel], self.pickup[sel])
            elif code == IEC:
                t[sel] = _iec(m[sel] / self.pickup[sel], self.tms[sel], self.iec_a[sel], self.iec_p[sel])
            else:
                t[sel] = table_time_s(m[sel], self.table_m[sel], self.table_s[sel], self.pickup[sel])
        return t

    def held_time_s(self, m: ArrayLike, state: TripState | None = None) -> Array:
        """Time to trip [s] from ``state`` (default: cold) under a held load multiple ``m`` [-], per device:
        the soonest of the long-time characteristic, the short-time and the instantaneous element."""
        m = np.broadcast_to(checks.nonnegative("m", m), (self.n,)).astype(float)
        st = state or TripState.cold(self.n)
        lt = self.long_time_s(m)
        t = np.where(np.isfinite(lt), (1.0 - np.minimum(st.heat, 1.0)) * np.where(np.isfinite(lt), lt, 0.0), np.inf)
        th = np.flatnonzero(self.characteristic == THERMAL)
        if th.size:
            t[th] = thermal_time_s(m[th], self.tr_s[th], self.pickup[th], st.heat[th])
        short = np.where(m >= self.isd, np.maximum(self.tsd_s - st.short_s, 0.0), np.inf)
        inst = np.where(m >= self.ii, 0.0, np.inf)
        return np.minimum(np.minimum(t, short), inst)

    def step(self, state: TripState, m: ArrayLike, dt_s: float) -> tuple[TripState, Array]:
        """Advance ``state`` over ``dt_s`` [s] of held load multiple ``m`` [-] (per device).

        Returns the new state and, per device, the time into the step at which it trips [s] (inf: it
        does not). A tripped device's state is left at its trip point.
        """
        m = np.broadcast_to(checks.nonnegative("m", m), (self.n,)).astype(float)
        dt = float(checks.positive("dt_s", dt_s))
        t_trip = self.held_time_s(m, state)
        t_full = self.long_time_s(m)
        with np.errstate(divide="ignore"):
            decay = np.exp(-dt / self.memory_s)
        heat = np.where(np.isfinite(t_full), state.heat + dt / t_full, state.heat * decay)
        th = self.characteristic == THERMAL
        if th.any():
            m2 = m[th] ** 2
            heat[th] = m2 + (state.heat[th] - m2) * np.exp(-dt / self.tr_s[th])
        short = np.where(m >= self.isd, state.short_s + dt, 0.0)
        tripped = t_trip <= dt
        at_trip = np.where(th, self.pickup**2, 1.0)
        return TripState(np.where(tripped, at_trip, heat), short), np.where(tripped, t_trip, np.inf)


@dataclass(frozen=True)
class DcFaultClearing:
    """A bolted DC fault cleared by a device with an instantaneous element: ``pickup_s`` from the fault to the
    pickup current, ``clearing_s`` to interruption (pickup plus ``interrupt_s``), the current then
    (``peak_a``, the let-through peak) and the let-through ``i2t_a2s`` [A^2 s]; inf when the prospective
    current never reaches the pickup (the fault is left to the long-time and short-time elements)."""

    pickup_s: float
    clearing_s: float
    peak_a: float
    i2t_a2s: float


def dc_fault_clearing(
    voltage_v: float, r_ohm: float, l_h: float, pickup_a: float, interrupt_s: float, i0_a: float = 0.0
) -> DcFaultClearing:
    """Clearing of a bolted fault at the end of a DC feeder (loop ``r_ohm`` [ohm], ``l_h`` [H], fed at
    ``voltage_v`` [V], carrying ``i0_a`` [A] before it) by an instantaneous element picking up at ``pickup_a``
    [A] and interrupting ``interrupt_s`` [s] later (module docstring). The current keeps rising until the
    interruption (:func:`models.conductors.dc_fault_current_a`)."""
    from factory_twin.models.conductors import dc_fault_current_a, dc_fault_i2t_a2s, time_to_current_s

    t_pick = float(time_to_current_s(checks.positive("pickup_a", pickup_a), voltage_v, r_ohm, l_h, i0_a))
    if not np.isfinite(t_pick):
        return DcFaultClearing(np.inf, np.inf, voltage_v / r_ohm, np.inf)
    t_clear = t_pick + float(checks.nonnegative("interrupt_s", interrupt_s))
    peak = float(dc_fault_current_a(t_clear, voltage_v, r_ohm, l_h, i0_a))
    return DcFaultClearing(t_pick, t_clear, peak, float(dc_fault_i2t_a2s(t_clear, voltage_v, r_ohm, l_h, i0_a)))


@dataclass(frozen=True)
class TripState:
    """Memory of ``n`` devices: ``heat`` (the operate integral F of the integrating characteristics,
    the image theta [per unit I_r^2] of the thermal ones) and ``short_s``, time held above the
    short-time pickup [s]."""

    heat: Array
    short_s: Array = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.short_s is None:
            object.__setattr__(self, "short_s", np.zeros_like(self.heat))

    @classmethod
    def cold(cls, n: int) -> TripState:
        return cls(np.zeros(n), np.zeros(n))
