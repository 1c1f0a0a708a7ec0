"""Rolling day-ahead dispatch (``optimize --duration``): the streamed plans equal independent single-day plans;
a killed run resumes without planning its finished days again."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from factory_twin.optimization import DispatchOptions, dispatch
from factory_twin.optimization.rolling import run_dispatch_year

from factory_twin.cli import main

START = "2026-08-07T00:00:00"  # the DR event of hot-day-dr is on the second day


def _day(campus, hot, opts, k):
    return dispatch(campus, hot, opts, start=np.datetime64(START) + np.timedelta64(k, "D"))


def test_three_days_on_dask_equal_three_independent_plans(campus, hot, tmp_path):
    opts = DispatchOptions(horizon="24h", step="15min", soft=("dr",), backend="highspy")
    ds = run_dispatch_year(campus, hot, opts, START, "3d", tmp_path / "plans.nc", workers=2)
    assert ds.time.size == 3 * 96 and ds.gpu_cap_w.dims == ("time", "group")
    assert ds.attrs["plans"] == ds.attrs["plans_optimal"] == 3 and ds.attrs["plans_not_optimal"] == ""
    objective = 0.0
    for k in range(3):
        ref = _day(campus, hot, opts, k)
        part = ds.isel(time=slice(96 * k, 96 * (k + 1)))
        np.testing.assert_array_equal(part.time, ref.time)
        for v in ref.data_vars:
            np.testing.assert_array_equal(part[v], ref[v], err_msg=v)
        assert float(ds.plan_objective[k]) == ref.attrs["objective"]
        objective += ref.attrs["objective"]
    assert ds.attrs["objective_total"] == pytest.approx(objective, rel=1e-12)
    assert np.isfinite(ds.dr_target_mw[96:192]).any() and not np.isfinite(ds.dr_target_mw[:96]).any()
    h = 0.25
    assert ds.attrs["energy_mwh_total"] == pytest.approx(float(ds.grid_import_mw.sum()) * h, rel=1e-12)
    assert ds.attrs["group_names"] == [str(g) for g in ref.group.values]


def test_killed_rolling_run_resumes_without_replanning_finished_days(campus, hot, tmp_path, child_env, capsys):
    out = tmp_path / "plans.nc"
    args = ["optimize", "campus-100mw", "--scenario", "hot-day-dr", "--start", START, "--duration", "6d"]
    args += ["--step", "15min", "--serial", "--out", str(out)]
    parts = tmp_path / ".plans.nc.parts"
    proc = subprocess.Popen([sys.executable, "-m", "factory_twin", *args], env=child_env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (parts / "seg-00001.json").exists():  # the marker of a finished segment
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its checkpoints"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.with_suffix(".npz").name for p in parts.glob("seg-*.json"))
    first_wall = {n: float(np.load(parts / n)["wall_s"]) for n in done}
    assert not out.exists() and 2 <= len(done) < 6
    assert main(args) == 1 and "--resume" in capsys.readouterr().err  # never silently restarted
    assert main([*args, "--resume"]) == 0
    assert "plans optimal         6 of 6" in capsys.readouterr().out
    ds = xr.load_dataset(out, engine="h5netcdf")
    for n in done:  # the finished days were not planned again: their timings are the killed run's
        assert float(ds.segment_wall_s[int(n[4:9])]) == first_wall[n]
    assert not parts.exists()
    opts = DispatchOptions(step="15min", backend="highspy")
    for k in (0, 5):  # a day planned before the kill and one after
        ref = _day(campus, hot, opts, k)
        np.testing.assert_array_equal(ds.grid_import_mw[96 * k : 96 * (k + 1)], ref.grid_import_mw)
