"""``factory-twin openadr-ven`` as a user runs it: option errors before anything starts; a run against the test
utility's VTN registers, answers an event, serves /metrics equal to its meter, and stops cleanly on SIGTERM. The
dashboard's OpenADR page shows what the VEN wrote."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from factory_twin.links.openadr.link import fingerprint
from factory_twin.links.openadr.ven import STATUS
from openadr_vtn import Utility, make_pki
from support import free_port, wait_for

from factory_twin.cli import main

OPENADR = "\n[openadr]\nsimple_levels = { 1 = 0.10 }\ncapacity_mw = 0.25\ngrid_hz = 60\nmeter_voltage_kv = 12.47\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from factory_twin import data

    d = tmp_path_factory.mktemp("cli")
    fac = d / "phoenix-openadr.toml"
    fac.write_text(data.path("facilities", "emerald-phoenix.toml").read_text() + OPENADR)
    return fac, make_pki(d / "pki")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--vtn", "http://127.0.0.1:1/x"], "plain http sends unsigned, unverified messages"),
        (["--vtn", "https://localhost:1/x", "--tls-cert", "c.pem"], "--tls-key, --tls-ca: required for an https VTN"),
        (["--vtn", "ftp://x/y"], "--vtn: expected https://HOST:PORT/PATH"),
        (["--vtn", "https://localhost:1/x", "--ven-name", "a b"], "--ven-name: letters, digits"),
    ],
)
def test_option_errors_name_the_option(setup, extra, message, capsys):
    fac, _ = setup
    args = ["openadr-ven", str(fac), "--ven-name", "v", *extra]
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_a_facility_without_a_mapping_is_refused(capsys):
    args = ["openadr-ven", "emerald-phoenix", "--vtn", "http://127.0.0.1:1/x", "--ven-name", "v", "--insecure-http"]
    assert main(args) == 1
    assert "no [openadr] table" in capsys.readouterr().err


def test_a_run_registers_answers_serves_metrics_and_stops(setup, tmp_path, child_env):
    fac, pki = setup
    vtn = Utility(pki, free_port(), {"cli-ven": fingerprint(pki.cert("ven"))})
    port = free_port()
    args = [sys.executable, "-m", "factory_twin", "openadr-ven", str(fac), "--vtn", vtn.url, "--ven-name", "cli-ven",
            "--tls-cert", str(pki.cert("ven")), "--tls-key", str(pki.key("ven")), "--tls-ca", str(pki.ca),
            "--vtn-cert", str(pki.cert("vtn")), "--state-dir", str(tmp_path / "ven"), "--speed", "60",
            "--metrics-port", str(port)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env, text=True)
    try:

        def status():
            if proc.poll() is not None:
                raise AssertionError(f"openadr-ven exited: {proc.stdout.read()[-2000:]}")
            try:
                return json.loads((tmp_path / "ven" / STATUS).read_text())
            except (OSError, ValueError):
                return None

        wait_for(lambda: (s := status()) and s["link"]["state"] == "registered", 60, "the registration")
        start = datetime.now(UTC) + timedelta(seconds=4)
        eid = vtn.add_event("cli-ven", "LOAD_CONTROL", "x-loadControlCapacity", [(start, 10, 0.82)], ramp_s=2)
        wait_for(lambda: [e for _, e, o in vtn.state()["opts"] if e == eid and o == "optIn"], 30, "the opt-in")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            body = r.read().decode()
        assert body.count("DCGM_FI_DEV_POWER_USAGE{") == 256
        line = next(x for x in body.splitlines() if x.startswith("factory_twin_grid_import_watts "))
        assert 0.15e6 < float(line.split()[1]) < 0.24e6
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        vtn.stop()
    assert proc.returncode == 0, out
    assert "1 event(s) opted in, 0 out" in out


def test_dashboard_page_shows_link_events_and_decisions(tmp_path):
    """The page's parts from a status file the VEN writes (links.openadr.ven.TwinVen.status)."""
    from factory_twin.dashboard.pages import openadr

    st = {
        "ven_name": "v", "facility": "f", "time": "2026-08-07T06:00:00.000Z", "twin_time": "2026-08-06T23:00:00",
        "speed": 1.0, "reports_sent": 12,
        "link": {"state": "refused", "detail": "OpenADR 463: fingerprint", "since": "2026-08-07T05:59:00.000Z",
                 "problems": ["2026-08-07T05:59:00.000Z 463 fingerprint"]},
        "events": [{"event_id": "e1", "modification": 1, "status": "active", "market_context": "oadr://u/dr",
                    "baseline_mw": 0.236, "ramp_s": 3.0,
                    "targets": [{"kind": "import", "depth": None, "import_mw": 0.205,
                                 "start": "2026-08-07T06:00:05.000Z", "end": None}]}],
        "decisions": [{"kind": "decision", "time": "2026-08-07T06:00:00.000Z", "event_id": "e1", "modification": 1,
                       "status": "active", "opt": "optOut", "reason": "below the floor", "mapping": ["capacity 0.3"]}],
        "follow": [{"event_id": "e1", "modification": 1, "met_after_s": 0.3}],
        "history": [["2026-08-07T06:00:00.000Z", 0.236, None], ["2026-08-07T06:00:01.000Z", 0.205, 0.205]],
    }  # fmt: skip
    (tmp_path / STATUS).write_text(json.dumps(st))
    got = openadr.read_status(tmp_path)
    text = json.dumps(openadr.link_line(got).to_plotly_json(), default=str)
    assert "link refused" in text and "banner error" in text and "463" in text
    events = json.dumps(openadr.events_table(got).to_plotly_json(), default=str)
    assert "import <= 0.205 MW, 2026-08-07 06:00:05.000 - until cancelled" in events and "0.3" in events
    decisions = json.dumps(openadr.decisions_table(got).to_plotly_json(), default=str)
    assert "optOut" in decisions and "below the floor" in decisions and "capacity 0.3" in decisions
    assert len(openadr.trend_figure(got).data) == 2
    assert openadr.read_status(tmp_path / "missing") is None
