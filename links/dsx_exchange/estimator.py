"""Recursive estimation of slow plant parameters: a scalar Kalman filter per entity, vectorized.

Model: random walk ``theta_k = theta_{k-1} + w_k`` (``w ~ N(0, q dt)``: the parameter may drift, e.g. an
exchanger fouling) observed through ``z_k = theta_k + v_k`` (``v ~ N(0, r_k)``), where ``z_k`` is the
parameter solved from one set of measurements and ``r_k`` its variance propagated from the sensors' noise
and resolution. Update: ``P- = P + q dt; K = P- / (P- + r); theta += K (z - theta); P = (1 - K) P-``.

Why a Kalman filter and not recursive least squares with forgetting: both reduce to the same recursion for
one parameter, but the filter weighs each sample by its own measurement variance (an exchanger at light
load, with small temperature differences, says little about its UA and gets a small gain), states the
tracking speed as a physical drift rate ``q`` instead of a forgetting factor, and carries a variance ``P``
that the diagnosis uses to decide when a change is real (a z-test) and when the estimate is still unsure.

Estimated here: each CDU's exchanger UA at nominal flows (inverting the eps-NTU relation of
:func:`factory_twin.models.heat_exchange.cdu_supply_control` from the four temperatures and two flows)
and each rack's coolant-side thermal resistance ``R = (T_return - T_supply) / P_rack`` [K/W] (the rise
per watt of rack input; its inverse is the captured heat-capacity rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models.heat_exchange import effectiveness_max, ntu_from_effectiveness, ua_at_flow
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass
class ScalarKalman:
    """Independent scalar random-walk Kalman filters over an array of entities."""

    theta: Array
    p: Array
    q_per_s: Array
    q_rel: float = 0.0

    @classmethod
    def start(cls, theta0: Array, rel_sd0: float, rel_drift_per_sqrt_h: float) -> ScalarKalman:
        """Prior ``theta0`` with relative standard deviation ``rel_sd0`` (NaN: no prior, the first measurement
        starts it); drift allowance in relative units per square-root hour (0.1 = the parameter may wander
        ~10 % in an hour)."""
        t = np.asarray(theta0, float).copy()
        q_rel = rel_drift_per_sqrt_h**2 / 3600.0
        return cls(t, (rel_sd0 * t) ** 2, q_rel * t**2, q_rel)

    def update(self, z: Array, r: Array, dt_s: float, mask: Array | None = None) -> Array:
        """One step for the entities in ``mask`` (all when None) with finite ``z`` and ``r``; returns the
        normalized innovation ``(z - theta) / sqrt(P- + r)`` (NaN where not updated)."""
        ok = np.isfinite(z) & np.isfinite(r) & (r > 0)
        if mask is not None:
            ok &= mask
        first = ok & ~np.isfinite(self.theta)  # no prior: the first measurement is the estimate
        if first.any():
            self.theta = np.where(first, z, self.theta)
            self.p = np.where(first, r, self.p)
            self.q_per_s = np.where(first & ~np.isfinite(self.q_per_s), self.q_rel * z**2, self.q_per_s)
            ok &= ~first
        p_pred = self.p + self.q_per_s * dt_s
        s = p_pred + r
        k = np.where(ok, p_pred / np.where(ok, s, 1.0), 0.0)
        innov = np.where(ok, z - self.theta, 0.0)
        self.theta = self.theta + k * innov
        self.p = np.where(ok, (1.0 - k) * p_pred, p_pred)
        return np.where(ok, innov / np.sqrt(np.where(ok, s, 1.0)), np.nan)

    @property
    def sd(self) -> Array:
        return np.sqrt(self.p)

    def state(self) -> dict:
        return {"theta": self.theta.tolist(), "p": self.p.tolist()}

    def restore(self, d: dict) -> None:
        theta, p = np.asarray(d["theta"], float), np.asarray(d["p"], float)
        if theta.shape == self.theta.shape:
            self.theta, self.p = theta, p
            self.q_per_s = np.where(np.isfinite(theta), self.q_rel * theta**2, self.q_per_s)


def ua_nominal_from_measurements(
    t_hot_in: Array,
    t_hot_out: Array,
    t_cold_in: Array,
    c_hot: Array,
    c_cold: Array,
    c_cold_max: Array,
    arrangement: str,
    exponent: float,
) -> Array:
    """UA at nominal flows solved from one operating point [W/K] (NaN where the point says nothing: no duty,
    no facility flow, or an effectiveness at or beyond the arrangement's maximum).

    ``Q = C_hot (T_hot,in - T_hot,out)``, ``eps = Q / (C_min (T_hot,in - T_cold,in))``, ``NTU = f^-1(eps,
    C_r)``, ``UA = NTU C_min`` at the present facility-side flow fraction ``x = C_cold / C_cold,max``, scaled
    back to nominal flow with the model's flow law (:func:`ua_at_flow`, TCS side at nominal)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = c_hot * (t_hot_in - t_hot_out)
        c_min, c_max = np.minimum(c_hot, c_cold), np.maximum(c_hot, c_cold)
        dt_max = t_hot_in - t_cold_in
        eps = q / (c_min * dt_max)
        good = (q > 0) & (dt_max > 0) & (c_cold > 0) & (c_hot > 0) & np.isfinite(eps)
        cr = np.where(good, c_min / np.where(good, c_max, 1.0), 0.5)
        good &= eps < 0.999 * effectiveness_max(cr, arrangement)
        ntu = ntu_from_effectiveness(np.where(good, eps, 0.5), cr, arrangement)
        x = np.clip(np.where(good, c_cold / c_cold_max, 1.0), 1e-6, None)
        scale = ua_at_flow(1.0, 1.0, 1.0, x, 1.0, exponent, 0.5)
        ua = ntu * c_min / scale
    return np.where(good, ua, np.nan)


__all__ = ["ScalarKalman", "ua_nominal_from_measurements"]
