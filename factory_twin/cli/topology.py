"""``factory-twin topology``: the site's one-line diagram to and from NVIDIA DPS topology files.

``validate FILE.json`` checks a DPS file (the documented format and DPS's semantic checks); ``import FILE.json
--facility F --out NEW.toml`` writes facility F with the file's power tree as its ``[topology]`` (checked by
loading it before it is written); ``export FACILITY --out FILE.json`` writes a DPS file that validates. Both
print what the other side cannot express (docs/power-topology.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from factory_twin.cli.options import (
    DEFAULT_FACILITY,
    DefaultsFormatter,
    add_facility_argument,
    builtin_names,
    check_output_file,
    print_table,
)


def add_parsers(sub) -> None:
    top = sub.add_parser(
        "topology",
        help="one-line diagram: DPS topology files (validate, import, export)",
        epilog=f"The facility of export and import --facility (default: {DEFAULT_FACILITY}).",
    )
    tsub = top.add_subparsers(title="topology commands", help="validate, import or export a DPS topology file")
    v = tsub.add_parser("validate", help="check a DPS topology file", formatter_class=DefaultsFormatter)
    v.add_argument("file", type=Path, help="DPS topology JSON")
    v.set_defaults(run=run_validate)
    i = tsub.add_parser("import", help="write a facility with a DPS file's topology", formatter_class=DefaultsFormatter)
    i.add_argument("file", type=Path, help="DPS topology JSON")
    i.add_argument(
        "--facility",
        default=DEFAULT_FACILITY,
        help=f"facility that gives the rest: built-in name ({builtin_names('facilities')}) or TOML path",
    )
    i.add_argument("--out", type=Path, required=True, help="facility TOML to write")
    i.add_argument("--force", action="store_true", help="overwrite --out")
    i.set_defaults(run=run_import)
    e = tsub.add_parser("export", help="write a facility's topology as a DPS file", formatter_class=DefaultsFormatter)
    add_facility_argument(e)
    e.add_argument("--out", type=Path, required=True, help="DPS topology JSON to write")
    e.add_argument("--force", action="store_true", help="overwrite --out")
    e.set_defaults(run=run_export)
    top.set_defaults(run=lambda args: (top.print_help(), 2)[1])


def _report(title: str, lines: list[str]) -> None:
    print(f"{title}:" if lines else f"{title}: nothing")
    for line in lines:
        print(f"  - {line}")


def run_validate(args) -> int:
    from collections import Counter

    from factory_twin.links.dps.schema import read

    doc, unknown = read(args.file)
    types = Counter(e.Type for e in doc.Entities)
    print(f"{args.file}: valid DPS topology file")
    print_table(
        [
            ("topology", doc.Topology.Name if doc.Topology else "(none)"),
            *((f"entities {t}", n) for t, n in sorted(types.items())),
            ("topology entries", len(doc.Topology.Entities) if doc.Topology else 0),
            ("policies", len(doc.Policies)),
        ]
    )
    _report("keys the DPS documentation does not define (kept, not checked)", unknown)
    return 0


def run_import(args) -> int:
    from factory_twin import twin
    from factory_twin.links.dps.schema import read
    from factory_twin.links.dps.topology import import_topology
    from factory_twin.twin.facility.assembly import assemble, rack_catalog
    from factory_twin.twin.facility.spec import parse_facility, read_text
    from factory_twin.twin.facility.topology_toml import with_topology
    from factory_twin.twin.runs.atomic import atomic_path

    check_output_file(args.out, args.force)
    doc, unknown = read(args.file)
    base = twin.load_facility(args.facility)
    spec, lost = import_topology(doc, base, unknown)
    text = with_topology(read_text(Path(base.source)), spec)
    catalog = rack_catalog()
    f = assemble(parse_facility(text, str(args.out), set(catalog)), catalog, str(args.out))  # refusals name the element
    with atomic_path(args.out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    t = f.topology
    print(f"wrote {args.out}: facility {f.spec.name} with topology {spec.name!r}")
    print_table([("elements", t.n), ("feeds", t.roots.size), ("racks", f.n_racks), ("policies", len(t.policies))])
    _report("not kept by the twin", lost)
    return 0


def run_export(args) -> int:
    from factory_twin import twin
    from factory_twin.links.dps.schema import parse
    from factory_twin.links.dps.topology import export_topology
    from factory_twin.twin.runs.atomic import atomic_path

    check_output_file(args.out, args.force)
    f = twin.load_facility(args.facility)
    doc, lost = export_topology(f)
    parse(doc, str(args.out))  # what we write validates
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(doc['Entities'])} entities ({f.topology.n} power elements, {f.n_racks} racks)")
    _report("not expressible in DPS", lost)
    return 0


__all__ = ["add_parsers", "run_export", "run_import", "run_validate"]
