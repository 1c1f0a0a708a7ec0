"""Before the solve: reject nonsense inputs and find hard limits that cannot hold; after: report
slacks.

The floor of a step is the import with every group at its lowest allowed cap (minimum cap or
smoothing floor) plus idle GPUs, non-GPU load, cooling and chain losses, less the BESS at full
discharge. A hard limit below the floor cannot hold whatever the caps; the check names the limit,
when, and by how much. Ramp and flex-tier conflicts depend on the whole trajectory and are left to
the solver (its status then reads infeasible; making them soft turns them into reported violations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models.units import S_PER_H
from factory_twin.optimization.options import SOFT_LIMITS
from factory_twin.optimization.problem import Problem
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Conflict:
    """A limit exceeded at ``n_steps`` steps from ``first`` to ``last``, by up to ``worst``
    (``unit``)."""

    limit: str
    first: np.datetime64
    last: np.datetime64
    n_steps: int
    worst: float
    unit: str = "MW"
    detail: str = ""

    def __str__(self) -> str:
        where = f" ({self.detail})" if self.detail else ""
        return (
            f"{self.limit}{where}: {self.n_steps} step(s) from {self.first} to {self.last}, "
            f"short by up to {self.worst:.3f} {self.unit}"
        )


def validate_request(
    scenario, times: NDArray[np.datetime64], horizon_s: float, step_s: float, import_limit_mw: Array
) -> None:
    """Reject nonsense: non-positive import limits, a DR event longer than the horizon, signals that
    do not cover it (horizon and step are checked by ``DispatchOptions``). Messages name the
    argument."""
    lim = np.asarray(import_limit_mw, float)
    if np.any(~np.isfinite(lim)) or np.any(lim <= 0):
        raise ValueError(f"import_limit_mw: must be finite and > 0 over the horizon, got {lim[~(lim > 0)][:1]}")
    t0, t1 = times[0], times[-1] + np.timedelta64(round(step_s), "s")
    for i, ev in enumerate(scenario.dr_events):
        if ev.start < t1 and ev.end > t0 and ev.duration_s > horizon_s:
            h, horizon_h = ev.duration_s / S_PER_H, horizon_s / S_PER_H
            raise ValueError(f"dr_events.{i}: event of {h:g} h is longer than the horizon {horizon_h:g} h")
    sig = scenario.signals
    if times[0] < sig.time[0] or t1 > sig.time[-1] + sig.step:
        raise ValueError(
            f"scenario.signals: price series covers {sig.time[0]} .. {sig.time[-1] + sig.step}, "
            f"not the horizon {t0} .. {t1}"
        )


def check(p: Problem, times: NDArray[np.datetime64], bess_discharge_mw: float = 0.0) -> list[Conflict]:
    """Hard limits (not in ``p.soft``) that the floor already violates, one :class:`Conflict`
    each."""
    x_lo = np.broadcast_to(p.x_lo, p.busy_mw.shape)
    floor = p.site_mw_at(p.floor_gpu_mw()) - bess_discharge_mw
    out: list[Conflict] = []

    def add(limit: str, excess: Array, unit: str = "MW", detail: str = "") -> None:
        bad = np.flatnonzero(excess > 1e-9 * np.maximum(1.0, np.abs(floor)))
        if limit not in p.soft and bad.size:
            out.append(
                Conflict(
                    limit,
                    times[bad[0]],
                    times[bad[-1]],
                    bad.size,
                    float(excess[bad].max()),
                    unit,
                    detail,
                )
            )

    add("import_limit", floor - p.import_limit_mw)
    add("dr", floor - p.dr_cap_mw, detail="event target (1 - depth) x baseline")
    busy_floor = np.sum(p.busy_mw * x_lo, axis=1) if p.stops is None else p.floor_gpu_mw() - p.idle_mw
    heat = p.liquid_base_mw + busy_floor
    add("heat", heat - p.heat_cap_mw, detail="liquid heat at minimum caps vs plant capacity")
    die = np.max(p.x_lo - p.x_die_max, axis=1)
    add("die", die, "x TDP", "minimum cap above the steady die-temperature limit")
    return out + cdu_conflicts(p, times, x_lo, "at minimum caps") + tier_conflicts(p, times, x_lo, "minimum caps")


def tier_conflicts(p: Problem, times: NDArray[np.datetime64], x: Array, what: str) -> list[Conflict]:
    """Hard tier rows (:mod:`optimization.tiers`) that the busy fractions ``x`` [T, G] break: one :class:`Conflict`
    naming the element and routing (all paths closed, or a path lost) and the step where it is worst, and by how
    many MW of load it exceeds its continuous limit."""
    if p.tiers is None or "tier" in p.soft:
        return []
    excess = (p.tier_lhs(x) - p.tiers.rho_mw) * p.tiers.mw_per_unit  # MW over the binding element's limit
    bad = excess > 1e-9
    if not bad.any():
        return []
    k, t = np.unravel_index(int(np.argmax(excess)), excess.shape)
    steps = np.flatnonzero(bad.any(axis=0))
    detail = (f"{p.tiers.where(k, t)}: short by {float(excess[k, t]):.3f} MW at {times[t]} with {what}; "
              f"{int(bad.any(axis=1).sum())} row block(s)")  # fmt: skip
    return [Conflict("tier", times[steps[0]], times[steps[-1]], steps.size, float(excess.max()), "MW", detail)]


CDU_LIMITS = {
    "cdu_heat": "CDU heat exchanger at the facility-water setpoint",
    "cdu_flow": "CDU TCS flow x cooling.tcs.max_rise_k",
}


def cdu_conflicts(p: Problem, times: NDArray[np.datetime64], x: Array, what: str) -> list[Conflict]:
    """Hard CDU limits that the busy fractions ``x`` [T, G] exceed: one :class:`Conflict` per limit,
    naming how many CDUs and the worst one."""
    if not p.cdu_rooms_mw or "cdu" in p.soft:
        return []
    load = p.cdu_load_mw(x)
    out = []
    for name, room in p.cdu_rooms_mw.items():
        excess = load - room
        bad_t = np.flatnonzero(np.max(excess, axis=1) > 1e-9)
        if not bad_t.size:
            continue
        n_cdus = int(np.sum(np.max(excess, axis=0) > 1e-9))
        worst = int(np.argmax(np.max(excess, axis=0)))
        label = p.cdu_labels[worst] if p.cdu_labels else f"cdu-{worst}"
        detail = f"{n_cdus} CDU(s), worst {label}: liquid heat {what} vs the {CDU_LIMITS[name]}"
        out.append(Conflict(name, times[bad_t[0]], times[bad_t[-1]], bad_t.size, float(excess.max()), "MW", detail))
    return out


def explain_infeasible(p: Problem, times: NDArray[np.datetime64], bess_discharge_mw: float = 0.0) -> list[Conflict]:
    """Likely reasons for an LP the solver proved infeasible although the minimum-cap floor fits:
    the import limit, a DR target or a CDU limit below what the flex tiers need
    (:func:`flex_floor_x`)."""
    if "flex" in p.soft or not p.flex_windows:
        return []
    x_flex = np.broadcast_to(flex_floor_x(p), p.busy_mw.shape)
    floor = p.site_mw(x_flex) - bess_discharge_mw
    out = cdu_conflicts(p, times, x_flex, "with the flex tiers held (each group at its tier's throughput)")
    out += tier_conflicts(p, times, x_flex, "the flex tiers held (each group at its tier's throughput)")
    for limit, cap in (("import_limit", p.import_limit_mw), ("dr", p.dr_cap_mw)):
        excess = floor - cap
        bad = np.flatnonzero(excess > 1e-9 * np.maximum(1.0, np.abs(floor)))
        if limit not in p.soft and bad.size:
            detail = "vs the floor with the flex tiers held (each group at its tier's throughput)"
            out.append(Conflict(limit, times[bad[0]], times[bad[-1]], bad.size, float(excess[bad].max()), "MW", detail))
    return out


def tier_violations(p: Problem, slacks: dict[str, Array], times: NDArray[np.datetime64]) -> list[Conflict]:
    """Soft tier rows the plan exceeds, naming the element and routing and the step where it is worst (MW of load)."""
    s = slacks.get("tier")
    if p.tiers is None or s is None or not s.size:
        return []
    ks = p.tier_row_blocks()
    _, _, _, scale = p.tier_row_form()
    full = np.zeros(p.tiers.rho_mw.shape)
    full[ks] = s.reshape(ks.size, p.n_steps) * scale[ks]  # slack in MW of the row's left side
    s = full * p.tiers.mw_per_unit
    bad = s > 1e-6
    if not bad.any():
        return []
    k, t = np.unravel_index(int(np.argmax(s)), s.shape)
    steps = np.flatnonzero(bad.any(axis=0))
    detail = f"soft; worst {p.tiers.where(k, t)} at {times[t]}"
    return [Conflict("tier", times[steps[0]], times[steps[-1]], steps.size, float(s.max()), "MW", detail)]


def flex_floor_x(p: Problem) -> Array:
    """Lowest busy fraction per group that keeps each group, on its own, at the largest tier share
    of its windows: ``min_k(a_k + b_k x) >= share * y_uncapped``. A diagnostic floor for conflict
    reports (windows are token-weighted across groups, so the LP may spread the loss differently)."""
    share = np.zeros(p.n_groups)
    for groups, _, _, req in p.flex_windows:
        share[np.asarray(groups, int)] = np.maximum(share[np.asarray(groups, int)], req)
    need = share * p.y_uncapped
    with np.errstate(divide="ignore", invalid="ignore"):
        x_k = np.where(p.seg_b > 0, (need[:, None] - p.seg_a) / p.seg_b, -np.inf)
    return np.clip(np.max(x_k, axis=1), p.x_lo, p.x_hi)


def site_floors_mw(f, scenario, times: NDArray[np.datetime64], options, stored_mwh: float = 0.0) -> tuple[Array, Array]:
    """The lowest grid import [MW] the site can hold at ``times`` (regular, ``options.step`` apart), and the lowest
    with the jobs' flex tiers held (:func:`flex_floor_x`), before a grid link commits to a target.

    Both are the floor of :func:`check` (every group at its lowest cap, jobs stopped as far as they may; for the
    second each group at its tier's throughput instead) less what the BESS can give over the whole interval: its
    power, or ``stored_mwh`` above its minimum charge spread evenly over the interval, whichever is less."""
    from factory_twin.optimization.groups import make_groups
    from factory_twin.optimization.linearization import forecast
    from factory_twin.optimization.problem import make_problem

    groups = make_groups(f, options.grouping)
    p = make_problem(f, scenario, groups, forecast(f, scenario, groups, times, options.step), options)
    bess = 0.0
    if p.bess is not None:
        hours = times.size * options.step / S_PER_H
        usable = max(stored_mwh - p.bess.e_min_mwh, 0.0) * p.bess.eta_discharge
        bess = min(p.bess.p_max_mw, usable / hours)
    floor = p.site_mw_at(p.floor_gpu_mw()) - bess
    if not p.flex_windows:
        return floor, floor
    return floor, p.site_mw(np.broadcast_to(flex_floor_x(p), p.busy_mw.shape)) - bess


def violations(p: Problem, slacks: dict[str, Array], times: NDArray[np.datetime64]) -> list[Conflict]:
    """Soft limits that the plan exceeds (slack > 0), from the solved slacks by limit name
    (:attr:`optimization.solution.Solution.slacks`)."""
    idx = {
        "import_limit": np.flatnonzero(np.isfinite(p.import_limit_mw)),
        "dr": np.flatnonzero(np.isfinite(p.dr_cap_mw)),
        "heat": np.flatnonzero(np.isfinite(p.heat_cap_mw)),
        "ramp": np.arange(0 if p.grid0_mw is not None else 1, p.n_steps),
        "die": np.nonzero(p.die_rows())[0],
    }
    t_cdu = p.cdu_rows()[0] if p.cdu_rooms_mw else np.zeros(0, int)
    idx |= {name: t_cdu for name in p.cdu_rooms_mw}
    out = tier_violations(p, slacks, times)
    for name in (*(n for n in SOFT_LIMITS if n != "tier"), *p.cdu_rooms_mw):
        s = slacks.get(name)
        if s is None or s.size == 0:
            continue
        bad = np.flatnonzero(s > 1e-6)
        if not bad.size:
            continue
        if name == "flex":
            detail = "throughput below the flex tier in some windows"
            out.append(Conflict("flex", times[0], times[-1], bad.size, float(s.max()), "share of tokens", detail))
            continue
        t = times[idx[name][bad]]
        unit = "x TDP" if name == "die" else "MW"
        out.append(Conflict(name, t.min(), t.max(), np.unique(t).size, float(s[bad].max()), unit, "soft"))
    return out
