"""The Grid flex page in a real headless Chromium, reading the status a real flex agent wrote.

A FlexAgent on emerald-phoenix (no broker: signed events are handed to it directly) takes a target, refuses an
unsigned event, schedules a later target and breaches a target below what its minimum caps allow; the
dashboard (``factory-twin dashboard --flex-state DIR``, on a free local port) shows feeds, targets, compliance,
breaches and refusals at 1024, 1400 and 1920 px.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from factory_twin.links.dsx_flex import protocol as dx
from factory_twin.links.dsx_flex.agent import AgentConfig, FlexAgent
from factory_twin.optimization.mpc import MPCController
from factory_twin.optimization.options import MPC_OPTIONS
from factory_twin.twin.simulation.engine import Twin
from joserfc.jwk import ECKey
from support import boxes_overlap, start_dashboard

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
    """``factory-twin dashboard --flex-state DIR``, as a person runs it."""
    tmp = tmp_path_factory.mktemp("dash")
    proc, url = start_dashboard(tmp, child_env, "--flex-state", str(flex_dir))
    try:
        yield url, tmp
    finally:
        proc.terminate()
        proc.wait(20)


# the trend as seen: its x tick labels (each a time, the first also the date on a second line), the axis title, the
# legend entries and the SVG, as boxes
TREND_JS = """() => { const box = e => { const r = e.getBoundingClientRect();
    return {l: r.left, r: r.right, t: r.top, b: r.bottom}; };
  const g = document.querySelector('#flex-trend');
  return {svg: box(g.querySelector('.main-svg')),
    ticks: [...g.querySelectorAll('.xtick text')].map(t => ({text: t.textContent, ...box(t)})),
    title: box(g.querySelector('.g-xtitle text')),
    legend: [...g.querySelectorAll('.legend .traces')].map(box)}; }"""


def _cells(page, table_id: str) -> list[list[str]]:
    rows = page.locator(f"#{table_id} tbody tr")
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]


@pytest.mark.parametrize("width", [1024, 1400, 1920])
def test_flex_page_shows_feeds_targets_and_breaches(server, flex_dir, browser, width):
    url, tmp = server
    status = json.loads((flex_dir / "flex-status.json").read_text())
    feed = status["feeds"]["cluster"]
    ctx = browser.new_context(viewport={"width": width, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(url + "/")
        page.wait_for_selector("#flex-feeds-table", timeout=30000)
        # issue 20 item 18: a campus-100mw twin ran beside the agent's page, its facility and date in the header;
        # the header is the agent's (its facility and clock) and no twin runs here
        assert (
            page.inner_text("#status") == f"emerald-phoenix · agent phx · {status['time'][:19].replace('T', ' ')} UTC"
        )
        assert page.locator("nav").count() == 0
        assert "twin running" not in (tmp / "server.out").read_text() and not list(tmp.glob("factory-twin-live-*"))
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
        page.wait_for_selector("#flex-trend .xtick text", timeout=15000)
        trend = page.evaluate(TREND_JS)  # every tick label whole inside the chart, the date line too, overlapping
        svg = trend["svg"]  # neither the axis title nor the legend (the date line was cut at the bottom)
        assert any("\n" in t["text"] or t["b"] - t["t"] > 20 for t in trend["ticks"]), trend["ticks"]  # the date
        for t in trend["ticks"]:
            assert svg["l"] <= t["l"] and t["r"] <= svg["r"] and svg["t"] <= t["t"] and t["b"] <= svg["b"], (width, t)
            assert not any(boxes_overlap(t, x) for x in [trend["title"], *trend["legend"]]), (width, t, trend)
        assert trend["title"]["b"] <= svg["b"], (width, trend["title"], svg)
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
