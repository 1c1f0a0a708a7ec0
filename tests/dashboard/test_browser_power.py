"""The Power page in a real headless Chromium at 1024, 1400 and 1920 px, as an engineer uses it: the one-line diagram
readable (every label inside the window and none over another), loadings and headroom shown, a feed lost from the
page reaches the twin (the path greys, the open element and its cause are listed), it is closed again, and an
element clicked in the tree shows its history; the hall conversion what-if shows what the CLI prints; the steering
panel reads at every width and shows the site binding under a low import limit typed on the Dispatch page. The server
runs as ``factory-twin dashboard`` on campus-100mw."""

from __future__ import annotations

import subprocess
import sys

import pytest
from factory_twin.twin import load_facility
from support import (
    assert_cells_readable,
    browser_page,
    open_dispatch,
    pick,
    send_control,
    start_dashboard,
    wait_for,
)

WIDTHS = (1024, 1400, 1920)

pytestmark = pytest.mark.browser  # the ``browser`` fixture (conftest) skips without Chromium or Playwright

LABELS_JS = """() => {
  const texts = [...document.querySelectorAll('#power-tree text.slicetext')]
    .filter(t => t.getBBox().width > 0 && getComputedStyle(t).display !== 'none' && t.textContent.trim());
  return texts.map(t => { const r = t.getBoundingClientRect();
    return {text: t.textContent, l: r.left, r: r.right, t: r.top, b: r.bottom}; });
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, child_env):
    tmp = tmp_path_factory.mktemp("power")
    proc, url = start_dashboard(tmp, child_env, "campus-100mw", "--controller", "uncapped", "--speed", "60")
    try:
        yield url, tmp
    finally:
        proc.terminate()
        proc.wait(20)


def _open(pg, url: str) -> None:
    pg.goto(url + "/power")
    pg.wait_for_selector("#status:has-text('·')", timeout=60000)
    pg.wait_for_selector("#power-tree text.slicetext", timeout=60000)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_diagram_is_readable_at_every_width(server, browser, width):
    url, _ = server
    pg = browser_page(browser, width, 1000)
    _open(pg, url)
    for depth in ("2 levels", "3 levels"):
        pg.get_by_label(depth, exact=True).check()
        want = {"utility-A", "utility-B", "A-main-tx", "B-main-tx"}
        want |= {"A-mv", "B-mv"} if depth == "3 levels" else set()

        def drawn(want=want):  # the tree redrawn at this depth (a busy page takes a while), read as a person does
            labels = pg.evaluate(LABELS_JS)
            return labels if want <= {lb["text"].split(" · ")[0] for lb in labels} else None

        pg.wait_for_timeout(1500)
        labels = wait_for(drawn, 20, f"the diagram at {depth}")
        for lb in labels:  # inside the window, not clipped
            assert lb["l"] >= 0 and lb["r"] <= width, (width, lb)
        for i, a in enumerate(labels):  # no label over another
            for b in labels[i + 1 :]:
                overlap = (
                    min(a["r"], b["r"]) - max(a["l"], b["l"]) > 1 and min(a["b"], b["b"]) - max(a["t"], b["t"]) > 1
                )
                assert not overlap, (width, a, b)
        util = next(lb["text"] for lb in labels if lb["text"].startswith("utility-A"))
        assert "%" in util and "kW free" in util  # loading and headroom
    assert pg.evaluate("document.documentElement.scrollWidth") <= width  # the page is no wider than the window
    for kpi in ("power-kpi-loading", "power-kpi-headroom", "power-kpi-open", "power-kpi-trips", "power-kpi-dark"):
        box = pg.evaluate(f"() => {{ const r = document.getElementById('{kpi}').getBoundingClientRect(); "
                          "return {x: r.left, w: r.width}; }")  # fmt: skip
        assert box["x"] >= 0 and box["x"] + box["w"] <= width, (width, kpi)
    assert pg.locator("#power-kpi-dark .kpi-value").inner_text() == "0"
    assert pg.failures == []
    pg.close()


def test_lose_feed_a_from_the_page_and_close_it_again(server, browser):
    url, _ = server
    pg = browser_page(browser, 1400, 1000)
    _open(pg, url)
    pg.wait_for_selector("#power-element:has-text('utility-A')", timeout=10000)  # the first feed, chosen already
    pg.click("#power-open-btn")
    pg.wait_for_selector("#power-msg:has-text('sent: lose utility-A')", timeout=5000)
    pg.wait_for_selector("#power-events-table:has-text('utility-A')", timeout=20000)
    row = pg.locator("#power-events-table tbody tr").first.inner_text()
    assert "utility-A" in row and "open" in row and "operator" in row
    assert pg.locator("#power-kpi-open .kpi-value").inner_text() == "1"
    wait_for(lambda: "OPEN" in " ".join(lb["text"] for lb in pg.evaluate(LABELS_JS)), 20, "utility-A shown open")
    assert pg.locator("#power-kpi-dark .kpi-value").inner_text() == "0"  # path B carries every rack (for now)
    pg.click("#power-close-btn")
    pg.wait_for_selector("#power-msg:has-text('sent: close utility-A')", timeout=5000)
    pg.wait_for_selector("#power-kpi-open .kpi-value:has-text('0')", timeout=20000)
    assert pg.failures == []
    pg.close()


def test_clicking_an_element_shows_its_history(server, browser):
    url, _ = server
    pg = browser_page(browser, 1400, 1000)
    _open(pg, url)
    target = pg.locator("#power-tree text.slicetext", has_text="B-main-tx").first
    box = target.bounding_box()
    for _ in range(5):  # the tree redraws every second; a click landing mid-redraw is lost, as for a person
        pg.mouse.click(box["x"] + 5, box["y"] + box["height"] / 2)
        try:
            pg.wait_for_selector("#power-history .gtitle:has-text('B-main-tx: recent load')", timeout=8000)
            break
        except Exception:  # playwright's TimeoutError: click again
            box = pg.locator("#power-tree text.slicetext", has_text="B-main-tx").first.bounding_box()
    facts = pg.locator("#power-detail-facts").inner_text()
    assert "B-main-tx" in facts and "transformer" in facts and "continuous limit" in facts
    assert pg.locator("#power-history .scatterlayer .trace").count() >= 2  # the load and its limit
    assert pg.failures == []
    pg.close()


@pytest.fixture(scope="module")
def cli_rows(child_env, tmp_path_factory):
    """``factory-twin validate campus-100mw --convert-hall hall-b:vr-nvl72:dc800-2n``: its rows (label, before,
    after), cut at the columns its header sets."""
    out = subprocess.run(
        [sys.executable, "-m", "factory_twin", "validate", "campus-100mw", "--convert-hall", CONVERSION],
        capture_output=True, text=True, env=child_env, check=True, cwd=tmp_path_factory.mktemp("cli"),
    ).stdout.splitlines()  # fmt: skip
    header = next(i for i, line in enumerate(out) if line.rstrip().endswith("before  after"))
    after_at = out[header].rindex("after")
    rows = {}
    for line in out[header + 1 :]:
        if line.startswith("  one-line diagram after"):
            break
        head = line[: after_at - 2].rstrip()
        label, before = head.rsplit("  ", 1)
        rows[label.strip()] = (before.strip(), line[after_at:].strip())
    return rows


CONVERSION = "hall-b:vr-nvl72:dc800-2n"


@pytest.mark.parametrize("width", WIDTHS)
def test_hall_conversion_shows_the_clis_figures(server, browser, cli_rows, width):
    """Hall B to Vera Rubin NVL72 on 800 VDC, chosen and compared on the page: every row equals what
    ``validate --convert-hall`` prints, the warnings are shown, and nothing is clipped, overlapping or wider
    than the window."""
    url, _ = server
    pg = browser_page(browser, width, 1000)
    _open(pg, url)
    pg.wait_for_selector("#power-conv-hall-value:has-text('hall')", timeout=20000)  # the facility's halls are in
    pick(pg, "power-conv-hall", "hall-b")
    pick(pg, "power-conv-rack", "vr-nvl72")
    pg.get_by_label("800 VDC", exact=True).check()
    pg.click("#power-conv-btn")
    pg.wait_for_selector("#power-conv-table", timeout=120000)
    assert CONVERSION in pg.locator("#power-conv-title").inner_text()
    shown = {}
    for tr in pg.locator("#power-conv-table tbody tr").all():
        label, before, after = (td.inner_text().strip() for td in tr.locator("td").all())
        shown[label] = (before, after)
    assert shown == cli_rows
    assert shown["hall chain efficiency (rack DC / hall input)"] == ("91.78%", "96.35%")
    warnings = pg.locator("#power-conv-warnings").inner_text()
    assert "keeps workload class 'training'" in warnings and "N-1" in warnings
    assert_cells_readable(pg, "#power-conv-table td, #power-conv-table th, #power-conv-warnings", width)
    assert pg.failures == []
    pg.close()


def _steer_rows(pg, table: str) -> list[list[str]]:
    """The rows of a steering table as a person reads them (cell texts)."""
    return [[td.inner_text().strip() for td in tr.locator("td").all()] for tr in pg.locator(f"#{table} tbody tr").all()]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_steering_panel_reads_at_every_width(server, browser, width):
    """The Steering section under the diagram: the site import row first with the contract's 125 MW as its budget,
    the feeds and main transformers below; both workload groups at 100 % (every GPU of the uncapped campus-100mw at
    its maximum fits every budget), with the rack type's defaults as guarantee and maximum; the site's GPU demand is
    the groups' demand added up; nothing clipped, nothing
    outside the window."""
    url, _ = server
    pg = browser_page(browser, width, 1000)
    _open(pg, url)
    pg.wait_for_selector("#power-steer-tiers tbody tr", timeout=30000)
    assert "min(limit, demand) / demand" in pg.locator("#power-steer-text").inner_text()
    tiers = _steer_rows(pg, "power-steer-tiers")
    site = tiers[0]
    assert site[0] == "site import" and site[1] == "125.00" and site[-1] == "–"
    names = {r[0] for r in tiers[1:]}
    assert {"utility-A", "utility-B", "A-main-tx", "B-main-tx"} <= names
    groups = {r[0]: r for r in _steer_rows(pg, "power-steer-groups")}
    assert set(groups) == {"training", "inference"}
    for g in groups.values():
        assert g[-1] == "100.0 %" and float(g[6].replace(",", "")) >= float(g[5].replace(",", ""))
        assert (g[2], g[3]) == ("600", "1,200")  # the GB200's minimum cap and TDP: the defaults of a group
    demand = sum(float(g[5].replace(",", "")) for g in groups.values())
    assert float(site[5].replace(",", "")) == pytest.approx(demand, abs=0.011)  # two roundings of 0.005
    assert pg.locator("#power-steer-warnings").inner_text() == "every guarantee fits"
    cells = "#power-steer-tiers td, #power-steer-tiers th, #power-steer-groups td, #power-steer-groups th"
    assert_cells_readable(pg, cells + ", #power-steer-summary, #power-steer-warnings", width)
    assert pg.failures == []
    pg.close()


def test_a_low_import_limit_binds_the_site_in_the_steering_panel(server, browser):
    """An import limit of 100 MW typed on the Dispatch page (the uncapped campus draws ~112 MW): on the Power page
    the site import row shows the 100 MW budget and binds, and the groups' satisfaction falls below 100 %; the
    contract's limit is restored after."""
    url, _ = server
    pg = browser_page(browser, 1400, 1000)
    before = f"{load_facility('campus-100mw').spec.grid.import_limit_mw:g}"
    try:
        open_dispatch(pg, url)
        send_control(pg, "ctl-limit-mw", "100", "ctl-limit", "sent import_limit")
        _open(pg, url)

        def site_binding():
            rows = _steer_rows(pg, "power-steer-tiers")
            return rows[0] if rows and rows[0][1] == "100.00" and rows[0][-1] == "binding" else None

        site = wait_for(site_binding, 30, "the site import row binding at 100 MW")
        assert site[0] == "site import"
        assert float(site[4].replace(",", "")) < float(site[5].replace(",", ""))  # allocation below demand
        sats = [float(r[-1].rstrip(" %")) for r in _steer_rows(pg, "power-steer-groups")]
        assert sats and all(s < 100.0 for s in sats)
        assert pg.failures == []
    finally:
        open_dispatch(pg, url)
        send_control(pg, "ctl-limit-mw", before, "ctl-limit", "sent import_limit")
        pg.close()
