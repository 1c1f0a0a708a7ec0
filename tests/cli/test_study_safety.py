"""Studies as a user runs them: bad sweep values are refused before any case runs, failures are explained
in the console as they happen, and Ctrl-C stops cleanly keeping the finished cases for --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from factory_twin.twin.runs.batch import run_batch

from factory_twin.cli import EXIT_INTERRUPTED, main

STUDY = """
name = "small"
facility = "campus-100mw"
[options]
horizon = "1h"
step = "15min"
[sweep]
offset_k = {offset_k}
"""


def _study(tmp_path: Path, offsets: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(STUDY.format(offset_k=offsets))
    return p


def test_bad_sweep_values_are_refused_before_any_case_runs(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["study", str(_study(tmp_path, "[0.0, 100.0, -45.0]")), "--out", str(out), "--serial"]) == 1
    err = capsys.readouterr().err
    assert "sweep.offset_k = 100.0: must be <= 30, got 100.0" in err
    assert "sweep.offset_k = -45.0: must be >= -30, got -45.0" in err
    assert not (out / "cases").exists()  # nothing was launched


def test_a_misspelt_key_or_a_value_of_the_wrong_type_is_refused_before_launch(tmp_path, capsys):
    """The whole study file is checked up front: a misspelt sweep key, a text or boolean where a number goes and a
    misspelt [options] key are refused naming the key and the bad value; no case runs, nothing is written."""
    for sweep, expected in (
        ("offst_k = [0.0, 3.0]", "sweep.offst_k: unknown parameter (did you mean 'offset_k'?)"),
        ('offset_k = ["hot", 3.0]', "sweep.offset_k = 'hot': Input should be a valid number, got 'hot'"),
        ("dr_depth = [0.2, true]", "sweep.dr_depth = True: Input should be a valid number, got True"),
        ('dr_start = ["2026-08-08T13:00", "noon"]', "sweep.dr_start = 'noon': Error parsing datetime string"),
        ('"workload.trainng.level" = [0.5]', "no workload class 'trainng' in the facility"),
    ):
        out = tmp_path / "out"
        study = tmp_path / "study.toml"
        study.write_text(STUDY.format(offset_k="[0.0]").replace("offset_k = [0.0]", sweep))
        assert main(["study", str(study), "--out", str(out), "--serial"]) == 1, sweep
        err = capsys.readouterr().err
        assert expected in err, (sweep, err)
        assert not out.exists(), sweep  # nothing launched, no results.nc or report.html
    study.write_text(STUDY.format(offset_k="[0.0]").replace('step = "15min"', 'step = "15min"\nhorizn = "2h"'))
    assert main(["study", str(study), "--out", str(out), "--serial"]) == 1
    assert "options.horizn: unknown parameter (did you mean 'horizon'?)" in capsys.readouterr().err
    assert not out.exists()


def _boom(x: int) -> dict:
    if x == 2:
        raise ValueError("import_limit_mw: must be > 0, got -5")
    return {"y": float(x)}


def test_failure_reasons_are_printed_as_cases_fail(tmp_path, capsys):
    status = run_batch(_boom, [{"x": 1}, {"x": 2}], tmp_path, engine="serial", progress=True)
    assert sorted(status.values()) == ["error", "ok"]
    err = capsys.readouterr().err
    assert "error: ValueError: import_limit_mw: must be > 0, got -5" in err


def test_ctrl_c_keeps_finished_cases_without_noise_and_resume_finishes(tmp_path, child_env):
    study, out = _study(tmp_path, "{start = 0, stop = 11, num = 12}"), tmp_path / "out"
    cmd = [sys.executable, "-m", "factory_twin", "study", str(study), "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--workers", "1"], env=child_env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while not list((out / "cases").glob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the study ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole process group
    _, err = proc.communicate(timeout=120)
    kept = len(list((out / "cases").glob("*.json")))
    assert proc.returncode == EXIT_INTERRUPTED and kept >= 1
    assert f"interrupted: {kept} finished case(s) kept" in err and "--resume" in err
    for noise in ("Traceback", "CancelledError", "KeyboardInterrupt", "WARNING"):
        assert noise not in err, err[-3000:]
    done = subprocess.run([*cmd, "--resume", "--serial"], env=child_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "12 case(s) ok, 0 failed" in done.stdout
    assert kept == 12 or f"{kept} skipped (resume)" in done.stderr
