"""``factory-twin emulate-bmc`` and ``factory-twin steer`` as an operator runs them, each in its own process:
steer holds the nodes at its limits for longer than the watchdog time, then dies by SIGKILL, and the emulated
nodes fall back to their idle policy once the watchdog time has passed without a request, not before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from support import free_port, wait_for

ONE_RACK = Path(__file__).parents[2] / "data" / "one-rack.toml"
WATCHDOG_S = 4.0
NODE = "/redfish/v1/Chassis/bench-r01-01-n07/EnvironmentMetrics"


def _cli(*args, env, **kw) -> subprocess.Popen:
    argv = [sys.executable, "-m", "factory_twin", *map(str, args)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_steer_killed_by_sigkill_and_the_nodes_fall_back(tmp_path, accounts_file, passwords, child_env, capsys):
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    tls = tmp_path / "tls"
    emu = _cli(
        "emulate-bmc", ONE_RACK, "--listen", f"127.0.0.1:{port}", "--accounts", accounts_file,
        "--tls-self-signed", tls, "--speed", "60", "--watchdog", WATCHDOG_S, "--status-every", "1", env=child_env,
    )  # fmt: skip
    steer = None
    try:
        cert = wait_for(lambda: (tls / "cert.pem").is_file() and tls / "cert.pem", 60, "the emulator's certificate")

        def setpoint() -> float | None:
            try:
                r = requests.get(url + NODE, auth=("viewer", passwords["viewer"]), verify=str(cert), timeout=2)
            except requests.ConnectionError:
                return None
            return r.json()["PowerLimitWatts"]["SetPoint"] if r.status_code == 200 else None

        assert wait_for(setpoint, 60, "the emulator to serve") == 4 * 1200.0
        creds = tmp_path / "steer.toml"
        creds.write_text(f'username = "steer"\npassword = "{passwords["steer"]}"\nca_file = "{cert}"\n')
        creds.chmod(0o600)
        steer = _cli(
            "steer", ONE_RACK, "--redfish", url, "--credentials", creds, "--controller", "fixed:0.7",
            "--status", tmp_path / "steer.json", env=child_env,
        )  # fmt: skip
        wait_for(lambda: setpoint() == 4 * 840.0, 60, "steer's limits on the node")
        held_since = time.monotonic()
        time.sleep(2.5 * WATCHDOG_S)  # steer's clock reads keep the lease: nothing falls back
        assert setpoint() == 4 * 840.0
        assert (tmp_path / "steer.json").is_file()
        steer.send_signal(signal.SIGKILL)
        steer.wait(10)
        killed = time.monotonic()
        assert time.monotonic() - held_since > 2 * WATCHDOG_S
        wait_for(lambda: setpoint() == 4 * 600.0, 3 * WATCHDOG_S + 5, "the fallback to AllowableMin")
        took = time.monotonic() - killed
        # the lease ran from steer's last request, at most one steering step (1 s) before the kill
        assert WATCHDOG_S - 1.3 < took < WATCHDOG_S + 4.0, took
        with capsys.disabled():
            print(f"\nwatchdog {WATCHDOG_S:g} s: the nodes fell back {took:.2f} s after steer's SIGKILL")
    finally:
        if steer is not None and steer.poll() is None:
            steer.kill()
        emu.send_signal(signal.SIGTERM)
        out, _ = emu.communicate(timeout=30)
    assert emu.returncode == 0, out
    assert "1 fallbacks to the idle policy" in out, out
    assert "no request from session:" in out and f"for {WATCHDOG_S:g} s" in out, out
    assert os.path.exists(tls / "key.pem") and (tls / "key.pem").stat().st_mode & 0o077 == 0
