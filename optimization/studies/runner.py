"""Study files: a facility, a base scenario and sweep dimensions -> one batch of dispatch cases.

A study TOML (paths relative to the file)::

    name = "flex-envelope"
    analysis = "envelope"            # sweep | envelope | replay | headroom | sizing
    facility = "campus-100mw"        # built-in name or path
    scenario = "hot-day-dr"          # built-in name, path, or omitted (defaults)
    [options]                        # dispatch settings (horizon, step, start, soft, grouping, solver,
    horizon = "12h"                  #   time_limit) and the analysis' own settings
    step = "15min"
    [run]                            # timeout_s, workers (overridden by the command line)
    timeout_s = 900
    [sweep]                          # each key a dimension: a list, or a range {start, stop, num}
    combine = "product"              # or "zip": the i-th values of every list form case i
    duration_h = [0.25, 1, 4, 10]
    offset_k = {start = 0, stop = 8, num = 3}
    policy = ["tiers", "no-tiers"]   # labels, resolved through [labels.policy]
    [labels.policy]
    tiers = {}
    no-tiers = { "spec.workloads.0.flex_tier" = 1.0, "spec.workloads.1.flex_tier" = 1.0 }

Parameter names (sweep keys, label overrides, options): scenario values ``offset_k``,
``import_limit_mw``, ``carbon_price_per_t``, ``price_scale`` (multiplies the price signal),
``workload.<class>.<field>``; one DR event ``dr_start``, ``dr_duration_h``, ``dr_depth``,
``dr_ramp_min``, ``dr_notice_min`` (replaces the scenario's events); facility spec values
``spec.<dotted.path>`` (list items by index, e.g. ``spec.grid.bess.energy_mwh``), re-validated and
re-assembled. Each case runs :func:`run_case` in its own worker (one single-threaded HiGHS), which
builds its own model and returns numbers and arrays only.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from dataclasses import replace
from functools import lru_cache
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from factory_twin.optimization.studies.batch import collect, run_batch
from factory_twin.twin.netcdf import write_netcdf

from factory_twin import data

ANALYSES = ("sweep", "envelope", "replay", "headroom", "sizing")
DISPATCH_KEYS = ("start", "horizon", "step", "soft", "grouping", "solver", "time_limit", "backend")
DR_KEYS = ("dr_start", "dr_duration_h", "dr_depth", "dr_ramp_min", "dr_notice_min")
_SCENARIO_KEYS = ("offset_k", "import_limit_mw", "carbon_price_per_t", "price_scale")


def load_study(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a study TOML (a path or a built-in name from ``data/studies``); relative
    facility/scenario/CSV paths become absolute."""
    p = Path(path)
    if not p.is_file():
        builtin = sorted(q.stem for q in data.path("studies").glob("*.toml"))
        if str(path) not in builtin:
            raise FileNotFoundError(f"study file not found: {p} (built-in: {', '.join(builtin)})")
        p = data.path("studies", f"{path}.toml")
    study = tomllib.loads(p.read_text(encoding="utf-8"))
    unknown = set(study) - {"name", "description", "analysis", "facility", "scenario", "options", "run", "sweep",
                            "labels", "balancing_area"}  # fmt: skip
    if unknown:
        raise ValueError(f"study: unknown key(s) {sorted(unknown)} in {p}")
    if study.get("analysis", "sweep") not in ANALYSES:
        raise ValueError(f"analysis: must be one of {ANALYSES}, got {study.get('analysis')!r}")
    if "facility" not in study:
        raise ValueError(f"facility: missing in {p}")
    for key in ("facility", "scenario"):
        v = study.get(key)
        if isinstance(v, str) and v.endswith(".toml") and not Path(v).is_absolute():
            study[key] = str((p.parent / v).resolve())
    ba = study.get("balancing_area", {})
    if "csv" in ba and not Path(ba["csv"]).is_absolute():
        ba["csv"] = str((p.parent / ba["csv"]).resolve())
    study.setdefault("name", p.stem)
    return study


def sweep_dims(study: dict[str, Any]) -> tuple[dict[str, list[Any]], str]:
    """``({dim: values}, combine)`` from the ``[sweep]`` table (ranges expanded with linspace)."""
    sweep = dict(study.get("sweep", {}))
    combine = sweep.pop("combine", "product")
    if combine not in ("product", "zip"):
        raise ValueError(f"sweep.combine: must be 'product' or 'zip', got {combine!r}")
    dims: dict[str, list[Any]] = {}
    for k, v in sweep.items():
        if isinstance(v, dict):
            if set(v) != {"start", "stop", "num"}:
                raise ValueError(f"sweep.{k}: a range needs exactly start, stop, num; got {sorted(v)}")
            v = np.linspace(v["start"], v["stop"], int(v["num"])).tolist()
        if not isinstance(v, list) or not v:
            raise ValueError(f"sweep.{k}: must be a non-empty list or a range table, got {v!r}")
        labels = study.get("labels", {}).get(k)
        if labels is not None and not set(v) <= set(labels):
            raise ValueError(f"sweep.{k}: labels {sorted(set(v) - set(labels))} not in [labels.{k}]")
        dims[k] = v
    if combine == "zip" and len({len(v) for v in dims.values()}) > 1:
        raise ValueError(f"sweep: combine = 'zip' needs lists of equal length, got {[len(v) for v in dims.values()]}")
    return dims, combine


def study_cases(study: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, list[Any]] | None]:
    """The case dicts of a study and the product grid for :func:`collect` (None for ``zip``)."""
    dims, combine = sweep_dims(study)
    context = {
        "facility": study["facility"],
        "scenario": study.get("scenario"),
        "options": study.get("options", {}),
        "labels": study.get("labels", {}),
    }
    rows = product(*dims.values()) if combine == "product" else zip(*dims.values(), strict=True)
    cases = [{"analysis": study.get("analysis", "sweep"), "context": context} | dict(zip(dims, r, strict=True))
             for r in rows]  # fmt: skip
    return cases, (dims if combine == "product" else None)


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
    from factory_twin.twin.assembly import assemble, rack_catalog

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
    from factory_twin.twin.grid_signals import DREvent

    p = resolve(context, params)
    spec = {k.removeprefix("spec."): v for k, v in p.items() if k.startswith("spec.")}
    f, s = _base(context["facility"], context.get("scenario"), json.dumps(spec, sort_keys=True))
    changes = {k: p[k] for k in ("offset_k", "import_limit_mw", "carbon_price_per_t") if k in p}
    if "price_scale" in p:
        changes["signals"] = replace(s.signals, price_per_mwh=s.signals.price_per_mwh * float(p["price_scale"]))
    work = {k: v for k, v in p.items() if k.startswith("workload.")}
    if work:
        wl = dict(s.workload)
        for k, v in work.items():
            _, cls, field = k.split(".")
            wl[cls] = (wl.get(cls) or _profile()).model_copy(update={field: v})
        changes["workload"] = wl
    if any(k in p for k in DR_KEYS):
        ev0 = s.dr_events[0] if s.dr_events else None
        d = {"dr_duration_h": 1.0, "dr_depth": 0.0, "dr_ramp_min": 15.0, "dr_notice_min": 60.0}
        if ev0 is not None:
            d = {"dr_start": str(ev0.start), "dr_duration_h": ev0.duration_s / 3600, "dr_depth": ev0.depth,
                 "dr_ramp_min": ev0.ramp_s / 60, "dr_notice_min": ev0.notice_s / 60}  # fmt: skip
        d |= {k: p[k] for k in DR_KEYS if k in p}
        if "dr_start" not in d:
            raise ValueError("dr_start: needed when the scenario has no DR event to change")
        start, dur_s, depth = np.datetime64(d["dr_start"], "s"), 3600.0 * d["dr_duration_h"], d["dr_depth"]
        ramp_s, notice_s = min(60.0 * d["dr_ramp_min"], dur_s), 60.0 * d["dr_notice_min"]
        changes["dr_events"] = (DREvent(start, dur_s, depth, ramp_s, notice_s),) if depth > 0 else ()
    return f, s.with_changes(**changes), p


def _profile():
    from factory_twin.twin.scenario import WorkloadProfile

    return WorkloadProfile()


def plan(f, s, p: dict[str, Any], **extra):
    """``optimization.dispatch`` with the case's dispatch options, one HiGHS thread."""
    from factory_twin.optimization import dispatch

    kw = {k: p[k] for k in DISPATCH_KEYS if k in p} | extra
    kw["soft"] = tuple(kw.get("soft", ()))
    return dispatch(f, s, threads=1, **kw)


def plan_outputs(ds: xr.Dataset) -> dict[str, Any]:
    """Scalars of one plan (status, objective, throughput kept, MWh curtailed, peak import, cost,
    tokens) and its import and throughput series."""
    dt_h = float(ds.attrs["step_s"]) / 3600.0
    imp, base = ds.grid_import_mw.values, ds.baseline_mw.values
    tok, unc = ds.tokens_per_s.values, ds.tokens_uncapped_per_s.values
    return {
        "plan_status": str(ds.attrs["status"]),
        "optimal": int(ds.attrs["status"] == "optimal"),
        "objective": float(ds.attrs.get("objective", np.nan)),
        "token_value": float(ds.attrs.get("token_value", np.nan)),
        "energy_cost": float(ds.attrs.get("energy_cost", np.nan)),
        "carbon_cost": float(ds.attrs.get("carbon_cost", np.nan)),
        "throughput_kept": float(tok.sum() / unc.sum()),
        "mwh_curtailed": float(np.sum(np.maximum(base - imp, 0.0)) * dt_h),
        "energy_mwh": float(imp.sum() * dt_h),
        "peak_import_mw": float(imp.max()),
        "tokens": float(tok.sum() * dt_h * 3600.0),
        "grid_import_mw": imp,
        "throughput": ds.throughput.values,
    }


UNITS = {
    "objective": "currency", "token_value": "currency", "energy_cost": "currency", "carbon_cost": "currency",
    "throughput_kept": "1", "mwh_curtailed": "MWh", "energy_mwh": "MWh", "peak_import_mw": "MW", "tokens": "1",
    "grid_import_mw": "MW", "throughput": "1", "depth": "1", "reduction_mw": "MW", "reduction_pct": "%",
    "baseline_mw": "MW", "throughput_kept_event": "1", "tokens_lost": "1", "value_lost": "currency",
    "energy_reduced_mwh": "MWh", "event_reduction_mwh": "MWh", "committed_mw": "MW",
    "energy_cost_saved": "currency", "energy_payment": "currency",
}  # fmt: skip


def run_case(analysis: str, context: dict[str, Any], **params: Any) -> dict[str, Any]:
    """One case of a study (top level, picklable): build the model here and return plain values."""
    if analysis in ("envelope", "headroom", "sizing"):
        from factory_twin.optimization.studies.envelope import envelope_cell

        return envelope_cell(context, **params)
    if analysis == "replay":
        from factory_twin.optimization.studies.replay import replay_event

        return replay_event(context, **params)
    f, s, p = model_for(context, params)
    return plan_outputs(plan(f, s, p))


def run_study(
    study: dict[str, Any],
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """Run every case (dask unless ``serial``), collect, add the analysis and write ``results.nc`` and
    ``report.html`` in ``out_dir``."""
    from factory_twin.optimization.studies import report

    study = copy.deepcopy(study)
    analysis = study.get("analysis", "sweep")
    if analysis == "replay":
        from factory_twin.optimization.studies.replay import replay_sweep

        study["sweep"] = replay_sweep(study)
    cases, dims = study_cases(study)
    run = study.get("run", {})
    run_batch(
        run_case,
        cases,
        out_dir,
        engine="serial" if serial else "dask",
        scheduler=scheduler,
        workers=workers or run.get("workers"),
        resume=resume,
        timeout_s=run.get("timeout_s"),
        progress=progress,
    )
    ds = collect(out_dir, dims).drop_vars(["analysis", "context"], errors="ignore")
    ds = ds.rename({k: "step" for k in ds.dims if str(k).endswith("_dim0")})
    for k in ds.data_vars:
        if k in UNITS:
            ds[k].attrs["units"] = UNITS[k]
    ds = _analyse(ds, study, analysis)
    ds.attrs |= {"study": study.get("name", ""), "analysis": analysis, "description": study.get("description", "")}
    out = Path(out_dir)
    write_netcdf(ds, out / "results.nc")
    report.write_report(ds, out / "report.html")
    return ds


def _analyse(ds: xr.Dataset, study: dict[str, Any], analysis: str) -> xr.Dataset:
    if analysis == "replay":
        from factory_twin.optimization.studies.replay import replay_totals

        return ds.merge(replay_totals(ds, study.get("options", {})))
    if analysis in ("headroom", "sizing"):
        from factory_twin.optimization.studies.flexible_headroom import grid_study

        return ds.merge(grid_study(ds, study))
    return ds


def run_study_file(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
) -> xr.Dataset:
    """``factory-twin study``: load the TOML, run it, write ``results.nc`` and ``report.html``."""
    ds = run_study(load_study(path), out_dir, resume=resume, scheduler=scheduler, workers=workers, serial=serial)
    print(f"wrote {Path(out_dir) / 'results.nc'} and {Path(out_dir) / 'report.html'}")
    return ds
