"""Every NetCDF file the command line writes describes each variable (issue 20 item 23): a long_name on all,
units on every number, money in the run's currency (``KRW MWh-1``, not ``currency MWh-1``). grid-study's file
is checked in tests/optimization/test_grid_study.py on that module's run."""

from __future__ import annotations

from pathlib import Path

import xarray as xr
from factory_twin.twin import load_facility
from support import undescribed

from factory_twin.cli import main

ONE_RACK = str(Path(__file__).resolve().parents[1] / "data" / "one-rack.toml")
STUDY = """
name = "small"
facility = "campus-100mw"
scenario = "hot-day-dr"
[options]
horizon = "1h"
step = "15min"
[sweep]
offset_k = [0.0, 3.0]
"""
ENVELOPE = """
name = "env"
analysis = "envelope"
facility = "campus-100mw"
scenario = "hot-day-dr"
[options]
horizon = "2h"
step = "15min"
dr_start = "2026-08-08T13:00:00"
dr_notice_min = 15
dr_ramp_min = 15
depth_tol = 0.05
[sweep]
duration_h = [0.5]
"""


def test_every_variable_of_every_output_has_units_and_a_long_name(tmp_path, capsys):
    (tmp_path / "study.toml").write_text(STUDY)
    (tmp_path / "env.toml").write_text(ENVELOPE)
    runs = {
        "run.nc": ["simulate", "--duration", "6min"],
        "year.nc": ["simulate", "--duration", "2h", "--segment", "1h", "--serial"],
        "plan.nc": ["optimize", ONE_RACK],
        "plans.nc": ["optimize", ONE_RACK, "--duration", "2d", "--serial"],
        "study": ["study", str(tmp_path / "study.toml"), "--serial"],
        "envelope": ["study", str(tmp_path / "env.toml"), "--serial"],
    }
    files = []
    for out, args in runs.items():
        main([*args, "--out", str(tmp_path / out)])  # one-rack's plans are infeasible (exit 3), still written
        assert (tmp_path / out).exists(), (args, capsys.readouterr().err[-2000:])
        files.append(tmp_path / out / "results.nc" if (tmp_path / out).is_dir() else tmp_path / out)
    bad = [b for f in files for b in undescribed(f)]
    assert not bad, "\n".join(bad)
    seg = xr.open_dataset(tmp_path / "plans.nc", decode_cf=False, engine="h5netcdf")
    assert seg.segment_start.attrs["units"] == "seconds since 1970-01-01 00:00:00"
    assert seg.price.attrs["units"] == "KRW MWh-1" and seg.plan_objective.attrs["units"] == "KRW"
    run = xr.open_dataset(tmp_path / "run.nc", engine="h5netcdf")  # local times say which zone (issue 20 item 28)
    offset = load_facility("campus-100mw").spec.site.utc_offset_h
    assert run.attrs["time_zone"] == f"UTC+{int(offset):02d}:00" and seg.attrs["time_zone"] == run.attrs["time_zone"]
    assert run.time.attrs["long_name"] == f"end of record interval (local time, {run.attrs['time_zone']})"
    assert seg.segment_start.attrs["long_name"].endswith(f"(local time, {run.attrs['time_zone']})")
