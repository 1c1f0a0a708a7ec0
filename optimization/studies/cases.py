"""One study case: its facility, scenario and dispatch options with every change applied.

Parameter names (sweep keys, label overrides, options): scenario values ``offset_k``,
``import_limit_mw`` (a what-if: it wins over the scenario's limits, :mod:`twin.scenario.scenario`),
``carbon_price_per_t``, ``price_scale`` (multiplies the price signal), ``workload.<class>.<field>``; one DR
event ``dr_start``, ``dr_duration_h``, ``dr_depth``, ``dr_ramp_min``, ``dr_notice_min`` (replaces the
scenario's events; ramp and notice default to :data:`twin.scenario.grid_signals.DR_RAMP_S` and
``DR_NOTICE_S``); facility spec values ``spec.<dotted.path>`` (list items by index), re-validated and
re-assembled; dispatch options (fields of :class:`optimization.options.DispatchOptions`) and ``start``.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import replace
from functools import lru_cache
from typing import Annotated, Any

import numpy as np
from factory_twin.models.units import S_PER_H, S_PER_MIN
from factory_twin.optimization.options import NAMES as OPTION_NAMES
from factory_twin.optimization.options import DispatchOptions
from factory_twin.twin.scenario.grid_signals import DR_NOTICE_S, DR_RAMP_S, DREvent
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DR_KEYS = ("dr_start", "dr_duration_h", "dr_depth", "dr_ramp_min", "dr_notice_min")
DR_RAMP_MIN, DR_NOTICE_MIN = DR_RAMP_S / S_PER_MIN, DR_NOTICE_S / S_PER_MIN


def _time(v: str) -> str:
    np.datetime64(v, "s")  # raises ValueError naming what it could not read
    return v


Time = Annotated[str, AfterValidator(_time)]
NonNeg = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class CaseParameters(BaseModel):
    """The named case parameters (sweep keys, options, label overrides) besides dispatch options,
    ``spec.<path>`` and ``workload.<class>.<field>``, with their types (strict: ``"3"`` or ``true`` is no
    number) and ranges; finer scenario rules are checked on the scenario itself."""

    model_config = ConfigDict(extra="forbid", strict=True)
    offset_k: float | None = None
    import_limit_mw: Positive | None = None
    carbon_price_per_t: NonNeg | None = None
    price_scale: NonNeg | None = None
    start: Time | None = None
    dr_start: Time | None = None
    dr_duration_h: Positive | None = None
    dr_depth: Annotated[float, Field(ge=0, le=1)] | None = None
    dr_ramp_min: NonNeg | None = None
    dr_notice_min: NonNeg | None = None
    duration_h: Positive | None = None  # envelope, headroom, sizing: the event length
    depth_tol: Annotated[float, Field(gt=0, lt=1)] | None = None
    capacity_price_per_kw_yr: NonNeg | None = None  # replay
    energy_payment_scale: NonNeg | None = None
    calendar: dict[str, Any] | None = None  # replay: read by kpx_calendar


PARAMETERS = {  # name -> (units, long_name) of the named parameters as sweep coordinates ("": text)
    "offset_k": ("K", "ambient temperature offset"),
    "import_limit_mw": ("MW", "grid import limit (what-if)"),
    "carbon_price_per_t": ("currency t-1", "carbon price"),
    "price_scale": ("1", "energy price multiplier"),
    "start": ("", "start of the plan"),
    "dr_start": ("", "start of the DR event"),
    "dr_duration_h": ("h", "DR event length"),
    "dr_depth": ("1", "DR depth, share of the baseline"),
    "dr_ramp_min": ("min", "DR ramp"),
    "dr_notice_min": ("min", "DR notice"),
    "duration_h": ("h", "event length"),
    "depth_tol": ("1", "depth bisection tolerance"),
    "capacity_price_per_kw_yr": ("currency kW-1 yr-1", "capacity price"),
    "energy_payment_scale": ("1", "energy payment multiplier"),
}


def unknown_parameter(key: str) -> str | None:
    """Why ``key`` is no case parameter (with the nearest known name), or None when it is one (its prefix at
    least: ``spec.`` and ``workload.`` paths are checked on the facility and scenario)."""
    if key in CaseParameters.model_fields or key in OPTION_NAMES or key.startswith(("spec.", "workload.")):
        return None
    known = sorted({*CaseParameters.model_fields, *OPTION_NAMES})
    near = difflib.get_close_matches(key, known, n=1)
    hint = (
        f"did you mean {near[0]!r}?"
        if near
        else "known: " + ", ".join(known) + ", spec.<path>, workload.<class>.<field>"
    )
    return f"unknown parameter ({hint})"


def resolve(context: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Options, then label overrides, then sweep values: the flat parameters of one case."""
    out = dict(context.get("options", {}))
    for k, v in params.items():
        if k in context.get("labels", {}):
            out |= context["labels"][k][v]
        else:
            out[k] = v
    return out


@lru_cache(maxsize=8)
def _base(facility: str, scenario: str | None, spec_json: str):
    """Facility (spec overrides applied, re-assembled) and base scenario; cached per worker process."""
    from factory_twin.twin import load_facility, load_scenario
    from factory_twin.twin.facility.assembly import assemble, rack_catalog

    f = load_facility(facility)
    overrides = json.loads(spec_json)
    if overrides:
        raw = f.spec.model_dump()
        for path, v in overrides.items():
            _set(raw, path.split("."), v)
        f = assemble(type(f.spec).model_validate(raw), rack_catalog(), f"{facility} + {spec_json}")
    return f, load_scenario(scenario, f)


def _set(tree: Any, keys: list[str], value: Any) -> None:
    for i, k in enumerate(keys[:-1]):
        tree = tree[int(k)] if isinstance(tree, list) else tree.setdefault(k, {} if not keys[i + 1].isdigit() else [])
    last = keys[-1]
    if isinstance(tree, list):
        tree[int(last)] = value
    else:
        tree[last] = value


def model_for(context: dict[str, Any], params: dict[str, Any]):
    """``(facility, scenario, flat parameters)`` of one case, all changes applied."""
    p = resolve(context, params)
    spec = {k.removeprefix("spec."): v for k, v in p.items() if k.startswith("spec.")}
    f, s = _base(context["facility"], context.get("scenario"), json.dumps(spec, sort_keys=True))
    changes = {k: p[k] for k in ("offset_k", "carbon_price_per_t") if k in p}
    if "import_limit_mw" in p:
        changes["what_if_import_limit_mw"] = p["import_limit_mw"]
    if "price_scale" in p:
        changes["signals"] = replace(s.signals, price_per_mwh=s.signals.price_per_mwh * float(p["price_scale"]))
    work = {k: v for k, v in p.items() if k.startswith("workload.")}
    if work:
        wl = dict(s.workload)
        for k, v in work.items():
            _, cls, field = k.split(".")
            if cls not in f.class_names:
                raise ValueError(
                    f"{k}: no workload class {cls!r} in the facility (classes: {', '.join(f.class_names)})"
                )
            wl[cls] = (wl.get(cls) or _profile()).model_copy(update={field: v})
        changes["workload"] = wl
    if any(k in p for k in DR_KEYS):
        ev0 = s.dr_events[0] if s.dr_events else None
        d = {"dr_duration_h": 1.0, "dr_depth": 0.0, "dr_ramp_min": DR_RAMP_MIN, "dr_notice_min": DR_NOTICE_MIN}
        if ev0 is not None:
            d = {"dr_start": str(ev0.start), "dr_duration_h": ev0.duration_s / S_PER_H, "dr_depth": ev0.depth,
                 "dr_ramp_min": ev0.ramp_s / S_PER_MIN, "dr_notice_min": ev0.notice_s / S_PER_MIN}  # fmt: skip
        d |= {k: p[k] for k in DR_KEYS if k in p}
        if "dr_start" not in d:
            raise ValueError("dr_start: needed when the scenario has no DR event to change")
        start, dur_s, depth = np.datetime64(d["dr_start"], "s"), S_PER_H * d["dr_duration_h"], d["dr_depth"]
        ramp_s, notice_s = min(S_PER_MIN * d["dr_ramp_min"], dur_s), S_PER_MIN * d["dr_notice_min"]
        changes["dr_events"] = (DREvent(start, dur_s, depth, ramp_s, notice_s),) if depth > 0 else ()
    return f, s.with_changes(**changes), p


def _profile():
    from factory_twin.twin.scenario.scenario import WorkloadProfile

    return WorkloadProfile()


def case_options(p: dict[str, Any]) -> DispatchOptions:
    """The dispatch options among a case's parameters, with one HiGHS thread (one per worker)."""
    return DispatchOptions(**({k: p[k] for k in OPTION_NAMES if k in p} | {"threads": 1}))


def plan(f, s, p: dict[str, Any]):
    """``optimization.dispatch`` of one case: its options (:func:`case_options`) from ``p["start"]``."""
    from factory_twin.optimization.dispatch import dispatch

    return dispatch(f, s, case_options(p), start=p.get("start"))
