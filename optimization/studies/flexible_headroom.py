"""Curtailment headroom when the new load is a dispatchable AI facility rather than a flat load.

Reduced method (documented choice; the exact version would dispatch the facility through every hour
of every year for every trial ``L``). The facility is scaled to a constant load ``L`` [MW] and its
flexibility is summarized by its envelope ``delta(d)``: the deepest import reduction (share of its
load) it can hold for an event of ``d`` hours with the study's notice and ramp
(:mod:`optimization.studies.envelope`). For a trial ``L`` the Duke hourly curtailment
``c_t = max(0, D_t + L - T_season)`` is split into events (runs of consecutive curtailed hours ``e``
of length ``n_e`` [h]); the grid asks for the depth ``q_e = max_{t in e} c_t / L``. The facility
serves an event when::

    q_e <= delta(n_e)   (delta read at the smallest tabulated duration >= n_e, 0 beyond the table)
    n_e <= max_event_h  (optional contract limit)

and it holds ``q_e`` for the whole event (the envelope is a constant-depth hold), so the energy it
gives up is ``q_e L n_e`` >= the Duke ``sum c_t``. The flexible headroom at budget ``b`` is the
largest ``L`` with every event served and ``mean_y sum_{e in y} q_e n_e / H_y <= b``. Both
conditions only get harder as ``L`` grows (depths and lengths grow, runs merge), so ``L`` is found
by bisection on ``[0, L_duke(b)]``; it never exceeds the Duke flat-load headroom. What it adds over
Duke: the event-length and depth limits of a real facility; what it leaves out: notice is taken as
given by the grid operator (the study's ``dr_notice_min``), and events per month are not limited.

Consequence worth knowing: with Duke's thresholds (historical peaks, no margin) the peak hour has a
zero gap, so any new load must shed all of itself there (``q = 1``). A facility that can only shed
part of its load (GPU caps keep a floor) therefore fits only with firm capacity ``F`` under it:
with ``firm_mw`` the asked depth is ``q_e L / (F + L)`` and the result is the non-firm part
(see :mod:`optimization.studies.sizing`).

Source of the flat-load method: Norris et al., *Rethinking Load Growth*, Duke NI R 25-01 (2025).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from typing import Any

import numpy as np
import xarray as xr
from factory_twin.models import checks
from factory_twin.optimization.studies.headroom import DUKE_BUDGETS, HeadroomBasis, headroom
from numpy.typing import ArrayLike, NDArray


def curtailment_events(basis: HeadroomBasis, new_load_mw: float) -> tuple[NDArray, NDArray, NDArray]:
    """Runs of curtailed hours at a flat ``new_load_mw`` [MW]: (first hour index, length [h],
    depth ``max c_t / L`` [1])."""
    c = basis.curtailment_mw(float(new_load_mw))
    cut = c > 0.0
    edges = np.diff(np.r_[0, cut.astype(np.int8), 0])
    first, stop = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    depth = np.maximum.reduceat(c, first) / new_load_mw if first.size else np.zeros(0)
    return first, stop - first, depth


def allowed_depth(length_h: ArrayLike, env_duration_h: ArrayLike, env_depth: ArrayLike) -> NDArray[np.float64]:
    """Envelope depth [1] for events of ``length_h`` [h]: the value at the smallest tabulated
    duration >= the length (conservative step), 0 beyond the longest; NaN cells count as 0."""
    d = checks.positive("env_duration_h", env_duration_h)
    q = np.nan_to_num(np.asarray(env_depth, float), nan=0.0)
    order = np.argsort(d)
    d, q = d[order], np.minimum.accumulate(q[order])  # a longer hold is never deeper
    i = np.searchsorted(d, np.asarray(length_h, float) - 1e-9, side="left")
    return np.where(i < d.size, q[np.minimum(i, d.size - 1)], 0.0)


def largest(pred: Callable[[float], bool], hi: float, rtol: float = 1e-9) -> float:
    """Largest ``x`` in ``[0, hi]`` with ``pred(x)`` for a predicate true up to a point (bisection)."""
    if pred(hi):
        return hi
    lo = 0.0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if pred(mid) else (lo, mid)
    return lo


def flexible_headroom(
    basis: HeadroomBasis,
    budget: float,
    env_duration_h: ArrayLike,
    env_depth: ArrayLike,
    max_event_h: float = np.inf,
    firm_mw: float = 0.0,
) -> dict[str, float]:
    """Flexible headroom [MW] at ``budget`` [1] (see module docstring).

    Parameters
    ----------
    basis : thresholds and gaps of the balancing-area series
    budget : mean yearly share of the new load's energy given up [1]
    env_duration_h, env_depth : the facility's envelope: event length [h] and deepest held
        reduction [1]
    max_event_h : longest event the contract allows [h]
    firm_mw : part of the load the grid serves in every hour [MW] (used by :mod:`sizing`): the
        curtailed load is the non-firm part ``L`` on top of it, depths are relative to ``F + L``

    Returns
    -------
    dict: ``headroom_mw`` (non-firm part), ``rate`` (block rate at it), ``events_per_year``,
    ``limited_by`` (``"budget"`` or ``"envelope"``)
    """
    b = float(checks.in_range("budget", budget, 0.0, 1.0))
    f = float(checks.nonnegative("firm_mw", firm_mw))
    year = np.searchsorted(basis.year_start, np.arange(basis.gap_mw.size), side="right") - 1

    def stats(x: float) -> tuple[float, bool]:
        first, n, q = curtailment_events(basis, x)
        depth = q * x / (f + x)
        served = bool(np.all((depth <= allowed_depth(n, env_duration_h, env_depth) + 1e-12) & (n <= max_event_h)))
        e = np.bincount(year[first], depth * n, basis.n_years)
        return float(np.mean(e / basis.hours_per_year)), served

    hi = basis.solve(b) if f == 0.0 else 1e3 * basis.peak_mw
    x_budget = largest(lambda x: x > 0 and stats(x)[0] <= b, hi)
    x_env = largest(lambda x: x > 0 and stats(x)[1], x_budget)
    first, _, _ = curtailment_events(basis, x_env) if x_env > 0 else (np.zeros(0), 0, 0)
    return {
        "headroom_mw": x_env,
        "rate": stats(x_env)[0] if x_env > 0 else 0.0,
        "events_per_year": first.size / basis.n_years,
        "limited_by": "budget" if x_env >= x_budget * (1 - 1e-6) else "envelope",
    }


def balancing_area_load(spec: dict[str, Any]) -> tuple[NDArray, NDArray]:
    """Hourly BA series from a study's ``[balancing_area]``: ``csv`` (columns ``time``, ``load_mw``)
    or the seeded synthetic generator (``seed``, ``years`` = [first, last], ``peak_mw``)."""
    if "csv" in spec:
        rows = np.genfromtxt(spec["csv"], delimiter=",", names=True, dtype=None, encoding="utf-8")
        return rows["time"].astype("datetime64[h]"), rows["load_mw"].astype(float)
    from factory_twin.optimization.studies.balancing_area import BalancingAreaParams, synthetic_load

    params = BalancingAreaParams(**({"peak_mw": spec["peak_mw"]} if "peak_mw" in spec else {}))
    return synthetic_load(params, tuple(spec.get("years", (2016, 2024))), spec.get("seed", 0))


def grid_study(ds: xr.Dataset, study: dict[str, Any]) -> xr.Dataset:
    """Duke headroom of the study's BA, the facility's flexible headroom per envelope (every
    combination of the sweep dims other than ``duration_h``) and, with ``firm_mw``, sizing."""
    from factory_twin.optimization.studies.sizing import sizing

    ba = study.get("balancing_area", {})
    time, load = balancing_area_load(ba)
    budgets = tuple(ba.get("budgets", DUKE_BUDGETS))
    out = headroom(time, load, budgets=budgets)
    basis = HeadroomBasis.from_load(time, load)
    depth = ds["depth"].transpose("duration_h", ...)
    rest = [d for d in depth.dims if d != "duration_h"]
    shape = (len(budgets), *[depth.sizes[d] for d in rest])
    mw, why = np.full(shape, np.nan), np.full(shape, "", dtype=object)
    for i, b in enumerate(budgets):
        for idx in product(*[range(depth.sizes[d]) for d in rest]):
            col = depth.isel(dict(zip(rest, idx, strict=True))).values
            r = flexible_headroom(basis, b, ds.duration_h.values, col, ba.get("max_event_h", np.inf))
            mw[(i, *idx)], why[(i, *idx)] = r["headroom_mw"], r["limited_by"]
    dims = ("budget", *rest)
    out["flex_headroom_mw"] = (dims, mw, {"units": "MW"})
    out["flex_headroom_pct_of_peak"] = (dims, 100.0 * mw / basis.peak_mw, {"units": "%"})
    out["flex_limited_by"] = (dims, why.astype(str))
    if "firm_mw" in ba:
        firm = np.asarray(ba["firm_mw"], float)
        out = out.merge(sizing(basis, budgets, firm))
        flex = np.full((len(budgets), firm.size, *shape[1:]), np.nan)
        for (i, b), (j, f) in product(enumerate(budgets), enumerate(firm)):
            for idx in product(*[range(depth.sizes[d]) for d in rest]):
                col = depth.isel(dict(zip(rest, idx, strict=True))).values
                r = flexible_headroom(basis, b, ds.duration_h.values, col, ba.get("max_event_h", np.inf), f)
                flex[(i, j, *idx)] = r["headroom_mw"]
        out["flex_nonfirm_mw"] = (("budget", "firm_mw", *rest), flex, {"units": "MW"})
    return out.drop_vars([v for v in ("duration_h",) if v in out.coords])
