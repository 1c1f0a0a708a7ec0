"""``factory-twin``: validate, simulate, optimize, study and dashboard from the command line."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import factory_twin
from factory_twin.cli_flex import add_parsers as add_flex_parsers
from factory_twin.models.units import S_PER_H
from factory_twin.outputs import check_output_dir, check_output_file

DEFAULT_FACILITY = "campus-100mw"
EXIT_MISSED_TARGET = 5  # simulate: the run missed a DR or import-limit target (results are still written)
EXIT_FAILED_SEGMENTS = 4  # simulate --duration: segments failed (the finished ones are kept for --resume)
OBJECTIVE = "value of the tokens produced - energy cost - carbon cost - soft-limit penalties, maximized"
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), the shell's convention
STUDY_FILES = ("results.nc", "report.html", "cases")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        try:
            return args.run(args)
        except (ValueError, FileNotFoundError) as e:  # SpecError is a ValueError: print it whole, no traceback
            print(f"error: {e}", file=sys.stderr)
            return 1
        except RuntimeError as e:  # failed segments of a --duration run (the finished ones are kept for --resume)
            print(f"error: {e}", file=sys.stderr)
            return EXIT_FAILED_SEGMENTS
        except KeyboardInterrupt:  # Ctrl-C: what finished is on disk (a --duration run continues with --resume)
            print("interrupted: finished work is kept; a --duration run continues with --resume", file=sys.stderr)
            return EXIT_INTERRUPTED


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


class _Formatter(argparse.HelpFormatter):
    """Help text with the default of every option that has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _positive(unit: str):
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
        if not x > 0 or x != x or x == float("inf"):
            raise argparse.ArgumentTypeError(f"must be > 0 {unit}, got {text}")
        return x

    return parse


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="factory-twin",
        description="Digital twin of a liquid-cooled AI factory.",
        epilog=f"The default facility is {DEFAULT_FACILITY}, the built-in 100 MW reference campus "
        "(campus-1gw is the 1 GW one).",
    )
    p.add_argument("--version", action="version", version=f"factory-twin {factory_twin.__version__}")
    sub = p.add_subparsers(title="commands")

    v = sub.add_parser(
        "validate", help="check a facility (and scenario) and print a summary", formatter_class=_Formatter
    )
    _facility_scenario(v)
    v.set_defaults(run=_validate)

    s = sub.add_parser(
        "simulate",
        help="simulate a facility under a scenario",
        formatter_class=_Formatter,
        epilog=f"Exit status {EXIT_MISSED_TARGET}: the run missed a DR or import-limit target (see the summary).",
    )
    _facility_scenario(s)
    s.add_argument("--start", help="ISO local time (default: the scenario's start)")
    length = s.add_mutually_exclusive_group()
    length.add_argument("--hours", type=_positive("hours"), default=24.0, help="simulated duration [h]")
    length.add_argument(
        "--duration", help="run length like 30d or 1y, cut into --segment pieces that run in parallel (needs --out)"
    )
    s.add_argument("--step", default="1s", help="rack thermal step (e.g. 1s)")
    s.add_argument("--plant-step", default="20s", help="loop/plant step (multiple of --step)")
    s.add_argument("--record", default="60s", help="output interval (multiple of --plant-step)")
    s.add_argument(
        "--controller",
        default="auto",
        help="auto | uncapped | fixed:FRACTION | mpc; auto runs mpc when the scenario has DR events, else uncapped",
    )
    s.add_argument("--out", type=Path, help="write the run to this NetCDF file")
    s.add_argument("--force", action="store_true", help="overwrite --out if it exists (or restart an unfinished run)")
    seg = s.add_argument_group("segmented runs (--duration)")
    seg.add_argument("--segment", default="1d", help="segment length")
    seg.add_argument("--overlap", default="30min", help="warm-up run before each segment and dropped")
    _parallel(seg, "segments")
    seg.add_argument("--report", type=Path, help="also write the annual figures with monthly plots (offline HTML)")
    s.set_defaults(run=_simulate)

    o = sub.add_parser(
        "optimize",
        help="optimize GPU caps and BESS over a horizon",
        formatter_class=_Formatter,
        description="Plan GPU power caps and BESS power over a horizon with the dispatch LP. The objective is "
        "the value of the tokens produced minus the energy and carbon cost (and penalties of soft limits), in "
        "the scenario's currency; it is maximized.",
    )
    _facility_scenario(o)
    o.add_argument("--start", help="ISO local time (default: the scenario's start)")
    o.add_argument("--horizon", default="24h", help="planning horizon, with a unit (e.g. 24h, 90min, 2d)")
    o.add_argument("--step", default="5min", help="plan step, with a unit (e.g. 5min)")
    o.add_argument(
        "--soft", nargs="*", default=[], help="limits to make penalized slacks: import_limit ramp dr heat die flex cdu"
    )
    o.add_argument("--solver", default="simplex", choices=["simplex", "ipx", "pdlp", "choose"], help="HiGHS solver")
    o.add_argument(
        "--grouping",
        default="hall",
        choices=["hall", "cdu"],
        help="plan one cap per workload class x hall, or per class x CDU (with each CDU's heat and flow limits)",
    )
    o.add_argument("--time-limit", type=_positive("seconds"), default=300.0, help="solver time limit [s]")
    o.add_argument("--out", type=Path, help="write the plan to this NetCDF file")
    o.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    roll = o.add_argument_group("rolling plans (--duration)")
    roll.add_argument(
        "--duration", help="plan one --horizon after another over this period, e.g. 1y (in parallel; needs --out)"
    )
    _parallel(roll, "plans")
    o.set_defaults(run=_optimize)

    st = sub.add_parser("study", help="run a batch study (TOML) on Dask or serially", formatter_class=_Formatter)
    st.add_argument("study", type=Path, help="study TOML path or built-in name (flex-envelope, headroom, kpx-replay)")
    st.add_argument("--out", type=Path, default=Path("study-out"), help="folder for results.nc, report.html, cases/")
    st.add_argument("--resume", action="store_true", help="continue a run in --out, skipping finished cases")
    st.add_argument("--force", action="store_true", help="overwrite an earlier study in --out")
    st.add_argument("--scheduler", help="tcp://HOST:PORT of an existing Dask scheduler (default: a local cluster)")
    st.add_argument("--workers", type=_positive_int, help="local Dask workers (default: the study's, else the CPUs)")
    st.add_argument("--serial", action="store_true", help="no Dask, one process")
    st.set_defaults(run=_study)

    g = sub.add_parser(
        "grid-study", help="sub-second grid compliance and the cheapest mitigation mix", formatter_class=_Formatter
    )
    g.add_argument("facility", nargs="?", default=DEFAULT_FACILITY, help="built-in name or TOML path")
    g.add_argument("--requirements", nargs="+", required=True, help="requirement set names or TOML files")
    g.add_argument("--jobs", nargs="+", help="training jobs GPUS[:PERIOD_S[:DUTY]] (default: one on all training GPUs)")
    g.add_argument("--job-start", type=float, default=60.0, help="seconds into the window when the jobs start")
    g.add_argument("--minutes", type=float, default=10.0, help="length of the fast run")
    g.add_argument("--step", type=float, default=0.01, help="fast-run step [s]")
    g.add_argument("--event", default="nerc-2024-07-10", help="voltage-event fixture (name or TOML) to replay")
    g.add_argument("--out", type=Path, required=True, help="folder for cases/, results.nc and report.html")
    g.add_argument("--force", action="store_true", help="overwrite a previous study in --out")
    g.add_argument("--resume", action="store_true", help="continue an earlier study in --out")
    g.add_argument("--scheduler", help="tcp://HOST:PORT of an existing Dask scheduler")
    g.add_argument("--workers", type=int, help="local Dask worker processes (default: CPU count)")
    g.add_argument("--serial", action="store_true", help="no Dask, one process")
    g.set_defaults(run=_grid_study)

    d = sub.add_parser("dashboard", help="run the live twin and serve the dashboard", formatter_class=_Formatter)
    _facility_scenario(d)
    d.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    d.add_argument("--port", type=_positive_int, default=8050, help="TCP port")
    d.add_argument("--speed", type=_positive("x"), default=60.0, help="simulated seconds per wall second")
    d.add_argument("--controller", default="mpc", help="mpc | uncapped | fixed:FRACTION")
    d.add_argument("--studies-dir", type=Path, help="folder the Studies page may open files from (default: CWD)")
    d.add_argument("--flex-state", type=Path, help="a flex agent's --state-dir: adds the Grid flex page")
    d.add_argument("--debug", action="store_true", help="Dash debug mode (never in production)")
    d.add_argument(
        "--connect",
        metavar="URL",
        help="show a plant on DSX Exchange instead of the simulation: mqtt[s]://HOST:PORT (needs --state-dir)",
    )
    d.add_argument("--state-dir", type=Path, help="with --connect: connect's history, alarms and state")
    d.set_defaults(run=_dashboard)
    add_flex_parsers(sub)

    from factory_twin.dsx_cli import add_parsers

    add_parsers(sub, _Formatter)  # emulate-bms, connect (DSX Exchange)
    return p


def _facility_scenario(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "facility", nargs="?", default=DEFAULT_FACILITY, help="built-in name (campus-100mw, campus-1gw) or TOML path"
    )
    p.add_argument(
        "--scenario", help="scenario TOML path or built-in name (hot-day-dr, heatwave); default: the built-in defaults"
    )


def _validate(args) -> int:
    from factory_twin import twin
    from factory_twin.twin.simulation.design import design_point

    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)  # everything simulate loads: weather (EPW), grid signals
    s = f.summary()
    d = design_point(f)
    print(f"{f.spec.name}: valid ({f.source})")
    rows = [
        ("halls", len(f.hall_names)),
        ("CDUs", s["cdus"]),
        ("racks", s["racks"]),
        ("GPUs", s["gpus"]),
        ("IT at TDP [MW]", f"{s['it_design_mw']:.1f}"),
        ("import limit [MW]", f.spec.grid.import_limit_mw),
        ("design ambient [degC db/wb]", f"{d['dry_bulb_c']:.1f} / {d['wet_bulb_c']:.1f}"),
        ("design grid import [MW]", f"{d['grid_import_mw']:.1f}"),
        ("design PUE", f"{d['pue']:.3f}"),
        ("scenario", f"{sc.name} (climate {sc.weather.name}, {len(sc.dr_events)} DR event(s))"),
    ]
    _table(rows)
    return 0


def _simulate(args) -> int:
    from factory_twin import twin
    from factory_twin.optimization.controllers import make_controller
    from factory_twin.twin.runs.netcdf import write_netcdf
    from factory_twin.twin.runs.progress import ProgressBar
    from factory_twin.twin.runs.provenance import provenance
    from factory_twin.twin.simulation.targets import run_misses, target_attrs

    if args.duration is not None:
        return _simulate_segmented(args)
    check_output_file(args.out, args.force)
    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)
    name, why = _controller_choice(args.controller, sc)
    ctl = make_controller(name, f, sc, option="--controller")
    print(f"controller: {name}{why}")
    ds = twin.simulate(
        f,
        sc,
        start=args.start,
        duration=args.hours * S_PER_H,
        step=args.step,
        plant_step=args.plant_step,
        record_every=args.record,
        controller=ctl,
        progress=ProgressBar("simulate"),
    )
    misses = run_misses(ds, sc)
    ds.attrs |= provenance(f, sc, name) | target_attrs(misses)
    _table([*summary_rows(ds, f), ("grid targets", "met" if not misses else f"MISSED ({len(misses)})")])
    for m in misses:
        print(f"warning: {m}", file=sys.stderr)
    if args.out:
        write_netcdf(ds, args.out)
        print(f"wrote {args.out}")
    return EXIT_MISSED_TARGET if misses else 0


def _simulate_segmented(args) -> int:
    """``--duration``: segments on Dask (or serially) streamed into ``--out``; every check before any work."""
    from factory_twin import twin
    from factory_twin.optimization.controllers import make_controller
    from factory_twin.twin.runs import annual, segments
    from factory_twin.twin.runs.progress import ProgressBar
    from factory_twin.twin.runs.provenance import provenance

    if args.out is None:
        raise ValueError("--out: a --duration run streams its results into a NetCDF file; name one")
    check_output_file(args.out, args.force)
    check_output_file(args.report, args.force, "--report")
    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)
    name, why = args.controller, ""
    if name == "auto":  # the MPC keeps state (BESS energy, plans) and cannot be cut into segments
        name, why = "uncapped", " (auto: a segmented run needs a controller without memory; DR events not followed)"
    ctl = make_controller(name, f, sc, option="--controller")
    segments.check_controller(ctl)
    plan = segments.plan_segments(
        args.start or sc.start, args.duration, args.segment, args.overlap, args.step, args.plant_step, args.record
    )
    where = "serially" if args.serial else (args.scheduler or f"on {args.workers or 'all'} local Dask worker(s)")
    print(f"controller: {name}{why}")
    warm = f"{plan.overlap_s / 60:g} min warm-up"
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
        attrs=provenance(f, sc, name),
    )
    met = bool(ds.attrs["targets_met"])
    _table(
        [
            *annual.rows(ds),
            ("max die temperature [degC]", f"{float(ds.die_temp_max_c.max()):.2f}"),
            ("heat book residual", f"{ds.attrs['heat_book_residual']:.2e}"),
            ("electric book residual", f"{ds.attrs['electric_book_residual']:.2e}"),
            ("seam error max [K]", f"{ds.attrs['seam_error_max_k']:.2e} (bound {ds.attrs['seam_tolerance_k']:g})"),
            ("grid targets", "met" if met else f"MISSED: {ds.attrs['missed_targets']}"),
        ]
    )
    print(f"wrote {args.out}")
    if args.report:
        from factory_twin.optimization.studies.report import write_year_report

        write_year_report(ds, args.report)
        print(f"wrote {args.report}")
    return 0 if met else EXIT_MISSED_TARGET


def summary_rows(ds, f) -> list[tuple[str, object]]:
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
    ]


def _controller_choice(name: str, sc) -> tuple[str, str]:
    """The controller to run for ``--controller name`` and why (``auto``: mpc when DR events need it)."""
    if name != "auto":
        return name, ""
    if sc.dr_events:
        return "mpc", f" (auto: the scenario has {len(sc.dr_events)} DR event(s); --controller uncapped ignores them)"
    return "uncapped", " (auto: no DR events in the scenario)"


def _parallel(group, what: str) -> None:
    """The options of a run split into independent pieces on Dask, streamed into --out."""
    group.add_argument("--scheduler", help="tcp://HOST:PORT of an existing Dask scheduler (default: a local cluster)")
    group.add_argument("--workers", type=_positive_int, help="local Dask worker processes (default: CPU count)")
    group.add_argument("--serial", action="store_true", help=f"run the {what} one by one in this process")
    group.add_argument("--resume", action="store_true", help="continue a killed run into the same --out")


def _optimize(args) -> int:
    from factory_twin import twin
    from factory_twin.optimization import DispatchOptions, dispatch, plan_summary
    from factory_twin.optimization.dispatch import check_dispatch_memory
    from factory_twin.twin.runs.netcdf import write_netcdf
    from factory_twin.twin.runs.provenance import provenance

    check_output_file(args.out, args.force)
    opts = DispatchOptions(
        horizon=args.horizon,
        step=args.step,
        soft=args.soft,
        solver=args.solver,
        time_limit=args.time_limit,
        grouping=args.grouping,
    )
    f = twin.load_facility(args.facility)
    check_dispatch_memory(f, opts, "use a longer --step or a shorter --horizon")
    sc = twin.load_scenario(args.scenario, f)
    if args.duration:
        return _optimize_rolling(args, f, sc, opts)
    plan = dispatch(f, sc, opts, start=args.start)
    plan.attrs |= provenance(f, sc, "dispatch LP")
    plan.attrs["objective_definition"] = OBJECTIVE
    _table(plan_summary(plan))
    print(f"  (objective = {OBJECTIVE})")
    if args.out:
        write_netcdf(plan, args.out)
        print(f"wrote {args.out}")
    return 0 if plan.attrs["status"] == "optimal" else 3


def _optimize_rolling(args, f, sc, opts) -> int:
    """``optimize --duration``: one plan per --horizon, on Dask (or serially), streamed into ``--out``."""
    from factory_twin.optimization.rolling import run_dispatch_year
    from factory_twin.twin.runs.progress import ProgressBar
    from factory_twin.twin.runs.provenance import provenance

    if args.out is None:
        raise ValueError("--out: a --duration run streams its plans into a NetCDF file; name one")
    where = "serially" if args.serial else (args.scheduler or f"on {args.workers or 'all'} local Dask worker(s)")
    print(f"plans of {opts.horizon / S_PER_H:g} h at {opts.step / 60:g} min over {args.duration}, {where}")
    ds = run_dispatch_year(
        f,
        sc,
        opts,
        args.start or sc.start,
        args.duration,
        args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        serial=args.serial,
        resume=args.resume,
        force=args.force,
        progress=ProgressBar("plans"),
        attrs=provenance(f, sc, "dispatch LP") | {"objective_definition": OBJECTIVE},
    )
    a, cur = ds.attrs, ds.attrs["currency"]
    rows = [
        ("plans optimal", f"{a['plans_optimal']} of {a['plans']}"),
        ("objective", f"{a['objective_total']:,.0f} {cur}"),
        ("grid energy", f"{a['energy_mwh_total']:,.1f} MWh"),
        ("MWh shifted", f"{a['mwh_curtailed_total']:,.1f} MWh"),
        ("peak import", f"{a['peak_import_mw']:,.2f} MW"),
        ("energy + carbon cost", f"{a['energy_cost_total'] + a['carbon_cost_total']:,.0f} {cur}"),
        ("plan CPU", f"{float(ds.segment_cpu_s.mean()):.2f} s mean per plan"),
    ]
    rows += [(k.replace("_", " "), str(a[k])) for k in ("plans_not_optimal", "violations") if a[k]]
    _table(rows)
    print(f"wrote {args.out}")
    return 0 if a["plans_optimal"] == a["plans"] else 3


def _study(args) -> int:
    import shutil

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
    return 4 if failed else 0


def _grid_study(args) -> int:
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
        minutes=args.minutes,
        step_s=args.step,
        event=args.event,
        engine="serial" if args.serial else "dask",
        workers=args.workers,
        scheduler=args.scheduler,
        resume=args.resume,
    )
    for line in summary_lines(study):
        print(line)
    return 0 if study.best else 5


def _dashboard(args) -> int:
    if args.connect:
        from factory_twin.dsx_cli import dashboard_connected

        return dashboard_connected(args)
    from factory_twin.dashboard.server import serve

    return serve(
        facility=args.facility,
        scenario=args.scenario,
        host=args.host,
        port=args.port,
        speed=args.speed,
        controller=args.controller,
        debug=args.debug,
        studies_dir=args.studies_dir,
        flex_dir=args.flex_state,
    )


def _table(rows) -> None:
    width = max(len(str(k)) for k, _ in rows)
    for k, v in rows:
        print(f"  {k!s:<{width}}  {v}")


__all__ = ["main"]
