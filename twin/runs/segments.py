"""Long runs (up to a year) cut into segments that run in parallel on Dask, streamed into one NetCDF.

Segment ``k`` covers ``[t_k, t_k + segment)`` of the run (the last one may be shorter). It starts ``overlap``
earlier from the steady state every run starts from (:class:`~factory_twin.twin.simulation.engine.Twin`) and drops the
overlap's records: the loops and rack nodes forget how they started (cold plate ~15 s, TCS loop transit
~15 s, facility-water return ~40 s at campus-1gw; ``bench/bench_year.py`` measures the seam error against
the overlap). Segment 0 starts at ``t_0`` from the steady state exactly like a serial run.

Seam error: at each seam, the largest difference between the previous segment's last record and the next
segment's overlap at the same time, over every recorded temperature (die of every rack, TCS supply and
return of every CDU, facility-water supply and return) [K]. A segmented run needs a controller without
memory (uncapped, fixed caps): a BESS it never commands keeps its energy, and the seam check verifies that.

Energy books of the whole run: each segment's heat and electric books from its record series (kept window
only), summed; the heat book also carries the stored-heat jumps at the seams, so a seam error shows up in
``heat_book_residual`` (``seam_heat_mwh`` gives the jumps on their own).

Output (``run_segments``): the recorded meters of :mod:`~factory_twin.twin.simulation.meters` at the record
interval, plus the hottest die and the number of CDUs at capacity at each record. A segment records only
these (:class:`~factory_twin.twin.simulation.recorder.CampusRecorder`): per-rack and per-CDU arrays only at the end of
its overlap and at its end, for the seam check (a year of them at 1 GW would be ~45 GB). The file is
written as segments finish and a killed run resumes (:mod:`~factory_twin.twin.runs.streamed`).
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import xarray as xr
from factory_twin.models.units import J_PER_MWH, MJ, MW
from factory_twin.twin.facility.assembly import Facility
from factory_twin.twin.runs.provenance import fingerprint
from factory_twin.twin.runs.streamed import Layout, Summary, run_streamed
from factory_twin.twin.scenario.scenario import Scenario
from factory_twin.twin.scenario.timeparse import seconds
from factory_twin.twin.simulation import meters
from factory_twin.twin.simulation.controllers import Controller, FixedCap, Uncapped
from factory_twin.twin.simulation.engine import simulate
from factory_twin.twin.simulation.recorder import REDUCED, STATE, CampusRecorder
from factory_twin.twin.simulation.targets import run_misses, target_attrs

SEAM_TOLERANCE_K = 0.01  # the bound a segmented run promises at its seams
STATE_VARS = (*STATE, "fws_supply_c", "fws_return_c")  # the temperatures compared at a seam


@dataclass(frozen=True)
class SegmentPlan:
    """Times of a segmented run (seconds; ``start`` as ISO text so the plan is JSON)."""

    start: str
    duration_s: float
    segment_s: float
    overlap_s: float
    step_s: float
    plant_step_s: float
    record_s: float

    @property
    def n_segments(self) -> int:
        return math.ceil(self.duration_s / self.segment_s - 1e-9)

    @property
    def per_segment(self) -> int:
        return int(round(self.segment_s / self.record_s))

    @property
    def n_records(self) -> int:
        return int(round(self.duration_s / self.record_s))

    def bounds(self, k: int) -> tuple[int, int]:
        """Record index range ``[i0, i1)`` of segment ``k`` in the whole run."""
        return k * self.per_segment, min((k + 1) * self.per_segment, self.n_records)

    def segment_start(self, k: int) -> np.datetime64:
        return np.datetime64(self.start, "s") + np.timedelta64(int(round(k * self.segment_s)), "s")


def plan_segments(
    start: np.datetime64 | str,
    duration: str | float,
    segment: str | float = "1d",
    overlap: str | float = "30min",
    step: str | float = "1s",
    plant_step: str | float = "20s",
    record_every: str | float = "60s",
) -> SegmentPlan:
    """Check the times of a segmented run (errors name the option) and return its plan."""
    plan = SegmentPlan(
        str(np.datetime64(start, "s")),
        seconds(duration, "duration"),
        seconds(segment, "segment"),
        seconds(overlap, "overlap"),
        seconds(step, "step"),
        seconds(plant_step, "plant_step"),
        seconds(record_every, "record_every"),
    )
    for name, value in (
        ("duration", plan.duration_s),
        ("segment", plan.segment_s),
        ("overlap", plan.overlap_s),
    ):
        n = value / plan.record_s
        if abs(n - round(n)) > 1e-9:
            raise ValueError(f"{name}: {value:g} s must be a whole multiple of record_every {plan.record_s:g} s")
    n = plan.record_s / plan.plant_step_s
    if abs(n - round(n)) > 1e-9:
        raise ValueError(f"record_every: {plan.record_s:g} s must be a whole multiple of plant_step")
    return plan


def check_controller(controller: Controller | None) -> None:
    """Segments run independently: only controllers without memory can be split."""
    if controller is not None and not isinstance(controller, Uncapped | FixedCap):
        raise ValueError(
            f"controller: {type(controller).__name__} keeps state across the run (BESS energy, plans), so a "
            "segmented run cannot split it; use uncapped or fixed:FRACTION, or run it in one piece (--segment "
            "as long as --duration)"
        )


def run_segment(
    facility: Facility, scenario: Scenario, plan: SegmentPlan, controller: Controller | None, k: int
) -> dict:
    """Simulate segment ``k`` (with its overlap); return its kept series, seam states and books."""
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    overlap_s = plan.overlap_s if k > 0 else 0.0
    i0, i1 = plan.bounds(k)
    start = plan.segment_start(k) - np.timedelta64(int(round(overlap_s)), "s")
    n_over = int(round(overlap_s / plan.record_s))
    ds = simulate(
        facility,
        scenario,
        start=start,
        duration=overlap_s + (i1 - i0) * plan.record_s,
        step=plan.step_s,
        plant_step=plan.plant_step_s,
        record_every=plan.record_s,
        controller=controller,
        recorder=functools.partial(CampusRecorder, states_at=(n_over - 1, -1) if n_over else (-1,)),
    )
    kept = ds.isel(time=slice(n_over, None))
    stored = ds.stored_heat_mj.values * MJ
    stored0 = stored[n_over - 1] if n_over else stored[-1] - ds.attrs["heat_stored_change_mwh"] * J_PER_MWH
    j = plan.record_s * MW / J_PER_MWH  # MW held for one record -> MWh
    out = {f"series/{name}": kept[name].values.astype(float) for name in (*meters.RECORDED, *REDUCED)}
    # the state at the end of the overlap and of the segment: per rack/CDU (state records) or campus (series)
    at = {v: (0, -1) if v in STATE else (n_over - 1, -1) for v in STATE_VARS}
    out |= {f"head/{v}": np.atleast_1d(ds[v].values[at[v][0]]) for v in STATE_VARS if n_over}
    out |= {f"tail/{v}": np.atleast_1d(ds[v].values[at[v][1]]) for v in STATE_VARS}
    out |= {
        "time": kept.time.values.astype("datetime64[s]").astype(np.int64),
        "head_stored_mwh": stored0 / J_PER_MWH,
        "tail_stored_mwh": stored[-1] / J_PER_MWH,
        "head_bess_mwh": ds.bess_soc_mwh.values[n_over - 1] if n_over else np.nan,
        "tail_bess_mwh": ds.bess_soc_mwh.values[-1],
        "heat_in_mwh": float(kept.it_power_mw.sum()) * j,
        "heat_out_mwh": float(kept.heat_rejected_mw.sum()) * j,
        "grid_mwh": float(kept.grid_import_mw.sum()) * j,
        "books_rhs_mwh": float((kept.it_power_mw + kept.losses_mw + kept.cooling_power_mw - kept.bess_power_mw).sum())
        * j,
        "wall_s": time.perf_counter() - t_wall,
        "cpu_s": time.process_time() - t_cpu,
    }
    return out


def seam_error_k(prev: dict, nxt: dict) -> float:
    """Largest temperature difference [K] between ``prev``'s last state and ``nxt``'s overlap at that time."""
    return max(float(np.max(np.abs(prev[f"tail/{v}"] - nxt[f"head/{v}"]))) for v in STATE_VARS)


def run_segments(
    facility: Facility,
    scenario: Scenario,
    plan: SegmentPlan,
    out: str | os.PathLike[str],
    controller: Controller | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    resume: bool = False,
    force: bool = False,
    progress: Callable[[float, str], None] | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Run every segment of ``plan`` (serially, or on Dask: a local cluster of ``workers`` processes or the
    scheduler at ``scheduler``) and stream the results into the NetCDF ``out``; return the finished Dataset.

    ``resume`` continues a killed run of the same plan (finished segments are not run again); ``force``
    overwrites an existing ``out``; ``attrs`` are added to the file's attributes (provenance). Grid-target
    misses (:mod:`~factory_twin.twin.simulation.targets`) go into the attributes as in a serial run. A segment that
    fails does not stop the others: the run then raises ``RuntimeError`` naming the failed segments and keeps
    what finished for ``resume`` (see :func:`~factory_twin.twin.runs.streamed.run_streamed`).
    """
    check_controller(controller)
    config = {"plan": asdict(plan), "controller": repr(_controller_key(controller))} | fingerprint(facility, scenario)
    _scenario_covers(scenario, plan)
    described = {name: meters.attrs(name) for name in meters.RECORDED}
    described |= {name: {"units": units, "long_name": text} for name, (units, text) in REDUCED.items()}
    layout = Layout(
        plan.n_records,
        plan.per_segment,
        np.array([plan.segment_start(k).astype(np.int64) for k in range(plan.n_segments)]),
        {name: (("time",), a) for name, a in described.items()},
    )

    def summarize(segs: list[dict]) -> Summary:
        return _run_summary(segs, plan, facility, scenario, attrs or {})

    def misses(partial: Path) -> dict:
        with xr.open_dataset(partial, engine="h5netcdf") as ds:
            return target_attrs(run_misses(ds[["grid_import_mw", "import_limit_mw", "dr_target_mw"]].load()))

    return run_streamed(
        out,
        config,
        layout,
        run_segment,
        (facility, scenario, plan, controller),
        summarize,
        scheduler=scheduler,
        workers=workers,
        serial=serial,
        resume=resume,
        force=force,
        progress=progress,
        after=misses,
    )


def _controller_key(controller: Controller | None) -> tuple:
    if isinstance(controller, FixedCap):
        return ("fixed", controller.fraction)
    return ("uncapped",)


def _scenario_covers(scenario: Scenario, plan: SegmentPlan) -> None:
    """Grid signals must cover the run (with the first overlap) before any work starts."""
    sig = scenario.signals
    first = np.datetime64(plan.start, "s")
    last = first + np.timedelta64(int(round(plan.duration_s)), "s")
    if first < sig.time[0] or last > sig.time[-1] + sig.step:
        raise ValueError(
            f"start/duration: the scenario's grid signals cover {sig.time[0]} .. {sig.time[-1] + sig.step}, "
            f"the run needs {first} .. {last}"
        )


def _run_summary(segs: list[dict], plan: SegmentPlan, facility: Facility, scenario: Scenario, extra: dict) -> Summary:
    seams = [seam_error_k(a, b) for a, b in pairwise(segs)]
    bess = [abs(float(b["head_bess_mwh"]) - float(a["tail_bess_mwh"])) for a, b in pairwise(segs)]
    jumps = [float(b["head_stored_mwh"]) - float(a["tail_stored_mwh"]) for a, b in pairwise(segs)]
    heat_in = sum(float(s["heat_in_mwh"]) for s in segs)
    heat_out = sum(float(s["heat_out_mwh"]) for s in segs)
    stored = float(segs[-1]["tail_stored_mwh"]) - float(segs[0]["head_stored_mwh"])
    grid = sum(float(s["grid_mwh"]) for s in segs)
    rhs = sum(float(s["books_rhs_mwh"]) for s in segs)
    seam_max = max(seams, default=0.0)
    attrs = {
        "facility": facility.spec.name,
        "scenario": scenario.name,
        "start": plan.start,
        "step_s": plan.step_s,
        "plant_step_s": plan.plant_step_s,
        "record_s": plan.record_s,
        "segment_s": plan.segment_s,
        "overlap_s": plan.overlap_s,
        "segments": plan.n_segments,
        "seam_error_max_k": seam_max,
        "seam_tolerance_k": SEAM_TOLERANCE_K,
        "seam_bess_max_mwh": max(bess, default=0.0),
        "seam_heat_mwh": sum(jumps),
        "heat_in_mwh": heat_in,
        "heat_rejected_mwh": heat_out,
        "heat_stored_change_mwh": stored,
        "heat_book_residual": (heat_in - heat_out - stored) / heat_in,
        "electric_book_residual": (grid - rhs) / grid,
        "grid_energy_mwh": grid,
        "class_names": list(facility.class_names),
        "hall_names": list(facility.hall_names),
        "currency": scenario.signals.currency,
        "Conventions": "CF-1.10",
    }
    if seam_max > SEAM_TOLERANCE_K:
        attrs["warning"] = (
            f"seam error {seam_max:.3g} K exceeds {SEAM_TOLERANCE_K} K: lengthen --overlap (now {plan.overlap_s:g} s)"
        )
        warnings.warn(attrs["warning"], stacklevel=2)
    per_segment = {
        "segment_seam_error_k": (
            np.array([np.nan, *seams]),
            "K",
            "largest state temperature difference at the seam with the previous segment",
        ),
        "segment_wall_s": (np.array([float(s["wall_s"]) for s in segs]), "s", "wall time of the segment's task"),
        "segment_cpu_s": (np.array([float(s["cpu_s"]) for s in segs]), "s", "CPU time of the segment's task"),
    }
    return Summary(attrs | extra, per_segment)
