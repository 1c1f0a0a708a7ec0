"""Study files: a facility, a base scenario and sweep dimensions -> one batch of dispatch cases.

A study TOML (paths relative to the file)::

    name = "flex-envelope"
    analysis = "envelope"            # sweep | envelope | replay | headroom | sizing | power-architecture
    facility = "campus-100mw"        # built-in name or path
    scenario = "hot-day-dr"          # built-in name, path, or omitted (defaults)
    [options]                        # dispatch settings (DispatchOptions fields and start) and the
    horizon = "12h"                  #   analysis' own settings
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

Parameter names (sweep keys, label overrides, options) are listed in
:mod:`optimization.studies.cases`, e.g. ``offset_k``, ``dr_depth``,
``spec.grid.bess.energy_mwh``. Each case runs :func:`run_case` in its own worker (one single-threaded HiGHS), which
builds its own model and returns numbers and arrays only.
"""

from __future__ import annotations

import copy
import os
import sys
import tomllib
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from factory_twin.optimization.plan import plan_kpis
from factory_twin.optimization.studies.cases import PARAMETERS, model_for, plan
from factory_twin.optimization.studies.envelope import envelope_cell
from factory_twin.optimization.studies.power_architecture import architecture_case
from factory_twin.optimization.studies.replay import replay_event, replay_sweep, replay_totals
from factory_twin.twin.runs.batch import collect, run_batch
from factory_twin.twin.runs.metadata import describe, units_from_name
from factory_twin.twin.runs.netcdf import write_netcdf

from factory_twin import data

ANALYSES = ("sweep", "envelope", "replay", "headroom", "sizing", "power-architecture")
PER_CASE_FACILITY = ("power-architecture",)  # analyses whose sweep names the facility of each case


def load_study(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a study TOML (a path or a built-in name from ``data/studies``); relative
    facility/scenario/CSV paths become absolute."""
    p = Path(path)
    if not p.is_file():
        builtin = data.builtin("studies")
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
    if "facility" not in study and not (
        study.get("analysis") in PER_CASE_FACILITY and study.get("sweep", {}).get("facility")
    ):
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
        "facility": study.get("facility"),
        "scenario": study.get("scenario"),
        "options": study.get("options", {}),
        "labels": study.get("labels", {}),
    }
    rows = product(*dims.values()) if combine == "product" else zip(*dims.values(), strict=True)
    cases = [{"analysis": study.get("analysis", "sweep"), "context": context} | dict(zip(dims, r, strict=True))
             for r in rows]  # fmt: skip
    return cases, (dims if combine == "product" else None)


def plan_outputs(ds: xr.Dataset) -> dict[str, Any]:
    """Key figures of one plan (:func:`optimization.plan.plan_kpis`) and its import and throughput
    series."""
    return plan_kpis(ds) | {"grid_import_mw": ds.grid_import_mw.values, "throughput": ds.throughput.values}


RESULTS = {  # name -> (units, long_name) of the figures a case returns
    "objective": ("currency", "objective: token value - energy cost - carbon cost - penalties"),
    "token_value": ("currency", "value of the tokens produced"),
    "energy_cost": ("currency", "energy cost"),
    "carbon_cost": ("currency", "carbon cost"),
    "throughput_kept": ("1", "tokens over uncapped tokens over the horizon"),
    "mwh_curtailed": ("MWh", "energy curtailed against the uncapped baseline"),
    "energy_mwh": ("MWh", "grid energy imported"),
    "peak_import_mw": ("MW", "peak grid import"),
    "tokens": ("1", "tokens produced"),
    "grid_import_mw": ("MW", "planned grid import per step"),
    "throughput": ("1", "tokens over uncapped tokens per step"),
    "optimal": ("1", "plan solved to optimality (1) or not (0)"),
    "plan_status": ("", "solver status of the plan"),
    "depth": ("1", "deepest import reduction held, share of the baseline"),
    "probes": ("1", "plans solved to find the depth"),
    "reduction_mw": ("MW", "import reduction held"),
    "reduction_pct": ("%", "import reduction held, percent of the baseline"),
    "baseline_mw": ("MW", "baseline import over the event"),
    "throughput_kept_event": ("1", "tokens over uncapped tokens during the event"),
    "tokens_lost": ("1", "tokens lost to the event"),
    "value_lost": ("currency", "value lost to the event (token value lost net of energy saved)"),
    "energy_reduced_mwh": ("MWh", "energy imported less over the event"),
    "event_reduction_mwh": ("MWh", "import reduction over the event"),
    "committed_mw": ("MW", "committed import reduction"),
    "energy_cost_saved": ("currency", "energy cost saved by the event"),
    "energy_payment": ("currency", "energy payment for the reduction"),
}


def run_case(analysis: str, context: dict[str, Any], **params: Any) -> dict[str, Any]:
    """One case of a study (top level, picklable): build the model here and return plain values."""
    if analysis in ("envelope", "headroom", "sizing"):
        return envelope_cell(context, **params)
    if analysis == "replay":
        return replay_event(context, **params)
    if analysis == "power-architecture":
        return architecture_case(context, **params)
    f, s, p = model_for(context, params)
    return plan_outputs(plan(f, s, p))


def check_sweep(study: dict[str, Any]) -> None:
    """Check the whole study before any case runs: every ``[options]`` key, label override and sweep key is a
    case parameter (:class:`~optimization.studies.cases.CaseParameters`, dispatch options, ``spec.<path>``,
    ``workload.<class>.<field>``), each value of its type and range; then every sweep value is applied alone to
    the study's facility, scenario and options (with the scenario file's own rules). Raise one ``ValueError``
    listing each bad ``sweep.<key> = value`` (or ``options.<key>``, ``labels.<dim>.<label>.<key>``) and why."""
    from factory_twin.optimization.studies.cases import CaseParameters, case_options, model_for, unknown_parameter
    from factory_twin.twin.facility.spec import describe_validation_error
    from factory_twin.twin.scenario.scenario import ScenarioGrid, ScenarioWeather, WorkloadProfile
    from pydantic import ValidationError

    def why(e: Exception) -> str:
        if isinstance(e, ValidationError):
            return "; ".join(m for _, m in map(describe_validation_error, e.errors()))
        return str(e).splitlines()[-1].strip() or type(e).__name__

    def typed(where: str, key: str, v: Any) -> str | None:  # a known parameter, of its type and range
        if (unknown := unknown_parameter(key)) is not None:
            return f"{where}: {unknown}"
        if key in CaseParameters.model_fields:
            try:
                CaseParameters.model_validate({key: v})
            except ValidationError as e:
                return f"{where} = {v!r}: {why(e)}"
        return None

    dims, _ = sweep_dims(study)
    labels = study.get("labels", {})
    given = [(f"options.{k}", k, v) for k, v in study.get("options", {}).items()]
    given += [
        (f"labels.{d}.{name}.{k}", k, v) for d, t in labels.items() for name, o in t.items() for k, v in o.items()
    ]
    problems = [p for p in (typed(*g) for g in given) if p]
    if problems:
        raise ValueError("study: bad parameters, nothing was run\n  " + "\n  ".join(problems))
    context = {k: study.get(k) for k in ("facility", "scenario")} | {
        "options": study.get("options", {}),
        "labels": labels,
    }
    rules = {
        "offset_k": lambda v: ScenarioWeather(offset_k=v),
        "import_limit_mw": lambda v: ScenarioGrid(import_limit_mw=v),
        "carbon_price_per_t": lambda v: ScenarioGrid(carbon_price_per_t=v),
    }
    for key, values in dims.items():
        if key not in labels and (unknown := unknown_parameter(key)) is not None:
            problems.append(f"sweep.{key}: {unknown}")
            continue
        for v in values:
            if key not in labels and (bad := typed(f"sweep.{key}", key, v)) is not None:
                problems.append(bad)
                continue
            try:
                if key in rules:
                    rules[key](v)
                if key.startswith("workload."):
                    WorkloadProfile.model_validate({key.split(".")[2]: v})
                _, _, p = model_for(context, {key: v})
                case_options(p)
            except (ValidationError, ValueError, TypeError, KeyError, IndexError) as e:
                problems.append(f"sweep.{key} = {v!r}: {why(e)}")
    if problems:
        raise ValueError("sweep: bad values, nothing was run\n  " + "\n  ".join(problems))


def run_study(
    study: dict[str, Any],
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    progress: bool = True,
    check_values: bool = True,
) -> xr.Dataset:
    """Run every case (dask unless ``serial``), collect, add the analysis and write ``results.nc`` and
    ``report.html`` in ``out_dir``. ``check_values``: refuse bad sweep values before launching
    (:func:`check_sweep`); without it a bad case fails alone and is recorded."""
    from factory_twin.optimization.studies import power_architecture, report

    study = copy.deepcopy(study)
    analysis = study.get("analysis", "sweep")
    if analysis == "replay":
        study["sweep"] = replay_sweep(study)
    cases, dims = study_cases(study)
    if check_values and analysis == "power-architecture":
        power_architecture.check(study)
    elif check_values:
        check_sweep(study)
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
    if analysis == "power-architecture":
        ds = power_architecture.label_dims(ds)
    ds = ds.rename({k: "step" for k in ds.dims if str(k).endswith("_dim0")})
    for k in ds.variables:
        if k in RESULTS or k in PARAMETERS:
            units, long_name = RESULTS.get(str(k)) or PARAMETERS[str(k)]
            ds[k].attrs |= {"long_name": long_name} | ({"units": units} if units else {})
        elif k in ds.dims:  # a sweep of a dispatch option, spec path, workload field or labels
            units = units_from_name(str(k)) if ds[k].dtype.kind in "fiu" else None
            ds[k].attrs |= {"long_name": f"study parameter {k}"} | ({"units": units} if units else {})
    ds = _analyse(ds, study, analysis)
    ds.attrs |= {"study": study.get("name", ""), "analysis": analysis, "description": study.get("description", ""),
                 "currency": _currency(cases[0])}  # fmt: skip
    out, ds = Path(out_dir), describe(ds)  # the Dataset as written: units and long names, money in the currency
    write_netcdf(ds, out / "results.nc")
    report.write_report(ds, out / "report.html")
    return ds


def _currency(case: dict[str, Any]) -> str:
    """The currency of a case's scenario (it names the money units); the facility is the case's own when the
    sweep names it (power-architecture)."""
    context = case["context"]
    if context.get("facility") is None:
        context = context | {"facility": case["facility"]}
    _, base, _ = model_for(context, {})
    return base.signals.currency


def _analyse(ds: xr.Dataset, study: dict[str, Any], analysis: str) -> xr.Dataset:
    if analysis == "power-architecture":
        from factory_twin.optimization.studies.power_architecture import summarise

        summary = summarise(ds)
        return ds.merge(summary).assign_attrs(ds.attrs | summary.attrs)
    if analysis == "replay":
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
    if ds.attrs.get("analysis") == "power-architecture":
        from factory_twin.optimization.studies.power_architecture import markdown

        print(markdown(ds))
        if "warning" in ds.attrs:
            print(f"warning: {ds.attrs['warning']}", file=sys.stderr)
    print(f"wrote {Path(out_dir) / 'results.nc'} and {Path(out_dir) / 'report.html'}")
    return ds
