"""The Power page from snapshots of the real runner on a real twin (tests/data/tiers-small.toml: A/B paths, PDUs over
mixed racks): the tree, its colours and labels, the KPIs, open paths and trips, an element's history, and the
what-if commands through the runner's command path."""

from pathlib import Path

import numpy as np
import pytest
from factory_twin.dashboard.pages import power
from factory_twin.twin.live.runner import LiveRunner, parse_command

from factory_twin import twin

FACILITY = Path(__file__).parents[1] / "data" / "tiers-small.toml"


@pytest.fixture
def runner(tmp_path):
    f = twin.load_facility(FACILITY)
    r = LiveRunner(twin.Twin(f, twin.load_scenario(None, f)), tmp_path, rack_history=10)
    for _ in range(9):  # 3 min: three history records
        r.step()
    return r


def test_tree_has_every_element_under_the_site_coloured_by_loading(runner):
    snap = runner.snapshot()
    fig = power.tree_figure(snap, 3)
    ic = fig.data[0]
    names = [str(x) for x in snap["el_name"]]
    assert list(ic.ids) == ["site", *names] and ic.maxdepth == 3
    parents = dict(zip(ic.ids, ic.parents, strict=True))
    assert parents["utility-A"] == "site" and parents["A-pdu-1"] == "A-ups" and parents["B-tx"] == "utility-B"
    loading = np.asarray(snap["el_loading"])
    e = names.index("A-ups")
    load = float(snap["el_load_kw"][e])
    assert loading[e] == pytest.approx(load / 1100.0, rel=1e-9)  # rated 1,100 kW
    assert ic.text[1 + e] == f"{loading[e]:.0%} · {float(snap['el_headroom_kw'][e]):,.0f} kW free"
    assert float(snap["el_headroom_kw"][e]) == pytest.approx(1100.0 - load, rel=1e-9)
    assert all(c != power.OPEN_COLOR for c in ic.marker.colors[1:])  # every element carries power


def test_losing_feed_a_through_the_command_path(runner):
    assert runner.apply({"kind": "open_element", "element": "utility-A"})
    runner.step()
    snap = runner.snapshot()
    names = [str(x) for x in snap["el_name"]]
    state = power.state_of(snap)
    a = np.array([n.startswith(("A-", "utility-A")) for n in names])
    assert state[names.index("utility-A")] == "open" and np.all(state[a][1:] == "dead") and np.all(state[~a] == "on")
    colors = power.tree_figure(snap, 99).data[0].marker.colors[1:]
    assert all((c == power.OPEN_COLOR) == bool(x) for c, x in zip(colors, a, strict=True))
    assert float(snap["el_load_kw"][names.index("B-ups")]) > 0 and float(snap["el_load_kw"][names.index("A-ups")]) == 0
    kpis = {k.id: k.children[1].children for k in power.kpis(snap)}
    assert kpis["power-kpi-open"] == "1" and kpis["power-kpi-dark"] == "0"
    rows = power.events_table(snap).children[1].children
    first = [c.children for c in rows[0].children]
    assert first[0].children == "utility-A" and first[1] == "open" and "operator" in first[3]
    assert runner.apply({"kind": "close_element", "element": "utility-A"})
    runner.step()
    assert np.all(power.state_of(runner.snapshot()) == "on")
    assert runner.messages[-1]["text"] == "utility-A closed"


def test_an_unknown_element_is_refused_naming_it(runner):
    assert not runner.apply({"kind": "open_element", "element": "utility-C"})
    assert runner.messages[-1]["text"] == "element: no element 'utility-C' in the facility's one-line diagram"
    with pytest.raises(ValueError, match="element: no element"):
        parse_command({"kind": "close_element", "element": ""}, element_names={"utility-A": 0})
    msg = power.send("open_element", "nope", {"utility-A"}, lambda cmd: pytest.fail("sent"))
    assert "no element 'nope'" in msg.children


def test_element_history_and_detail(runner):
    snap = runner.snapshot()
    e = [str(x) for x in snap["el_name"]].index("B-pdu-1")
    fig = power.history_figure(snap, e)
    assert fig.layout.title.text == "B-pdu-1: recent load"
    load, limit = fig.data[0], fig.data[1]
    assert len(load.y) == 3 and np.allclose(load.y, snap["el_hist_load_kw"][:, e])
    assert limit.y[0] == pytest.approx(0.8 * 520.0)  # 80 %-rated: the continuous limit below the rating
    assert fig.data[2].y[0] == pytest.approx(520.0)
    facts = {c.children[0].children.rstrip(": "): c.children[1] for c in power.element_detail(snap, e).children}
    assert facts["kind"] == "pdu" and facts["path"] == "B" and facts["racks below"] == "3"  # racks 0, 1 and 4
    assert power.element_options(snap)[:2] == ["utility-A", "utility-B"]  # the feeds first


def test_a_trip_shows_as_a_trip(tmp_path):
    """campus-100mw at full load: feed A lost, a B UPS trips after its overload time; the page names it."""
    f = twin.load_facility("campus-100mw")
    sc = twin.load_scenario("feed-loss", f)
    r = LiveRunner(twin.Twin(f, sc, start="2026-08-08T13:59:00"), tmp_path, rack_history=5)
    while not any(e.kind == "trip" for e in r.twin.paths.events):
        r.step()
    snap = r.snapshot()
    kpis = {k.id: k for k in power.kpis(snap)}
    assert int(kpis["power-kpi-trips"].children[1].children) >= 1 and "alarm" in kpis["power-kpi-trips"].className
    table = power.events_table(snap)
    text = str(table)
    assert "B-ups-" in text and "ups-galaxy-pw" in text


def _text(component) -> str:
    """Every string in a Dash component tree."""
    if isinstance(component, str):
        return component
    kids = getattr(component, "children", None)
    kids = kids if isinstance(kids, list) else [kids]
    return " ".join(_text(k) for k in kids if k is not None)


def test_hall_conversion_refuses_what_the_site_cannot_take():
    """The what-if names the reason it cannot run: no facility, a choice missing, a hall the site lacks, a rack
    type the catalog lacks; nothing is computed for them."""
    assert "needs the facility" in _text(power.conversion_result(None, "hall-b", "vr-nvl72", "dc800-2n"))
    assert "choose a hall" in _text(power.conversion_result("campus-100mw", None, "vr-nvl72", "dc800-2n"))
    msg = _text(power.conversion_result("campus-100mw", "hall-z", "vr-nvl72", "dc800-2n"))
    assert "no hall named 'hall-z'" in msg and "hall-a, hall-b" in msg
    assert "unknown rack type 'vr-nvl999'" in _text(power.conversion_result("campus-100mw", "hall-b", "vr-nvl999",
                                                                            "dc800-2n"))  # fmt: skip
