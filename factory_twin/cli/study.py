"""``factory-twin study`` (a batch study from TOML) and ``factory-twin grid-study`` (sub-second grid
compliance and the cheapest mitigation mix), both resumable on Dask."""

from __future__ import annotations

import sys
from pathlib import Path

from factory_twin.cli.options import (
    EXIT_FAILED_PIECES,
    EXIT_INTERRUPTED,
    EXIT_MISSED_TARGET,
    DefaultsFormatter,
    add_dask_options,
    add_duration,
    add_facility_argument,
    builtin_names,
    check_output_dir,
)

STUDY_FILES = ("results.nc", "report.html", "cases")


def add_parsers(sub) -> None:
    st = sub.add_parser(
        "study",
        help="run a batch study (TOML) on Dask or serially",
        formatter_class=DefaultsFormatter,
        epilog=f"Exit status {EXIT_FAILED_PIECES}: some cases failed (the others are in results.nc).",
    )
    names = builtin_names("studies")
    st.add_argument("study", type=Path, help=f"study TOML path, built-in name ({names}) or maxlps (docs/maxlps.md)")
    st.add_argument("--out", type=Path, default=Path("study-out"), help="folder for results.nc, report.html, cases/")
    st.add_argument("--force", action="store_true", help="overwrite an earlier study in --out")
    add_dask_options(st, "cases", workers="the study's, else the CPU count")
    m = st.add_argument_group("maxlps", "the MaxLPS sizing study (study maxlps)")
    m.add_argument("--shells", type=float, nargs="+", default=[96.0, 250.0, 1000.0], help="power shells [MW]")
    m.add_argument("--template", default="campus-1gw", help="facility whose racks, plant and workload are sized")
    m.add_argument("--windows", type=int, help="1 s windows over the year (default: data/power_policies.toml)")
    m.add_argument("--window", type=float, help="length of each window [s] (default: data/power_policies.toml)")
    st.set_defaults(run=run_study)

    g = sub.add_parser(
        "grid-study",
        help="sub-second grid compliance and the cheapest mitigation mix",
        formatter_class=DefaultsFormatter,
        epilog=f"Exit status {EXIT_MISSED_TARGET}: no mix of the sweep complies with every requirement.",
    )
    add_facility_argument(g)
    g.add_argument(
        "--requirements",
        nargs="+",
        required=True,
        help=f"requirement sets: built-in names ({builtin_names('grid_codes')}) or TOML files",
    )
    g.add_argument("--jobs", nargs="+", help="training jobs GPUS[:PERIOD_S[:DUTY]] (default: one on all training GPUs)")
    g.add_argument("--job-start", type=float, default=60.0, help="seconds into the window when the jobs start")
    add_duration(g, "length of the fast run (a window of the campus at --step)", default="10min", old="--minutes")
    g.add_argument("--step", type=float, default=0.01, help="fast-run step [s]")
    g.add_argument(
        "--event",
        default="nerc-2024-07-10",
        help=f"voltage-event fixture to replay: built-in name ({builtin_names('grid_events')}) or TOML file",
    )
    g.add_argument("--out", type=Path, required=True, help="folder for cases/, results.nc and report.html")
    g.add_argument("--force", action="store_true", help="overwrite a previous study in --out")
    add_dask_options(g, "cases")
    g.set_defaults(run=run_grid_study)


def run_study(args) -> int:
    import shutil

    if str(args.study) == "maxlps" and not args.study.is_file():
        return run_maxlps(args)

    from factory_twin.optimization.studies.runner import run_study_file

    check_output_dir(args.out, STUDY_FILES, args.force, args.resume)
    if args.force and not args.resume and (args.out / "cases").is_dir():
        shutil.rmtree(args.out / "cases")  # --force: start over
    try:
        ds = run_study_file(
            args.study, args.out, resume=args.resume, scheduler=args.scheduler, workers=args.workers, serial=args.serial
        )
    except KeyboardInterrupt:
        kept = len(list((args.out / "cases").glob("*.json")))
        print(
            f"\ninterrupted: {kept} finished case(s) kept in {args.out / 'cases'}; "
            f"continue with: factory-twin study {args.study} --out {args.out} --resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    failed = int((ds.status != 0).sum())
    print(f"{int(ds.status.size) - failed} case(s) ok, {failed} failed")
    return EXIT_FAILED_PIECES if failed else 0


def run_maxlps(args) -> int:
    """``study maxlps``: GPUs per policy in each power shell (optimization.studies.maxlps)."""
    import shutil

    from factory_twin.optimization.studies.maxlps import STUDY_FILES as MAXLPS_FILES
    from factory_twin.optimization.studies.maxlps import maxlps_study, summary_lines

    if any(not (x > 0) for x in args.shells):
        raise ValueError(f"--shells: power shells must be > 0 MW, got {args.shells}")
    if args.windows is not None and args.windows < 1:
        raise ValueError(f"--windows: at least 1, got {args.windows}")
    if args.window is not None and not args.window >= 60:
        raise ValueError(f"--window: at least 60 s, got {args.window:g}")
    check_output_dir(args.out, MAXLPS_FILES, args.force, args.resume)
    if args.force and not args.resume:
        shutil.rmtree(args.out / "cases", ignore_errors=True)
    ds = maxlps_study(args.template, tuple(args.shells), out=args.out, windows=args.windows, window_s=args.window,
                      serial=args.serial, workers=args.workers, scheduler=args.scheduler)  # fmt: skip
    for line in summary_lines(ds):
        print(line)
    a = ds.attrs
    missed = a["trips"] > 0 or a["over_import_s"] > 0
    if missed:
        print(f"MISSED: {int(a['trips'])} trip(s), {a['over_import_s']:g} s above the import limit under MaxLPS")
    return EXIT_MISSED_TARGET if missed else 0


def run_grid_study(args) -> int:
    import shutil

    from factory_twin.optimization.studies.grid_study import GRID_STUDY_FILES, run_grid_study, summary_lines

    check_output_dir(args.out, GRID_STUDY_FILES, args.force, args.resume)
    if args.force and not args.resume:  # --force: start over (only the files a grid study writes)
        shutil.rmtree(args.out / "cases", ignore_errors=True)
        for name in GRID_STUDY_FILES[1:]:
            (args.out / name).unlink(missing_ok=True)
    study = run_grid_study(
        args.facility,
        args.requirements,
        args.jobs,
        args.out,
        job_start_s=args.job_start,
        duration_s=args.duration,
        step_s=args.step,
        event=args.event,
        engine="serial" if args.serial else "dask",
        workers=args.workers,
        scheduler=args.scheduler,
        resume=args.resume,
    )
    for line in summary_lines(study):
        print(line)
    return 0 if study.best else EXIT_MISSED_TARGET


__all__ = ["STUDY_FILES", "add_parsers", "run_grid_study", "run_maxlps", "run_study"]
