"""An import-linter contract type: no private name crosses a package boundary.

``from factory_twin.twin.facility.spec import _describe`` in ``factory_twin.twin.scenario.scenario`` breaks it:
a name starting with one underscore may be imported only by modules of the same parent package (its siblings).
Import-linter's own ``private_modules`` contract checks private *modules*; this one checks private *names*,
from the import lines grimp records for every import of the graph.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def private_names(line: str) -> list[str]:
    """The private names an import line takes (``from m import _a, b as _c`` -> ``["_a"]``; dunders are not private)."""
    text = line.strip()
    if not text.startswith("from "):
        return []  # "import a.b" binds a package, never a private name
    _, _, names = text.partition(" import ")
    found = []
    for item in names.strip("()").split(","):
        name = item.split(" as ")[0].strip().strip("()")
        if name.startswith("_") and not name.startswith("__"):
            found.append(name)
    return found


def whole_statement(module: str, detail: dict) -> str:
    """The import statement grimp recorded, with the continuation lines of a parenthesised import."""
    line = detail["line_contents"]
    if not line.rstrip().endswith("("):
        return line
    origin = importlib.util.find_spec(module).origin
    lines = Path(origin).read_text().splitlines()[detail["line_number"] - 1 :]
    end = next(i for i, text in enumerate(lines) if ")" in text)
    return " ".join(text.strip() for text in lines[: end + 1])


def parent(module: str) -> str:
    return module.rpartition(".")[0]


class PrivateNamesContract(Contract):
    """Configuration: ``containers``: the packages whose modules are checked (default: the root packages)."""

    type_name = "private_names"
    containers = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roots = self.containers or sorted(self.session_options["root_packages"])
        modules = sorted(m for m in graph.modules if any(m == r or m.startswith(r + ".") for r in roots))
        violations = []
        for importer in modules:
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if parent(imported) == parent(importer) or imported == parent(importer):
                    continue  # siblings, or the package's own __init__
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    for name in private_names(whole_statement(importer, detail)):
                        violations.append(f"{importer}:{detail['line_number']} imports {name} from {imported}")
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for v in check.metadata["violations"]:
            output.print_error(v)
        output.new_line()
        output.print("Make the name public where it is defined (and document it), or move the code that needs it.")
