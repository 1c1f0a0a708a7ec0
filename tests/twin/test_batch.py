"""Batch runner: checkpoints, resume after an interruption or a hard kill, errors, timeouts."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time

import cloudpickle
import numpy as np
import pytest
import xarray as xr
from factory_twin.twin.runs.batch import STATUS, case_id, collect, run_batch

# send this module's functions by value, so case subprocesses and dask workers need not import it
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GRID = {"a": [1, 2, 3], "b": [0.5, 1.5]}
CASES = [{"a": a, "b": b} for a in GRID["a"] for b in GRID["b"]]


def work(a, b, fail_at=None, sleep_at=None):
    if a == fail_at:
        raise RuntimeError(f"boom at a={a}")
    if a == sleep_at:
        time.sleep(60)
    if os.environ.get("BATCH_TEST_STOP") == f"{a}-{b}":
        raise KeyboardInterrupt  # like Ctrl-C: not a case failure, it stops the batch
    return {"y": a * b, "v": np.arange(3.0) * a + b, "n": a, "label": f"a{a}"}


def without_time(ds):
    return ds.drop_vars("elapsed_s")


def test_results_land_on_the_product_grid(tmp_path):
    status = run_batch(work, CASES, tmp_path, progress=False)
    assert set(status.values()) == {"ok"} and list(status) == [case_id(c) for c in CASES]
    ds = collect(tmp_path, GRID, units={"y": "MW"})
    np.testing.assert_array_equal(ds.y.values, np.outer([1, 2, 3], [0.5, 1.5]))
    np.testing.assert_array_equal(ds.v.sel(a=2, b=1.5).values, [1.5, 3.5, 5.5])
    assert ds.n.dtype == np.int64 and ds.label.sel(a=3, b=0.5) == "a3"
    assert ds.y.attrs["units"] == "MW" and ds.status.attrs["flag_meanings"] == " ".join(STATUS)
    on_disk = xr.open_dataset(tmp_path / "results.nc", engine="h5netcdf").load()
    xr.testing.assert_identical(on_disk, ds)
    assert not list((tmp_path / "cases").glob("*.tmp"))


def test_a_failing_case_is_recorded_and_the_rest_complete(tmp_path):
    cases = [c | {"fail_at": 2} for c in CASES]
    status = run_batch(work, cases, tmp_path, progress=False)
    assert sorted(status.values()) == ["error"] * 2 + ["ok"] * 4
    ds = collect(tmp_path, GRID)
    assert list(ds.status.sel(a=2).values) == [1, 1] and (ds.status.sel(a=[1, 3]) == 0).all()
    assert "RuntimeError: boom at a=2" in str(ds.error.sel(a=2, b=0.5).values)
    assert np.isnan(ds.y.sel(a=2)).all() and ds.y.sel(a=3, b=1.5) == 4.5
    assert json.loads(ds.attrs["fixed_parameters"]) == {"fail_at": 2}


def test_interrupted_study_resumes_to_the_same_dataset(tmp_path, monkeypatch):
    run_batch(work, CASES, tmp_path / "full", progress=False)
    full = collect(tmp_path / "full", GRID)
    part = tmp_path / "part"
    monkeypatch.setenv("BATCH_TEST_STOP", "2-1.5")  # Ctrl-C during the 4th case
    with pytest.raises(KeyboardInterrupt):
        run_batch(work, CASES, part, progress=False)
    monkeypatch.delenv("BATCH_TEST_STOP")
    stamps = {p.name: p.stat().st_mtime_ns for p in (part / "cases").iterdir()}
    assert len(stamps) == 6  # three finished cases, .npz + .json each
    status = run_batch(work, CASES, part, resume=True, progress=False)
    assert set(status.values()) == {"ok"}
    for name, ns in stamps.items():  # finished cases were skipped, not rewritten
        assert (part / "cases" / name).stat().st_mtime_ns == ns
    xr.testing.assert_identical(without_time(collect(part, GRID)), without_time(full))
    with pytest.raises(ValueError, match="out_dir"):
        run_batch(work, CASES, part, progress=False)  # no silent mixing with an old study


SCRIPT = """
import os, signal, sys
import numpy as np
from factory_twin.twin.runs.batch import run_batch

def work(a, b):
    if os.environ.get("KILL_AT") == f"{a}-{b}":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": a * b, "v": np.arange(3.0) * a + b}

if __name__ == "__main__":
    cases = [{"a": a, "b": b} for a in (1, 2, 3) for b in (0.5, 1.5)]
    run_batch(work, cases, sys.argv[1], resume=True, progress=False)
"""


def test_hard_killed_study_resumes_to_the_same_dataset(tmp_path, child_env):
    script = tmp_path / "study.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = child_env | {"KILL_AT": "2-1.5"}
    killed = subprocess.run([sys.executable, script, tmp_path / "killed"], env=env, check=False)
    assert killed.returncode == -9
    done = sorted(p.name for p in (tmp_path / "killed" / "cases").glob("*.json"))
    assert len(done) == 3  # (1, 0.5), (1, 1.5), (2, 0.5) finished before the kill
    subprocess.run([sys.executable, script, tmp_path / "killed"], env=child_env, check=True)  # resume
    spec = importlib.util.spec_from_file_location("study", script)  # uninterrupted, in this process
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    run_batch(study.work, CASES, tmp_path / "clean", progress=False)
    a, b = (without_time(collect(tmp_path / d, GRID)) for d in ("killed", "clean"))
    xr.testing.assert_identical(a, b)
    assert (a.status == 0).all()


def test_timeout_is_recorded_and_the_rest_complete(tmp_path):
    cases = [{"a": a, "b": 1.0, "sleep_at": 2} for a in (1, 2)]
    status = run_batch(work, cases, tmp_path, timeout_s=4.0, progress=False)
    assert list(status.values()) == ["ok", "timeout"]
    ds = collect(tmp_path)
    late = ds.sel(case=case_id(cases[1]))
    assert int(late.status) == STATUS.index("timeout") and "timeout_s=4" in str(late.error.values)
    assert float(ds.y.sel(case=case_id(cases[0]))) == 1.0 and np.isnan(late.y)


def chatty(a, b):
    print(f"solving a={a}, b={b}")  # a solver's log on stdout
    return {"y": a * b}


def test_a_case_that_prints_under_a_timeout_is_kept(tmp_path):
    status = run_batch(chatty, CASES[:2], tmp_path, timeout_s=60.0, progress=False)
    assert list(status.values()) == ["ok", "ok"]
    np.testing.assert_array_equal(collect(tmp_path, {"a": [1], "b": [0.5, 1.5]}).y, [[0.5, 1.5]])


def test_dask_and_serial_give_identical_results(tmp_path):
    cases = [c | {"fail_at": 3} for c in CASES]
    run_batch(work, cases, tmp_path / "serial", progress=False)
    run_batch(work, cases, tmp_path / "dask", engine="dask", workers=2, progress=False)
    a, b = (without_time(collect(tmp_path / d)) for d in ("serial", "dask"))
    xr.testing.assert_identical(a, b)
    assert (a.status == 1).sum() == 2


def test_bad_returns_and_arguments(tmp_path):
    def not_a_dict(a, b):
        return [a, b]

    def object_value(a, b):
        return {"model": object()}

    d = tmp_path
    status = run_batch(not_a_dict, CASES[:1], f"{d}/x", progress=False)
    assert list(status.values()) == ["error"]
    run_batch(object_value, CASES[:1], f"{d}/y", progress=False)
    assert "model" in str(collect(f"{d}/y").error.values[0])
    with pytest.raises(ValueError, match="engine"):
        run_batch(work, CASES, f"{d}/z", engine="ray")
    with pytest.raises(ValueError, match="cases"):
        run_batch(work, CASES + CASES[:1], f"{d}/z")
    with pytest.raises(ValueError, match="cases\\[0\\]"):
        run_batch(work, [{"a": object()}], f"{d}/z")
    with pytest.raises(ValueError, match="timeout_s"):
        run_batch(work, CASES, f"{d}/z", timeout_s=-1.0)
    with pytest.raises(ValueError, match="dims"):
        collect(f"{d}/x", {"a": [5]})


def test_missing_grid_cells_are_flagged(tmp_path):
    run_batch(work, CASES[:4], tmp_path, progress=False)
    ds = collect(tmp_path, GRID)
    assert (ds.status.sel(a=3) == STATUS.index("missing")).all() and np.isnan(ds.y.sel(a=3)).all()
    cases = collect(tmp_path)  # listed combinations: a `case` dim with the parameters as coordinates
    assert cases.sizes["case"] == 4 and sorted(cases.a.values.tolist()) == [1, 1, 2, 2]


def test_a_cluster_without_workers_fails_the_pieces_instead_of_waiting_for_ever(tmp_path, monkeypatch):
    """All workers lost (or none ever came): the batch waited on its futures for ever; now every unfinished piece is
    an error naming why once the cluster has had no worker for NO_WORKER_GRACE_S, and the batch returns."""
    from distributed import LocalCluster
    from factory_twin.twin.runs import pieces

    monkeypatch.setattr(pieces, "NO_WORKER_GRACE_S", 1.0)
    with LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None) as empty:
        t0 = time.monotonic()
        status = run_batch(work, CASES, tmp_path, engine="dask", scheduler=empty.scheduler_address, progress=False)
    assert set(status.values()) == {"error"} and len(status) == len(CASES)
    assert time.monotonic() - t0 < 30.0
    ds = collect(tmp_path)
    assert all("no Dask worker left for 1 s" in str(e) for e in ds.error.values.ravel())


def test_a_ctrl_c_a_library_swallows_still_stops_a_serial_run(tmp_path):
    """Pyomo's HiGHS interface runs a Python callback inside the solve: a Ctrl-C landing there raises in the callback,
    where the exception is lost, and the solve goes on. The run still stops after that piece, which is not kept."""
    import signal

    from factory_twin.twin.runs.pieces import Checkpoints, run_pieces

    def task(case):
        if case == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1.0)  # the handler runs here
            except KeyboardInterrupt:
                pass  # swallowed, as inside the solver's callback
        return {"y": np.array(case * 10.0)}

    store = Checkpoints(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_pieces(task, {f"c{i}": i for i in range(5)}, store, serial=True)
    assert store.finished({f"c{i}": i for i in range(5)}) == {"c0", "c1"}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
