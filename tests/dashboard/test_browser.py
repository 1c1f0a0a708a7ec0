"""The dashboard in a real headless Chromium against a real runner on campus-100mw.

Starts ``dashboard.server.serve`` in a subprocess on a free local port (the runner in its own process
under it), drives Debian's /usr/bin/chromium with Playwright and saves a screenshot of each page to
``test-artifacts/``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from factory_twin.optimization.studies.maxlps import maxlps_study
from factory_twin.twin.live.runner import SNAPSHOT, load_snapshot
from support import (
    assert_cells_readable,
    assert_sankey_readable,
    browser_page,
    free_port,
    open_dispatch,
    pick,
    send_control,
    wait_for,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGES = {
    "overview": "/",
    "cooling": "/cooling",
    "racks": "/racks",
    "dispatch": "/dispatch",
    "grid": "/grid",
    "studies": "/studies",
}

WIDTHS = (1024, 1400, 1920)

pytestmark = pytest.mark.browser  # the ``browser`` fixture (conftest) skips without Chromium or Playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory, child_env):
    run = tmp_path_factory.mktemp("live")
    port = free_port()
    controller = "mpc" if importlib.util.find_spec("factory_twin.optimization.mpc") else "uncapped"
    code = (
        f"from factory_twin.dashboard.server import serve; serve(facility='campus-100mw', port={port}, "
        f"speed=60.0, controller={controller!r}, folder={str(run)!r}, studies_dir={str(run)!r})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=child_env,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                pass
        except OSError:
            return False
        snap = load_snapshot(run / SNAPSHOT)
        return snap is not None and snap.meta["now"] is not None

    try:
        wait_for(up, 90, "the dashboard and the first snapshot")
        yield url, run, controller
    finally:
        proc.terminate()
        try:
            proc.wait(40)  # the runner joins for up to 15 s; a loaded 2-core machine takes longer
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    ctx.close()


def _status(pg) -> str:
    return pg.locator("#status").inner_text()


def test_every_page_loads_without_console_errors(server, page):
    url, _, _ = server
    ARTIFACTS.mkdir(exist_ok=True)
    for name, path in PAGES.items():
        page.goto(url + path)
        page.wait_for_selector("#status:has-text('·')", timeout=15000)
        if name != "studies":
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=15000)
        page.wait_for_timeout(1500)  # two refresh ticks
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
        assert page.errors == [], f"{name}: {page.errors}"


def test_live_values_advance(server, page):
    url, _, _ = server
    page.goto(url + "/")
    page.wait_for_selector("#kpi-import", timeout=15000)
    first = _status(page)
    wait_for(lambda: _status(page) != first, 10, "the simulated time to advance")
    assert "campus-100mw" in first


def test_bad_control_input_shows_a_message_and_the_twin_keeps_running(server, page):
    url, run, _ = server
    open_dispatch(page, url)
    for text, message in (("-5", "import limit: must be > 0 and <= 100000 MW, got -5 MW"), ("abc", "must be a number")):
        send_control(page, "ctl-limit-mw", text, "ctl-limit", message)
    t0 = load_snapshot(run / SNAPSHOT).meta["time"]
    wait_for(lambda: load_snapshot(run / SNAPSHOT).meta["time"] > t0, 10, "the twin to keep running")
    assert page.errors == []


def test_dr_event_lowers_import_below_target_within_the_ramp(server, page):
    url, run, controller = server
    if controller != "mpc":
        pytest.skip("optimization.mpc not available: the uncapped controller does not respond to DR")
    open_dispatch(page, url)
    page.fill("#ctl-dr-depth", "25")
    page.fill("#ctl-dr-ramp", "15")
    send_control(page, "ctl-dr-notice", "0", "ctl-dr", "sent dr_event")
    snap = wait_for(
        lambda: (s := load_snapshot(run / SNAPSHOT)) and s.meta["dr_events"] and s, 15, "the runner to accept the event"
    )
    ev = snap.meta["dr_events"][-1]
    assert ev["depth"] == 0.25
    page.wait_for_selector("#disp-events:has-text('25%')", timeout=5000)
    ramp_end = np.datetime64(ev["start"], "s") + np.timedelta64(15 * 60, "s")

    def after_ramp():
        s = load_snapshot(run / SNAPSHOT)
        return s if np.datetime64(s.meta["time"], "s") >= ramp_end + np.timedelta64(60, "s") else None

    snap = wait_for(after_ramp, 60, "the simulated time to pass the end of the ramp")
    target = snap.meta["dr_events"][-1]["target_mw"]  # 75 % of the DR baseline now
    assert target == pytest.approx(0.75 * snap.meta["dr_events"][-1]["baseline_mw"], rel=1e-12)
    import_mw = snap.meta["now"]["grid_import_mw"]
    assert import_mw <= target * (1 + 1e-3), (import_mw, target)
    page.goto(url + "/")
    page.wait_for_selector("#ov-sankey .node-label", timeout=15000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-after-dr.png"), full_page=True)
    assert_sankey_readable(page)  # issue 20 item 27: after DR the ribbons were faint, the IT label over the GPUs
    assert page.errors == []


def _meter_mw(pg, i: int = 0) -> float:
    return float(pg.locator(f"#grid-meter-{i} .kpi-value").inner_text().split()[0].replace(",", ""))


@pytest.mark.parametrize("width", [1024, 1400, 1920])
def test_grid_page_what_if_and_voltage_dip(server, browser, width):
    url, _, _ = server
    ctx = browser.new_context(viewport={"width": width, "height": 1000})
    pg = ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto(url + "/grid")
        pg.click("#grid-run")
        pg.wait_for_selector("#grid-meter-0", timeout=120000)  # the first what-if loads the facility
        before = _meter_mw(pg)
        assert before > 10.0 and "alarm" in pg.locator("#grid-meter-0").get_attribute("class")  # 20,000-GPU start
        pg.fill("#grid-gpus", "6000")
        pg.click("#grid-action")
        pg.click("text=stop the job")
        pg.click("text=rack battery")
        pg.click("#grid-run")
        pg.wait_for_selector("#grid-msg:has-text('stop the job: 6,000 GPUs')", timeout=120000)
        after = _meter_mw(pg)
        assert after < before and after <= 10.0  # fewer GPUs and a rack battery: within the ERCOT draft
        assert "alarm" not in pg.locator("#grid-meter-0").get_attribute("class")
        pg.click("#grid-dip")
        pg.wait_for_selector("#grid-dip-msg:has-text('perc1-default: 0 MW still off')", timeout=120000)
        pg.wait_for_selector("#grid-ride .js-plotly-plot .scatterlayer .trace", timeout=15000)
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"dashboard-grid-{width}.png"), full_page=True)
        pg.fill("#grid-gpus", "-3")
        pg.click("#grid-run")
        pg.wait_for_selector("#grid-msg:has-text('Job GPUs: enter a whole number')", timeout=30000)
        assert _meter_mw(pg) == after  # the last what-if stays on screen
        assert errors == []
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def maxlps_result(server):
    """A small MaxLPS study (DPS SDK template, one 60 s window) written where the Studies page looks."""
    _, run, _ = server
    return maxlps_study("dps-sdk", (96.0, 250.0, 1000.0), out=run / "maxlps", windows=1, window_s=60.0, serial=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_maxlps_study_reads_on_the_studies_page(server, browser, maxlps_result, width):
    """Issue 22 item 5: a person opens the MaxLPS results on the Studies page and reads the GPUs per shell and policy,
    NVIDIA's counts beside them and the steering figures, all of it visible at every width."""
    url, ds = server[0], maxlps_result
    pg = browser_page(browser, width, 1000)
    pg.goto(url + "/studies")
    pg.wait_for_selector("#status:has-text('·')", timeout=30000)
    pick(pg, "st-file", "maxlps/results.nc")
    pg.wait_for_selector("#st-maxlps-table", timeout=20000)
    cells = "#st-maxlps-table td, #st-maxlps-table th, #st-maxlps-ambient td, #st-maxlps-ambient th, #st-summary p"
    assert_cells_readable(pg, cells, width)
    rows = [[td.inner_text() for td in tr.locator("td").all()] for tr in pg.locator("#st-maxlps-table tbody tr").all()]
    assert [r[0] for r in rows] == ["96", "250", "1,000"]
    assert rows[2][1:5] == [f"{int(g):,}" for g in ds.gpus.values[2]]
    assert rows[2][5:] == ["399,096", "274,968"]  # NVIDIA's with and without MaxLPS at 1 GW
    assert f"satisfaction {100 * ds.attrs['satisfaction']:.2f} %" in pg.inner_text("#st-summary")
    hottest = pg.locator("#st-maxlps-ambient tbody tr").last.locator("td").all()
    assert [td.inner_text() for td in hottest[:3]] == [
        "100 %",
        f"{ds.maxlps_per_rack_kw_at.values[-1]:.1f}",
        f"{int(ds.maxlps_gpus_at.values[2, -1]):,}",
    ]
    assert pg.failures == []
    pg.close()
