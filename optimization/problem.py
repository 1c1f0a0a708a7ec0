"""Stage 2, the ``Problem``: every coefficient of one dispatch LP as numpy data, shared by both
backends, and its assembly from the groups and the site linearization (:func:`make_problem`).

Scaling inside the LP (for conditioning; SI everywhere outside it): decisions ``x`` are busy power
per GPU as a fraction of TDP [-], site powers are MW, energies MWh, money in the scenario currency.

Per group ``g`` and step ``t`` (length ``dt_h``):

* GPU power [MW]: ``P_gpu[t] = idle_mw[t] + sum_g busy_mw[t, g] * x[t, g]`` with
  ``busy_mw = gpus * u * tdp / 1e6`` and ``idle_mw = sum gpus * (1 - u) * idle / 1e6`` (u = busy
  share).
* Throughput share ``y[t, g] <= seg_a[g, k] + seg_b[g, k] * x[t, g]`` for every segment ``k``.
* Grid import ``grid[t] >= cut_a[t, c] + cut_b[t, c] * P_gpu[t] - dis[t] + ch[t]`` for every cut
``c``
  (lines through points of the steady site model; see :mod:`optimization.linearization`).
* Tiers of the one-line diagram (:mod:`optimization.tiers`), per row block ``k`` (a direction over groups) and
  step: ``sum_g d[k, g] * busy_mw[t, g] * x[t, g] <= rho[k, t]`` (family ``tier``; with N-1 the tightest of every
  routing, all paths closed or one path lost).
* At class x CDU grouping, per CDU ``z``: ``sum_{g in z} busy_mw[t, g] * x[t, g] <= room[t, z]`` for
  each CDU limit (:mod:`optimization.cdu_limits`). A hard limit on a CDU that holds one group folds
  into the bound of ``x`` (:meth:`Problem.x_upper`), like the die limit; rows remain for CDUs shared
  by several groups and for soft limits (:meth:`Problem.cdu_rows`).

Job stops (:class:`Stops`, only for jobs that may pause or resize): per group and step a stopped share
``s`` (time-sharing relaxation: the job computes ``1 - s`` of the step at its cap and is stopped the rest,
at idle draw), with ``x`` and ``y`` then the step means (the perspective of the cap and throughput rows:
``x_lo (1 - s) <= x <= x_hi (1 - s)``, ``y <= seg_a (1 - s) + seg_b x``; the cap while computing is
``x / (1 - s)``). Stop starts ``v >= s[t] - s[t-1]`` and ends ``e >= s[t-1] - s[t]`` carry the
checkpoint and restart energy above idle. It stays an LP because power and throughput are linear in
(x, y, s) for a fixed cap-while-computing, and a concave curve's perspective is concave.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from factory_twin.models.checks import finite, nonnegative, positive
from factory_twin.models.units import KG_PER_T, MW, S_PER_H, S_PER_MIN, TOKENS_PER_MTOK
from factory_twin.optimization.cdu_limits import cdu_labels, cdu_rooms
from factory_twin.optimization.groups import Groups
from factory_twin.optimization.linearization import Forecast, heat_capacity_mw, secant_cuts
from factory_twin.optimization.options import SOFT_LIMITS, DispatchOptions
from factory_twin.optimization.tiers import TierRows, tier_rows
from numpy.typing import NDArray

Array = NDArray[np.float64]


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
class Stops:
    """Job stops in the LP (module docstring), one mode per (group, kind), ``M`` modes.

    ``kind`` 0 pauses (the whole job, in time), 1 resizes (a share of its GPUs). A stopped share draws
    ``idle_mw`` per unit (the idle draw of the group's busy GPUs); a unit of stop start (end) adds
    ``start_mwh`` (``end_mwh``) above idle: checkpoint (restart or rejoin) time x (its draw - idle). ``s0``
    is the stopped share before the first step."""

    group: NDArray[np.int64]  # [M]
    kind: NDArray[np.int64]  # [M]
    share_max: Array  # [M]
    idle_mw: Array  # [T, M]
    start_mwh: Array  # [T, M]
    end_mwh: Array  # [T, M]
    s0: Array  # [M]
    fixed: Array | None = None  # [M] share held over the first hold_steps (NaN: free), e.g. rounded pauses

    def __post_init__(self) -> None:
        for name in ("share_max", "idle_mw", "start_mwh", "end_mwh", "s0"):
            nonnegative(f"stops.{name}", getattr(self, name))
        if np.any(self.share_max > 1):
            raise ValueError("stops.share_max: must be within [0, 1]")
        pairs = self.group * 2 + self.kind
        if np.unique(pairs).size != pairs.size:
            raise ValueError("stops: at most one mode per group and kind")

    def share_bounds(self, hold_steps: int) -> tuple[Array, Array]:
        """Bounds of the stopped share ``[T, M]``: [0, share_max], or ``fixed`` over the first hold steps."""
        T = self.idle_mw.shape[0]
        lo, hi = np.zeros((T, self.group.size)), np.broadcast_to(self.share_max, (T, self.group.size)).copy()
        if self.fixed is not None:
            on = np.isfinite(self.fixed)
            v = np.clip(np.where(on, self.fixed, 0.0), 0.0, self.share_max)
            lo[:hold_steps] = np.where(on, v, lo[:hold_steps])
            hi[:hold_steps] = np.where(on, v, hi[:hold_steps])
        return lo, hi

    def per_kind(self, n_groups: int) -> list[tuple[NDArray[np.int64], NDArray[np.bool_]]]:
        """Per kind present: (mode index of each group (0 where none), mask of the groups with that kind)."""
        out = []
        for k in np.unique(self.kind):
            m = np.flatnonzero(self.kind == k)
            idx = np.zeros(n_groups, np.int64)
            idx[self.group[m]] = m
            mask = np.zeros(n_groups, bool)
            mask[self.group[m]] = True
            out.append((idx, mask))
        return out

    def gpu_mw(self, s: Array, v: Array, e: Array, dt_h: float) -> Array:
        """GPU power of the stops [MW] per step from stopped shares, starts and ends ``[T, M]``."""
        return np.sum(self.idle_mw * s + (self.start_mwh * v + self.end_mwh * e) / dt_h, axis=1)

    def group_share(self, s: Array, n_groups: int) -> Array:
        """Stopped share per step and group (both kinds summed) ``[T, G]``."""
        out = np.zeros((s.shape[0], n_groups))
        np.add.at(out, (slice(None), self.group), s)
        return out


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
    stops: Stops | None = None
    cdu_of_group: NDArray[np.int64] | None = None  # [G] CDU of each group (class x CDU grouping)
    cdu_rooms_mw: dict[str, Array] = field(default_factory=dict)  # limit -> [T, Z] room for busy GPUs
    cdu_labels: tuple[str, ...] = ()  # [Z] names for messages
    tiers: TierRows | None = None  # rows of the one-line diagram (optimization.tiers)

    def __post_init__(self) -> None:
        T, G = self.busy_mw.shape
        if self.tiers is not None:
            tr = self.tiers
            if tr.direction.shape[1:] != (G,) or tr.rho_mw.shape != (tr.n_blocks, T):
                raise ValueError(f"tiers: expected [K, {G}] directions and [K, {T}] limits, got "
                                 f"{tr.direction.shape}, {tr.rho_mw.shape}")  # fmt: skip
            if self.stops is not None:
                raise ValueError("tiers: job stops (pause, resize) are not in the tier rows yet; plan with tiers=False")
        st = self.stops
        if st is not None and (st.idle_mw.shape != (T, st.group.size) or np.any(st.group >= G)):
            raise ValueError(f"stops: expected [{T}, M] arrays over groups < {G}, got {st.idle_mw.shape}")
        if self.cdu_rooms_mw:
            if st is not None:
                raise ValueError("stops: job stops with CDU limits (class x CDU grouping) are not supported yet")
            if self.cdu_of_group is None or np.shape(self.cdu_of_group) != (G,):
                raise ValueError(f"cdu_of_group: expected one CDU index per group ({G},) with cdu_rooms_mw")
            Z = int(np.max(self.cdu_of_group)) + 1
            for name, room in self.cdu_rooms_mw.items():
                shape_ok = np.ndim(room) == 2 and np.shape(room)[0] == T and np.shape(room)[1] >= Z
                if not shape_ok or not np.all(np.isfinite(room)):
                    raise ValueError(f"cdu_rooms_mw.{name}: expected finite values of shape ({T}, >= {Z} CDUs)")
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
        """Upper bound of x per step and group [T, G]: the die limit folds in unless it is soft, and so
        do hard CDU limits of CDUs that hold one group (``room / busy_mw``) and hard tier rows of one group
        (:meth:`tier_row_form`)."""
        hi = np.broadcast_to(self.x_hi, self.busy_mw.shape)
        if "die" not in self.soft:
            hi = np.minimum(hi, self.x_die_max)
        if self.tiers is not None and "tier" not in self.soft:
            k1, g1, rhs, _ = self.tier_row_form()
            one = k1 >= 0
            if one.any():
                x_tier = np.full(self.busy_mw.shape, np.inf)
                np.minimum.at(x_tier.T, g1[one], rhs[one])
                hi = np.minimum(hi, x_tier)
        if self.cdu_rooms_mw and "cdu" not in self.soft:
            single = self._cdu_size()[self.cdu_of_group] == 1
            for room in self.cdu_rooms_mw.values():
                with np.errstate(divide="ignore", invalid="ignore"):
                    x_cdu = np.where(self.busy_mw > 0, room[:, self.cdu_of_group] / self.busy_mw, np.inf)
                hi = np.where(single, np.minimum(hi, x_cdu), hi)
        return np.maximum(hi, self.x_lo)

    def _cdu_size(self) -> NDArray[np.int64]:
        """Groups per CDU [Z]."""
        return np.bincount(self.cdu_of_group, minlength=self.n_cdus)

    @property
    def n_cdus(self) -> int:
        return max((r.shape[1] for r in self.cdu_rooms_mw.values()), default=0)

    def cdu_rows(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Rows a CDU limit needs: ``(steps [R], CDUs [R], member groups [Z, M])``. All (step, CDU)
        pairs when ``"cdu"`` is soft, else those of CDUs shared by several groups (the others fold into
        :meth:`x_upper`). ``members[z]`` lists the CDU's groups, padded with -1."""
        size = self._cdu_size()
        order = np.argsort(self.cdu_of_group, kind="stable")
        rank = np.arange(order.size) - np.searchsorted(self.cdu_of_group[order], self.cdu_of_group[order])
        members = np.full((size.size, max(int(size.max()), 1)), -1)
        members[self.cdu_of_group[order], rank] = order
        z = np.arange(size.size) if "cdu" in self.soft else np.flatnonzero(size > 1)
        t, z = np.meshgrid(np.arange(self.n_steps), z, indexing="ij")
        return t.ravel(), z.ravel(), members

    def cdu_load_mw(self, x: Array) -> Array:
        """Heat of busy GPUs per step and CDU [MW] for busy fractions ``x`` [T, G] (``[T, Z]``)."""
        out = np.zeros((self.n_steps, self.n_cdus))
        np.add.at(out.T, self.cdu_of_group, (self.busy_mw * x).T)
        return out

    def tier_members(self) -> NDArray[np.int64]:
        """Groups of each tier block (``[K, M]``, padded with -1): those with a non-zero direction."""
        d = self.tiers.direction > 0
        m = max(int(d.sum(axis=1).max()), 1)
        out = np.full((d.shape[0], m), -1)
        for k in range(d.shape[0]):
            g = np.flatnonzero(d[k])
            out[k, : g.size] = g
        return out

    def tier_row_form(self) -> tuple[NDArray[np.int64], NDArray[np.int64], Array, Array]:
        """Tier blocks over one group written in the cap itself: ``x[t, g] - s <= rho / (d_g B[t, g])``, a row whose
        matrix does not change from step to step or plan to plan (only its right side and the slack's price, the
        row's MW per unit of x, do), folded into the bound of ``x`` when hard (:meth:`x_upper`). Returns per block
        (``[K]``) its group (-1: several groups, written as they are) and per block and step the right side
        ``[K, T]`` and the MW per unit of the row's left side ``[K, T]`` (1 for rows of several groups)."""
        d = self.tiers.direction
        single = (d > 0).sum(axis=1) == 1
        g = np.where(single, np.argmax(d, axis=1), -1)
        scale = np.ones(self.tiers.rho_mw.shape)
        scale[single] = d[single, g[single], None] * self.busy_mw[:, g[single]].T
        with np.errstate(divide="ignore", invalid="ignore"):
            rhs = np.where(single[:, None], np.where(scale > 0, self.tiers.rho_mw / scale, np.inf), self.tiers.rho_mw)
        k1 = np.where(single, np.arange(d.shape[0]), -1)
        return k1, g, rhs, scale

    def tier_row_blocks(self) -> NDArray[np.int64]:
        """Blocks written as rows: every block when ``tier`` is soft, else those over several groups."""
        if self.tiers is None:
            return np.zeros(0, np.int64)
        if "tier" in self.soft:
            return np.arange(self.tiers.n_blocks)
        return np.flatnonzero((self.tiers.direction > 0).sum(axis=1) > 1)

    def tier_lhs(self, x: Array) -> Array:
        """Left side of every tier row ``[K, T]`` for busy fractions ``x`` [T, G]."""
        if self.tiers is None:
            return np.zeros((0, self.n_steps))
        return self.tiers.direction @ (self.busy_mw * x).T

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

    def gpu_mw(self, x: Array, values: dict | None = None) -> Array:
        """Campus GPU power [MW] per step for busy fractions ``x`` [T, G] (with the stops' draw when
        ``values`` holds their ``stop_share``, ``stop_start`` and ``stop_end``)."""
        out = self.idle_mw + np.sum(self.busy_mw * x, axis=1)
        if self.stops is not None and values and "stop_share" in values:
            out = out + self.stops.gpu_mw(values["stop_share"], values["stop_start"], values["stop_end"], self.dt_h)
        return out

    def floor_gpu_mw(self) -> Array:
        """GPU power [MW] per step with every group at its lowest cap and every job stopped as far as it may."""
        x = np.broadcast_to(self.x_lo, self.busy_mw.shape)
        st = self.stops
        if st is None:
            return self.gpu_mw(x)
        s = np.broadcast_to(st.share_max, st.idle_mw.shape)
        run = 1 - np.clip(st.group_share(s, self.n_groups), 0.0, 1.0)
        return self.gpu_mw(x * run) + np.sum(st.idle_mw * s, axis=1)

    def site_mw(self, x: Array, values: dict | None = None) -> Array:
        """Site load before the BESS [MW]: the upper envelope of the cuts at the GPU power of
        ``x`` (and the stops in ``values``)."""
        return self.site_mw_at(self.gpu_mw(x, values))

    def site_mw_at(self, gpu_mw: Array) -> Array:
        """Site load before the BESS [MW] at GPU power ``gpu_mw`` [T]."""
        return np.max(self.cut_a_mw + self.cut_b * gpu_mw[:, None], axis=1)


def make_problem(
    f,
    scenario,
    groups: Groups,
    fc: Forecast,
    options: DispatchOptions,
    *,
    grid0_mw: float | None = None,
    x0: Array | None = None,
    heat_cap_mw: Array | None = None,
    hold_steps: int = 1,
    stop0: tuple[Array, Array] | None = None,
    pause_fixed: Array | None = None,
    fws_supply_c: float | None = None,
) -> Problem:
    """Assemble :class:`Problem` from the groups and a :class:`Forecast` (units in the module
    docstring); ``grid0_mw`` and ``x0`` are the measured import and busy fractions the first step
    ramps from, ``hold_steps`` the steps over which the first command is held (MPC).

    At class x CDU grouping the CDU limits of :mod:`optimization.cdu_limits` are added, at the
    measured facility-water supply ``fws_supply_c`` [degC] when given (default: its setpoint).

    Die limit per group: steady die temperature of a busy GPU ``T_cool + P (R_dp + R_pc) <= T_max``
    with the coolant at the TCS setpoint plus half the rack's uncapped temperature rise.
    """
    T, G = fc.utilization.shape
    dt_s = options.step
    u = fc.utilization
    tdp = groups.tdp_w
    busy_mw = groups.gpus * u * tdp / MW
    idle_mw = np.sum(groups.gpus * (1 - u) * groups.idle_w, axis=1) / MW
    x_lo = np.maximum(groups.min_cap_w, options.smoothing_floor_w or 0.0) / tdp
    x_hi = np.maximum(groups.demand_w / tdp, x_lo)
    # die limit
    w = {wl.name: wl for wl in f.spec.workloads}
    n_racks = np.bincount(groups.rack_group, minlength=groups.n)
    gpus_per_rack = groups.gpus / n_racks
    liq = f.non_gpu_liquid_w
    liq_rack = np.bincount(groups.rack_group, liq, groups.n) / n_racks
    q_rack = gpus_per_rack * (u * groups.demand_w + (1 - u) * groups.idle_w) + liq_rack
    t_cool = f.spec.cooling.tcs.supply_setpoint_c + 0.5 * q_rack / groups.c_rack_w_k
    x_die = (groups.t_max_c - t_cool) / (groups.r_total_k_w * tdp)
    # throughput segments, padded to a common count
    segs = [f.curves[c].segments() for c in groups.cls]
    K = max(len(a) for a, _ in segs)
    seg_a = np.array([np.pad(np.asarray(a, float), (0, K - len(a)), mode="edge") for a, _ in segs])
    seg_b = np.array([np.pad(np.asarray(b, float), (0, K - len(b)), mode="edge") for _, b in segs])
    wl = [w[name] for name in groups.class_names]
    tok = np.array([x.tokens_per_s_per_gpu for x in wl])
    value = np.array([x.value_per_mtok for x in wl]) / TOKENS_PER_MTOK
    cut_a, cut_b = secant_cuts(fc)
    liquid_base = idle_mw + float(liq.sum()) / MW
    dr_cap = np.where(fc.dr_depth > 0, (1 - fc.dr_depth) * fc.baseline_mw, np.inf)
    carbon_cost = fc.carbon_kg_per_mwh / KG_PER_T * scenario.carbon_price_per_t
    tokens = groups.gpus * u * tok
    penalty = options.penalty_per_mwh
    if penalty is None:
        penalty = default_penalty(tokens, value, busy_mw * x_hi, fc.price_per_mwh + carbon_cost)
    windows = []
    for c, name in enumerate(f.class_names):
        g_idx = np.flatnonzero(groups.cls == c)
        n_w = max(1, round(w[name].flex_window_h * S_PER_H / dt_s))
        windows += [(g_idx, t0, min(t0 + n_w, T), 1.0 - w[name].flex_tier) for t0 in range(0, T, n_w)]
    cdu = {}
    if groups.grouping == "cdu":
        if any(w.pause or w.resize for w in f.spec.workloads):
            raise ValueError("grouping: 'cdu' does not support job stops yet (workloads with pause or resize)")
        cdu = {
            "cdu_of_group": groups.zone,
            "cdu_rooms_mw": cdu_rooms(f, groups, u, fws_supply_c),
            "cdu_labels": cdu_labels(f),
        }
    tiers = tier_rows(f, fc, groups, busy_mw, options.n_minus_1) if options.tiers else None
    ramp = None
    if options.smoothing_ramp_w_s is not None:
        ramp = np.full(G, float(options.smoothing_ramp_w_s)) * dt_s / tdp
    return Problem(
        dt_h=dt_s / S_PER_H,
        gpus=groups.gpus,
        x_lo=x_lo,
        x_hi=x_hi,
        x_die_max=x_die,
        seg_a=seg_a,
        seg_b=seg_b,
        busy_mw=busy_mw,
        idle_mw=idle_mw,
        tokens_per_s=tokens,
        value_per_token=value,
        cut_a_mw=cut_a,
        cut_b=cut_b,
        liquid_base_mw=liquid_base,
        heat_cap_mw=heat_cap_mw if heat_cap_mw is not None else heat_capacity_mw(f, fc.dry_bulb_c, fc.wet_bulb_c),
        import_limit_mw=fc.import_limit_mw,
        dr_cap_mw=dr_cap,
        ramp_mw_per_step=f.spec.grid.ramp_limit_mw_per_min * dt_s / S_PER_MIN,
        price_per_mwh=fc.price_per_mwh,
        carbon_cost_per_mwh=carbon_cost,
        grid0_mw=grid0_mw,
        x_ramp_per_step=ramp,
        x0=None if (x0 is None or ramp is None) else np.asarray(x0, float),
        bess=bess_data(f.spec.grid.bess),
        flex_windows=windows,
        soft=frozenset(options.soft),
        penalty_per_mwh=penalty,
        hold_steps=hold_steps,
        stops=stops_data(f, groups, u, stop0, pause_fixed),
        tiers=tiers,
        **cdu,
    )


def stops_data(
    f, groups: Groups, u: Array, stop0: tuple[Array, Array] | None = None, pause_fixed: Array | None = None
) -> Stops | None:
    """:class:`Stops` of the groups whose job may pause (kind 0) or resize (kind 1), from the workloads'
    ``pause`` and ``resize`` (draws above idle only: a stop never draws less than idle in the LP); None when
    no job may stop. ``u`` is the busy share ``[T, G]``; ``stop0`` the measured (paused, resized) shares."""
    wl = f.spec.workloads
    if not any(w.pause or w.resize for w in wl):
        return None
    idle = groups.idle_w
    modes = []  # (kind, allowed, share_max, start J per GPU, end J per GPU) per group
    for kind, attr in ((0, "pause"), (1, "resize")):
        spec = [getattr(wl[c], attr) for c in groups.cls]
        ok = np.array([x is not None for x in spec])
        if not ok.any():
            continue

        def val(name, default=0.0, spec=spec):
            return np.array([getattr(x, name) if x is not None else default for x in spec], float)

        if kind == 0:
            share = np.ones(groups.n)
            start = np.maximum(val("checkpoint_gpu_w") - idle, 0.0) * val("checkpoint_s")
            end = np.maximum(val("restart_gpu_w") - idle, 0.0) * val("restart_s")
        else:
            share = 1.0 - val("min_share", 1.0)
            start = np.zeros(groups.n)
            end = np.maximum(val("rejoin_gpu_w") - idle, 0.0) * val("rejoin_s")
        modes.append((np.full(groups.n, kind), ok, share, start, end))
    kind, ok, share, start, end = (np.concatenate(a) for a in zip(*modes, strict=True))
    group = np.tile(np.arange(groups.n), len(modes))[ok]
    busy_gpus = groups.gpus * u  # [T, G]
    s0 = np.zeros(groups.n * len(modes))
    if stop0 is not None:
        paused, resized = (np.asarray(a, float) for a in stop0)
        by_kind = {0: paused, 1: resized * (1 - paused)}
        s0 = np.concatenate([by_kind[int(k[0])] for k, *_ in modes])
    return Stops(
        group=group,
        kind=kind[ok],
        share_max=share[ok],
        idle_mw=busy_gpus[:, group] * idle[group] / MW,
        start_mwh=busy_gpus[:, group] * start[ok] / (MW * S_PER_H),
        end_mwh=busy_gpus[:, group] * end[ok] / (MW * S_PER_H),
        s0=np.clip(s0[ok], 0.0, share[ok]),
        fixed=None if pause_fixed is None else np.where(kind == 0, np.tile(pause_fixed, len(modes)), np.nan)[ok],
    )


def bess_data(b) -> BessData | None:
    """:class:`BessData` from the facility spec's ``grid.bess`` (None without a battery)."""
    if b is None:
        return None
    return BessData(
        b.soc_min * b.energy_mwh,
        b.soc_max * b.energy_mwh,
        b.soc_initial * b.energy_mwh,
        b.power_mw,
        b.eta_charge,
        b.eta_discharge,
    )


def default_penalty(tokens_per_s: Array, value_per_token: Array, busy_mw: Array, energy_cost_per_mwh: Array) -> float:
    """Soft-limit price [currency/MWh]: ten times the most a MWh earns in the plan (token value of
    the busiest group per MWh of its GPU power, plus the highest energy and carbon cost), so that a
    slack is taken only when the hard limit cannot hold. The factor ten is a modelling choice, not a
    measurement."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per_mwh = np.where(busy_mw > 0, tokens_per_s * value_per_token * S_PER_H / busy_mw, 0.0)
    return 10.0 * float(np.max(per_mwh, initial=0.0) + np.max(np.abs(energy_cost_per_mwh), initial=0.0))
