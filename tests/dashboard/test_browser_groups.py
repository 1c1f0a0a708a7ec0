"""Resource groups changed at run time from the Power page, in a real headless Chromium at 1024, 1400 and 1920 px:
the dashboard runs ``factory-twin dashboard dps-sdk --group research:guarantee=300`` (the CLI's option reaches the
twin), a person picks research, reads the 300 W in force in the guarantee box, types 400, presses Apply, reads the
runner's acceptance and 400 W/GPU in the group table; the 300 W is restored after."""

from __future__ import annotations

import pytest
from support import assert_cells_readable, browser_page, pick, start_dashboard, wait_for

WIDTHS = (1024, 1400, 1920)
START_W, NEW_W = "300", "400"

pytestmark = pytest.mark.browser  # the ``browser`` fixture (conftest) skips without Chromium or Playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory, child_env):
    tmp = tmp_path_factory.mktemp("groups")
    proc, url = start_dashboard(tmp, child_env, "dps-sdk", "--controller", "uncapped", "--group",
                                f"research:guarantee={START_W}")  # fmt: skip
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def research_row(pg) -> list[str] | None:
    """The research row of the group table as a person reads it (cell texts)."""
    for tr in pg.locator("#power-steer-groups tbody tr").all():
        cells = [td.inner_text().strip() for td in tr.locator("td").all()]
        if cells and cells[0] == "research":
            return cells
    return None


def apply_guarantee(pg, value: str) -> None:
    """Type ``value`` in the guarantee box, press Apply and wait for the runner's acceptance and the table."""
    pg.fill("#power-group-guarantee", value)
    pg.click("#power-group-apply")
    pg.wait_for_selector(f"#power-group-msg:has-text('guarantee {value} W/GPU')", timeout=20000)
    wait_for(lambda: (research_row(pg) or [None] * 3)[2] == value, 20, f"research's guarantee {value} in the table")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_guarantee_typed_on_the_page_reaches_the_group_table(server, browser, width):
    pg = browser_page(browser, width, 1000)
    pg.goto(server + "/power")
    pg.wait_for_selector("#status:has-text('·')", timeout=60000)
    pg.wait_for_selector("#power-steer-groups tbody tr", timeout=60000)
    assert research_row(pg)[:4] == ["research", "1", START_W, "1,400"]  # the CLI's --group; max: the GB300's TDP
    assert "policy MaxLPS" in pg.locator("#power-steer-summary").inner_text()
    try:
        pg.wait_for_selector("#power-group-value:has-text('production')", timeout=20000)  # the groups are in
        pick(pg, "power-group", "research")
        # the boxes show what is in force before typing (typing earlier raced the fill, which overwrote the text)
        pg.wait_for_function(f"document.querySelector('#power-group-guarantee')?.value === '{START_W}'", timeout=15000)
        assert pg.locator("#power-group-priority").input_value() == "1"
        assert pg.locator("#power-group-max").input_value() == ""  # the rack type's default
        apply_guarantee(pg, NEW_W)
        msg = pg.locator("#power-group-msg").inner_text()
        assert msg == f"accepted: resource group research: guarantee {NEW_W} W/GPU (was {START_W})"
        assert research_row(pg)[:4] == ["research", "1", NEW_W, "1,400"]
        cells = "#power-steer-groups td, #power-steer-groups th, #power-group-msg"
        assert_cells_readable(pg, cells, width)
    finally:
        apply_guarantee(pg, START_W)
    assert pg.failures == []
    pg.close()
