"""The Grid flex page in a real headless Chromium, reading the status a real flex agent wrote.

A FlexAgent on emerald-phoenix (no broker: signed events are handed to it directly) takes a target, refuses an
unsigned event, schedules a later target and breaches a target below what its minimum caps allow; the
dashboard (its own process, on a free local port) shows feeds, targets, compliance, breaches and refusals at
1024, 1400 and 1920 px.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.dsx_flex.agent import AgentConfig, FlexAgent
from factory_twin.optimization.mpc import MPCController
from factory_twin.optimization.options import MPC_OPTIONS
from factory_twin.twin.simulation.engine import Twin
from joserfc.jwk import ECKey

from factory_twin import twin

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def flex_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flex") / "state"
    f = twin.load_facility("emerald-phoenix")
    sc = twin.load_scenario("srp-2025-05-04", f)
    mpc = MPCController(f, sc, MPC_OPTIONS.updated(horizon="30min", backend="highspy"), replan_every="5min")
    grid = ECKey.generate_key("P-256")
    agent = FlexAgent(
        Twin(f, sc, plant_step_s=20.0, controller=mpc),
        dx.TrustStore.bound("srp", grid),
        ECKey.generate_key("P-256"),
        state_dir=folder,
        config=AgentConfig(identifier="phx", grace_s=60, escalate_s=600),
    )
    topic = dx.loadtarget_topic("srp")

    def send(*targets):
        return agent.handle(topic, json.dumps(dx.loadtarget_event("srp", list(targets), grid, agent.now())).encode())

    agent.run(180, speed=None)
    assert send(dx.loadtarget_data(70e3))
    agent.run(300, speed=None)
    unsigned = dx.loadtarget_event("srp", [dx.loadtarget_data(60e3)], grid, agent.now()) | {"data": {"targets": []}}
    assert not agent.handle(topic, json.dumps(unsigned).encode())
    later = agent.now() + timedelta(hours=2)
    assert send(dx.loadtarget_data(30e3, best_effort=True), dx.loadtarget_data(80e3, later, later + timedelta(hours=1)))
    agent.run(300, speed=None)
    return folder


@pytest.fixture(scope="module")
def server(flex_dir, child_env, tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "from factory_twin.dashboard.app import create_app; "
        f"create_app(lambda **k: None, lambda c: 'x', {str(tmp_path_factory.mktemp('st'))!r}, "
        f"flex_dir={str(flex_dir)!r}).run(host='127.0.0.1', port={port})"
    )
    out = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-c", code], env=child_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dashboard did not start: {proc.stdout.read().decode()[-2000:]}") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(15)


def _cells(page, table_id: str) -> list[list[str]]:
    rows = page.locator(f"#{table_id} tbody tr")
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]


@pytest.mark.parametrize("width", [1024, 1400, 1920])
def test_flex_page_shows_feeds_targets_and_breaches(server, flex_dir, browser, width):
    status = json.loads((flex_dir / "flex-status.json").read_text())
    feed = status["feeds"]["cluster"]
    ctx = browser.new_context(viewport={"width": width, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(server + "/")
        page.get_by_role("link", name="Grid flex").click()  # navigate like a person
        page.wait_for_selector("#flex-feeds-table", timeout=15000)
        (row,) = _cells(page, "flex-feeds-table")
        assert row[0] == "cluster" and row[1] == "gpu"
        assert float(row[2].replace(",", "")) == pytest.approx(feed["limit_w"] / 1e3, abs=0.05) == 30.0
        assert float(row[3].replace(",", "")) == pytest.approx(feed["measured_w"] / 1e3, abs=0.05)
        assert float(row[3].replace(",", "")) > 45.0  # the minimum caps draw ~50 kW: the target cannot be met
        assert row[6] == "NO" and row[7] == "active"
        targets = _cells(page, "flex-tt")
        assert [t[4] for t in targets] == ["active", "scheduled"]
        assert [float(t[1]) for t in targets] == [30.0, 80.0] and targets[0][5] == "yes"
        (alert,) = _cells(page, "flex-breach-table")
        assert alert[2:4] == ["active", "critical"] and int(alert[6]) == 6  # one shed hint per job
        assert "unsigned" in page.locator("#flex-refused").inner_text()
        page.wait_for_selector("#flex-trend .main-svg", timeout=15000)
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
            "window.innerWidth + 1).map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)"
        )
        assert wide == []  # nothing sticks out to the right
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-flex-{width}.png"), full_page=True)
        assert errors == []
    finally:
        ctx.close()
