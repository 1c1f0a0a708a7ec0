"""``factory-twin flex-agent`` and ``grid-signal`` as a utility engineer runs them: keys made with the openssl
commands of docs/flex.md, a real Mosquitto, the agent in its own process."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import time

import pytest
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from support import zoneless


def _keys(folder, name):
    """The documented key generation (docs/flex.md): EC P-256 private key, then its public key."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    priv, pub = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", priv], check=True)
    subprocess.run(["openssl", "ec", "-in", priv, "-pubout", "-out", pub], check=True, capture_output=True)
    return priv, pub


def _cli(*args, env):
    argv = [sys.executable, "-m", "factory_twin", *map(str, args)]
    return subprocess.run(argv, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_agent_and_signal_processes(mosquitto, tmp_path, child_env):
    grid, grid_pub = _keys(tmp_path, "grid")
    agent_key, agent_pub = _keys(tmp_path, "agent")
    got: queue.Queue = queue.Queue()
    listen = MqttClient(BrokerConfig.from_url(mosquitto.url), on_message=lambda m: got.put(json.loads(m.payload)))
    listen.start().subscribe("grid/v1/dsx-flex-agent/phx/#", qos=1)
    bad = _cli("grid-signal", "--broker", mosquitto.url, "--key", grid_pub, "--isv", "srp", "--constraint-kw", "70",
               env=child_env)  # fmt: skip
    assert bad.returncode == 1 and "private key is needed" in bad.stderr
    agent = subprocess.Popen(
        [sys.executable, "-m", "factory_twin", "flex-agent", "emerald-phoenix", "--scenario", "srp-2025-05-04",
         "--broker", mosquitto.url, "--trust-key", f"srp={grid_pub}", "--key", agent_key, "--identifier", "phx",
         "--state-dir", tmp_path / "state", "--start", "2025-05-04T16:00:00", "--speed", "20", "--duration", "1h",
         "--max-age", "900"],
        env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        first = got.get(timeout=60)  # the first heartbeat: the agent is up
        agent_public = dx.load_key(agent_pub)
        trust = dx.TrustStore({agent_public.thumbprint(): agent_public})
        assert trust.verify(first["data"])["feeds"]["cluster"]["event"] == "periodic"
        signal = ["grid-signal", "--broker", mosquitto.url, "--key", grid, "--isv", "srp", "--agent", "phx",
                  "--agent-key", agent_pub]  # fmt: skip
        # stamped with the wall clock, the event is refused (the twin runs 20x from 2025): grid-signal says so and
        # exits 1 (issue 20 item 15: it printed "published" and exited 0)
        wall = _cli(*signal, "--constraint-kw", "60", "--time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    env=child_env)  # fmt: skip
        assert wall.returncode == 1 and "published" in wall.stdout, wall.stderr
        assert "refused: agent phx did not take the target" in wall.stderr and "from the agent's clock" in wall.stderr
        # stamped on the agent's clock (its next heartbeat): accepted, and grid-signal reports the agent's verdict
        sent = _cli(*signal, "--constraint-kw", "70", "--duration", "30min", env=child_env)
        assert sent.returncode == 0, sent.stderr
        assert "agent phx's clock: 2025-05-04T" in sent.stdout and "accepted by agent phx at" in sent.stdout
        assert "target_set on cluster" in sent.stdout
        events, deadline = [], time.monotonic() + 60
        while "end_ramp_down" not in events and time.monotonic() < deadline:
            try:
                ev = got.get(timeout=1)
            except queue.Empty:
                continue
            data = trust.verify(ev["data"])
            if ev["type"] == dx.STATUS and data["feeds"]["cluster"]["event"] != "periodic":
                events.append(data["feeds"]["cluster"]["event"])
                if events[-1] == "target_set":
                    assert ev["correlationid"] in sent.stdout
        assert events[:3] == ["target_set", "start_ramp_down", "end_ramp_down"]
        saved = json.loads((tmp_path / "state" / "flex-state.json").read_text())
        assert saved["targets"]["cluster"][0]["constraint_w"] == 70e3
    finally:
        agent.terminate()
        out = agent.communicate(timeout=30)[0]
        listen.stop()
    assert "stopped at" in out
    # every time it printed (its logs included) carries its zone: "stopped at 2026-12-05T03:29:30" did not
    assert not zoneless(out), out[-2000:]
