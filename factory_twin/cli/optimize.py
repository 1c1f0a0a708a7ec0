"""``factory-twin optimize``: one plan over a horizon, or rolling plans over a long period on Dask."""

from __future__ import annotations

from pathlib import Path

from factory_twin.cli.options import (
    EXIT_NOT_OPTIMAL,
    DefaultsFormatter,
    add_convert_hall,
    add_dask_options,
    add_duration,
    add_facility_scenario,
    check_output_file,
    dask_place,
    facility_from,
    positive,
    print_table,
)

OBJECTIVE = "value of the tokens produced - energy cost - carbon cost - soft-limit penalties, maximized"


def add_parsers(sub) -> None:
    o = sub.add_parser(
        "optimize",
        help="optimize GPU caps and BESS over a horizon",
        formatter_class=DefaultsFormatter,
        description="Plan GPU power caps and BESS power over a horizon with the dispatch LP. The objective is "
        "the value of the tokens produced minus the energy and carbon cost (and penalties of soft limits), in "
        "the scenario's currency; it is maximized.",
        epilog=f"Exit status {EXIT_NOT_OPTIMAL}: a plan was not optimal (see the summary).",
    )
    add_facility_scenario(o)
    add_convert_hall(o)
    o.add_argument("--start", help="ISO local time (default: the scenario's start)")
    o.add_argument("--horizon", default="24h", help="planning horizon, with a unit (e.g. 24h, 90min, 2d)")
    o.add_argument("--step", default="5min", help="plan step, with a unit (e.g. 5min)")
    o.add_argument(
        "--soft",
        nargs="*",
        default=[],
        help="limits to make penalized slacks: import_limit ramp dr heat die flex cdu tier",
    )
    o.add_argument(
        "--no-tiers",
        action="store_true",
        help="leave out the rows of the one-line diagram (every element within its continuous limit)",
    )
    o.add_argument(
        "--n-minus-1",
        action="store_true",
        help="keep every element within its continuous limit also after the loss of any one redundant path",
    )
    o.add_argument("--solver", default="simplex", choices=["simplex", "ipx", "pdlp", "choose"], help="HiGHS solver")
    o.add_argument(
        "--grouping",
        default="hall",
        choices=["hall", "cdu"],
        help="plan one cap per workload class x hall, or per class x CDU (with each CDU's heat and flow limits)",
    )
    o.add_argument("--time-limit", type=positive("seconds"), default=300.0, help="solver time limit [s]")
    o.add_argument("--out", type=Path, help="write the plan to this NetCDF file")
    o.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    roll = o.add_argument_group("rolling plans (--duration)")
    add_duration(roll, "plan one --horizon after another over this period, e.g. 1y (in parallel; needs --out)")
    add_dask_options(roll, "plans")
    o.set_defaults(run=run_optimize)


def run_optimize(args) -> int:
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
        tiers=not args.no_tiers,
        n_minus_1=args.n_minus_1,
    )
    f = facility_from(args)
    check_dispatch_memory(f, opts, "use a longer --step or a shorter --horizon")
    sc = twin.load_scenario(args.scenario, f)
    if args.duration:
        return run_rolling(args, f, sc, opts)
    plan = dispatch(f, sc, opts, start=args.start)
    plan.attrs |= provenance(f, sc, "dispatch LP")
    plan.attrs["objective_definition"] = OBJECTIVE
    print_table(plan_summary(plan))
    print(f"  (objective = {OBJECTIVE})")
    if args.out:
        write_netcdf(plan, args.out)
        print(f"wrote {args.out}")
    return 0 if plan.attrs["status"] == "optimal" else EXIT_NOT_OPTIMAL


def run_rolling(args, f, sc, opts) -> int:
    """``optimize --duration``: one plan per --horizon, on Dask (or serially), streamed into ``--out``."""
    from factory_twin.models.units import S_PER_H, S_PER_MIN
    from factory_twin.optimization.rolling import run_dispatch_year
    from factory_twin.twin.runs.progress import ProgressBar
    from factory_twin.twin.runs.provenance import provenance

    if args.out is None:
        raise ValueError("--out: a --duration run streams its plans into a NetCDF file; name one")
    where = dask_place(args)
    print(
        f"plans of {opts.horizon / S_PER_H:g} h at {opts.step / S_PER_MIN:g} min over "
        f"{args.duration / S_PER_H / 24:g} d, {where}"
    )
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
    print_table(rows)
    print(f"wrote {args.out}")
    return 0 if a["plans_optimal"] == a["plans"] else EXIT_NOT_OPTIMAL


__all__ = ["OBJECTIVE", "add_parsers", "run_optimize", "run_rolling"]
