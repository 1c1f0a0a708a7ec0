r"""Storage that hides the fast part of a load from the layer above: power-shelf buffer, rack batteries,
site BESS, each with a low-pass (optionally ramp-limited) split control law.

Each layer sees a load ``L`` and passes a smooth setpoint upstream; its store supplies the rest:

.. math::
    \ell_k = L_k + (\ell_{k-1} - L_k)e^{-\Delta t/\tau},\quad
    s_k = \mathrm{clip}(\ell_k + g\,(E_{ref} - E_k),\ s_{k-1} - R\Delta t,\ s_{k-1} + R\Delta t)

    p^{req}_k = L_k - s_k,\qquad (E_{k+1}, p_k) = \mathrm{bess\_step}(E_k, p^{req}_k),\qquad
    G_k = L_k - p_k

``p > 0`` discharges. The store obeys its power limit, SOC window and one-way efficiencies
(:func:`models.power.bess_step`); what it cannot take passes upstream in ``G``. The SOC term (gain
``g`` [1/s]) pulls the charge back toward ``E_ref`` against losses, inside the setpoint's ramp limit.
Per step the books close exactly:
:math:`G\Delta t = L\Delta t + \text{loss}\,\Delta t + \Delta E`, loss
:math:`= p^+(1/\eta_d - 1) + p^-(1 - \eta_c)`. The grid sees the first-order low-pass of the swing:
:math:`|H(f)| = 1/\sqrt{1 + (2\pi f\tau)^2}` while the store has charge and power.

Source: arXiv 2508.14318 section IV-C/D (rack storage charges in communication, discharges in compute;
GPU smoothing and storage share SOC); NVIDIA GB300 NVL72 blog (65 J per GPU in the power shelf); field
guide grid-dynamics.md sections 3.3-3.6 and cases V2-V4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from factory_twin.models import checks
from factory_twin.models.power import Bess, bess_step
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class SplitLaw:
    """Control law of one storage layer: low-pass time constant ``tau_s`` [s] (0: pass the load), ramp
    limit on the upstream setpoint ``ramp_w_s`` [W/s], SOC gain ``soc_gain_per_s`` [1/s] toward
    ``soc_ref`` [-, share of capacity]."""

    tau_s: float = 0.0
    ramp_w_s: float = math.inf
    soc_gain_per_s: float = 0.0
    soc_ref: float = 0.5

    def __post_init__(self) -> None:
        checks.nonnegative("tau_s", self.tau_s)
        if not self.ramp_w_s > 0:
            raise ValueError(f"ramp_w_s: must be > 0, got {self.ramp_w_s!r}")
        checks.nonnegative("soc_gain_per_s", self.soc_gain_per_s)
        checks.in_range("soc_ref", self.soc_ref, 0.0, 1.0)


@dataclass
class SplitState:
    """Running state of one layer (arrays over groups): filter, setpoint, stored energy [W, W, J]."""

    filtered_w: Array
    setpoint_w: Array
    energy_j: Array

    @classmethod
    def steady(cls, load_w: ArrayLike, energy_j: ArrayLike) -> SplitState:
        """At rest under a constant load: filter and setpoint at the load."""
        load = np.array(load_w, float)
        return cls(load.copy(), load.copy(), np.array(energy_j, float) * np.ones_like(load))


def split_step(
    load_w: ArrayLike, state: SplitState, dt_s: float, law: SplitLaw, store: Bess
) -> tuple[Array, Array, Array]:
    """Advance one layer by one step (state updated in place); return ``(upstream_w, store_w, loss_w)``.
    For long series use :func:`run_split` (the same law, a scalar inner loop)."""
    load = np.asarray(load_w, float)
    a = math.exp(-dt_s / law.tau_s) if law.tau_s > 0 else 0.0
    state.filtered_w = load + (state.filtered_w - load) * a
    r = law.ramp_w_s * dt_s
    target = state.filtered_w + law.soc_gain_per_s * (law.soc_ref * store.energy_capacity_j - state.energy_j)
    state.setpoint_w = np.minimum(np.maximum(target, state.setpoint_w - r), state.setpoint_w + r)
    state.energy_j, p = bess_step(state.energy_j, load - state.setpoint_w, dt_s, store)
    return load - p, p, storage_loss_w(p, store)


def storage_loss_w(p_w: ArrayLike, store: Bess) -> Array:
    r"""Conversion loss at terminal power ``p`` (> 0 discharging): :math:`p^+(1/\eta_d-1) + p^-(1-\eta_c)` [W]."""
    p = np.asarray(p_w, float)
    return np.maximum(p, 0.0) * (1 / store.eta_discharge - 1) + np.maximum(-p, 0.0) * (1 - store.eta_charge)


def run_split(
    load_w: ArrayLike, dt_s: float, law: SplitLaw, store: Bess, energy0_j: ArrayLike | None = None
) -> tuple[Array, Array, Array, Array]:
    """One layer over a series ``load_w`` (groups x time, or time) from rest at the first load:
    ``(upstream_w, store_w, loss_w, energy_j)``, energy after each step; start energy ``energy0_j``
    (default ``soc_ref`` of capacity). Same law as :func:`split_step`, stepped with Python floats per
    group (a few groups, tens of thousands of steps: far faster than numpy on tiny arrays)."""
    L = np.atleast_2d(checks.finite("load_w", load_w))
    dt = float(checks.positive("dt_s", dt_s))
    cap = store.energy_capacity_j
    e0 = np.broadcast_to(law.soc_ref * cap if energy0_j is None else energy0_j, L.shape[:1])
    checks.in_range("energy0_j", e0, 0.0, cap)
    up, p, e = np.empty_like(L), np.empty_like(L), np.empty_like(L)
    a = math.exp(-dt / law.tau_s) if law.tau_s > 0 else 0.0
    r, g, e_ref = law.ramp_w_s * dt, law.soc_gain_per_s, law.soc_ref * cap
    step = _bess_scalar(store, dt)
    for i in range(L.shape[0]):
        row = L[i].tolist()
        filt = sp = row[0]
        en = float(e0[i])
        pi, ei = [0.0] * len(row), [0.0] * len(row)
        for k, x in enumerate(row):
            filt = x + (filt - x) * a
            sp = min(max(filt + g * (e_ref - en), sp - r), sp + r)
            en, pi[k] = step(en, x - sp)
            ei[k] = en
        p[i], e[i] = pi, ei
        up[i] = L[i] - p[i]
    shape = np.shape(load_w)
    out = (up, p, storage_loss_w(p, store), e)
    return tuple(o.reshape(shape) for o in out)  # type: ignore[return-value]


def _bess_scalar(store: Bess, dt: float):
    """:func:`models.power.bess_step` for one battery and Python floats (tests/models check they agree)."""
    e_min, e_max = store.soc_min * store.energy_capacity_j, store.soc_max * store.energy_capacity_j
    pmax, ec, ed = store.power_limit_w, store.eta_charge, store.eta_discharge

    def step(e: float, p: float) -> tuple[float, float]:
        p_dis = max(e - e_min, 0.0) * ed / dt
        p_ch = max(e_max - e, 0.0) / (ec * dt)
        act = min(max(p, -min(pmax, p_ch)), min(pmax, p_dis))
        if p >= p_dis and p_dis <= pmax:
            return min(e, e_min), act
        if -p >= p_ch and p_ch <= pmax:
            return max(e, e_max), act
        return e + (ec * max(-act, 0.0) - max(act, 0.0) / ed) * dt, act

    return step


# ----------------------------------------------------------------------------- closed forms (V2-V4)
def lowpass_gain(freq_hz: ArrayLike, tau_s: ArrayLike) -> Array:
    r"""Magnitude of the first-order low-pass the grid sees: :math:`1/\sqrt{1+(2\pi f\tau)^2}` [-]."""
    return 1 / np.sqrt(1 + (2 * np.pi * np.asarray(freq_hz, float) * np.asarray(tau_s, float)) ** 2)


def ramp_hide_energy_j(step_w: ArrayLike, ramp_w_s: ArrayLike) -> Array:
    r"""Energy a store supplies so a load step ``ΔP`` reaches the grid as a linear ramp ``R``:
    :math:`\Delta P^2/2R` [J] over :math:`t = \Delta P/R`."""
    return np.asarray(step_w, float) ** 2 / (2 * np.asarray(ramp_w_s, float))


def lag_hide_energy_j(step_w: ArrayLike, ramp_w_s: ArrayLike) -> Array:
    r"""Same with a first-order lag of the same initial slope, :math:`\tau = \Delta P/R`: :math:`\Delta P\tau` [J]."""
    step = np.asarray(step_w, float)
    return step * step / np.asarray(ramp_w_s, float)


def cycle_energy_j(delta_w: ArrayLike, duty: ArrayLike, period_s: ArrayLike) -> Array:
    r"""Energy a store cycles to hold the grid at the mean of a square wave: :math:`\Delta P\,d(1-d)\,T` [J]."""
    d = np.asarray(duty, float)
    return np.asarray(delta_w, float) * d * (1 - d) * np.asarray(period_s, float)


def max_flattened_swing_w(energy_j: ArrayLike, duty: ArrayLike, period_s: ArrayLike) -> Array:
    r"""Largest swing a store of usable energy ``E`` flattens: :math:`E/(d(1-d)T)` [W]."""
    d = np.asarray(duty, float)
    return np.asarray(energy_j, float) / (d * (1 - d) * np.asarray(period_s, float))
