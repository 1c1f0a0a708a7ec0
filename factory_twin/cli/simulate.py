"""``factory-twin simulate``: a run in one piece in memory, or a long run cut into segments on Dask."""

from __future__ import annotations

import sys
from pathlib import Path

from factory_twin.cli.options import (
    EXIT_MISSED_TARGET,
    DefaultsFormatter,
    add_convert_hall,
    add_dask_options,
    add_duration,
    add_facility_scenario,
    check_output_file,
    dask_place,
    facility_from,
    print_table,
)

SEGMENT_ONLY = ("--report", "--resume", "--scheduler", "--workers")  # options of a run cut into segments


def add_parsers(sub) -> None:
    s = sub.add_parser(
        "simulate",
        help="simulate a facility under a scenario",
        formatter_class=DefaultsFormatter,
        epilog=f"Exit status {EXIT_MISSED_TARGET}: the run missed a DR or import-limit target (see the summary).",
    )
    add_facility_scenario(s)
    add_convert_hall(s)
    s.add_argument("--start", help="ISO local time (default: the scenario's start)")
    add_duration(
        s,
        "simulated time, e.g. 2h, 30d, 1y; a run longer than --segment is cut into segments (needs --out)",
        default="24h",
        old="--hours",
    )
    s.add_argument("--step", default="1s", help="rack thermal step (e.g. 1s)")
    s.add_argument("--plant-step", default="20s", help="loop/plant step (multiple of --step)")
    s.add_argument("--record", default="60s", help="output interval (multiple of --plant-step)")
    s.add_argument(
        "--controller",
        default="auto",
        help="auto | uncapped | fixed:FRACTION | mpc | mpc-n1 (N-1 rows of the one-line diagram); auto runs mpc "
        "when DR events fall in the run, else uncapped",
    )
    s.add_argument("--out", type=Path, help="write the run to this NetCDF file")
    s.add_argument("--force", action="store_true", help="overwrite --out if it exists (or restart an unfinished run)")
    s.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:NAME@TIME[+DURATION]",
        help="open an element of the one-line diagram on purpose, e.g. feed-loss:utility-A@2026-08-08T14:00 "
        "(repeatable; added to the scenario's faults)",
    )
    seg = s.add_argument_group("segmented runs (a --duration longer than --segment)")
    seg.add_argument(
        "--segment", default="1d", help="segment length, run in parallel; a run up to this long runs in one piece"
    )
    seg.add_argument("--overlap", default="30min", help="warm-up run before each segment and dropped")
    add_dask_options(seg, "segments")
    seg.add_argument("--report", type=Path, help="also write the annual figures with monthly plots (offline HTML)")
    s.set_defaults(run=run_simulate)


def run_simulate(args) -> int:
    """One piece up to ``--segment`` (every variable, any controller), else :func:`run_segmented`."""
    from factory_twin import twin
    from factory_twin.optimization.controllers import make_controller
    from factory_twin.twin.runs.netcdf import write_netcdf
    from factory_twin.twin.runs.progress import ProgressBar
    from factory_twin.twin.runs.provenance import provenance
    from factory_twin.twin.scenario.timeparse import seconds
    from factory_twin.twin.simulation.targets import run_misses, target_attrs

    if args.duration > seconds(args.segment, "--segment"):
        return run_segmented(args)
    for option in SEGMENT_ONLY:
        if getattr(args, option[2:]):
            raise ValueError(
                f"{option}: only for a run cut into segments (a --duration longer than --segment {args.segment}); "
                "this one runs in one piece"
            )
    check_output_file(args.out, args.force)
    f = facility_from(args)
    sc = with_faults(twin.load_scenario(args.scenario, f), f, args.fault)
    name, why = controller_choice(args.controller, sc, args.start, args.duration)
    ctl = make_controller(name, f, sc, option="--controller")
    print(f"controller: {name}{why}")
    outside = dr_outside_warning(sc, args.start, args.duration, f.spec.site.utc_offset_h)
    if outside:
        print(f"warning: {outside}", file=sys.stderr)
    ds = twin.simulate(
        f,
        sc,
        start=args.start,
        duration=args.duration,
        step=args.step,
        plant_step=args.plant_step,
        record_every=args.record,
        controller=ctl,
        progress=ProgressBar("simulate"),
    )
    misses = run_misses(ds)
    ds.attrs |= provenance(f, sc, name) | target_attrs(misses)
    ds.attrs["dr_events_in_run"] = len(dr_events_in_run(sc, args.start, args.duration))
    missed = f"MISSED ({len(misses)})" if misses else None
    print_table([*summary_rows(ds), ("grid targets", targets_text(missed, outside))])
    for m in misses:
        print(f"warning: {m}", file=sys.stderr)
    for m in tier_warnings(ds):
        print(f"warning: {m}", file=sys.stderr)
    if args.out:
        write_netcdf(ds, args.out)
        print(f"wrote {args.out}")
    return EXIT_MISSED_TARGET if misses else 0


def run_segmented(args) -> int:
    """A run longer than ``--segment``: segments on Dask (or serially) streamed into ``--out``; every check
    before any work."""
    from factory_twin import twin
    from factory_twin.models.units import S_PER_H, S_PER_MIN
    from factory_twin.optimization.controllers import make_controller
    from factory_twin.twin.runs import annual, segments
    from factory_twin.twin.runs.progress import ProgressBar
    from factory_twin.twin.runs.provenance import provenance

    if args.out is None:
        raise ValueError(
            f"--out: a run longer than --segment {args.segment} streams its results into a NetCDF file; name one "
            "(or give a --segment as long as --duration to run it in one piece)"
        )
    check_output_file(args.out, args.force)
    check_output_file(args.report, args.force, "--report")
    f = facility_from(args)
    sc = with_faults(twin.load_scenario(args.scenario, f), f, args.fault)
    name, why = args.controller, ""
    if name == "auto":  # the MPC keeps state (BESS energy, plans) and cannot be cut into segments
        name, why = "uncapped", " (auto: a segmented run needs a controller without memory; DR events not followed)"
    ctl = make_controller(name, f, sc, option="--controller")
    segments.check_controller(ctl)
    plan = segments.plan_segments(
        args.start or sc.start, args.duration, args.segment, args.overlap, args.step, args.plant_step, args.record
    )
    where = dask_place(args)
    print(f"controller: {name}{why}")
    outside = dr_outside_warning(sc, args.start, args.duration, f.spec.site.utc_offset_h)
    if outside:
        print(f"warning: {outside}", file=sys.stderr)
    warm = f"{plan.overlap_s / S_PER_MIN:g} min warm-up"
    print(f"{plan.n_segments} segment(s) of {plan.segment_s / S_PER_H:g} h after {warm}, {where}")
    ds = segments.run_segments(
        f,
        sc,
        plan,
        args.out,
        controller=ctl,
        scheduler=args.scheduler,
        workers=args.workers,
        serial=args.serial,
        resume=args.resume,
        force=args.force,
        progress=ProgressBar("segments"),
        attrs=provenance(f, sc, name) | {"dr_events_in_run": len(dr_events_in_run(sc, args.start, args.duration))},
    )
    met = bool(ds.attrs["targets_met"])
    print_table(
        [
            *annual.rows(ds),
            ("max die temperature [degC]", f"{float(ds.die_temp_max_c.max()):.2f}"),
            ("heat book residual", f"{ds.attrs['heat_book_residual']:.2e}"),
            ("electric book residual", f"{ds.attrs['electric_book_residual']:.2e}"),
            ("seam error max [K]", f"{ds.attrs['seam_error_max_k']:.2e} (bound {ds.attrs['seam_tolerance_k']:g})"),
            ("grid targets", targets_text(None if met else f"MISSED: {ds.attrs['missed_targets']}", outside)),
        ]
    )
    print(f"wrote {args.out}")
    if args.report:
        from factory_twin.optimization.studies.report import write_year_report

        write_year_report(ds, args.report)
        print(f"wrote {args.report}")
    return 0 if met else EXIT_MISSED_TARGET


def summary_rows(ds) -> list[tuple[str, object]]:
    """The end-of-run table from the recorded meters and the run's totals (twin.simulation.meters.period_totals)."""
    from factory_twin.twin.simulation.meters import period_totals

    t, cur = period_totals(ds), ds.attrs.get("currency", "")
    return [
        ("grid energy [MWh]", f"{t['grid_energy_mwh']:,.1f}"),
        ("peak import [MW]", f"{float(ds.grid_import_mw.max()):.2f}"),
        ("mean PUE", f"{float(ds.pue.mean()):.4f}"),
        ("max die temperature [degC]", f"{float(ds.die_temp_c.max()):.2f}"),
        ("throttled GPU-hours", f"{t['throttled_gpu_hours']:,.1f}"),
        ("tokens [1e12]", f"{t['tokens'] / 1e12:,.3f}"),
        ("throughput kept", f"{float(ds.throughput.mean()):.4f}"),
        (f"energy cost [{cur}]", f"{t['cost']:,.0f}"),
        (f"cost per million tokens [{cur}]", f"{t['cost_per_mtok']:,.3f}" if t["tokens"] else "n/a"),
        ("heat book residual", f"{ds.attrs['heat_book_residual']:.2e}"),
        ("electric book residual", f"{ds.attrs['electric_book_residual']:.2e}"),
        *tier_rows(ds),
    ]


def tier_rows(ds) -> list[tuple[str, object]]:
    """Rows of the one-line diagram (facilities with a ``[topology]``): trips, dark racks, highest loading."""
    if "tier_loading_max" not in ds:
        return []
    return [
        ("highest element loading", f"{float(ds.tier_loading_max.max()):.1%}"),
        ("breaker trips", ds.attrs.get("tier_trips", 0)),
        ("racks dark at the end", int(ds.racks_dark.values[-1])),
    ]


def tier_warnings(ds) -> list[str]:
    """Trips, dark racks and elements above their continuous limit, one line each (never a silent overload)."""
    out = []
    if ds.attrs.get("tier_over_limit"):
        out.append(f"elements above their continuous limit: {ds.attrs['tier_over_limit']}")
    if ds.attrs.get("tier_trips"):
        out.append(f"{ds.attrs['tier_trips']} breaker trip(s); events: {ds.attrs['tier_events'][:600]}")
    return out


def with_faults(sc, f, faults: list[str]):
    """The scenario with ``--fault`` entries added (each checked against the facility's one-line diagram)."""
    if not faults:
        return sc
    from factory_twin.twin.scenario.faults import parse_fault

    parsed = tuple(parse_fault(text) for text in faults)
    unknown = [p.element for p in parsed if p.element not in f.topology.index]
    if unknown:
        raise ValueError(f"--fault: no element {unknown} in the one-line diagram of {f.spec.name} (its feeds: "
                         f"{[f.topology.names[i] for i in f.topology.roots]})")  # fmt: skip
    return sc.with_changes(faults=sc.faults + parsed)


def controller_choice(name: str, sc, start=None, duration_s: float | None = None) -> tuple[str, str]:
    """The controller to run for ``--controller name`` and why (``auto``: mpc when DR events fall in the run from
    ``start`` (default: the scenario's) for ``duration_s``)."""
    if name != "auto":
        return name, ""
    inside = dr_events_in_run(sc, start, duration_s)
    if inside:
        return "mpc", f" (auto: {len(inside)} DR event(s) in the run; --controller uncapped ignores them)"
    if sc.dr_events:
        return "uncapped", f" (auto: none of the scenario's {len(sc.dr_events)} DR event(s) falls in the run)"
    return "uncapped", " (auto: no DR events in the scenario)"


def dr_events_in_run(sc, start=None, duration_s: float | None = None) -> list:
    """The scenario's DR events that fall in the run (all of them when no length is given)."""
    import numpy as np

    from factory_twin.twin.simulation.targets import events_within

    if duration_s is None:
        return list(sc.dr_events)
    t0 = np.datetime64(start if start is not None else sc.start, "s")
    return events_within(sc.dr_events, t0, t0 + np.timedelta64(round(duration_s), "s"))


def dr_outside_warning(sc, start=None, duration_s: float | None = None, utc_offset_h: float = 0.0) -> str | None:
    """A warning when the scenario has DR events and none falls in the run (nothing of them to meet); times in the
    site's local time ``utc_offset_h`` from UTC, with that zone."""
    from factory_twin.twin.scenario.timeparse import site_time

    if not sc.dr_events or dr_events_in_run(sc, start, duration_s):
        return None
    when = ", ".join(
        f"{site_time(ev.start, utc_offset_h)} to {site_time(ev.end, utc_offset_h)}" for ev in sc.dr_events[:3]
    )
    when += " ..." if len(sc.dr_events) > 3 else ""
    return (
        f"no DR event falls in the run ({dr_run_window(sc, start, duration_s, utc_offset_h)}): the scenario's "
        f"{len(sc.dr_events)} event(s) are at {when}; only the import limit is checked"
    )


def targets_text(missed: str | None, outside: str | None) -> str:
    """The summary's grid-targets cell: what was missed, else met (the import limit only when no DR event fell in
    the run)."""
    return missed or ("met (import limit only: no DR event in the run)" if outside else "met")


def dr_run_window(sc, start, duration_s: float, utc_offset_h: float = 0.0) -> str:
    import numpy as np

    from factory_twin.twin.scenario.timeparse import site_time

    t0 = np.datetime64(start if start is not None else sc.start, "s")
    return f"{site_time(t0, utc_offset_h)} to {site_time(t0 + np.timedelta64(round(duration_s), 's'), utc_offset_h)}"


__all__ = [
    "add_parsers",
    "controller_choice",
    "dr_events_in_run",
    "dr_outside_warning",
    "run_segmented",
    "run_simulate",
    "summary_rows",
    "with_faults",
]
