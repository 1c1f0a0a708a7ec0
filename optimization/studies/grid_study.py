"""Grid study: does the campus, with these jobs, meet these interconnection requirements, and which
mitigation mix does it at the lowest running cost?

Each case of the sweep (``data/grid_mitigation.toml``: GPU floor x rack battery x site BESS x share of the
synchronous job kept) is one fast electrical run (:mod:`twin.grid_dynamics.fast_electrical`) scored against every rule;
cases run on :func:`twin.runs.batch.run_batch` (Dask or serial, checkpointed, resumable).
Cost of a case per window = energy overhead (floor burn + storage losses) x energy price + value of the
tokens not produced (ramp-limited GPUs, GPUs of the job not run). Storage capital cost is not priced (no
sourced figure): the report lists each case's added storage beside its running cost. A voltage-event
replay (NERC 10 Jul 2024 by default) shows per protection setting the MW lost and when they return.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
import xarray as xr
from factory_twin.models.gpu_smoothing import SmoothingProfile
from factory_twin.models.poi_metrics import Verdict, compliance
from factory_twin.models.ride_through import envelope_allows, ride_through, voltage_series
from factory_twin.models.storage_split import SplitLaw
from factory_twin.models.training_power import JobEvents
from factory_twin.models.units import J_PER_MWH, MW, S_PER_MIN, TOKENS_PER_MTOK
from factory_twin.twin.grid_dynamics.fast_electrical import (
    Mitigation,
    RackLayer,
    StartState,
    TrainingJob,
    bess_ramp_law,
    mitigation_defaults,
    place_jobs,
    run_fast,
    training_racks,
)
from factory_twin.twin.grid_dynamics.grid_codes import (
    RequirementSet,
    VoltageEvent,
    load_event,
    load_requirements,
    recovery_time_s,
)

SWEEP_KEYS = ("floor_fraction", "rack_battery_j_per_gpu", "bess_tau_s", "job_share")
GRID_STUDY_FILES = ("cases", "results.nc", "report.html")  # what a grid study writes in its folder


def mitigation_for(
    tdp_w: float, job_gpus: int, floor_fraction: float, rack_battery_j_per_gpu: float, bess_tau_s: float
) -> Mitigation:
    """The mitigation of one sweep cell: GPU smoothing (floor, ramps and a job-start cap ramp shared by the
    ``job_gpus``) on when ``floor_fraction > 0``, the shelf buffer always, a rack battery when its energy is
    > 0, the site BESS split when ``bess_tau_s > 0``."""
    o = mitigation_defaults()
    gpu, sb, rb, bs = o["gpu"], o["shelf_buffer"], o["rack_battery"], o["bess"]
    smoothing = (
        SmoothingProfile(
            floor_fraction, gpu["ramp_up_w_s"], gpu["ramp_down_w_s"], gpu["stop_delay_s"], gpu["edp_fraction"]
        )
        if floor_fraction > 0
        else SmoothingProfile()
    )
    layers = [
        RackLayer(
            "shelf buffer",
            sb["j_per_gpu"],
            sb["w_per_tdp"] * tdp_w,
            sb["eta"],
            SplitLaw(tau_s=sb["tau_s"], soc_gain_per_s=sb["soc_gain_per_s"]),
        )
    ]
    if rack_battery_j_per_gpu > 0:
        law = SplitLaw(tau_s=rb["tau_s"], soc_gain_per_s=rb["soc_gain_per_s"])
        layers.append(RackLayer("rack battery", rack_battery_j_per_gpu, rb["w_per_gpu"], rb["eta"], law))
    bess = bess_ramp_law(bs["ramp_mw_per_min"], bess_tau_s, bs["soc_gain_per_s"]) if bess_tau_s > 0 else None
    start = gpu["start_ramp_mw_per_min"] * MW / S_PER_MIN / max(job_gpus, 1) if floor_fraction > 0 else math.inf
    return Mitigation(smoothing, tuple(layers), bess, start)


def parse_jobs(texts: list[str] | None, job_start_s: float) -> list[dict]:
    """``GPUS[:PERIOD_S[:DUTY]]`` per job (defaults from ``data/grid_mitigation.toml``); errors name --jobs."""
    d = mitigation_defaults()["job"]
    out = []
    for k, text in enumerate(texts or []):
        parts = text.split(":")
        try:
            gpus = int(parts[0].replace("_", "").replace(",", ""))
            period = float(parts[1]) if len(parts) > 1 else d["period_s"]
            duty = float(parts[2]) if len(parts) > 2 else d["duty"]
        except ValueError:
            raise ValueError(f"--jobs: expected GPUS[:PERIOD_S[:DUTY]], got {text!r}") from None
        if len(parts) > 3 or gpus < 1 or not period > 0 or not 0 < duty < 1:
            raise ValueError(f"--jobs: {text!r} needs GPUS >= 1, PERIOD_S > 0 and 0 < DUTY < 1")
        out.append({"name": f"job{k + 1}", "gpus": gpus, "period_s": period, "duty": duty, "start_s": job_start_s})
    return out


def _jobs(specs: list[dict], share: float, edge_s: float, seed: int = 0) -> list[TrainingJob]:
    """Training jobs with independent phases; ``share`` of the first job's GPUs run, the rest stay idle."""
    rng = np.random.default_rng(seed)
    jobs = []
    for k, s in enumerate(specs):
        gpus = max(int(round(s["gpus"] * share)), 1) if k == 0 else s["gpus"]
        phase = 0.0 if k == 0 else float(rng.uniform(0.0, s["period_s"]))
        ev = JobEvents(start_s=s["start_s"])
        jobs.append(TrainingJob(s["name"], gpus, s["period_s"], s["duty"], edge_s, phase, events=ev))
    return jobs


@functools.cache
def _site(facility: str):
    """Facility, the twin's start state and the energy price at the scenario start (cached per process)."""
    from factory_twin import twin

    f = twin.load_facility(facility)
    sc = twin.load_scenario(None, f)
    tw = twin.Twin(f, sc)
    tw.advance()
    price = float(sc.signals.at(np.array([sc.start]), "price_per_mwh")[0])
    return f, StartState.from_twin(tw), price, sc.signals.currency


def run_case(
    facility: str,
    requirements: list[str],
    jobs: list[dict],
    floor_fraction: float,
    rack_battery_j_per_gpu: float,
    bess_tau_s: float,
    job_share: float,
    duration_s: float,
    dt_s: float,
    keep_series: bool = False,
) -> dict:
    """One sweep cell: fast run, rule values, energy and throughput cost (plain values for run_batch)."""
    f, start, price, _ = _site(facility)
    reqs = [load_requirements(r) for r in requirements]
    job_list = _jobs(jobs, job_share, mitigation_defaults()["job"]["edge_s"])
    mit = mitigation_for(
        float(f.tdp_w.max()), sum(j.gpus for j in job_list), floor_fraction, rack_battery_j_per_gpu, bess_tau_s
    )
    run = run_fast(f, start, job_list, mit, duration_s, dt_s)
    a = run.dataset.attrs
    out: dict = {}
    verdicts = [v for r in reqs for v in compliance(list(r.rules), run.poi_w, dt_s)]
    for v in verdicts:
        out[f"value_{v.rule.name}"] = v.value
        out[f"ok_{v.rule.name}"] = v.ok
    # tokens of the job's GPUs that do not run (job_share < 1) over the window
    tok = np.array([w.tokens_per_s_per_gpu for w in f.spec.workloads])
    val = np.array([w.value_per_mtok for w in f.spec.workloads])
    cls = f.rack_class[training_racks(f)[0]]
    idle_gpus = jobs[0]["gpus"] - max(int(round(jobs[0]["gpus"] * job_share)), 1) if jobs else 0
    run_s = max(duration_s - jobs[0]["start_s"], 0.0) if jobs else 0.0
    share_tokens = idle_gpus * tok[cls] * run_s
    overhead_j = a["floor_burn_j"] + a["storage_loss_j"]
    energy_cost = overhead_j / J_PER_MWH * price
    value_lost = a["value_lost"] + share_tokens * val[cls] / TOKENS_PER_MTOK
    out |= {
        "compliant": all(v.ok for v in verdicts),
        "poi_energy_mwh": a["poi_energy_j"] / J_PER_MWH,
        "energy_overhead_mwh": overhead_j / J_PER_MWH,
        "floor_burn_mwh": a["floor_burn_j"] / J_PER_MWH,
        "storage_loss_mwh": a["storage_loss_j"] / J_PER_MWH,
        "tokens_lost": a["tokens_lost"] + share_tokens,
        "energy_cost": energy_cost,
        "value_lost": value_lost,
        "total_cost": energy_cost + value_lost,
        "bess_peak_mw": a["bess_peak_mw"],
        "poi_mean_mw": a["poi_mean_mw"],
        "energy_book_residual": a["energy_book_residual"],
    }
    if keep_series:
        out["_run"] = run
    return out


def sweep_cases(facility: str, requirements: list[str], jobs: list[dict], duration_s: float, dt_s: float) -> tuple:
    """The sweep's cases (dicts for run_batch) and its dims."""
    sw = mitigation_defaults()["sweep"]
    dims = {k: list(sw[k]) for k in SWEEP_KEYS}
    base = {"facility": facility, "requirements": requirements, "jobs": jobs, "duration_s": duration_s, "dt_s": dt_s}
    cases = [base | dict(zip(SWEEP_KEYS, cell, strict=True)) for cell in product(*dims.values())]
    return cases, dims


RESULTS = {  # name -> (units, long_name) of the sweep's coordinates and each case's figures
    "floor_fraction": ("1", "GPU power floor as a share of TDP (0: no smoothing)"),
    "rack_battery_j_per_gpu": ("J", "rack battery energy per GPU"),
    "bess_tau_s": ("s", "site BESS low-pass time constant (0: BESS idle)"),
    "job_share": ("1", "share of the synchronous job's GPUs kept running"),
    "compliant": ("1", "every rule met (1) or not (0)"),
    "poi_energy_mwh": ("MWh", "energy at the point of interconnection"),
    "energy_overhead_mwh": ("MWh", "energy burnt by the power floor and lost in storage"),
    "floor_burn_mwh": ("MWh", "energy burnt by the GPU power floor"),
    "storage_loss_mwh": ("MWh", "energy lost in rack batteries and the BESS"),
    "tokens_lost": ("1", "tokens not produced against the unmitigated run"),
    "energy_cost": ("currency", "cost of the energy overhead"),
    "value_lost": ("currency", "value of the tokens lost"),
    "total_cost": ("currency", "energy cost plus value lost"),
    "bess_peak_mw": ("MW", "peak site BESS power"),
    "poi_mean_mw": ("MW", "mean power at the point of interconnection"),
    "energy_book_residual": ("1", "energy book residual (in - out - stored) / in"),
}


def _rule_results(reqs) -> dict[str, tuple[str, str]]:
    """``value_<rule>`` and ``ok_<rule>``: each rule's measured value (in the rule's units) and verdict."""
    out = {}
    for r in reqs:
        for rule in r.rules:
            units = {"MW/min": "MW min-1", "-": "1"}.get(rule.units, rule.units)
            out[f"value_{rule.name}"] = (units, f"{rule.kind} measured for {r.name} rule {rule.name}")
            out[f"ok_{rule.name}"] = ("1", f"{r.name} rule {rule.name} met (1) or not (0)")
    return out


def best_case(ds: xr.Dataset) -> dict | None:
    """The compliant cell with the lowest total cost (ties: less added storage); None if none complies."""
    ok = (ds.status == 0) & ds.compliant.astype(bool)
    if not bool(ok.any()):
        return None
    cost = ds.total_cost.where(ok) + 1e-9 * ds.rack_battery_j_per_gpu + 1e-9 * ds.bess_tau_s
    idx = np.unravel_index(int(np.nanargmin(cost.values)), cost.shape)
    return {k: ds[k].values[i].item() for k, i in zip(cost.dims, idx, strict=True)}


# ----------------------------------------------------------------------------- voltage-event replay
@dataclass(frozen=True)
class ReplayRow:
    """One protection setting's response to the event."""

    name: str
    latch_s: float
    max_lost_mw: float
    end_lost_mw: float
    recovery_s: float
    counter_allowed: bool
    within_envelope: bool
    online_mw: np.ndarray


def replay_event(event: VoltageEvent, site_mw: float, requirement: RequirementSet | None, dt_s: float = 1e-3):
    """Replay the dips under every protection setting of the event file; MW online over time."""
    t = np.arange(0.0, event.duration_s, dt_s)
    v = voltage_series(t, event.dips)
    clear = max(d.start_s + d.duration_s for d in event.dips)
    rt = requirement.ride_through if requirement else None
    inside = (
        bool(np.all(envelope_allows([d.residual_pu for d in event.dips], [d.duration_s for d in event.dips], rt.bands)))
        if rt
        else True
    )
    rows = []
    for name, prot in event.protections.items():
        r = ride_through(t, v, prot)
        online = r.online * site_mw
        share = rt.recovery_share if rt else 0.9
        rows.append(
            ReplayRow(
                name,
                r.latch_s,
                float(site_mw - online.min()),
                float(site_mw - online[-1]),
                recovery_time_s(r.online, t, clear, share),
                not (rt and not rt.counter_allowed and prot.count > 0),
                inside,
                online,
            )
        )
    return t, v, rows


def verdict_rows(verdicts: list[Verdict]) -> list[tuple[str, str]]:
    """Printable ``(rule, value vs limit, PASS/FAIL)`` rows."""
    return [
        (v.rule.name, f"{v.value:.3g} {v.rule.units} vs {v.rule.limit:g}: {'pass' if v.ok else 'FAIL'}")
        for v in verdicts
    ]


def ride_through_ok(row: ReplayRow, requirement: RequirementSet | None) -> bool:
    """Whether a protection setting meets the requirement's ride-through rules on this event."""
    rt = requirement.ride_through if requirement else None
    if rt is None:
        return math.isnan(row.latch_s)
    return row.counter_allowed and (not row.within_envelope or row.recovery_s <= rt.recovery_s)


# ----------------------------------------------------------------------------- the study
@dataclass
class GridStudy:
    """What ``factory-twin grid-study`` prints and writes."""

    results: xr.Dataset
    best: dict | None
    baseline: dict
    chosen: dict | None
    requirements: list[RequirementSet]
    replay: tuple
    site_mw: float
    currency: str
    report: Path


def run_grid_study(
    facility: str,
    requirements: list[str],
    jobs: list[str] | None,
    out: Path,
    *,
    job_start_s: float = 60.0,
    duration_s: float = 600.0,
    step_s: float = 0.01,
    event: str = "nerc-2024-07-10",
    engine: str = "dask",
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
) -> GridStudy:
    """Validate every input, run the sweep on the batch runner, pick the cheapest compliant mix, replay the
    voltage event and write ``report.html``; errors name the CLI option. The caller checks ``out`` first
    (the CLI: no overwrite without --force)."""
    from factory_twin.optimization.studies.grid_report import write_grid_report
    from factory_twin.twin.runs.batch import collect, run_batch
    from factory_twin.twin.runs.metadata import describe
    from factory_twin.twin.runs.netcdf import write_netcdf

    if not duration_s > 0:
        raise ValueError(f"--duration: must be > 0, got {duration_s:g} s")
    if not 0 < step_s <= 1.0:
        raise ValueError(f"--step: must be in (0, 1] s, got {step_s:g}")
    if not 0 <= job_start_s < duration_s:
        raise ValueError(f"--job-start: must lie in [0, {duration_s:g}) s (the --duration), got {job_start_s:g}")
    try:
        reqs = [load_requirements(r) for r in requirements]
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(f"--requirements: {e}") from None
    try:
        ev = load_event(event)
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(f"--event: {e}") from None
    job_specs = parse_jobs(jobs, job_start_s)
    f, _, _, currency = _site(facility)
    if not job_specs:
        job_specs = parse_jobs([str(int(f.gpus[training_racks(f)].sum()))], job_start_s)
    place_jobs(f, _jobs(job_specs, 1.0, 0.0))  # fits? (errors name --jobs)
    req_files = [r.source for r in reqs]
    cases, dims = sweep_cases(facility, req_files, job_specs, duration_s, step_s)
    out.mkdir(exist_ok=True)
    run_batch(run_case, cases, out, engine=engine, scheduler=scheduler, workers=workers, resume=resume)
    ds = collect(out, dims)
    for name, (units, long_name) in (RESULTS | _rule_results(reqs)).items():
        if name in ds.variables:
            ds[name].attrs |= {"units": units, "long_name": long_name}
    ds.attrs |= {
        "study": "grid-study",
        "facility": facility,
        "currency": currency,
        "requirements": ", ".join(r.name for r in reqs),
    }
    ds = describe(ds)
    write_netcdf(ds, out / "results.nc")  # again, with the study's attributes (the Studies page lists it by them)
    best = best_case(ds)
    zero = {k: dims[k][0] for k in SWEEP_KEYS} | {"job_share": 1.0}
    common = {"facility": facility, "requirements": req_files, "jobs": job_specs, "duration_s": duration_s}
    baseline = run_case(**common, dt_s=step_s, keep_series=True, **zero)
    chosen = run_case(**common, dt_s=step_s, keep_series=True, **best) if best else None
    nogrr = next((r for r in reqs if r.ride_through), None)
    site_mw = baseline["poi_mean_mw"]
    replay = replay_event(ev, site_mw, nogrr)
    path = write_grid_report(out / "report.html", ds, best, baseline, chosen, reqs, ev, replay, site_mw, currency)
    return GridStudy(ds, best, baseline, chosen, reqs, replay, site_mw, currency, path)


def summary_lines(study: GridStudy) -> list[str]:
    """The CLI's end-of-run summary: baseline and chosen verdicts, costs, the replay, where the files are."""
    ds, cur = study.results, study.currency
    failed = int((ds.status != 0).sum())
    lines = [f"{int(ds.status.size) - failed} case(s) ok, {failed} failed"]
    for label, case in (("unmitigated", study.baseline), ("chosen", study.chosen)):
        if case is None:
            continue
        lines.append(f"{label}:")
        for q in study.requirements:
            for v in compliance(list(q.rules), case["_run"].poi_w, case["_run"].dt_s):
                lines.append(f"  {q.name}/{v.rule.name}: {v.value:.3g} {v.rule.units} (limit {v.rule.limit:g}) "
                             f"{'pass' if v.ok else 'FAIL'}")  # fmt: skip
        lines.append(
            f"  energy overhead {case['energy_overhead_mwh']:.3f} MWh, value lost {case['value_lost']:,.0f} {cur}, "
            f"total {case['total_cost']:,.0f} {cur}"
        )
    if study.best:
        lines.append("cheapest compliant mix: " + ", ".join(f"{k}={v:g}" for k, v in study.best.items()))
    else:
        lines.append("MISSED: no mitigation mix in the sweep meets every rule")
    rows = study.replay[2]
    lines.append(f"voltage-event replay ({study.site_mw:.0f} MW at risk):")
    for r in rows:
        latch = "-" if math.isnan(r.latch_s) else f"{r.latch_s:.3f} s"
        back = "never" if math.isinf(r.recovery_s) else f"{r.recovery_s:.2f} s"
        lines.append(f"  {r.name}: max lost {r.max_lost_mw:.0f} MW, latched {latch}, back {back}, "
                     f"lost at end {r.end_lost_mw:.0f} MW")  # fmt: skip
    lines.append(f"wrote {study.report} and {study.report.parent / 'results.nc'}")
    return lines
