"""``factory-twin validate``: load a facility and a scenario as simulate would, and print a summary."""

from __future__ import annotations

from factory_twin.cli.options import DefaultsFormatter, add_convert_hall, add_facility_scenario, print_table


def add_parsers(sub) -> None:
    v = sub.add_parser(
        "validate", help="check a facility (and scenario) and print a summary", formatter_class=DefaultsFormatter
    )
    add_facility_scenario(v)
    add_convert_hall(v)
    v.set_defaults(run=run_validate)


def run_validate(args) -> int:
    from factory_twin import twin
    from factory_twin.twin.simulation.design import design_point

    f = twin.load_facility(args.facility)
    if args.convert_hall:
        return _what_if(f, args)
    sc = twin.load_scenario(args.scenario, f)  # everything simulate loads: weather (EPW), grid signals
    s = f.summary()
    d = design_point(f)
    print(f"{f.spec.name}: valid ({f.source})")
    print_table(
        [
            ("halls", len(f.hall_names)),
            ("CDUs", s["cdus"]),
            ("racks", s["racks"]),
            ("GPUs", s["gpus"]),
            ("IT at TDP [MW]", f"{s['it_design_mw']:.1f}"),
            ("import limit [MW]", f.spec.grid.import_limit_mw),
            ("design ambient [degC db/wb]", f"{d['dry_bulb_c']:.1f} / {d['wet_bulb_c']:.1f}"),
            ("design grid import [MW]", f"{d['grid_import_mw']:.1f}"),
            ("design PUE", f"{d['pue']:.3f}"),
            ("one-line diagram", _diagram(f.topology)),
            ("scenario", f"{sc.name} (climate {sc.weather.name}, {len(sc.dr_events)} DR event(s))"),
        ]
    )
    return 0


def _what_if(f, args) -> int:
    """``validate --convert-hall``: the site at its design point before and after the conversion."""
    import sys

    from factory_twin import twin
    from factory_twin.twin.simulation.conversion import parse_conversion, what_if

    conv = parse_conversion(args.convert_hall)
    w = what_if(f, conv)
    twin.load_scenario(args.scenario, w.after_facility)  # the converted site loads with the scenario, as simulate would
    print(f"{f.spec.name}: what-if {conv} (every GPU at TDP, design ambient, every path closed unless N-1)")
    rows = w.rows
    width = max(len(r[0]) for r in rows)
    wb = max(len(r[1]) for r in rows)
    print(f"  {'':<{width}}  {'before':>{wb}}  after")
    for label, before, after in rows:
        print(f"  {label:<{width}}  {before:>{wb}}  {after}")
    print(f"  one-line diagram after: {_diagram(w.after_facility.topology)}")
    for text in w.warnings:
        print(f"warning: {text}", file=sys.stderr)
    return 0


def _diagram(t) -> str:
    """The facility's one-line diagram in a few words (twin.facility.topology)."""
    if not t.explicit:
        return "the aggregate chain (grid.transformer, grid.ups, grid.busway)"
    paths = sorted({p for p in t.path if p})
    with_paths = f", paths {'/'.join(paths)}" if paths else ""
    devices = int((t.trip.characteristic > 0).sum())
    levels = int(t.depth.max()) + 1
    return f"{t.n} elements in {levels} levels, {t.roots.size} feed(s){with_paths}, {devices} protective devices"


__all__ = ["add_parsers", "run_validate"]
