"""The Power page's steering panel (dashboard/steering_panel.py) on the DPS SDK facility (8 racks of 72 GPUs; Utility
750 kW -> Switchboard -> FloorPDU-1..4, FloorPDU-k feeding racks k and k+4; production on racks 1-4, priority 0,
900 W guaranteed; research on racks 5-8, priority 1, 250 W guaranteed), from snapshots written by hand, checked
against sums done here; and the live snapshot's uncapped demand against an uncapped twin doing the same work."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from factory_twin.dashboard import steering_panel as sp
from factory_twin.dashboard.pages.power import steering_view
from factory_twin.models.units import MW
from factory_twin.twin import Twin, load_facility, load_scenario
from factory_twin.twin.live.runner import LiveRunner
from factory_twin.twin.simulation.controllers import FixedCap
from support import site_limit_for
from support import steering_snapshot as snapshot

GPUS = 72


@pytest.fixture(scope="module")
def sdk():
    return load_facility("dps-sdk")


@pytest.fixture(scope="module")
def steer(sdk):
    return sp.SnapshotSteering(sdk)


def rows(table, names):
    return [int(np.flatnonzero(table["name"] == n)[0]) for n in names]


def test_element_sums_are_the_racks_below_them(sdk, steer):
    """Every FloorPDU carries racks k and k+4 whole: its allocation and demand are those two racks' GPU limits and
    demand summed here from the per-GPU limits (float32: to 1e-6); the Switchboard, the Utility and the site carry
    all eight."""
    demand = np.array([1300.0, 900, 600, 300, 1300, 900, 600, 300])
    snap = snapshot(sdk, demand, demand, 10.0)
    s = steer(snap)
    tab = sp.tier_table(steer.ctl, snap, s)
    rack_limit = np.asarray(s.allocation.limit_w, float).reshape(8, GPUS).sum(axis=1)
    for k in range(4):
        (i,) = rows(tab, [f"FloorPDU-{k + 1}"])
        assert tab["allocation_w"][i] == pytest.approx(rack_limit[k] + rack_limit[k + 4], rel=1e-6)
        assert tab["demand_w"][i] == pytest.approx(GPUS * (demand[k] + demand[k + 4]), rel=1e-9)
        assert tab["limit_w"][i] == pytest.approx(450e3 * sdk.topology.continuous_limit_w[i] / sdk.topology.rating_w[i])
    for i in rows(tab, ["Switchboard", "Utility", sp.SITE_ROW]):
        assert tab["allocation_w"][i] == pytest.approx(rack_limit.sum(), rel=1e-6)
        assert tab["demand_w"][i] == pytest.approx(GPUS * demand.sum(), rel=1e-9)
    assert tab["name"][0] != sp.SITE_ROW and tab["name"][-1] == sp.SITE_ROW and tab["depth"][-1] == -1
    assert steer(snap) is s  # one allocation per snapshot


def test_nothing_binds_every_group_is_fully_satisfied(sdk, steer):
    """Light load under a generous import limit: no row binds, every GPU's limit is at least its demand, both
    groups at 100 % with their demand as computed here."""
    demand = np.full(8, 400.0)
    snap = snapshot(sdk, demand, demand, 10.0)
    s = steer(snap)
    tab = sp.tier_table(steer.ctl, snap, s)
    assert not tab["binding"].any()
    groups = {g.name: g for g in sp.group_table(steer.ctl, s)}
    assert [g.name for g in sp.group_table(steer.ctl, s)] == ["production", "research"]  # priority order
    for name, prio, guarantee in (("production", 0, 900.0), ("research", 1, 250.0)):
        g = groups[name]
        assert (g.priority, g.guarantee_w, g.gpus) == (prio, guarantee, 4 * GPUS)
        assert g.demand_w == pytest.approx(4 * GPUS * 400.0)
        assert g.satisfaction == 1.0 and g.allocation_w >= g.demand_w
    assert sp.warnings(s) == []


def test_an_import_limit_below_demand_binds_the_site_and_cuts_research_first(sdk, steer):
    """GPUs that would draw 1,000 W each (576 kW) held at 500 W by their caps, under an import limit that leaves
    350 kW of GPU power: the site row binds (the Utility, with room, does not), the limits add up to the 350 kW,
    research (priority 1) is cut to its 250 W guarantee and production (priority 0) gets the rest, every GPU of a
    group alike: each group's satisfaction is its allocation per GPU over 1,000 W."""
    demand, drawn = np.full(8, 1000.0), np.full(8, 500.0)
    limit_mw = site_limit_for(steer, snapshot(sdk, demand, drawn, 10.0), 350e3)
    snap = snapshot(sdk, demand, drawn, limit_mw)
    s = steer(snap)
    tab = sp.tier_table(steer.ctl, snap, s)
    site, utility = rows(tab, [sp.SITE_ROW, "Utility"])
    assert tab["binding"][site] and not tab["binding"][utility]
    assert tab["gpu_budget_w"][utility] > 350e3
    assert tab["limit_w"][site] == pytest.approx(limit_mw * MW)
    assert tab["gpu_budget_w"][site] == pytest.approx(350e3, rel=1e-9)
    assert tab["allocation_w"][site] == pytest.approx(350e3, abs=1.0)
    groups = {g.name: g for g in sp.group_table(steer.ctl, s)}
    prod, res = groups["production"], groups["research"]
    assert res.allocation_w == pytest.approx(4 * GPUS * 250.0, rel=1e-6)
    assert res.satisfaction == pytest.approx(0.25, rel=1e-6)
    assert prod.allocation_w == pytest.approx(350e3 - 4 * GPUS * 250.0, abs=1.0)
    assert prod.satisfaction == pytest.approx((350e3 - 4 * GPUS * 250.0) / (4 * GPUS) / 1000.0, rel=1e-5)
    assert sp.warnings(s) == []
    view = steering_view(steer, snap, 3)  # the page's rows: the site first, marked binding
    assert view[0].id == "power-steer-summary" and "1 binding" in view[0].children
    first = view[2].children[0].children[1].children[0]
    assert first.children[0].children.children == sp.SITE_ROW and first.children[-1].children.children == "binding"


def test_an_infeasible_guarantee_is_named(sdk, steer):
    """An import limit leaving 250 kW of GPU power, below the two guarantees (288 x 900 W + 288 x 250 W =
    331.2 kW): the allocator names the site and the guarantee it cannot meet; the page shows it in red."""
    demand = np.full(8, 1000.0)
    limit_mw = site_limit_for(steer, snapshot(sdk, demand, demand, 10.0), 250e3)
    snap = snapshot(sdk, demand, demand, limit_mw)
    s = steer(snap)
    warn = sp.warnings(s)
    assert warn and all("does not fit under site import" in w for w in warn)
    lo = float(steer.ctl.bounds.lo_w[0])  # every GPU's lowest settable limit (data/racks.toml)
    short = {g: x for label, g, x in s.allocation.infeasible if label == sp.SITE_ROW or "site import" in label}
    assert short["production"] == pytest.approx(8 * GPUS * lo + 4 * GPUS * (900.0 - lo) - 250e3, rel=1e-6)
    red = steering_view(steer, snap, 3)[1]
    assert red.id == "power-steer-warnings" and "error" in red.className


def test_the_live_snapshots_demand_is_what_the_work_draws_uncapped(sdk):
    """A twin capped at half its TDP: its snapshot's demand per GPU equals the draw of an uncapped twin doing the
    same work at the same time, and is above its own draw."""
    sc = load_scenario(None, sdk)
    cap = FixedCap(sdk.tdp_w, sdk.min_cap_w, 0.5)
    capped = LiveRunner(Twin(sdk, sc, controller=cap), tempfile.mkdtemp())
    free = Twin(sdk, sc)
    capped.step()
    free.advance()
    snap = capped.snapshot()
    demand = snap["rack_gpu_demand_w_per_gpu"]
    assert demand == pytest.approx(free.gpu_power_w, rel=1e-12)
    assert np.all(snap["rack_gpu_power_w"] < demand - 100.0)
    assert np.all(snap["rack_gpu_power_w"] <= 0.5 * sdk.tdp_w + 1e-9)
