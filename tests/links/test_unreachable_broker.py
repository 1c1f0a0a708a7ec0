"""An MQTT broker that cannot be reached (issue 20 item 14): every command says so in words, naming the broker and
why; the one-shot commands stop with an error, the services keep retrying (and connect to a broker that comes up
later); the plant page shows no healthy plant without data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest
from factory_twin.dashboard.pages.plant import alarm_table, kpi_cards, no_data
from factory_twin.links.dsx_exchange.connect import Connector
from factory_twin.links.mqtt import BrokerConfig, MqttClient
from support import free_port, wait_for

from factory_twin import twin

CLOSED = "mqtt://127.0.0.1:1"  # nothing listens on port 1
SAID = f"cannot reach the MQTT broker at {CLOSED}: connection refused"


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "factory_twin", *map(str, args)]


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")
def test_every_command_says_the_broker_cannot_be_reached(tmp_path, child_env):
    """All four at once (each waits ~10 s): grid-signal and emulate-bms stop with the reason; flex-agent and connect
    keep retrying, say so while they run and, never connected, end with an error instead of "0 outage(s)"."""
    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], check=True)
    flex = ["--trust-key", f"srp={key}", "--key", key, "--speed", "60", "--duration", "15min"]
    runs = {
        "grid-signal": _cli("grid-signal", "--broker", CLOSED, "--key", key, "--isv", "srp", "--remove"),
        "emulate-bms": _cli("emulate-bms", "emerald-phoenix", "--broker", CLOSED, "--duration", "60s"),
        "flex-agent": _cli("flex-agent", "emerald-phoenix", "--broker", CLOSED, *flex),
        "connect": _cli(
            "connect", "emerald-phoenix", "--broker", CLOSED, "--state-dir", tmp_path / "c", "--duration", "14s"
        ),
    }
    procs = {k: subprocess.Popen(v, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, v in runs.items()}  # fmt: skip
    out = {k: (*p.communicate(timeout=180), p.returncode) for k, p in procs.items()}
    for name, (_, stderr, rc) in out.items():
        assert rc == 1 and "Traceback" not in stderr, (name, stderr)
        assert SAID in stderr, (name, stderr)
    for name in ("flex-agent", "connect"):  # services: they kept trying, said so, and never saw data
        stderr = out[name][1]
        assert f"{name}: {SAID}; retrying" in stderr and f"error: {name} never connected: {SAID}" in stderr
    assert "broker outage(s)" not in out["connect"][0]


def test_connect_keeps_retrying_until_the_broker_comes_up(mosquitto, tmp_path, child_env):
    """A real Mosquitto down at connect's start: connect says it cannot be reached, keeps retrying, and takes the
    plant's data once the broker is up; it then ends normally."""
    mosquitto.stop()
    state = tmp_path / "state"
    con = subprocess.Popen(_cli("connect", "emerald-phoenix", "--broker", mosquitto.url, "--state-dir", state,
                                "--duration", "60s"), env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    said = f"connect: cannot reach the MQTT broker at {mosquitto.url}: connection refused; retrying"
    first = con.stderr.readline()  # blocks until connect says it (10 s after it started trying)
    assert said in first, first
    mosquitto.start()

    def connected() -> bool:  # connect's own word (its backoff may take a while), before the plant publishes
        try:
            return json.loads((state / "status.json").read_text())["connected"]
        except (OSError, ValueError, KeyError):
            return False

    wait_for(connected, 90, "connect to reach the broker once it is up")
    emu = subprocess.run(_cli("emulate-bms", "emerald-phoenix", "--broker", mosquitto.url, "--speed", "max",
                              "--duration", "10min"), env=child_env, capture_output=True, text=True)  # fmt: skip
    assert emu.returncode == 0, emu.stderr
    stdout, stderr = con.communicate(timeout=120)
    assert con.returncode == 0, stderr
    st = json.loads((state / "status.json").read_text())
    assert st["values"] > 100  # the plant came through once the broker was up
    assert "0 broker outage(s)" in stdout  # the wait before the first connection is no outage


def test_plant_page_shows_no_healthy_plant_without_data(tmp_path):
    """The plant page over a connector that never reached its broker: no green "no active alarm", no UA 1.000, no
    zero stale points; the status line names the broker and why (it showed all three, and 'connected to')."""
    f = twin.load_facility("emerald-phoenix")
    client = MqttClient(BrokerConfig.from_url(f"mqtt://127.0.0.1:{free_port()}"))  # a port nothing listens on
    con = Connector(f, tmp_path, client, requests=False)
    client.start(wait_s=None)
    try:
        deadline = time.monotonic() + 10
        while not client.last_error and time.monotonic() < deadline:
            time.sleep(0.1)
        st = con.view()["status"]
    finally:
        client.stop()
    assert not st["connected"] and st["broker_error"].endswith(": connection refused")
    why = no_data(st)
    assert why.startswith("no data from the plant yet: cannot reach the MQTT broker")
    shown = alarm_table([], why)
    assert shown.id == "no-data" and "error" in shown.className and "no active alarm" not in str(shown)
    cards = {c.id: c.children[1].children for c in kpi_cards(st, {"stale": 0, "bad_quality": 0, "unmapped": 0})}
    assert set(cards.values()) == {"–"} and {"kpi-ua", "kpi-stale", "kpi-alarms"} <= set(cards)
