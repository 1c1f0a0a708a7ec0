"""A first user's session in a real headless Chromium at 1024, 1400 and 1920 px: readable inputs, a rack
click that opens the rack, errors in the page's units, an alarm for a missed grid target, and a runner
crash that the page shows and restarts. The server runs as ``factory-twin dashboard`` (the CLI)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from support import free_port, wait_for

WIDTHS = (1024, 1400, 1920)
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser  # the ``browser`` fixture (conftest) skips without Chromium or Playwright


def start_dashboard(tmp: Path, env: dict, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "factory_twin", "dashboard", *args, "--port", str(port)],
        cwd=tmp,
        stdout=(tmp / "server.out").open("w"),
        stderr=(tmp / "server.err").open("w"),
        env=env | {"TMPDIR": str(tmp)},
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {(tmp / 'server.err').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            return False

    wait_for(up, 90, "the dashboard")
    return proc, url


@pytest.fixture(scope="module")
def server(tmp_path_factory, child_env):
    tmp = tmp_path_factory.mktemp("harden")
    proc, url = start_dashboard(tmp, child_env, "campus-100mw", "--controller", "uncapped")
    try:
        yield url, tmp
    finally:
        proc.terminate()
        proc.wait(20)


def _page(browser, width: int):
    pg = browser.new_page(viewport={"width": width, "height": 900})
    pg.failures = []
    pg.on("response", lambda r: pg.failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    pg.on("pageerror", lambda e: pg.failures.append(str(e)))
    return pg


def _live(pg, url: str, path: str) -> None:
    pg.goto(url + path)
    pg.wait_for_selector("#status:has-text('·')", timeout=30000)


@pytest.mark.parametrize("width", WIDTHS)
def test_dispatch_inputs_are_wide_enough_to_read_and_fit_the_window(server, browser, width):
    url, _ = server
    pg = _page(browser, width)
    _live(pg, url, "/dispatch")
    pg.fill("#ctl-limit-mw", "123456")
    for box in ("ctl-dr-depth", "ctl-dr-duration", "ctl-dr-ramp", "ctl-dr-notice", "ctl-limit-mw", "ctl-offset-k",
                "ctl-workload-level", "ctl-speed-x"):  # fmt: skip
        b = pg.locator(f"#{box}").bounding_box()
        assert b["width"] >= 60, (width, box, b)  # was ~12 px: a value could not be seen
        assert b["x"] >= 0 and b["x"] + b["width"] <= width, (width, box, b)
        # the value typed is wholly visible: the box scrolls no text out of view
        assert pg.eval_on_selector(f"#{box}", "e => e.scrollWidth <= e.clientWidth"), (width, box)
    assert pg.failures == []
    pg.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_clicking_a_rack_opens_it(server, browser, width):
    url, _ = server
    pg = _page(browser, width)
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
    pg = _page(browser, 1400)
    _live(pg, url, "/dispatch")
    pg.fill("#ctl-dr-depth", "1e9")
    pg.click("#ctl-dr")
    pg.wait_for_selector("#disp-msg:has-text('DR depth: must be > 0 and <= 100 %, got 1e9 %')", timeout=5000)
    assert "np.float64" not in pg.inner_text("#disp-msg") and "depth_pct" not in pg.inner_text("#disp-msg")
    pg.close()


def test_a_missed_import_limit_raises_an_alarm(server, browser):
    url, _ = server
    pg = _page(browser, 1400)
    _live(pg, url, "/dispatch")
    assert pg.inner_text("#target-alarm") == ""
    pg.fill("#ctl-limit-mw", "1")  # the uncapped twin draws ~100 MW: it cannot meet 1 MW
    pg.click("#ctl-limit")
    pg.wait_for_selector("#disp-msg:has-text('sent import_limit')", timeout=5000)
    pg.goto(url + "/")  # the alarm is on every page
    pg.wait_for_selector("#target-alarm:has-text('import limit target missed')", timeout=30000)
    assert "vs target 1.00 MW" in pg.inner_text("#target-alarm")
    pg.close()


def test_a_runner_crash_shows_and_restarts_from_the_page(server, browser):
    url, tmp = server
    pg = _page(browser, 1400)
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
    pg = _page(browser, 1400)
    _live(pg, url, "/dispatch")
    pg.fill("#ctl-dr-depth", "99")
    pg.click("#ctl-dr")
    pg.wait_for_selector("#disp-msg:has-text('sent dr_event')", timeout=5000)
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
    ],
)
def test_unknown_names_fail_at_start(tmp_path, capsys, args, message):
    from factory_twin.cli import main

    assert main(["dashboard", "--port", str(free_port()), *args]) == 1  # returns: no server was started
    cap = capsys.readouterr()
    assert message in cap.err and "http://" not in cap.out
