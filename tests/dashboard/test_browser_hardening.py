"""A first user's session in a real headless Chromium at 1024, 1400 and 1920 px: readable inputs, a rack
click that opens the rack, errors in the page's units, an alarm for a missed grid target, charts read as a
person reads them (numbers on the Sankey, round ticks, one scale per plot area, flows in L/min, the plant's
capacity and over-capacity), and a runner crash that the page shows and restarts. The server runs as
``factory-twin dashboard`` (the CLI)."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from factory_twin.twin import load_facility
from support import (
    VISIBLE_VALUE_JS,
    assert_sankey_readable,
    assert_value_visible,
    browser_page,
    free_port,
    open_dispatch,
    send_control,
    start_dashboard,
    wait_for,
)

WIDTHS = (1024, 1400, 1920)
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser  # the ``browser`` fixture (conftest) skips without Chromium or Playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory, child_env):
    tmp = tmp_path_factory.mktemp("harden")
    proc, url = start_dashboard(tmp, child_env, "campus-100mw", "--controller", "uncapped")
    try:
        yield url, tmp
    finally:
        proc.terminate()
        proc.wait(20)


def _live(pg, url: str, path: str) -> None:
    pg.goto(url + path)
    pg.wait_for_selector("#status:has-text('·')", timeout=30000)


# a value a person types in each box, as long as it gets: the Dispatch page's, the Racks page's DSX id, the Grid
# page's GPUs
TYPED = {
    "/dispatch": {"ctl-dr-depth": "12.5", "ctl-dr-duration": "240", "ctl-dr-ramp": "15", "ctl-dr-notice": "30",
                  "ctl-limit-mw": "1234.5", "ctl-offset-k": "-12.5", "ctl-workload-level": "87.5",
                  "ctl-speed-x": "3600"},
    "/racks": {"racks-id": "hall-a-r03-07"},
    "/grid": {"grid-gpus": "120000"},
}  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
def test_typed_values_are_wholly_visible_and_the_page_fits_the_window(server, browser, width):
    """Issue 20 item 2: under Dash 4 the boxes' containers shrank to their 2 px border and clipped the value (the
    test read the <input>'s own box, which kept its width): what is measured is the typed text seen on screen."""
    url, _ = server
    pg = browser_page(browser, width)
    for path, boxes in TYPED.items():
        _live(pg, url, path)
        for box, value in boxes.items():
            assert_value_visible(pg, f"#{box}", value)
        assert pg.evaluate("document.documentElement.scrollWidth") <= width, (width, path)
    assert pg.failures == []
    pg.close()


def test_the_dash_major_version_is_the_one_the_layout_is_built_for():
    """The boxes' CSS targets Dash 4's markup (.dash-input-container around the <input>); pyproject pins dash to 4.x
    and the installed one is that."""
    import tomllib
    from importlib.metadata import version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "dash>=4.0,<5" in deps
    assert version("dash").split(".")[0] == "4"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_controls_show_what_is_in_force_after_navigating_away_and_back(server, browser, width):
    """Issue 20 item 19: back on the Dispatch page the ambient offset showed 0 while +8 K was applied and the import
    limit box was empty; the boxes open with what the twin has in force, wholly visible."""
    url, _ = server
    pg = browser_page(browser, width)
    open_dispatch(pg, url)  # type once the boxes show what is in force, as a person who reads them first does
    before = f"{load_facility('campus-100mw').spec.grid.import_limit_mw:g}"  # restored after: the contract's limit
    # a value of its own per width (what is shown is this run's), above the ~114 MW the twin draws: a missed
    # target would stay in the alarm history that later tests read
    limit = f"{190 + WIDTHS.index(width)}.5"
    try:
        for box, button, value, kind in (
            ("ctl-offset-k", "ctl-offset", "8", "ambient_offset"),
            ("ctl-limit-mw", "ctl-limit", limit, "import_limit"),
        ):
            send_control(pg, box, value, button, f"sent {kind}")
        pg.wait_for_selector(f"#disp-limit:has-text('in force: {limit} MW (what-if)')", timeout=15000)
        pg.get_by_role("link", name="Overview").click()  # away and back, like a person
        pg.wait_for_selector("#kpi-import", timeout=15000)
        pg.get_by_role("link", name="Dispatch").click()
        pg.wait_for_function(f"document.querySelector('#ctl-limit-mw')?.value === '{limit}'", timeout=10000)
        assert pg.input_value("#ctl-offset-k") == "8"  # was 0, the default
        for box in ("ctl-offset-k", "ctl-limit-mw", "ctl-speed-x"):
            visible, text = pg.eval_on_selector(f"#{box}", VISIBLE_VALUE_JS)
            assert text > 0 and visible >= text - 0.5, (width, box, visible, text)
        assert pg.input_value("#ctl-speed-x") == "60"
    finally:
        send_control(pg, "ctl-offset-k", "0", "ctl-offset", "sent ambient_offset")
        send_control(pg, "ctl-limit-mw", before, "ctl-limit", "sent import_limit")
        pg.click("#ctl-limit")
        pg.wait_for_selector(f"#disp-limit:has-text('in force: {float(before):.1f} MW')", timeout=20000)
        pg.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_clicking_a_rack_opens_it(server, browser, width):
    url, _ = server
    pg = browser_page(browser, width)
    _live(pg, url, "/racks")
    pg.wait_for_selector("#racks-floor .nsewdrag")
    box = pg.locator("#racks-floor .nsewdrag").first.bounding_box()
    assert box["height"] <= 60 * 12 + 120 and box["width"] <= width
    for _ in range(3):  # the floor redraws every second; a click landing mid-redraw is lost, as for a person
        pg.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
        try:
            pg.wait_for_function("document.querySelector('#racks-id').value !== ''", timeout=5000)
            break
        except Exception:  # playwright's TimeoutError: click again
            continue
    rack = pg.input_value("#racks-id")
    pg.wait_for_selector(f"#racks-detail-text:has-text('rack: {rack}')", timeout=10000)
    assert pg.failures == []  # was: HTTP 500 (dict customdata)
    pg.close()


def test_errors_speak_the_page_units(server, browser):
    url, _ = server
    pg = browser_page(browser, 1400)
    open_dispatch(pg, url)
    send_control(pg, "ctl-dr-depth", "1e9", "ctl-dr", "DR depth: must be > 0 and <= 100 %, got 1e9 %")
    assert "np.float64" not in pg.inner_text("#disp-msg") and "depth_pct" not in pg.inner_text("#disp-msg")
    pg.close()


def test_a_missed_import_limit_raises_an_alarm(server, browser):
    url, _ = server
    pg = browser_page(browser, 1400)
    open_dispatch(pg, url)
    assert pg.inner_text("#target-alarm") == ""
    # the uncapped twin draws ~100 MW: it cannot meet 1 MW
    send_control(pg, "ctl-limit-mw", "1", "ctl-limit", "sent import_limit")
    pg.wait_for_selector("#disp-limit:has-text('in force: 1.0 MW (what-if)')", timeout=10000)
    pg.goto(url + "/")  # the alarm is on every page
    pg.wait_for_selector("#target-alarm:has-text('import limit target missed')", timeout=30000)
    assert "vs target 1.00 MW" in pg.inner_text("#target-alarm")
    pg.close()


# every y axis of a graph as a person reads it: the tick labels of each plot area, top to bottom
_TICKS_JS = """g => [...g.querySelectorAll('.yaxislayer-above')].map(
    layer => [...layer.querySelectorAll('text')].map(t => t.textContent))"""
# each plot area's rectangle (one per y axis)
_AREAS_JS = """g => [...g.querySelectorAll('.nsewdrag')].map(r => { const b = r.getBoundingClientRect();
    return [b.top, b.bottom]; })"""
_MW = re.compile(r"^(.*) ([\d,]+\.\d\d) MW$")


def _number(label: str) -> float:
    return float(label.replace(",", "").replace("\u2212", "-"))


def assert_round_ticks(pg, graph: str) -> None:
    """Every y axis of ``graph`` is ticked on an even round step (1, 2 or 5 x 10^k) with at most 2 decimals,
    and no two plot areas overlap (one scale per plot area)."""
    axes = pg.eval_on_selector(graph, _TICKS_JS)
    assert axes, graph
    for labels in axes:
        assert len(labels) >= 2 and len(set(labels)) == len(labels), (graph, labels)
        assert all(len(x.split(".")[1]) <= 2 for x in labels if "." in x), (graph, labels)  # was 21.489
        v = np.array([_number(x) for x in labels])
        steps = np.diff(np.sort(v))
        assert np.allclose(steps, steps[0], rtol=1e-6), (graph, labels)  # was 2,196 / 19,271 on a second axis
        mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
        assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6, (graph, labels)
    areas = sorted(pg.eval_on_selector(graph, _AREAS_JS))
    assert len(areas) == len(axes), (graph, areas)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(areas)), (graph, areas)


@pytest.mark.parametrize("width", WIDTHS)
def test_charts_read_like_a_person(server, browser, width):
    """Overview: the Sankey writes its MW, they balance and match the import card; import limit and price in
    their own plot areas; Cooling: flows in L/min, the plant's heat and the air system's add up to the total on
    the page, the capacity is the plant's at this ambient (not the rated 120 MW); round ticks on every chart."""
    url, _ = server
    pg = browser_page(browser, width)
    _live(pg, url, "/")
    pg.wait_for_selector("#ov-sankey .node-label", timeout=30000)
    labels, card = pg.evaluate(
        "() => [[...document.querySelectorAll('#ov-sankey .node-label')].map(t => t.textContent),"
        " document.querySelector('#kpi-import .kpi-value').textContent]"
    )  # one read: the Sankey and the card come from the same snapshot
    mw = {m[1]: _number(m[2]) for m in map(_MW.match, labels) if m}
    assert len(mw) == len(labels) >= 8, labels  # every node writes its MW
    assert mw["Grid meter"] == pytest.approx(_number(card.split(" / ")[0]), abs=0.051)
    out_of_bus = [
        v for k, v in mw.items() if k in ("Distribution losses", "IT (PSU input)") or k.startswith("Cooling:")
    ]
    assert mw["Site bus"] == pytest.approx(sum(out_of_bus), abs=0.01 * len(out_of_bus))
    assert mw["IT (PSU input)"] == pytest.approx(mw["PSU losses"] + mw["GPUs"] + mw["Other rack loads"], abs=0.03)
    assert_sankey_readable(pg)  # issue 20 item 27: grey ribbons at 0.2 opacity; the IT label over the GPUs' bar
    pg.wait_for_selector("#ov-trend .legendtext", timeout=30000)
    legend = pg.eval_on_selector_all("#ov-trend .legendtext", "ts => ts.map(t => t.textContent)")
    assert {"grid import", "import limit", "price"} <= set(legend)
    assert_round_ticks(pg, "#ov-trend")

    pg.goto(url + "/cooling")
    pg.wait_for_selector("#cool-schematic .block", timeout=30000)
    text = pg.inner_text("#cool-schematic")
    assert text.count("L/min") == 3 and "kg/s" not in text and "L/s" not in text
    m = re.search(r"plant \(facility water\) ([\d,.]+) MW of ([\d,.]+) MW capacity at this ambient", text)
    total = re.search(r"\+ air system ([\d,.]+) MW = total heat rejected ([\d,.]+) MW", text)
    assert m and total, text
    assert _number(m[1]) + _number(total[1]) == pytest.approx(_number(total[2]), abs=0.011)
    assert _number(m[2]) != pytest.approx(120.0, abs=0.5)  # the rated 100 + 20 MW was shown whatever the weather
    pg.wait_for_selector("#cool-rejection .legendtext", timeout=30000)
    legend = pg.eval_on_selector_all("#cool-rejection .legendtext", "ts => ts.map(t => t.textContent)")
    assert "plant capacity at ambient" in legend and "+ air system = total heat rejected" in legend
    for graph in ("#cool-rejection", "#cool-cdus"):
        assert_round_ticks(pg, graph)
    assert pg.failures == []
    pg.close()


def test_an_over_capacity_plant_shows_with_its_numbers(server, browser):
    """30 K hotter: the plant cannot hold its setpoint; the Cooling page says so with the load and capacity."""
    url, _ = server
    pg = browser_page(browser, 1400)
    open_dispatch(pg, url)
    send_control(pg, "ctl-offset-k", "30", "ctl-offset", "sent ambient_offset")
    try:
        pg.goto(url + "/cooling")
        alarm = pg.wait_for_selector("#cool-alarms:has-text('heat-rejection plant over capacity')", timeout=30000)
        m = re.search(r"over capacity: ([\d,.]+) MW to reject .* capacity ([\d,.]+) MW at", alarm.inner_text())
        assert m and _number(m[1]) > _number(m[2]), alarm.inner_text()
        pg.wait_for_selector("#cool-rejection text:has-text('over capacity')", timeout=30000)  # the shaded run
    finally:
        open_dispatch(pg, url)
        send_control(pg, "ctl-offset-k", "0", "ctl-offset", "sent ambient_offset")
        pg.close()


def test_a_runner_crash_shows_and_restarts_from_the_page(server, browser):
    url, tmp = server
    pg = browser_page(browser, 1400)
    _live(pg, url, "/dispatch")
    out = (tmp / "server.out").read_text()
    pid = int(out.split("twin running in process ")[1].split(")")[0])
    os.kill(pid, signal.SIGKILL)
    pg.wait_for_selector("#runner-banner:has-text('The twin has stopped')", timeout=15000)
    pg.fill("#ctl-speed-x", "30")
    pg.click("#ctl-speed")
    pg.wait_for_selector("#disp-msg:has-text('not sent: the twin is not running')", timeout=5000)
    pg.click("#runner-restart")
    pg.wait_for_selector("#runner-banner", state="hidden", timeout=60000)
    first = pg.inner_text("#status")
    wait_for(lambda: "·" in pg.inner_text("#status") and pg.inner_text("#status") != first, 60, "the new twin to run")
    pg.close()


def test_a_dr_event_the_controller_ignores_is_logged_red(server, browser):
    url, _ = server
    pg = browser_page(browser, 1400)
    open_dispatch(pg, url)
    send_control(pg, "ctl-dr-depth", "99", "ctl-dr", "sent dr_event")
    entry = pg.wait_for_selector("#disp-log .error:has-text('DR event 99%')", timeout=30000)  # was green
    assert entry.inner_text().endswith("the uncapped controller ignores DR events")
    assert pg.locator("#disp-log .ok:has-text('DR event 99%')").count() == 0
    pg.close()


def test_sigterm_removes_the_live_folder_quietly(tmp_path, child_env):
    proc, _ = start_dashboard(tmp_path, child_env, "campus-100mw", "--controller", "uncapped")
    wait_for(lambda: list(tmp_path.glob("factory-twin-live-*/snapshot.npz")), 60, "the first snapshot")
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    err = (tmp_path / "server.err").read_text()
    assert not list(tmp_path.glob("factory-twin-live-*")), "live folder left behind"
    assert "Traceback" not in err and "leaked semaphore" not in err, err[-2000:]


def test_ctrl_c_stops_the_dashboard_and_its_twin_quietly(tmp_path, child_env):
    """Ctrl-C in a terminal signals the process group: the runner process died mid-step with a traceback."""
    proc, _ = start_dashboard(tmp_path, child_env, "campus-100mw", "--controller", "uncapped")
    wait_for(lambda: list(tmp_path.glob("factory-twin-live-*/snapshot.npz")), 60, "the first snapshot")
    runner = re.search(r"twin running in process (\d+)", (tmp_path / "server.out").read_text())
    for pid in (proc.pid, int(runner.group(1))):
        os.kill(pid, signal.SIGINT)
    assert proc.wait(30) == 0
    err = (tmp_path / "server.err").read_text()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert not list(tmp_path.glob("factory-twin-live-*")), "live folder left behind"


def test_the_server_is_a_production_wsgi_server(server):
    url, _ = server
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.headers["Server"] == "waitress"


def test_a_port_in_use_fails_at_once_naming_it(tmp_path, capsys, monkeypatch):
    from factory_twin.cli import main

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--port", str(port)]) == 1  # was: "serving" that URL, then a hang
    err = capsys.readouterr().err
    assert f"--port: cannot listen on 127.0.0.1:{port} (Address already in use)" in err
    assert not list(tmp_path.glob("factory-twin-live-*"))  # refused before the twin started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere"], "facility 'nowhere': not a file and not a built-in name"),
        (["--port", "99999"], "--port: must be within 1-65535, got 99999"),
        (["--scenario", "cold-day"], "scenario file not found"),
        (["--controller", "magic"], "controller: expected"),
        (["--controller", "fixed:abc"], "controller: fixed:FRACTION needs a number"),
        # issue 20 item 18: --flex-state serves the agent's page alone; a twin's options would start another twin
        (["emerald-phoenix", "--flex-state", "state"], "the facility: not with --flex-state"),
        (["--flex-state", "state", "--speed", "10"], "--speed: not with --flex-state"),
    ],
)
def test_unknown_names_fail_at_start(tmp_path, capsys, args, message):
    from factory_twin.cli import main

    assert main(["dashboard", "--port", str(free_port()), *args]) == 1  # returns: no server was started
    cap = capsys.readouterr()
    assert message in cap.err and "http://" not in cap.out
