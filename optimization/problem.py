"""The dispatch LP as plain numpy data, shared by the Pyomo formulation and the matrix path.

Scaling inside the LP (for conditioning; SI everywhere outside it): decisions ``x`` are busy power
per GPU as a fraction of TDP [-], site powers are MW, energies MWh, money in the scenario currency.

Per group ``g`` and step ``t`` (length ``dt_h``):

* GPU power [MW]: ``P_gpu[t] = idle_mw[t] + sum_g busy_mw[t, g] * x[t, g]`` with
  ``busy_mw = gpus * u * tdp / 1e6`` and ``idle_mw = sum gpus * (1 - u) * idle / 1e6`` (u = busy
  share).
* Throughput share ``y[t, g] <= seg_a[g, k] + seg_b[g, k] * x[t, g]`` for every segment ``k``.
* Grid import ``grid[t] >= cut_a[t, c] + cut_b[t, c] * P_gpu[t] - dis[t] + ch[t]`` for every cut
``c``
  (lines through points of the steady site model; see :mod:`optimization.build`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from factory_twin.models.checks import finite, nonnegative, positive
from numpy.typing import NDArray

Array = NDArray[np.float64]

SOFT_LIMITS = ("import_limit", "ramp", "dr", "heat", "die", "flex")


@dataclass(frozen=True)
class BessData:
    """Battery at the meter: energies [MWh], power [MW], one-way efficiencies [-]."""

    e_min_mwh: float
    e_max_mwh: float
    e0_mwh: float
    p_max_mw: float
    eta_charge: float
    eta_discharge: float

    def __post_init__(self) -> None:
        nonnegative("bess.e_min_mwh", self.e_min_mwh)
        positive("bess.p_max_mw", self.p_max_mw)
        if not self.e_min_mwh < self.e_max_mwh:
            raise ValueError(f"bess.e_max_mwh: must exceed e_min_mwh {self.e_min_mwh!r}, got {self.e_max_mwh!r}")
        if not self.e_min_mwh <= self.e0_mwh <= self.e_max_mwh:
            raise ValueError(f"bess.e0_mwh: must be within [e_min, e_max], got {self.e0_mwh!r}")
        for name in ("eta_charge", "eta_discharge"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ValueError(f"bess.{name}: must be within (0, 1], got {v!r}")


@dataclass(frozen=True)
class Problem:
    """Every coefficient of one dispatch LP (shapes: T steps, G groups, K segments, C cuts, W
    windows).

    Infinite entries of ``import_limit_mw``, ``dr_cap_mw`` and ``heat_cap_mw`` mean "no row".
    ``flex_windows`` is a list of ``(group indices, t0, t1, required share)``: the token-weighted
    mean of ``y / y_uncapped`` over the groups and steps ``t0 <= t < t1`` must be at least the
    share. ``penalty_per_mwh`` prices soft slacks (MW slacks x dt_h; die and flex slacks in
    MW-equivalents).
    """

    dt_h: float
    gpus: Array  # [G]
    x_lo: Array  # [G]
    x_hi: Array  # [G]
    x_die_max: Array  # [T, G]
    seg_a: Array  # [G, K]
    seg_b: Array  # [G, K]
    busy_mw: Array  # [T, G]
    idle_mw: Array  # [T]
    tokens_per_s: Array  # [T, G] at y = 1
    value_per_token: Array  # [G]
    cut_a_mw: Array  # [T, C]
    cut_b: Array  # [T, C]
    liquid_base_mw: Array  # [T] liquid heat that does not depend on x (idle GPUs, non-GPU)
    heat_cap_mw: Array  # [T]
    import_limit_mw: Array  # [T]
    dr_cap_mw: Array  # [T]
    ramp_mw_per_step: float
    price_per_mwh: Array  # [T]
    carbon_cost_per_mwh: Array  # [T]
    grid0_mw: float | None = None
    x_ramp_per_step: Array | None = None  # [G] smoothing: largest |x[t] - x[t-1]|
    x0: Array | None = None  # [G] previous busy power fraction (for the first smoothing row)
    bess: BessData | None = None
    flex_windows: list[tuple[Array, int, int, float]] = field(default_factory=list)
    soft: frozenset[str] = frozenset()
    penalty_per_mwh: float = 0.0
    hold_steps: int = 1  # caps and BESS power equal over the first hold_steps steps (MPC)

    def __post_init__(self) -> None:
        T, G = self.busy_mw.shape
        positive("dt_h", self.dt_h)
        shapes = {
            "gpus": (G,),
            "x_lo": (G,),
            "x_hi": (G,),
            "x_die_max": (T, G),
            "seg_b": self.seg_a.shape,
            "idle_mw": (T,),
            "tokens_per_s": (T, G),
            "value_per_token": (G,),
            "cut_b": self.cut_a_mw.shape,
            "liquid_base_mw": (T,),
            "heat_cap_mw": (T,),
            "import_limit_mw": (T,),
            "dr_cap_mw": (T,),
            "price_per_mwh": (T,),
            "carbon_cost_per_mwh": (T,),
        }
        for name, shape in shapes.items():
            a = np.asarray(getattr(self, name))
            if a.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
        if self.seg_a.shape[0] != G or self.cut_a_mw.shape[0] != T:
            raise ValueError(
                f"seg_a/cut_a_mw: expected {G} groups and {T} steps, got {self.seg_a.shape}, {self.cut_a_mw.shape}"
            )
        for name in (
            "gpus",
            "busy_mw",
            "idle_mw",
            "tokens_per_s",
            "value_per_token",
            "x_lo",
            "liquid_base_mw",
        ):
            nonnegative(name, getattr(self, name))
        for name in ("seg_a", "seg_b", "cut_a_mw", "cut_b", "price_per_mwh", "carbon_cost_per_mwh"):
            finite(name, getattr(self, name))
        for name in ("import_limit_mw", "dr_cap_mw", "heat_cap_mw"):
            a = np.asarray(getattr(self, name))
            if np.any(np.isnan(a)) or np.any(a < 0):
                raise ValueError(f"{name}: must be >= 0 (inf for no limit), got {a[np.isnan(a) | (a < 0)][0]!r}")
        if np.any(self.x_hi < self.x_lo):
            raise ValueError("x_hi: must be >= x_lo for every group")
        nonnegative("ramp_mw_per_step", self.ramp_mw_per_step)
        if not 1 <= self.hold_steps <= T:
            raise ValueError(f"hold_steps: must be within [1, {T}], got {self.hold_steps!r}")
        nonnegative("penalty_per_mwh", self.penalty_per_mwh)
        unknown = set(self.soft) - set(SOFT_LIMITS)
        if unknown:
            raise ValueError(f"soft: unknown limit(s) {sorted(unknown)}; choose from {list(SOFT_LIMITS)}")

    @property
    def n_steps(self) -> int:
        return self.busy_mw.shape[0]

    @property
    def n_groups(self) -> int:
        return self.busy_mw.shape[1]

    @property
    def y_uncapped(self) -> Array:
        """Throughput share at the upper bound ``x_hi`` [-], per group."""
        return np.min(self.seg_a + self.seg_b * self.x_hi[:, None], axis=1)

    def x_upper(self) -> Array:
        """Upper bound of x per step and group: the die limit folds in unless it is soft [T, G]."""
        hi = np.broadcast_to(self.x_hi, self.busy_mw.shape)
        return hi if "die" in self.soft else np.maximum(np.minimum(hi, self.x_die_max), self.x_lo)

    def die_rows(self) -> NDArray[np.bool_]:
        """Where a soft die row is needed: the die limit is below the cap's upper bound [T, G]."""
        return ("die" in self.soft) & (self.x_die_max < self.x_hi)

    def flex_coefficients(self) -> list[tuple[Array, Array, Array, float, float]]:
        """Per window: (step indices, group indices, weights on y, required share, uncapped energy
        MWh).

        ``sum weights * y >= share`` with weights = tokens / (tokens x y_uncapped summed over the
        window).
        """
        out = []
        yu = self.y_uncapped
        for groups, t0, t1, share in self.flex_windows:
            tt, gg = np.meshgrid(np.arange(t0, t1), np.asarray(groups, int), indexing="ij")
            tok = self.tokens_per_s[tt, gg]
            total = float(np.sum(tok * yu[gg]))
            if total <= 0:
                continue
            e_mwh = float(np.sum(self.busy_mw[tt, gg] * self.x_hi[gg])) * self.dt_h
            out.append((tt.ravel(), gg.ravel(), (tok / total).ravel(), share, e_mwh))
        return out

    def gpu_mw(self, x: Array) -> Array:
        """Campus GPU power [MW] per step for busy fractions ``x`` [T, G]."""
        return self.idle_mw + np.sum(self.busy_mw * x, axis=1)

    def site_mw(self, x: Array) -> Array:
        """Site load before the BESS [MW]: the upper envelope of the cuts at the GPU power of
        ``x``."""
        return np.max(self.cut_a_mw + self.cut_b * self.gpu_mw(x)[:, None], axis=1)
