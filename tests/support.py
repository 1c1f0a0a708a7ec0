"""Small helpers the test modules share (importable because ``tests/`` holds the root conftest)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.2) -> T:
    """``pred()``'s first truthy value, polling every ``poll_s``; ``AssertionError`` naming ``what`` after
    ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if value := pred():
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")


def make_tls_files(folder: Path) -> None:
    """A private CA (``ca.pem``) and, signed by it, a server certificate for 127.0.0.1 (``srv.pem``,
    ``srv.key``) and a client certificate (``client.pem``, ``client.key``), made with openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=test-ca")  # fmt: skip
    for name, subject, extra in (
        ("srv", "/CN=127.0.0.1", ("-addext", "subjectAltName=IP:127.0.0.1")),
        ("client", "/CN=factory-twin", ()),
    ):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject, *extra)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-copy_extensions", "copy")  # fmt: skip


def scenario_with_csv_limit(folder, facility, limit_mw: float, scenario_limit_mw: float | None = None):
    """A scenario whose grid-signals CSV (two days from 2026-08-07, hourly) carries an ``import_limit_mw``
    column of ``limit_mw``, and optionally its own ``[grid] import_limit_mw``; built for ``facility``."""
    from factory_twin import twin

    folder = Path(folder)
    rows = "".join(f"2026-08-{7 + h // 24:02d}T{h % 24:02d}:00:00,100,400,{limit_mw}\n" for h in range(48))
    (folder / "limit.csv").write_text("time,price_per_mwh,carbon_kg_per_mwh,import_limit_mw\n" + rows)
    own = f"import_limit_mw = {scenario_limit_mw}\n" if scenario_limit_mw is not None else ""
    (folder / "csv-limit.toml").write_text(
        f'name = "csv-limit"\nstart = "2026-08-07T00:00:00"\n[grid]\nsignals = "limit.csv"\n{own}'
    )
    return twin.load_scenario(folder / "csv-limit.toml", facility)


def check_conservation(topo, routing, rack_in, mech, flow):
    """Every parent's output = its children's inputs times their shares (racks, mechanical loads, elements), written
    edge by edge in plain Python; input = output + losses; the feeds carry IT + mechanical + all losses."""
    out = np.zeros(topo.n)
    live = routing.energized
    for r in range(topo.n_racks):
        ps = topo.rack_parents(r)
        on = ps[live[ps]]
        for p in on:
            out[p] += rack_in[r] / on.size
    for j, share in enumerate(topo.mech_share):
        ps = topo.mech_edge_parent[topo.mech_edge_load == j]
        on = ps[live[ps]]
        for p in on:
            out[p] += share * mech / on.size
    for c, p in zip(topo.edge_child.tolist(), topo.edge_parent.tolist(), strict=True):
        ps = topo.parents(c)
        if live[p]:
            out[p] += flow.in_w[c] / live[ps].sum()
    assert np.allclose(flow.out_w, out, rtol=1e-9, atol=1e-9 * np.abs(out).max())
    assert np.allclose(flow.in_w, flow.out_w + flow.loss_w, rtol=0, atol=1e-6)
    fed = rack_in[routing.rack_on].sum() + mech * routing.mech_on.any()
    assert flow.grid_w == pytest.approx(fed + flow.losses_w, rel=1e-9)
    assert flow.losses_w == pytest.approx(flow.loss_w.sum(), rel=1e-9)


def start_dashboard(tmp: Path, env: dict, *args: str) -> tuple[subprocess.Popen, str]:
    """``factory-twin dashboard ARGS`` on a free local port in ``tmp``; (the process, its URL) once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "factory_twin", "dashboard", *args, "--port", str(port)],
        cwd=tmp,
        stdout=(tmp / "server.out").open("w"),
        stderr=(tmp / "server.err").open("w"),
        env=env | {"TMPDIR": str(tmp)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # Ctrl-C acts even when pytest runs with &
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


def dense_rows(n: int, A: list, b: list):
    """``row(entries, rhs)`` appending one dense row ``sum coef x_j <= rhs`` of ``n`` columns to A, b."""

    def row(entries, rhs):
        r = np.zeros(n)
        for j, v in entries:
            r[j] += v
        A.append(r)
        b.append(rhs)

    return row


def browser_page(browser, width: int, height: int = 900):
    """A page of ``browser`` at ``width`` x ``height`` px recording failed responses and page errors in ``failures``."""
    pg = browser.new_page(viewport={"width": width, "height": height})
    pg.failures = []
    pg.on("response", lambda r: pg.failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    pg.on("pageerror", lambda e: pg.failures.append(str(e)))
    return pg


# What a person sees of a text box's value: the typed text's width (the box's font, canvas-measured) laid from the
# box's content edge less its scroll, cut by the box's content area, every ancestor that clips (overflow not
# visible) and the window. Returns [visible px, text px].
VISIBLE_VALUE_JS = """e => {
  const cs = getComputedStyle(e), px = v => parseFloat(v) || 0;
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = cs.font;
  const text = ctx.measureText(e.value).width;
  const r = e.getBoundingClientRect();
  let lo = r.left + px(cs.borderLeftWidth) + px(cs.paddingLeft);
  let hi = r.right - px(cs.borderRightWidth) - px(cs.paddingRight);
  const start = lo - e.scrollLeft;
  lo = Math.max(lo, start, 0);
  hi = Math.min(hi, start + text, window.innerWidth);
  for (let n = e.parentElement; n; n = n.parentElement) {
    const s = getComputedStyle(n);
    if (s.overflowX !== 'visible' || s.contain.includes('paint')) {
      const b = n.getBoundingClientRect();
      lo = Math.max(lo, b.left + px(s.borderLeftWidth));
      hi = Math.min(hi, b.right - px(s.borderRightWidth));
    }
  }
  return [Math.max(0, hi - lo), text];
}"""


def open_dispatch(pg, url: str) -> None:
    """Open the Dispatch page of a live dashboard and wait, as a person reading the boxes would, until they show what
    is in force (the import limit box opens empty): typing before that raced the fill, which overwrote the text."""
    pg.goto(url + "/dispatch")
    pg.wait_for_selector("#status:has-text('\u00b7')", timeout=30000)
    pg.wait_for_function("document.querySelector('#ctl-limit-mw')?.value !== ''", timeout=15000)


def send_control(pg, box: str, value: str, button: str, message: str) -> None:
    """Type ``value`` in ``box``, press ``button`` and read ``message`` in the page's reply ('sent <kind>' or the
    error a person would read)."""
    pg.fill(f"#{box}", value)
    pg.click(f"#{button}")
    pg.wait_for_selector(f"#disp-msg:has-text('{message}')", timeout=15000)


def pick(pg, dropdown: str, value: str) -> None:
    """Choose ``value`` in the Dash dropdown ``dropdown`` (its id) as a person does: open it, type to filter, click the
    option; again if the page, busy redrawing, did not take it (as a person would). The filter is filled whole: keys
    typed while the list opens were lost on a busy page ('rsearch' for 'research')."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    chosen = f"#{dropdown}-value"
    for _ in range(3):
        if pg.locator(chosen).inner_text().strip() == value:  # already chosen (the page's default): leave it, as a
            return  # person does; clicking the chosen option of a Dash 4 dropdown again can clear it
        if pg.locator("[role=listbox]").count():  # a list left open by the last try: closed first
            pg.keyboard.press("Escape")
        pg.click(f"#{dropdown}")
        try:
            pg.locator("input.dash-dropdown-search").fill(value, timeout=5000)
            pg.get_by_role("option", name=value, exact=True).click(timeout=10000)
        except PlaywrightTimeout:
            continue
        if pg.locator("[role=listbox]").count():  # choosing the value already chosen leaves the list open
            pg.keyboard.press("Escape")
        try:
            wait_for(lambda: pg.locator(chosen).inner_text().strip() == value, 15, f"{dropdown} = {value}")
            return
        except AssertionError:
            continue
    assert pg.locator(chosen).inner_text().strip() == value, f"{dropdown} = {value}"


CELLS_JS = """sel => [...document.querySelectorAll(sel)].map(c => { const r = c.getBoundingClientRect();
    return {text: c.innerText, l: r.left, r: r.right, t: r.top, b: r.bottom,
            sw: c.scrollWidth, cw: c.clientWidth}; })"""


def assert_cells_readable(pg, selector: str, width: int) -> list[dict]:
    """Every element matching ``selector`` (table cells, messages) lies inside the window, shows all its text (not
    clipped) and covers no other; the page is no wider than the window. Returns the cells (text and box)."""
    cells = pg.evaluate(CELLS_JS, selector)
    assert cells, selector
    for c in cells:
        assert c["l"] >= 0 and c["r"] <= width and c["sw"] <= c["cw"] + 1, (width, c)
    for i, a in enumerate(cells):
        for b in cells[i + 1 :]:
            overlap = min(a["r"], b["r"]) - max(a["l"], b["l"]) > 1 and min(a["b"], b["b"]) - max(a["t"], b["t"]) > 1
            assert not overlap, (width, a, b)
    assert pg.evaluate("document.documentElement.scrollWidth") <= width
    return cells


def assert_value_visible(pg, selector: str, value: str) -> float:
    """Type ``value`` into the text box ``selector`` of page ``pg`` as a person would and assert all of it is seen
    (no character clipped by the box, its container or the window); returns the visible width in px."""
    box = pg.locator(selector)
    box.fill("")
    box.type(value)
    visible, text = pg.eval_on_selector(selector, VISIBLE_VALUE_JS)
    assert text > 0 and visible >= text - 0.5, f"{selector}: {visible:.1f} px of {text:.1f} px of {value!r} seen"
    return visible


# an ISO date-time (T or space) not followed by a zone: what flex-agent printed ("stopped at 2026-12-05T03:29:30")
ZONELESS = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d([.,]\d+)?)?(?!\d|[.,:]\d|Z|[+-]\d\d:\d\d)")


def zoneless(text: str) -> list[str]:
    """The date-times in ``text`` printed without a zone (issue 20 item 28)."""
    return [m.group(0) for m in ZONELESS.finditer(text)]


def undescribed(path: Path) -> list[str]:
    """Every variable of the NetCDF file at ``path`` (as written, not decoded) that lacks a ``long_name``, a
    number without ``units``, or money units that do not name the file's ``currency`` attribute."""
    import xarray as xr

    with xr.open_dataset(path, decode_cf=False, engine="h5netcdf") as ds:
        currency = ds.attrs.get("currency", "")
        bad = []
        for name, v in ds.variables.items():
            units = str(v.attrs.get("units", ""))
            if "long_name" not in v.attrs:
                bad.append(f"{path.name}:{name} has no long_name")
            if v.dtype.kind in "biuf" and "units" not in v.attrs:
                bad.append(f"{path.name}:{name} has no units")
            if "currency" in units or (any(w in name for w in ("price", "cost", "value_lost", "objective"))
                                       and v.dtype.kind == "f" and currency not in units.split()):  # fmt: skip
                bad.append(f"{path.name}:{name} units {units!r} do not name the currency {currency!r}")
        return bad


# The overview's Sankey as seen: each node's label (box and text) and bar, the SVG's box, each ribbon's fill as drawn
_SANKEY_JS = """() => { const box = e => { const r = e.getBoundingClientRect();
    return {l: r.left, r: r.right, t: r.top, b: r.bottom}; };
  const g = document.querySelector('#ov-sankey');
  return {svg: box(g.querySelector('.main-svg')),
    nodes: [...g.querySelectorAll('.sankey-node')].map(n => ({text: n.querySelector('.node-label').textContent,
      label: box(n.querySelector('.node-label')), bar: box(n.querySelector('.node-rect'))})),
    ribbons: [...g.querySelectorAll('.sankey-link')].map(p => {
      const s = getComputedStyle(p), m = s.fill.match(/[\\d.]+/g).map(Number);
      return {fill: s.fill, alpha: (m.length > 3 ? m[3] : 1) * parseFloat(s.fillOpacity)}; })}; }"""


def boxes_overlap(a: dict, b: dict) -> bool:
    """Whether two on-screen boxes ``{l, r, t, b}`` [px] share more than half a pixel each way."""
    return min(a["r"], b["r"]) - max(a["l"], b["l"]) > 0.5 and min(a["b"], b["b"]) - max(a["t"], b["t"]) > 0.5


def sankey_faults(s: dict, min_alpha: float = 0.35) -> list:
    """What a person could not read in the Sankey ``s`` (:data:`_SANKEY_JS`): a node label outside the chart, over
    another label or over another node's bar, a ribbon less than ``min_alpha`` opaque (plotly's default grey is 0.2)."""
    svg, nodes = s["svg"], s["nodes"]
    inside = lambda a: svg["l"] <= a["l"] and a["r"] <= svg["r"] and svg["t"] <= a["t"] and a["b"] <= svg["b"]  # noqa: E731
    faults = [("outside", n["text"]) for n in nodes if not inside(n["label"])]
    for i, a in enumerate(nodes):
        for j, b in enumerate(nodes):
            if i < j and boxes_overlap(a["label"], b["label"]):
                faults.append(("labels overlap", a["text"], b["text"]))
            if i != j and boxes_overlap(a["label"], b["bar"]):
                faults.append(("label over a bar", a["text"], b["text"]))
    faults += [("faint ribbon", r["fill"], round(r["alpha"], 2)) for r in s["ribbons"] if r["alpha"] < min_alpha]
    return faults


def assert_sankey_readable(pg) -> None:
    """The overview's Sankey on page ``pg`` as a person reads it: :func:`sankey_faults` finds nothing."""
    s = pg.evaluate(_SANKEY_JS)
    assert len(s["nodes"]) >= 8 and s["ribbons"], s
    faults = sankey_faults(s)
    assert faults == [], faults


def steering_snapshot(f, demand_w: np.ndarray, drawn_w: np.ndarray, import_mw: float):
    """A snapshot for the steering panel (dashboard/steering_panel.py) of ``f`` with per-rack demand and draw per GPU
    [W]; element loads from the one-line diagram with every rack's non-GPU power and a cooling load of 10 % of IT
    [estimate: only the loads' room matters here]."""
    from factory_twin.models.units import KW, MW
    from factory_twin.twin.live.runner import Snapshot

    topo = f.topology
    rack_in = drawn_w * f.gpus + f.non_gpu_w
    flow = topo.flow(topo.routing(), rack_in, 0.1 * rack_in.sum())
    meta = {
        "time": "2026-08-07T12:00:00",
        "now": {"grid_import_mw": flow.grid_w / MW},
        "import_limit": {"mw": import_mw},
    }
    arrays = {
        "rack_gpu_demand_w_per_gpu": np.asarray(demand_w, float),
        "rack_gpu_power_w": np.asarray(drawn_w, float),
        "el_load_kw": flow.in_w / KW,
        "el_closed": np.ones(topo.n, bool),
        "el_name": np.array(topo.names),
        "el_depth": topo.depth,
    }
    return Snapshot(meta, arrays)


def site_limit_for(steer, snap, gpu_budget_w: float) -> float:
    """The import limit [MW] at which the site's budget on GPU power is ``gpu_budget_w`` (steering_control's
    ``G = g + ((1 - reserve) B - L) / beta`` solved for ``B``)."""
    from factory_twin.models.units import MW

    ctl = steer.ctl
    g = float((snap["rack_gpu_power_w"] * steer.f.gpus).sum())
    grid_w = snap.meta["now"]["grid_import_mw"] * MW
    return (grid_w + ctl.design.site_beta * (gpu_budget_w - g)) / (1 - ctl.reserve) / MW
