"""The layer contract (pyproject's [tool.importlinter], docs/architecture.md) holds, and its checks catch breaches."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
spec = importlib.util.spec_from_file_location("private_names", ROOT / ".ci" / "private_names.py")
private_names = importlib.util.module_from_spec(spec)
spec.loader.exec_module(private_names)

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed (pip install '.[test]')")


def test_the_project_keeps_every_contract():
    run = subprocess.run([sys.executable, str(ROOT / ".ci" / "layers.py")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "BROKEN" not in run.stdout and "KEPT" in run.stdout


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("from a.b import _x, y as _z", ["_x"]),
        ("from a.b import (_x as x, __version__)", ["_x"]),
        ("import a._b", []),
        ("from a import b", []),
    ],
)
def test_private_names_of_an_import_line(line, names):
    assert private_names.private_names(line) == names


def _lint(tmp_path: Path, files: dict[str, str], contracts: str) -> subprocess.CompletedProcess:
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "pkg"\n'
        'contract_types = ["private_names: private_names.PrivateNamesContract"]\n' + textwrap.dedent(contracts)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / ".ci")])}
    cmd = [str(LINT), "--no-cache", "--no-logo", str(config)]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)


PACKAGE = {
    "__init__.py": "",
    "low/__init__.py": "",
    "low/core.py": "_hidden = 1\nvisible = 2\n",
    "low/sibling.py": "from pkg.low.core import _hidden\n",  # same package: allowed
    "high/__init__.py": "",
}
CONTRACTS = """
[[tool.importlinter.contracts]]
name = "layers"
type = "layers"
layers = ["pkg.high", "pkg.low"]

[[tool.importlinter.contracts]]
name = "private"
type = "private_names"
"""


def test_a_clean_package_keeps_both_contracts(tmp_path):
    run = _lint(tmp_path, {**PACKAGE, "high/user.py": "from pkg.low.core import visible\n"}, CONTRACTS)
    assert run.returncode == 0, run.stdout


def test_a_private_name_across_packages_breaks_the_contract(tmp_path):
    user = "from pkg.low.core import (\n    visible,\n    _hidden,\n)\n"  # the name on a continuation line
    run = _lint(tmp_path, {**PACKAGE, "high/user.py": user}, CONTRACTS)
    assert run.returncode == 1
    assert "pkg.high.user:1 imports _hidden from" in run.stdout.replace("\n", " ")


def test_an_upward_import_breaks_the_layers(tmp_path):
    run = _lint(tmp_path, {**PACKAGE, "low/up.py": "import pkg.high\n", "high/user.py": ""}, CONTRACTS)
    assert run.returncode == 1
    assert "layers BROKEN" in run.stdout


def test_the_architecture_doc_lists_the_contract_layers_in_order():
    """docs/architecture.md draws the layers from pyproject's top contract: same packages, same order."""
    import re
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers" and "containers" not in c)
    doc = (ROOT / "docs" / "architecture.md").read_text()
    block = doc[doc.index("<!-- layers:") : doc.index("<!-- /layers -->")]
    assert re.findall(r"^\| \d+ \| `([\w.]+)`", block, flags=re.M) == layers
    twin = next(c["layers"] for c in contracts if c.get("containers") == ["factory_twin.twin"])
    row = next(line for line in block.splitlines() if "`factory_twin.twin`" in line)
    names = [name for layer in reversed(twin) for name in layer.split(" | ")]
    assert re.findall(r"`(\w+)`", row.split("|")[3]) == names
