"""Helpers the DSX Exchange end-to-end tests share: ``factory-twin connect`` and ``emulate-bms`` as child
processes against a test's own Mosquitto, waiting on connect's ``status.json``, reading its alarm log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

START_MS = 1_786_060_800_000  # the start of the tests' DSX scenarios, 2026-08-07T00:00:00 (local, stored as UTC)
DATA = Path(__file__).parent / "data"


def start_connect(broker, state: Path, env, *extra, facility: str = "campus-100mw") -> subprocess.Popen:
    """``factory-twin connect`` on ``broker`` with ``--state-dir state``, returned once it runs."""
    cmd = [sys.executable, "-m", "factory_twin", "connect", facility, "--broker", broker.url]
    cmd += ["--state-dir", str(state), *extra]
    (state / "status.json").unlink(missing_ok=True)  # a resumed run's old status would read as "started"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (state / "status.json").exists():  # written once subscribed and running
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "connect did not start"
        time.sleep(0.2)
    return proc


def stop_connect(proc: subprocess.Popen) -> str:
    """SIGINT, then its output (asserting a clean exit)."""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def emulate(broker, env, *args, facility: str = "campus-100mw", timeout: float = 600) -> None:
    """Run ``emulate-bms`` to its end."""
    cmd = [sys.executable, "-m", "factory_twin", "emulate-bms", facility, "--broker", broker.url, *args]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=timeout)


def status(state: Path) -> dict:
    return json.loads((state / "status.json").read_text())


def wait_caught_up(state: Path, plant_ms: int, stall_s: float = 60) -> dict:
    """Wait until connect's plant clock reaches ``plant_ms``; fail only when it stops making progress."""
    last, since = -1, time.monotonic()
    while True:
        st = status(state)
        if st["plant_time_ms"] >= plant_ms and st["messages"] == last and time.monotonic() - since > 2.5:
            return st  # there, and nothing more coming
        if st["messages"] != last:
            last, since = st["messages"], time.monotonic()
        assert time.monotonic() - since < stall_s, f"connect stalled at plant time {st['plant_time_ms']}"
        time.sleep(0.3)


def alarms(state: Path) -> list[dict]:
    return [json.loads(line) for line in (state / "alarms.jsonl").read_text().splitlines()]


def raised(state: Path) -> dict[tuple, dict]:
    """The first raise of every (entity, kind, point) in the alarm log."""
    first: dict[tuple, dict] = {}
    for a in alarms(state):
        if a["state"] == "raised":
            first.setdefault((a["entity"], a["kind"], a["point"]), a)
    return first
