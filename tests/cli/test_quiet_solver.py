"""HiGHS prints nothing of its own on the commands' stdout or stderr: not its log, not its banner ("Running
HiGHS ... Copyright"), in the command's process (MPC re-plans on highspy, a plan on Pyomo's HiGHS interface)
nor in Dask workers (study cases)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BANNER = ("Running HiGHS", "Copyright", "THIRD_PARTY_NOTICES")

STUDY = """
name = "quiet"
facility = "campus-100mw"
[options]
horizon = "1h"
step = "15min"
backend = "highspy"
[sweep]
offset_k = [0.0, 2.0]
"""


def _run(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "factory_twin", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _assert_quiet(done: subprocess.CompletedProcess) -> None:
    for text in BANNER:
        assert text not in done.stdout and text not in done.stderr, (done.stdout + done.stderr)[-3000:]


def test_a_highspy_solve_in_a_fresh_process_prints_nothing(child_env, tmp_path):
    code = (
        "from factory_twin import optimization, twin\n"
        "f = twin.load_facility('campus-100mw')\n"
        "plan = optimization.dispatch(f, twin.load_scenario(None, f), horizon='1h', step='15min', backend='highspy')\n"
        "print('status', plan.attrs['status'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=child_env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "status optimal"
    _assert_quiet(done)


def test_simulate_under_mpc_and_optimize_print_no_solver_banner(child_env, tmp_path):
    sim = _run(["simulate", "--scenario", "hot-day-dr", "--start", "2026-08-08T15:55", "--duration", "10min"],
               child_env, tmp_path)  # fmt: skip
    assert "controller: mpc" in sim.stdout  # the MPC re-planned on highspy in this process
    _assert_quiet(sim)
    _assert_quiet(_run(["optimize", "--horizon", "1h", "--step", "15min"], child_env, tmp_path))  # Pyomo's HiGHS


@pytest.mark.slow
def test_study_cases_on_dask_workers_print_no_solver_banner(child_env, tmp_path):
    (tmp_path / "quiet.toml").write_text(STUDY)
    done = _run(["study", "quiet.toml", "--out", "out", "--workers", "1"], child_env, tmp_path)
    assert "2 case(s) ok, 0 failed" in done.stdout
    _assert_quiet(done)
