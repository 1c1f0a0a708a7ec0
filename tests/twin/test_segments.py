"""Segmented runs: equal to a serial run within the seam error, books close, a killed run resumes."""

import functools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from factory_twin.twin.runs import segments
from factory_twin.twin.simulation.recorder import CampusRecorder

from factory_twin import twin
from factory_twin.cli import main

START = "2026-08-08T14:00:00"


@pytest.fixture(scope="module")
def campus():
    return twin.load_facility("campus-100mw")


@pytest.fixture(scope="module")
def hot(campus):
    """4.5 K above the hot day: the plant is short, supply temperatures float and racks throttle, so the
    loops carry their history longest (the hardest seam)."""
    return twin.load_scenario("hot-day-dr", campus).with_changes(offset_k=4.5)


def test_two_segments_equal_a_serial_run_within_the_seam_error(campus, hot, tmp_path):
    plan = segments.plan_segments(START, "40min", segment="20min", overlap="20min")
    seg = segments.run_segments(campus, hot, plan, tmp_path / "seg.nc", serial=True)
    ser = twin.simulate(campus, hot, start=START, duration="40min")
    seam = seg.attrs["seam_error_max_k"]
    assert 0 <= seam <= segments.SEAM_TOLERANCE_K
    assert float(ser.throttled_gpus.max()) > 0  # the throttle is active across the seam
    np.testing.assert_array_equal(seg.time, ser.time)
    first = slice(0, 20)  # segment 0 starts like the serial run: identical
    for v in ("grid_import_mw", "fws_supply_c", "stored_heat_mj"):
        np.testing.assert_array_equal(seg[v][first], ser[v][first])
    second = slice(20, None)
    assert float(np.abs(seg.fws_supply_c - ser.fws_supply_c)[second].max()) <= seam + 1e-9
    assert float(np.abs(seg.die_temp_max_c - ser.die_temp_c.max("rack"))[second].max()) <= seam + 1e-5
    np.testing.assert_allclose(seg.attrs["grid_energy_mwh"], ser.attrs["grid_energy_mwh"], rtol=1e-9)
    assert abs(seg.attrs["heat_book_residual"]) < 1e-6 and abs(seg.attrs["electric_book_residual"]) < 1e-12
    assert seg.attrs["seam_bess_max_mwh"] == 0.0
    # a 2-minute warm-up is too short on this day: the measured seam error says so
    short = segments.plan_segments(START, "40min", segment="20min", overlap="2min")
    with pytest.warns(UserWarning, match="seam error"):
        bad = segments.run_segments(campus, hot, short, tmp_path / "short.nc", serial=True)
    assert bad.attrs["seam_error_max_k"] > segments.SEAM_TOLERANCE_K and "warning" in bad.attrs


def test_campus_recorder_equals_the_full_record_reduced(campus, hot):
    """A segment records only the campus series and a few states; they equal the full record's arrays
    reduced afterwards (a hot afternoon with racks throttling, caps of one class below its uncapped draw)."""
    kw = dict(start=START, duration="20min", controller=twin.FixedCap(campus.tdp_w, campus.min_cap_w, 0.95))
    full = twin.simulate(campus, hot, **kw)
    lean = twin.simulate(campus, hot, recorder=functools.partial(CampusRecorder, states_at=(4, -1)), **kw)
    assert float(full.throttled_gpus.max()) > 0 and "gpu_power_w" not in lean
    assert lean.die_temp_c.dims == ("state", "rack") and lean.tcs_supply_c.dims == ("state", "cdu")
    for v in full.data_vars:
        if full[v].dims == ("time",):
            np.testing.assert_array_equal(lean[v], full[v], err_msg=v)
    assert lean.attrs == full.attrs
    np.testing.assert_array_equal(lean.die_temp_max_c, full.die_temp_c.max("rack"))
    np.testing.assert_array_equal(lean.cdus_at_capacity, full.cdu_at_capacity.sum("cdu"))
    busy = np.stack([hot.utilization(c, full.time.values) for c in campus.class_names])[campus.rack_class].T
    shed = np.maximum(np.minimum(campus.demand_w, full.gpu_cap_w.values) - campus.min_cap_w, 0.0)
    flex = (busy * shed) @ campus.gpus / 1e6
    assert flex.min() > 1.0  # MW the caps could still shed
    np.testing.assert_allclose(lean.flexible_mw, flex, rtol=1e-12)
    np.testing.assert_array_equal(lean.state_time, full.time[[4, -1]])
    for v in ("die_temp_c", "tcs_supply_c", "tcs_return_c"):
        np.testing.assert_array_equal(lean[v], full[v][[4, -1]], err_msg=v)


def test_killed_run_resumes_without_redoing_finished_segments(campus, tmp_path, child_env, capsys):
    out = tmp_path / "year.nc"
    args = ["simulate", "campus-100mw", "--scenario", "hot-day-dr", "--start", START, "--duration", "1h"]
    args += ["--segment", "15min", "--overlap", "5min", "--serial", "--out", str(out)]
    parts = tmp_path / ".year.nc.parts"
    proc = subprocess.Popen([sys.executable, "-m", "factory_twin", *args], env=child_env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (parts / "seg-00000.json").exists():  # the marker of a finished segment
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and (tmp_path / ".year.nc.partial").exists()
    done = sorted(p.with_suffix(".npz").name for p in parts.glob("seg-*.json"))
    first_wall = {n: float(np.load(parts / n)["wall_s"]) for n in done}
    assert len(done) < 4
    assert main(args) == 1 and "--resume" in capsys.readouterr().err  # never silently restarted
    assert main([*args, "--resume", "--report", str(tmp_path / "report.html")]) == 0
    assert "PUE (energy ratio) by month" in (tmp_path / "report.html").read_text()
    ds = xr.load_dataset(out, engine="h5netcdf")
    for n in done:  # the finished segments were not run again: their timings are the killed run's
        assert float(ds.segment_wall_s[int(n[4:9])]) == first_wall[n]
    assert not parts.exists() and not (tmp_path / ".year.nc.partial").exists()
    plan = segments.plan_segments(START, "1h", segment="15min", overlap="5min")
    ref = segments.run_segments(campus, twin.load_scenario("hot-day-dr", campus), plan, tmp_path / "r.nc", serial=True)
    for v in ("grid_import_mw", "die_temp_max_c", "fws_supply_c"):
        np.testing.assert_array_equal(ds[v], ref[v])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--out"),
        (["--out", "EXISTING"], "--force"),
        (["--out", "NEW", "--controller", "mpc"], "controller"),
        (["--out", "NEW", "--overlap", "90s"], "overlap"),
        (["--out", "NEW", "--start", "2025-01-01T00:00:00"], "grid signals"),
    ],
)
def test_bad_segmented_options_fail_before_work(extra, message, tmp_path, capsys):
    (tmp_path / "existing.nc").write_bytes(b"keep")
    extra = [str(tmp_path / "existing.nc") if a == "EXISTING" else str(tmp_path / "new.nc") if a == "NEW" else a
             for a in extra]  # fmt: skip
    code = main(["simulate", "campus-100mw", "--duration", "2h", "--segment", "1h", "--serial", *extra])
    assert code == 1 and message in capsys.readouterr().err
    assert (tmp_path / "existing.nc").read_bytes() == b"keep" and not (tmp_path / "new.nc").exists()


def test_an_unreachable_scheduler_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    """A run that finished no segment (here: no scheduler at the address) leaves no unfinished-run folder,
    so the same command works again without --resume or --force."""
    from support import free_port

    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "1s")
    import dask

    dask.config.refresh()
    out = tmp_path / "run.nc"
    args = ["simulate", "campus-100mw", "--duration", "2h", "--segment", "1h", "--out", str(out)]
    assert main([*args, "--scheduler", f"tcp://127.0.0.1:{free_port()}"]) == 1
    assert "scheduler: cannot connect to" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
