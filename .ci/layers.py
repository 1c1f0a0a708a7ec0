"""Check the layer contract (pyproject's ``[tool.importlinter]``) with import-linter.

The repository's top-level folders install as subpackages of ``factory_twin`` (pyproject's ``package-dir``),
so the source tree is not importable as ``factory_twin`` by itself: this script assembles the package as it is
installed (copies of the ``.py`` files) in a temporary folder and runs ``lint-imports`` on it. Exit status is
lint-imports' own (0: every contract kept).

    python .ci/layers.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def assemble(dest: Path) -> None:
    """Copy every Python file of the package-dir mapping into ``dest/factory_twin/...``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package, folder in config["tool"]["setuptools"]["package-dir"].items():
        target = dest.joinpath(*package.split("."))
        for src in (ROOT / folder).rglob("*.py"):
            rel = src.relative_to(ROOT / folder)
            if rel.parts[0] in {"__pycache__"} or any(p.startswith(".") for p in rel.parts):
                continue
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if not out.exists():
                shutil.copyfile(src, out)


def main() -> int:
    lint = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory() as tmp:
        assemble(Path(tmp))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(ROOT / ".ci")])}
        cmd = [str(lint), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")]
        return subprocess.run(cmd, cwd=tmp, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
