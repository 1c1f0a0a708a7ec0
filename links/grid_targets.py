"""The one path from a grid link (DSX Flex, OpenADR) into a running twin: targets into the scenario, caps cut at once.

A link turns what the grid asks into :class:`twin.scenario.scenario.GridTarget` (a limit on the grid import or the
campus GPU power over an interval) and :class:`twin.scenario.grid_signals.DREvent` (a depth below the baseline) and
hands the whole set to :func:`hand_over`: the twin's scenario takes them, the engine calls the controller at the next
plant step, and the MPC reads the scenario at that re-plan. ``best_effort`` keeps the jobs' flex floors hard (the
MPC's ``flex`` limit leaves its soft set: it sheds only what the floors allow and reports the rest); otherwise the
MPC may push the jobs below their floors. :func:`cut_now` lowers the caps when a new limit is below the present load,
before the MPC re-plans; the engine moves them at the facility's ramp limit (:mod:`twin.simulation.engine`), so
:func:`ramp_lead_w` says how much must start falling now for the import limits ahead to hold on time.
"""

from __future__ import annotations

import math

import numpy as np
from factory_twin.models.units import MW
from factory_twin.twin.scenario.scenario import GridTarget
from factory_twin.twin.simulation.meters import grid_import_w

LEAD_HORIZON_S = 3600.0  # how far ahead ramp_lead_w looks for import limits


def hand_over(twin, targets: tuple[GridTarget, ...], best_effort: bool = False, soft: tuple[str, ...] = (),
              dr_events: tuple | None = None) -> None:  # fmt: skip
    """Put ``targets`` (and ``dr_events`` when given: the scenario's whole set) into the twin's scenario and ask
    for a re-plan. ``soft`` is the MPC's soft set when the link started (empty: the controller has no options)."""
    changes: dict = {"grid_targets": tuple(targets)}
    if dr_events is not None:
        changes["dr_events"] = tuple(dr_events)
    twin.scenario = twin.scenario.with_changes(**changes)
    mpc = twin.controller
    if soft:
        mpc.options = mpc.options.updated(soft=tuple(s for s in soft if s != "flex") if best_effort else soft)
    twin.request_control()


def cut_now(twin, need_w: float) -> None:
    """Cut the caps at once by about ``need_w`` of GPU power [W] (nothing when <= 0): every busy GPU gives up the
    same share of its headroom above its minimum cap. A grid-metered excess taken as GPU power one for one
    over-cuts slightly (cooling and losses fall with it); the MPC's re-plan at the next plant step refines the
    caps."""
    if need_w <= 0 or twin.last is None:
        return
    f = twin.f
    t = np.array([twin.time])
    u = np.stack([twin.scenario.utilization(c, t)[0] for c in f.class_names])[f.rack_class]
    floor = f.drawn_w(f.min_cap_w)
    room = f.gpus * u * np.maximum(twin.eff - floor, 0.0)
    share = min(need_w / max(float(room.sum()), 1e-9), 1.0)
    twin.override(f.cap_for_drawn_w(twin.eff - share * np.maximum(twin.eff - floor, 0.0)))


def ramp_lead_w(twin) -> float:
    """The cut [W] to start now so that every grid-import limit in the coming hour holds from its first plant step,
    the import falling at most the ramp limit per plant step: ``max_k(import - limit_k - k x ramp x dt)`` over the
    plant steps ``k = 0, 1, ...`` (``k = 0``: the coming step), 0 when nothing binds. The import is the latest
    step's."""
    if twin.last is None:
        return 0.0
    dt, ramp = twin.plant_dt, twin.ramp_w_s
    n = int(LEAD_HORIZON_S // dt) + 1 if math.isfinite(ramp) else 1
    k = np.arange(n)
    limits = twin.scenario.target_limit(twin.time + (k * dt).astype("timedelta64[s]"), "grid") * MW
    reach = limits + k * (ramp * dt if math.isfinite(ramp) else 0.0)
    return max(float(grid_import_w(twin.last)) - float(reach.min()), 0.0)


__all__ = ["LEAD_HORIZON_S", "cut_now", "hand_over", "ramp_lead_w"]
