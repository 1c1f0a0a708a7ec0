"""Record reference outputs of the CLI, or compare the current code against a recording.

    python bench/reference_outputs.py record DIR     # before a refactor
    python bench/reference_outputs.py compare DIR    # after: every variable equal to 1e-12 relative

Runs simulate (hot-day-dr, 2 h: uncapped, mpc, and mpc across the DR event), optimize (24 h at 5 min), a small
envelope study and a one-requirement grid study on campus-100mw through ``python -m factory_twin`` from the repository
root, so it works on any layout of the package, and the Emerald Phoenix replay (job-aware caps) through the Python
API, its figures written as NetCDF attributes. ``compare`` reports every variable or attribute that differs;
attributes added since the recording are listed but do not fail the comparison.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "bench" / "reference" / "study.toml"
RUNS = {
    "sim-uncapped.nc": [
        "simulate",
        "campus-100mw",
        "--scenario",
        "hot-day-dr",
        "--duration",
        "2h",
        "--controller",
        "uncapped",
    ],
    "sim-mpc.nc": ["simulate", "campus-100mw", "--scenario", "hot-day-dr", "--duration", "2h", "--controller", "mpc"],
    "sim-mpc-dr.nc": [
        "simulate",
        "campus-100mw",
        "--scenario",
        "hot-day-dr",
        "--start",
        "2026-08-08T15:00:00",
        "--duration",
        "2h",
        "--controller",
        "mpc",
    ],
    "plan.nc": ["optimize", "campus-100mw", "--horizon", "24h", "--step", "5min"],
}
STUDY_RESULT = "study/results.nc"
GRID_RESULT = "grid/results.nc"
PHOENIX = "phoenix.nc"
GRID_STUDY = [
    "grid-study",
    "campus-100mw",
    "--requirements",
    "ramp-20mw-min",
    "--duration",
    "2min",
    "--serial",
]
VOLATILE = {"elapsed_s", "build_seconds", "prepare_seconds", "solve_seconds", "created", "software_version"}


def record(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "root.txt").write_text(str(ROOT))  # attributes name files under the checkout: compared relative to it
    for name, argv in RUNS.items():
        _run([*argv, "--out", str(out / name)])
    _run(["study", str(STUDY), "--out", str(out / "study"), "--serial"])
    _run([*GRID_STUDY, "--out", str(out / "grid")])
    _phoenix(out / PHOENIX)


def _phoenix(path: Path) -> None:
    """The Phoenix replay's figures (job-aware caps, the published 25 % cut) as attributes of an empty Dataset."""
    import dataclasses
    import importlib

    from factory_twin import twin

    for where in ("factory_twin.links.dsx_flex.replay", "factory_twin.links.dsx_flex.replay"):
        try:
            replay = importlib.import_module(where)
            break
        except ModuleNotFoundError:
            continue
    print("$ run_phoenix(emerald-phoenix, srp-2025-05-04, caps)", flush=True)
    f = twin.load_facility("emerald-phoenix")
    res = replay.run_phoenix(f, twin.load_scenario("srp-2025-05-04", f), "caps")
    attrs = {}
    for k, v in dataclasses.asdict(res).items():
        if k in {"wall_s", "refusals"}:
            continue
        if k == "jobs":
            attrs.update({f"job_{j}_{q}": x for j, fig in v.items() for q, x in fig.items()})
        else:
            attrs[k] = v
    xr.Dataset(attrs=attrs).to_netcdf(path, engine="h5netcdf")


def _run(argv: list[str]) -> None:
    print("$ factory-twin", " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "factory_twin", *argv], cwd=ROOT, check=False)


def compare(ref: Path, rtol: float = 1e-12) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        new = Path(tmp)
        record(new)
        problems = 0
        roots = ((ref / "root.txt").read_text().strip() if (ref / "root.txt").exists() else str(ROOT), str(ROOT))
        for name in [*RUNS, STUDY_RESULT, GRID_RESULT, PHOENIX]:
            problems += _compare_file(ref / name, new / name, rtol, roots)
    print("identical" if not problems else f"{problems} difference(s)")
    return 1 if problems else 0


def _compare_file(a_path: Path, b_path: Path, rtol: float, roots: tuple[str, str]) -> int:
    a, b = xr.load_dataset(a_path), xr.load_dataset(b_path)
    problems = 0
    for v in sorted((set(a.variables) | set(b.variables)) - VOLATILE):
        if v not in a.variables or v not in b.variables:
            print(f"{a_path.name}: variable {v} only in {'reference' if v in a.variables else 'new'}")
            problems += 1
            continue
        x, y = a[v], b[v]
        if x.dims != y.dims or x.shape != y.shape:
            print(f"{a_path.name}: {v} dims {x.dims}{x.shape} vs {y.dims}{y.shape}")
            problems += 1
            continue
        if np.issubdtype(x.dtype, np.number):
            xv, yv = x.values.astype(float), y.values.astype(float)
            scale = np.maximum(np.abs(xv), np.abs(yv))
            bad = ~((np.abs(xv - yv) <= rtol * scale) | (np.isnan(xv) & np.isnan(yv)))
            if bad.any():
                print(f"{a_path.name}: {v} differs at {int(bad.sum())} points, max {np.nanmax(np.abs(xv - yv)):.3g}")
                problems += 1
        elif not np.array_equal(x.values, y.values):
            print(f"{a_path.name}: {v} values differ")
            problems += 1
        problems += _compare_attrs(f"{a_path.name}:{v}", x.attrs, y.attrs, roots)
    problems += _compare_attrs(a_path.name, a.attrs, b.attrs, roots)
    return problems


def _relative(value, root: str):
    """A string attribute with the checkout's path replaced (a recording made in another checkout compares)."""
    return value.replace(root, "<checkout>") if isinstance(value, str) else value


def _compare_attrs(where: str, a: dict, b: dict, roots: tuple[str, str]) -> int:
    problems = 0
    for k in sorted(set(a) | set(b)):
        if k in VOLATILE:
            continue
        if k not in a:
            print(f"{where}: new attribute {k} (allowed)")
        elif k not in b:
            print(f"{where}: attribute {k} missing")
            problems += 1
        elif not np.array_equal(np.asarray(_relative(a[k], roots[0])), np.asarray(_relative(b[k], roots[1]))):
            print(f"{where}: attribute {k}: {a[k]!r} -> {b[k]!r}")
            problems += 1
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in {"record", "compare"}:
        sys.exit(__doc__)
    target = Path(sys.argv[2])
    sys.exit(record(target) if sys.argv[1] == "record" else compare(target))
