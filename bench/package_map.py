"""The package map: modules and lines of code per subpackage, as installed (pyproject's package-dir).

    python bench/package_map.py            # the working tree
    python bench/package_map.py --rev REV  # a commit (e.g. the one before a refactor)

Prints a Markdown table: installed subpackage, modules, lines (all lines of the ``.py`` files), largest module.
"""

from __future__ import annotations

import argparse
import subprocess
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def files_at(rev: str | None) -> dict[str, str]:
    """Path -> text of every tracked ``.py`` file at ``rev`` (the working tree when None)."""
    if rev is None:
        names = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
        return {n: (ROOT / n).read_text() for n in names.stdout.split() if (ROOT / n).exists()}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev], cwd=ROOT, capture_output=True, text=True)
    out = {}
    for n in names.stdout.split():
        if n.endswith(".py"):
            out[n] = subprocess.run(["git", "show", f"{rev}:{n}"], cwd=ROOT, capture_output=True, text=True).stdout
    return out


def package_dirs(rev: str | None) -> dict[str, str]:
    text = (ROOT / "pyproject.toml").read_text() if rev is None else _show(rev, "pyproject.toml")
    return tomllib.loads(text)["tool"]["setuptools"]["package-dir"]


def _show(rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True).stdout


def package_map(rev: str | None) -> dict[str, list[tuple[str, int]]]:
    """Installed subpackage -> [(module, lines)]."""
    dirs = sorted(package_dirs(rev).items(), key=lambda kv: -len(kv[1]))
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for path, text in files_at(rev).items():
        for package, folder in dirs:
            if path.startswith(folder + "/"):
                rel = Path(path[len(folder) + 1 :])
                sub = ".".join([package, *rel.parts[:-1]])
                out[sub].append((rel.name, len(text.splitlines())))
                break
    return dict(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", help="git revision (default: the working tree)")
    args = p.parse_args()
    m = package_map(args.rev)
    total = sum(n for mods in m.values() for _, n in mods)
    print("| package | modules | lines | share | largest module |\n|---|---:|---:|---:|---|")
    for sub in sorted(m):
        mods = [x for x in m[sub] if x[0] != "__init__.py" or x[1] > 2]
        lines = sum(n for _, n in m[sub])
        big = max(m[sub], key=lambda x: x[1])
        print(f"| `{sub}` | {len(mods)} | {lines:,} | {lines / total:.0%} | {big[0]} ({big[1]}) |")
    print(f"| total | {sum(len(v) for v in m.values())} | {total:,} | | |")


if __name__ == "__main__":
    main()
