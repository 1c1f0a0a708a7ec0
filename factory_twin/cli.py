"""``factory-twin``: validate, simulate, optimize, study and dashboard from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from factory_twin.models.units import S_PER_H
from factory_twin.twin.netcdf import write_netcdf

DEFAULT_FACILITY = "campus-100mw"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:  # SpecError is a ValueError: print it whole, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factory-twin", description="Digital twin of a liquid-cooled AI factory.")
    sub = p.add_subparsers(title="commands")

    v = sub.add_parser("validate", help="check a facility spec and print a summary")
    v.add_argument("facility", nargs="?", default=DEFAULT_FACILITY, help="built-in name or TOML path")
    v.set_defaults(run=_validate)

    s = sub.add_parser("simulate", help="simulate a facility under a scenario")
    _facility_scenario(s)
    s.add_argument("--start", help="ISO time (default: the scenario's start)")
    s.add_argument("--hours", type=float, default=24.0)
    s.add_argument("--step", default="1s", help="rack thermal step (e.g. 1s)")
    s.add_argument("--plant-step", default="20s", help="loop/plant step (multiple of --step)")
    s.add_argument("--record", default="60s", help="output interval")
    s.add_argument("--controller", default="uncapped", help="uncapped | fixed:FRACTION | mpc")
    s.add_argument("--out", type=Path, help="write the run to NetCDF")
    s.set_defaults(run=_simulate)

    o = sub.add_parser("optimize", help="optimize GPU caps and BESS over a horizon")
    _facility_scenario(o)
    o.add_argument("--start")
    o.add_argument("--horizon", default="24h")
    o.add_argument("--step", default="5min")
    o.add_argument(
        "--soft", nargs="*", default=[], help="limits to make penalized slacks: import_limit ramp dr heat die flex"
    )
    o.add_argument("--solver", default="simplex", choices=["simplex", "ipx", "pdlp", "choose"])
    o.add_argument("--time-limit", type=float, default=300.0)
    o.add_argument("--out", type=Path)
    o.set_defaults(run=_optimize)

    st = sub.add_parser("study", help="run a batch study (TOML) on Dask or serially")
    st.add_argument("study", type=Path)
    st.add_argument("--out", type=Path, default=Path("study-out"))
    st.add_argument("--resume", action="store_true")
    st.add_argument("--scheduler", help="tcp://HOST:PORT of an existing Dask scheduler")
    st.add_argument("--workers", type=int)
    st.add_argument("--serial", action="store_true", help="no Dask, one process")
    st.set_defaults(run=_study)

    d = sub.add_parser("dashboard", help="run the live twin and serve the dashboard")
    _facility_scenario(d)
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8050)
    d.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second")
    d.add_argument("--controller", default="mpc", help="mpc | uncapped | fixed:FRACTION")
    d.add_argument("--studies-dir", type=Path, help="folder the Studies page may open files from (default: CWD)")
    d.add_argument("--debug", action="store_true", help="Dash debug mode (never in production)")
    d.set_defaults(run=_dashboard)
    return p


def _facility_scenario(p: argparse.ArgumentParser) -> None:
    p.add_argument("facility", nargs="?", default=DEFAULT_FACILITY, help="built-in name or TOML path")
    p.add_argument("--scenario", help="scenario TOML path or built-in name")


def _validate(args) -> int:
    from factory_twin import twin
    from factory_twin.twin.design import design_point

    f = twin.load_facility(args.facility)
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
        ("design grid import [MW]", f"{d['grid_mw']:.1f}"),
        ("design PUE", f"{d['pue']:.3f}"),
    ]
    _table(rows)
    return 0


def _simulate(args) -> int:
    from factory_twin import twin
    from factory_twin.progress import ProgressBar

    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)
    ctl = _controller(args.controller, f, sc)
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
    _table(summary_rows(ds, f))
    if args.out:
        write_netcdf(ds, args.out)
        print(f"wrote {args.out}")
    return 0


def summary_rows(ds, f) -> list[tuple[str, object]]:
    """The end-of-run table: energy, peak import, PUE, die temperature, throttling, tokens, cost."""
    hours = float(ds.attrs["record_s"]) / 3600
    energy = float(ds.grid_import_mw.sum()) * hours
    cost = float((ds.grid_import_mw * ds.price_per_mwh).sum()) * hours
    tokens = float(ds.tokens_per_s.sum()) * hours * 3600
    cur = ds.attrs.get("currency", "")
    return [
        ("grid energy [MWh]", f"{energy:,.1f}"),
        ("peak import [MW]", f"{float(ds.grid_import_mw.max()):.2f}"),
        ("mean PUE", f"{float(ds.pue.mean()):.4f}"),
        ("max die temperature [degC]", f"{float(ds.die_temp_c.max()):.2f}"),
        ("throttled GPU-hours", f"{float(ds.throttled_gpus.sum()) * hours:,.1f}"),
        ("tokens [1e12]", f"{tokens / 1e12:,.3f}"),
        ("throughput kept", f"{float(ds.throughput.mean()):.4f}"),
        (f"energy cost [{cur}]", f"{cost:,.0f}"),
        (f"cost per million tokens [{cur}]", f"{cost / (tokens / 1e6):,.3f}" if tokens else "n/a"),
        ("heat book residual", f"{ds.attrs['heat_book_residual']:.2e}"),
        ("electric book residual", f"{ds.attrs['electric_book_residual']:.2e}"),
    ]


def _controller(name: str, f, sc):
    from factory_twin import twin

    if name == "uncapped":
        return twin.Uncapped(f.tdp_w)
    if name.startswith("fixed:"):
        return twin.FixedCap(f.tdp_w, f.min_cap_w, float(name.split(":", 1)[1]))
    if name == "mpc":
        from factory_twin.optimization.mpc import MPCController

        return MPCController(f, sc)
    raise ValueError(f"--controller: expected uncapped, fixed:FRACTION or mpc, got {name!r}")


def _optimize(args) -> int:
    from factory_twin import twin
    from factory_twin.optimization import DispatchOptions, dispatch, plan_summary

    opts = DispatchOptions(
        horizon=args.horizon, step=args.step, soft=args.soft, solver=args.solver, time_limit=args.time_limit
    )
    f = twin.load_facility(args.facility)
    sc = twin.load_scenario(args.scenario, f)
    plan = dispatch(f, sc, opts, start=args.start)
    _table(plan_summary(plan))
    if args.out:
        write_netcdf(plan, args.out)
        print(f"wrote {args.out}")
    return 0 if plan.attrs["status"] == "optimal" else 3


def _study(args) -> int:
    from factory_twin.optimization.studies.runner import run_study_file

    ds = run_study_file(
        args.study, args.out, resume=args.resume, scheduler=args.scheduler, workers=args.workers, serial=args.serial
    )
    failed = int((ds.status != 0).sum())
    print(f"{int(ds.status.size) - failed} case(s) ok, {failed} failed")
    return 4 if failed else 0


def _dashboard(args) -> int:
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
    )


def _table(rows) -> None:
    width = max(len(str(k)) for k, _ in rows)
    for k, v in rows:
        print(f"  {k!s:<{width}}  {v}")


__all__ = ["main"]
