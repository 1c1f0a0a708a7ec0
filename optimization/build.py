"""From a facility and a scenario forecast to the LP data (:class:`optimization.problem.Problem`).

Site model (linearization, documented): for every step the steady site model of :mod:`twin.design`
(rack DC -> PSU, busway, UPS, transformer losses; cooling = pumps + heat rejection at the forecast
dry/wet bulb + air side at its COP) is evaluated with all groups at the same position ``lam``
between their minimum cap (lam = 0) and the uncapped draw (lam = 1), at ``levels`` (default 0, 0.5,
1). Grid import as a function of campus GPU power is then replaced by the lines through consecutive
points (secants). Their upper envelope equals the model at the points and, because losses grow with
the square of the load and the plant works harder when hotter, lies slightly above it in between
(conservative). The DR baseline is the model at lam = 1 (the uncapped forecast). Only the spread of
GPU power across groups is ignored: PSU losses are a function of each rack's load, which the secants
evaluate for equal positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.optimization.groups import Groups
from factory_twin.optimization.problem import BessData, Problem
from numpy.typing import NDArray

Array = NDArray[np.float64]
MW = 1e6
S_PER_H = 3600.0
LEVELS = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Forecast:
    """Site-model points per step (``[T, J]`` for J levels) and the forecast signals (MW, degC)."""

    times: NDArray[np.datetime64]
    gpu_mw: Array
    it_mw: Array
    cooling_mw: Array
    grid_mw: Array
    dry_bulb_c: Array
    wet_bulb_c: Array
    dr_depth: Array
    price_per_mwh: Array
    carbon_kg_per_mwh: Array
    import_limit_mw: Array
    utilization: Array  # [T, G]

    @property
    def baseline_mw(self) -> Array:
        """Uncapped forecast import [MW] (the DR baseline)."""
        return self.grid_mw[:, -1]

    @property
    def floor_mw(self) -> Array:
        """Import with every group at its minimum cap [MW] (before the BESS)."""
        return self.grid_mw[:, 0]

    def at_gpu_mw(self, name: str, gpu_mw: Array) -> Array:
        """Piecewise-linear interpolation of ``it_mw``/``cooling_mw``/``grid_mw`` at GPU power
        [MW]."""
        return interp_rows(gpu_mw, self.gpu_mw, getattr(self, name))


def interp_rows(xq: Array, xp: Array, fp: Array) -> Array:
    """Row-wise linear interpolation (``xp`` ascending along axis 1, extrapolated at the ends)."""
    J = xp.shape[1]
    j = np.clip(np.sum(xp[:, 1:-1] <= xq[:, None], axis=1), 0, J - 2)
    r = np.arange(xp.shape[0])
    x0, x1, f0, f1 = xp[r, j], xp[r, j + 1], fp[r, j], fp[r, j + 1]
    w = np.divide(xq - x0, x1 - x0, out=np.zeros_like(xq), where=x1 > x0)
    return f0 + w * (f1 - f0)


def step_depth(events, times: NDArray[np.datetime64], dt_s: float, known_at=None) -> Array:
    """Largest DR depth within each step ``[t, t + dt)`` (sampled each minute) of the known
    events."""
    n_sub = max(1, int(np.ceil(dt_s / 60.0)))
    offs = (np.arange(n_sub) * dt_s / n_sub).astype("timedelta64[s]")
    sub = np.asarray(times, "datetime64[s]")[:, None] + offs[None, :]
    depth = np.zeros(sub.shape)
    for ev in events:
        if known_at is None or ev.announced <= np.datetime64(known_at, "s"):
            depth = np.maximum(depth, ev.depth_at(sub))
    return depth.max(axis=1)


def forecast(
    f,
    scenario,
    groups: Groups,
    times: NDArray[np.datetime64],
    dt_s: float,
    levels: tuple[float, ...] = LEVELS,
    known_at=None,
) -> Forecast:
    """Evaluate the steady site model at ``levels`` for every step (see the module docstring)."""
    from factory_twin.twin.design import cooling_power_w, grid_power_w, heat_split_w

    names = f.class_names
    u_cls = np.stack([scenario.utilization(c, times) for c in names], axis=1)  # [T, classes]
    u_rack = u_cls[:, f.rack_class]
    db, wb = scenario.ambient(times)
    lo = f.min_cap_w
    hi = f.demand_w
    T, J = times.size, len(levels)
    gpu, rack_dc, q_liq, q_air = (np.empty((T, J)) for _ in range(4))
    for j, lam in enumerate(levels):
        busy = lo + lam * (hi - lo)
        for t in range(T):
            p = u_rack[t] * busy + (1 - u_rack[t]) * f.idle_w
            gpu[t, j] = float(f.gpus @ p)
            rack_dc[t, j], q_liq[t, j], q_air[t, j] = heat_split_w(f, p)
    cooling = np.asarray(cooling_power_w(f, q_liq, q_air, db[:, None], wb[:, None]), float)
    it, grid = np.empty((T, J)), np.empty((T, J))
    for j, lam in enumerate(levels):
        p = u_rack * (lo + lam * (hi - lo)) + (1 - u_rack) * f.idle_w  # [T, racks]
        ch = grid_power_w(f, f.gpus * p + f.non_gpu_w, cooling[:, j])
        it[:, j], grid[:, j] = ch.it_w, ch.grid_w
    sig = scenario.signals
    price = sig.at(times, "price_per_mwh")
    carbon = sig.at(times, "carbon_kg_per_mwh")
    limit = scenario.import_limit(times, f.spec.grid.import_limit_mw)
    depth = step_depth(scenario.dr_events, times, dt_s, known_at)
    return Forecast(
        times,
        gpu / MW,
        it / MW,
        cooling / MW,
        grid / MW,
        np.asarray(db, float),
        np.asarray(wb, float),
        depth,
        price,
        carbon,
        limit,
        u_cls[:, groups.cls],
    )


def heat_capacity_mw(f, dry_bulb_c: Array, wet_bulb_c: Array, iterations: int = 60) -> Array:
    """Largest liquid heat [MW] the plant rejects at the facility-water setpoint, per ambient
    (bisection on :meth:`twin.plant.Plant.reject`, vectorized over time)."""
    from factory_twin.twin.plant import build_plant

    plant = build_plant(f)
    c = float(f.c_fws_max_w_k.sum())
    t_set = f.spec.cooling.facility_water.supply_setpoint_c
    pl = f.spec.cooling.plant
    hi = np.full(
        np.shape(dry_bulb_c),
        4.0 * MW * (pl.dry_cooler.capacity_mw + (pl.chiller.capacity_mw if pl.chiller else 0.0)),
    )
    lo = np.zeros_like(hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        ok = np.asarray(plant.reject(t_set + mid / c, c, dry_bulb_c, wet_bulb_c).t_supply_c) <= t_set + 1e-6
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return lo / MW


def build_problem(
    f,
    scenario,
    groups: Groups,
    fc: Forecast,
    dt_s: float,
    *,
    soft=(),
    penalty_per_mwh=None,
    smoothing_floor_w=None,
    smoothing_ramp_w_s=None,
    grid0_mw=None,
    x0=None,
    heat_cap_mw: Array | None = None,
    hold_steps: int = 1,
) -> Problem:
    """Assemble :class:`Problem` from the groups and a :class:`Forecast` (units in the module
    docstring).

    Die limit per group: steady die temperature of a busy GPU ``T_cool + P (R_dp + R_pc) <= T_max``
    with the coolant at the TCS setpoint plus half the rack's uncapped temperature rise.
    """
    T, G = fc.utilization.shape
    dt_h = dt_s / S_PER_H
    u = fc.utilization
    tdp = groups.tdp_w
    busy_mw = groups.gpus * u * tdp / MW
    idle_mw = np.sum(groups.gpus * (1 - u) * groups.idle_w, axis=1) / MW
    x_lo = np.maximum(groups.min_cap_w, smoothing_floor_w or 0.0) / tdp
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
    wl = [w[f.class_names[c]] for c in groups.cls]
    tok = np.array([x.tokens_per_s_per_gpu for x in wl])
    value = np.array([x.value_per_mtok for x in wl]) / 1e6
    # power cuts: secants between consecutive levels
    dp = np.diff(fc.gpu_mw, axis=1)
    slope = np.divide(np.diff(fc.grid_mw, axis=1), dp, out=np.zeros_like(dp), where=dp > 0)
    cut_a = fc.grid_mw[:, :-1] - slope * fc.gpu_mw[:, :-1]
    liquid_base = idle_mw + float(liq.sum()) / MW
    dr_cap = np.where(fc.dr_depth > 0, (1 - fc.dr_depth) * fc.baseline_mw, np.inf)
    carbon_cost = fc.carbon_kg_per_mwh / 1000.0 * scenario.carbon_price_per_t
    tokens = groups.gpus * u * tok
    if penalty_per_mwh is None:
        penalty_per_mwh = default_penalty(tokens, value, busy_mw * x_hi, fc.price_per_mwh + carbon_cost)
    bess = None
    b = f.spec.grid.bess
    if b is not None:
        bess = BessData(
            b.soc_min * b.energy_mwh,
            b.soc_max * b.energy_mwh,
            b.soc_initial * b.energy_mwh,
            b.power_mw,
            b.eta_charge,
            b.eta_discharge,
        )
    windows = []
    for c, name in enumerate(f.class_names):
        g_idx = np.flatnonzero(groups.cls == c)
        n_w = max(1, round(w[name].flex_window_h * S_PER_H / dt_s))
        windows += [(g_idx, t0, min(t0 + n_w, T), 1.0 - w[name].flex_tier) for t0 in range(0, T, n_w)]
    ramp = None
    if smoothing_ramp_w_s is not None:
        ramp = np.full(G, float(smoothing_ramp_w_s)) * dt_s / tdp
    return Problem(
        dt_h=dt_h,
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
        cut_b=slope,
        liquid_base_mw=liquid_base,
        heat_cap_mw=heat_cap_mw if heat_cap_mw is not None else heat_capacity_mw(f, fc.dry_bulb_c, fc.wet_bulb_c),
        import_limit_mw=fc.import_limit_mw,
        dr_cap_mw=dr_cap,
        ramp_mw_per_step=f.spec.grid.ramp_limit_mw_per_min * dt_s / 60.0,
        price_per_mwh=fc.price_per_mwh,
        carbon_cost_per_mwh=carbon_cost,
        grid0_mw=grid0_mw,
        x_ramp_per_step=ramp,
        x0=None if (x0 is None or ramp is None) else np.asarray(x0, float),
        bess=bess,
        flex_windows=windows,
        soft=frozenset(soft),
        penalty_per_mwh=penalty_per_mwh,
        hold_steps=hold_steps,
    )


def default_penalty(tokens_per_s: Array, value_per_token: Array, busy_mw: Array, energy_cost_per_mwh: Array) -> float:
    """Soft-limit price [currency/MWh]: ten times the most a MWh earns in the plan (token value of
    the busiest group per MWh of its GPU power, plus the highest energy and carbon cost), so that a
    slack is taken only when the hard limit cannot hold. The factor ten is a modelling choice, not a
    measurement."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per_mwh = np.where(busy_mw > 0, tokens_per_s * value_per_token * S_PER_H / busy_mw, 0.0)
    return 10.0 * float(np.max(per_mwh, initial=0.0) + np.max(np.abs(energy_cost_per_mwh), initial=0.0))
