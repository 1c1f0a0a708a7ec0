r"""Rack thermals: lumped RC networks from the GPU die to the local coolant.

Every rack is represented by one GPU: die node (``C1``) -> ``R1`` -> cold-plate node (``C2``)
-> ``R2`` -> local bulk coolant (a boundary temperature). Node equation, power ``P`` into the die:

.. math:: C_i \dot T_i = P_i + \sum_j (T_j - T_i) / R_{ij}

The two-node chain is linear with constant coefficients, so over a step with ``P`` and the coolant
temperature held constant the exact zero-order-hold update is
:math:`\theta_{k+1} = \theta_{ss} + \Phi(\Delta t)(\theta_k - \theta_{ss})` with
:math:`\theta = T - T_{coolant}` and :math:`\Phi = e^{A \Delta t}` in closed form (see
:meth:`TwoNodeRC.discretize`). Sources: physics.md section 1.1 (node equation, 2-node closed form);
the R and C defaults live in ``data/racks.toml`` with their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def rc1_response(
    t0_c: ArrayLike,
    p_w: ArrayLike,
    r_k_w: ArrayLike,
    c_j_k: ArrayLike,
    t_coolant_c: ArrayLike,
    t_s: ArrayLike,
) -> Array:
    r"""Temperature of a one-node RC body after ``t_s`` of constant power and coolant temperature.

    .. math:: T(t) = T_c + P R + (T_0 - T_c - P R)\, e^{-t / (R C)}

    Parameters
    ----------
    t0_c : array_like
        Initial node temperature [degC].
    p_w : array_like
        Heat input, held constant [W].
    r_k_w : array_like
        Node-to-coolant thermal resistance [K/W].
    c_j_k : array_like
        Node heat capacity [J/K].
    t_coolant_c : array_like
        Coolant (boundary) temperature, held constant [degC].
    t_s : array_like
        Elapsed time [s].

    Returns
    -------
    Node temperature [degC], broadcast over the arguments.

    Source: physics.md section 1.1 (1-node model), validation case V1.
    """
    t0 = checks.finite("t0_c", t0_c)
    p = checks.nonnegative("p_w", p_w)
    r = checks.positive("r_k_w", r_k_w)
    c = checks.positive("c_j_k", c_j_k)
    tc = checks.finite("t_coolant_c", t_coolant_c)
    t = checks.nonnegative("t_s", t_s)
    t_ss = tc + p * r
    return t_ss + (t0 - t_ss) * np.exp(-t / (r * c))


def junction_temp_c(
    p_w: ArrayLike,
    r_k_w: ArrayLike,
    t_in_c: ArrayLike,
    m_dot_kg_s: ArrayLike | None = None,
    cp_j_kgk: ArrayLike | None = None,
    reference: Literal["mean", "inlet"] = "mean",
) -> Array:
    r"""Steady junction temperature of a cold-plated GPU.

    Mean-coolant convention (``R`` quoted against the bulk mean coolant temperature):

    .. math:: T_j = T_{in} + \frac{P}{2 \dot m c_p} + P R

    Inlet convention (``R`` quoted against the coolant inlet): :math:`T_j = T_{in} + P R`.

    Parameters
    ----------
    p_w : array_like
        GPU heat [W].
    r_k_w : array_like
        Junction-to-coolant resistance [K/W] in the chosen convention.
    t_in_c : array_like
        Coolant inlet temperature [degC].
    m_dot_kg_s : array_like
        Coolant mass flow through the cold plate [kg/s]; needed for ``"mean"``.
    cp_j_kgk : array_like
        Coolant specific heat [J/(kg K)]; needed for ``"mean"``.
    reference : str
        ``"mean"`` or ``"inlet"``, the convention in which ``r_k_w`` is quoted.

    Source: physics.md section 1.1 (local-coolant reference) and validation case V5.
    """
    p = checks.nonnegative("p_w", p_w)
    r = checks.positive("r_k_w", r_k_w)
    t_in = checks.finite("t_in_c", t_in_c)
    if reference == "inlet":
        return t_in + p * r
    if reference != "mean":
        raise ValueError(f"reference: expected 'mean' or 'inlet', got {reference!r}")
    if m_dot_kg_s is None or cp_j_kgk is None:
        raise ValueError("m_dot_kg_s: the 'mean' convention needs m_dot_kg_s and cp_j_kgk")
    m_dot = checks.positive("m_dot_kg_s", m_dot_kg_s)
    cp = checks.positive("cp_j_kgk", cp_j_kgk)
    return t_in + p / (2.0 * m_dot * cp) + p * r


@dataclass(frozen=True, eq=False)
class TwoNodeRC:
    r"""Die -> cold plate -> coolant RC chain, one entry per rack (arrays broadcast together).

    With :math:`\theta = T - T_{coolant}` and power ``P`` into the die:

    .. math::
        \dot\theta = A\theta + B P, \quad
        A = \begin{pmatrix} -a_{11} & a_{11} \\ a_{21} & -a_{22} \end{pmatrix}, \quad
        B = \begin{pmatrix} 1/C_1 \\ 0 \end{pmatrix}

    :math:`a_{11} = 1/(R_1C_1)`, :math:`a_{21} = 1/(R_1C_2)`, :math:`a_{22} = (1/R_1 + 1/R_2)/C_2`.
    Eigenvalues
    :math:`s_{1,2} = \tfrac12[-(a_{11}+a_{22}) \pm \sqrt{(a_{11}-a_{22})^2 + 4a_{11}a_{21}}]`
    are real, negative and distinct; :math:`s_1 s_2 = 1/(R_1R_2C_1C_2)`. Steady state:
    :math:`\theta_{die} = P(R_1+R_2)`, :math:`\theta_{plate} = P R_2`.

    Parameters
    ----------
    r_die_plate_k_w : array_like
        Die-to-plate resistance R1 [K/W].
    r_plate_coolant_k_w : array_like
        Plate-to-coolant resistance R2 [K/W].
    c_die_j_k : array_like
        Die and package heat capacity C1 [J/K].
    c_plate_j_k : array_like
        Cold-plate heat capacity C2 [J/K].

    Source: physics.md section 1.1 (2-node chain), validation case V2.
    """

    r_die_plate_k_w: Array
    r_plate_coolant_k_w: Array
    c_die_j_k: Array
    c_plate_j_k: Array

    def __post_init__(self) -> None:
        names = ("r_die_plate_k_w", "r_plate_coolant_k_w", "c_die_j_k", "c_plate_j_k")
        arrays = np.broadcast_arrays(*(checks.positive(n, getattr(self, n)) for n in names))
        for name, a in zip(names, arrays, strict=True):
            object.__setattr__(self, name, a.copy())

    @property
    def r_total_k_w(self) -> Array:
        """Die-to-coolant resistance R1 + R2 [K/W]."""
        return self.r_die_plate_k_w + self.r_plate_coolant_k_w

    @property
    def eigenvalues_1_s(self) -> tuple[Array, Array]:
        """``(s1, s2)`` [1/s]: the slow and the fast pole (time constants ``-1/s``)."""
        s1, s2, _ = self._poles()
        return s1, s2

    def _poles(self) -> tuple[Array, Array, Array]:
        r1, r2, c1, c2 = (
            self.r_die_plate_k_w,
            self.r_plate_coolant_k_w,
            self.c_die_j_k,
            self.c_plate_j_k,
        )
        a11, a21, a22 = 1 / (r1 * c1), 1 / (r1 * c2), (1 / r1 + 1 / r2) / c2
        root = np.sqrt((a11 - a22) ** 2 + 4 * a11 * a21)  # = s1 - s2, no cancellation
        s2 = -0.5 * (a11 + a22 + root)
        s1 = 1 / (r1 * r2 * c1 * c2) / s2  # product of the poles; avoids cancellation in s1
        return s1, s2, root

    def steady_state(self, p_w: ArrayLike, t_coolant_c: ArrayLike) -> tuple[Array, Array]:
        """Steady ``(t_die_c, t_plate_c)`` [degC] at die power ``p_w`` [W], coolant ``t_coolant_c``
        [degC]."""
        p = checks.nonnegative("p_w", p_w)
        tc = checks.finite("t_coolant_c", t_coolant_c)
        return tc + p * self.r_total_k_w, tc + p * self.r_plate_coolant_k_w

    def stored_energy_j(self, t_die_c: ArrayLike, t_plate_c: ArrayLike) -> Array:
        """Sensible heat held per GPU, ``C1 T_die + C2 T_plate`` [J, relative to 0 degC]."""
        t1 = checks.finite("t_die_c", t_die_c)
        t2 = checks.finite("t_plate_c", t_plate_c)
        return self.c_die_j_k * t1 + self.c_plate_j_k * t2

    def discretize(self, dt_s: float) -> RCStep:
        r"""Exact zero-order-hold transition over ``dt_s`` [s], precomputed per rack.

        For the 2x2 matrix with distinct eigenvalues (Sylvester's formula, written to stay accurate
        for tiny and huge steps):

        .. math::
            \Phi = e^{A\Delta t} = f_0 I + f_1 (A - mI), \quad m = \tfrac{s_1+s_2}{2}, \quad
            f_0 = \tfrac{e^{s_1\Delta t} + e^{s_2\Delta t}}{2}, \quad
            f_1 = \frac{e^{s_1\Delta t} - e^{s_2\Delta t}}{s_1 - s_2}
                = e^{s_1\Delta t}\,\frac{-\mathrm{expm1}(-(s_1 - s_2)\Delta t)}{s_1 - s_2}

        Both poles are negative, so ``Phi`` decays for any ``dt_s`` (unconditionally stable).
        """
        dt = float(checks.positive("dt_s", dt_s))
        s1, s2, root = self._poles()
        e1, e2 = np.exp(s1 * dt), np.exp(s2 * dt)
        f0 = 0.5 * (e1 + e2)
        f1 = e1 * -np.expm1(-root * dt) / root
        r1, c1, c2 = self.r_die_plate_k_w, self.c_die_j_k, self.c_plate_j_k
        a11, a21, a22 = 1 / (r1 * c1), 1 / (r1 * c2), (1 / r1 + 1 / self.r_plate_coolant_k_w) / c2
        half = 0.5 * (a22 - a11)  # A - mI = [[half, a11], [a21, -half]]
        return RCStep(
            rc=self,
            dt_s=dt,
            phi11=f0 + f1 * half,
            phi12=f1 * a11,
            phi21=f1 * a21,
            phi22=f0 - f1 * half,
            r_total_k_w=self.r_total_k_w,
        )


@dataclass(frozen=True, eq=False)
class RCStep:
    r"""Precomputed exact step of a :class:`TwoNodeRC` (build it with :meth:`TwoNodeRC.discretize`).

    .. math::
        \theta_{ss} = (P(R_1+R_2),\ P R_2), \quad
        T_{k+1} = T_c + \theta_{ss} + \Phi\,(T_k - T_c - \theta_{ss})

    ``phi11 .. phi22`` are the entries of :math:`\Phi` per rack [-].
    """

    rc: TwoNodeRC
    dt_s: float
    phi11: Array
    phi12: Array
    phi21: Array
    phi22: Array
    r_total_k_w: Array

    def step(
        self, t_die_c: ArrayLike, t_plate_c: ArrayLike, p_w: ArrayLike, t_coolant_c: ArrayLike
    ) -> tuple[Array, Array]:
        """Advance ``(t_die_c, t_plate_c)`` [degC] by ``dt_s`` with die power ``p_w`` [W] and
        coolant temperature ``t_coolant_c`` [degC] held over the step; return the new pair.

        Validation is deferred: the fast path costs three reductions; the argument checks run only
        if the result is not finite or the power is negative or NaN, and then name the culprit.
        """
        t1, t2 = np.asarray(t_die_c, float), np.asarray(t_plate_c, float)
        p, tc = np.asarray(p_w, float), np.asarray(t_coolant_c, float)
        ss2 = tc + p * self.rc.r_plate_coolant_k_w
        ss1 = tc + p * self.r_total_k_w
        d1, d2 = t1 - ss1, t2 - ss2
        out1 = ss1 + self.phi11 * d1 + self.phi12 * d2
        out2 = ss2 + self.phi21 * d1 + self.phi22 * d2
        # min(initial=0) is 0 unless some power is negative; NaN fails the comparison too
        if not (np.isfinite(out1.sum() + out2.sum()) and p.min(initial=0.0) >= 0):
            checks.finite("t_die_c", t1)
            checks.finite("t_plate_c", t2)
            checks.nonnegative("p_w", p)
            checks.finite("t_coolant_c", tc)
        return out1, out2

    def steady_state(self, p_w: ArrayLike, t_coolant_c: ArrayLike) -> tuple[Array, Array]:
        """Same as :meth:`TwoNodeRC.steady_state`."""
        return self.rc.steady_state(p_w, t_coolant_c)

    def stored_energy_j(self, t_die_c: ArrayLike, t_plate_c: ArrayLike) -> Array:
        """Same as :meth:`TwoNodeRC.stored_energy_j`."""
        return self.rc.stored_energy_j(t_die_c, t_plate_c)

    def heat_to_coolant_j(
        self,
        t_die_c: ArrayLike,
        t_plate_c: ArrayLike,
        t_die_next_c: ArrayLike,
        t_plate_next_c: ArrayLike,
        p_w: ArrayLike,
    ) -> Array:
        r"""Heat passed from the plate to the coolant over one step, per GPU [J].

        Exact energy balance of the step (no quadrature error):
        :math:`Q = P\,\Delta t - [C_1 (T_1' - T_1) + C_2 (T_2' - T_2)]` which equals
        :math:`\int_0^{\Delta t} (T_2 - T_c)/R_2\,dt`.

        Parameters
        ----------
        t_die_c, t_plate_c : array_like
            Node temperatures at the start of the step [degC].
        t_die_next_c, t_plate_next_c : array_like
            Node temperatures at the end of the step [degC].
        p_w : array_like
            Die power held over the step [W].
        """
        p = checks.nonnegative("p_w", p_w)
        e0 = self.rc.stored_energy_j(t_die_c, t_plate_c)
        e1 = self.rc.stored_energy_j(t_die_next_c, t_plate_next_c)
        return p * self.dt_s - (e1 - e0)
