"""Flexibility envelope: the deepest import reduction a facility can hold for a given event length.

Method (one case per duration, ambient and flex policy): bisection on the DR depth ``delta`` with
feasibility read from the status of :func:`optimization.dispatch` (hard limits, so an event the site
cannot hold returns a non-optimal status)::

    plan starts at the announcement  t_a = t_event - notice     (nothing is prepared before it)
    event: import <= (1 - delta) baseline_t  on [t_event + ramp, t_event + duration)
    delta_hi = min over the hold of 1 - (floor_t - P_bess) / baseline_t    (no plan can go lower)
    if delta_hi holds: delta* = delta_hi, else bisect on [0, delta_hi] to ``depth_tol``

``floor_t`` and ``baseline_t`` come from the plan without the event; ``P_bess`` is the BESS power
rating. The event and the flex-tier windows start at fixed times for every duration, so a longer
event adds constraints to a shorter one: ``delta*`` can only shrink (or stay) as the duration grows,
up to ``depth_tol``. The horizon (``options.horizon``) is the same for all durations and must cover
``notice + duration``. Costs compare the plan that holds ``delta*`` with the plan without the event:
``tokens_lost`` [tokens] and ``value_lost`` (objective difference [currency], token value lost net
of energy saved). Notice and ramp follow the study options (``dr_notice_min``, ``dr_ramp_min``;
the ramp is shortened to the duration for events shorter than it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from factory_twin.models.units import S_PER_H, S_PER_MIN
from factory_twin.optimization.studies.cases import DR_NOTICE_MIN, DR_RAMP_MIN, model_for, plan
from factory_twin.twin.scenario.grid_signals import DREvent


def envelope_cell(context: dict[str, Any], duration_h: float, **params: Any) -> dict[str, Any]:
    """Largest holdable depth for one event length [h] and the plan outputs at that depth.

    Parameters (study options or sweep values): ``dr_start`` event start (ISO time), ``dr_notice_min``
    notice [min] (default 60), ``dr_ramp_min`` ramp [min] (default 15), ``depth_tol`` bisection
    tolerance on the depth [1] (default 0.005), plus any case parameter of the runner.
    """
    f, s, p = model_for(context, params)
    if not duration_h > 0:
        raise ValueError(f"duration_h: must be > 0, got {duration_h!r}")
    t_ev = np.datetime64(p["dr_start"], "s")
    dur_s = S_PER_H * float(duration_h)
    ramp_s = min(S_PER_MIN * float(p.get("dr_ramp_min", DR_RAMP_MIN)), dur_s)
    notice_s = S_PER_MIN * float(p.get("dr_notice_min", DR_NOTICE_MIN))
    tol = float(p.get("depth_tol", 0.005))
    t_a = t_ev - np.timedelta64(round(notice_s), "s")
    p = p | {"start": str(t_a)}
    base = plan(f, s.with_changes(dr_events=()), p)
    if base.attrs["status"] != "optimal":
        raise RuntimeError(f"the plan without the event is not optimal: {base.attrs['status']}")
    t = base.time.values
    hold = (t >= t_ev + np.timedelta64(round(ramp_s), "s")) & (t < t_ev + np.timedelta64(round(dur_s), "s"))
    if not hold.any():  # an event shorter than one step after its ramp: use the steps it touches
        hold = (t >= t_ev) & (t < t_ev + np.timedelta64(round(dur_s), "s"))
    bess = f.spec.grid.bess.power_mw if f.spec.grid.bess else 0.0
    bl = base.baseline_mw.values[hold]
    hi = float(np.clip(np.min(1.0 - (base.floor_mw.values[hold] - bess) / bl), 0.0, 1.0))

    def probe(depth: float):
        ev = DREvent(t_ev, dur_s, depth, ramp_s, notice_s)
        ds = plan(f, s.with_changes(dr_events=(ev,)), p)
        return ds if ds.attrs["status"] == "optimal" else None

    probes, best, at = 1, probe(hi), hi
    if best is None:
        lo, best, at = 0.0, base, 0.0
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            ds, probes = probe(mid), probes + 1
            lo, hi, best, at = (mid, hi, ds, mid) if ds is not None else (lo, mid, best, at)
    dt_s = float(base.attrs["step_s"])
    tok = best.tokens_per_s.values
    return {
        "depth": at,
        "reduction_pct": 100.0 * at,
        "reduction_mw": float(at * bl.mean()),
        "baseline_mw": float(bl.mean()),
        "throughput_kept_event": float(tok[hold].sum() / best.tokens_uncapped_per_s.values[hold].sum()),
        "tokens_lost": float((base.tokens_per_s.values - tok).sum() * dt_s),
        "value_lost": float(base.attrs["objective"] - best.attrs["objective"]),
        "probes": probes,
    }
