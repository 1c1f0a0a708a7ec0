"""The engine meters every tier: conservation at every step, breakers that trip, cascades onto the partner path,
dark racks, faults from the scenario; the NetCDF carries it all."""

import numpy as np
import pytest
import xarray as xr
from factory_twin.twin.facility.topology import Topology
from factory_twin.twin.scenario.faults import Fault, parse_fault
from factory_twin.twin.simulation import meters
from support import check_conservation

from factory_twin import twin

FAULT_AT = "2026-08-08T13:10:00"


@pytest.fixture(scope="module")
def c100():
    return twin.load_facility("campus-100mw")


@pytest.fixture(scope="module")
def hot(c100):
    return twin.load_scenario("hot-day-dr", c100)


def test_every_step_conserves_power_through_a_fault_and_its_trips(c100, hot, monkeypatch):
    """Spy on every flow the engine computes (one per plant step) and check it edge by edge: parents = children x
    shares + losses, A/B shares = the load, feeds = IT + cooling + losses; the step's books are the flow's."""
    calls = []
    flow = Topology.flow

    def spy(self, routing, rack_in, mech):
        out = flow(self, routing, rack_in, mech)
        calls.append((routing, np.array(rack_in), float(mech), out))
        return out

    monkeypatch.setattr(Topology, "flow", spy)
    sc = hot.with_changes(faults=(Fault("feed-loss", "utility-A", np.datetime64(FAULT_AT, "s")),))
    tw = twin.Twin(c100, sc, start="2026-08-08T13:00:00")
    results = [tw.advance() for _ in range(75)]  # 25 min at 20 s
    assert len(calls) == 75
    worst = 0.0
    for (routing, rack_in, mech, fl), r in zip(calls, results, strict=True):
        check_conservation(c100.topology, routing, rack_in, mech, fl)
        shares = np.asarray(routing.rack.sum(axis=0)).ravel()
        assert np.allclose(shares[routing.rack_on], 1.0, atol=1e-15) and np.all(shares[~routing.rack_on] == 0)
        assert r.grid_w == pytest.approx(r.it_w + r.cooling_w + r.losses_w, rel=1e-12)
        assert r.it_w == pytest.approx(rack_in.sum(), rel=1e-15) and r.losses_w == float(fl.losses_w)
        worst = max(worst, abs(float(fl.grid_w) - (rack_in.sum() + mech + float(fl.losses_w))) / float(fl.grid_w))
    assert worst < 1e-12
    kinds = [e.kind for e in tw.paths.events]
    assert kinds[0] == "opened" and "trip" in kinds and "racks dark" in kinds


def test_feed_loss_trips_the_overloaded_survivor_at_its_curve_time(c100, hot):
    """Losing feed A at full training load puts each hall-a block (20 racks, ~2.4 MW) on its B UPS (2.0 MW): 121-127 %
    of rating, which the Galaxy PW table allows for ~8 min; then the racks go dark and their jobs are lost."""
    sc = hot.with_changes(faults=(parse_fault(f"feed-loss:utility-A@{FAULT_AT}"),))
    ds = twin.simulate(c100, sc, start="2026-08-08T13:00:00", duration="40min", record_every="20s")
    topo, at = c100.topology, np.datetime64(FAULT_AT, "s")
    ups = topo.index["B-ups-01"]  # hall-a, all training
    load = ds.tier_loading.isel(element=ups)
    m = float(load.sel(time=slice(at + np.timedelta64(60, "s"), None)).values[0])
    want = float(topo.trip.held_time_s(m / topo.setting[ups])[ups])
    trips = ds.event_kind.values == "trip"
    row = np.flatnonzero(trips & (ds.event_element.values == "B-ups-01"))[0]
    t_trip = (ds.event_time.values[row] - at) / np.timedelta64(1, "s")
    assert t_trip == pytest.approx(want, abs=25.0)  # one plant step: the fault and the load land on the 20 s grid
    assert 1.15 < m < 1.35 and 300 < want < 900
    # its racks are dark from the trip on and draw nothing; the feed A elements carry nothing after the fault
    racks = topo.rack_edge_rack[topo.rack_edge_parent == topo.index["B-bus-01"]]
    after = ds.time.values > ds.event_time.values[row] + np.timedelta64(40, "s")
    assert np.all(ds.rack_powered.values[after][:, racks] == 0)
    assert np.all(ds.gpu_power_w.values[after][:, racks] == 0)
    a_side = np.array([p == "A" for p in topo.path])
    assert np.all(ds.tier_load_kw.values[ds.time.values > at + np.timedelta64(20, "s")][:, a_side] == 0)
    dark = ds.event_kind.values == "racks dark"
    assert dark.any() and ds.event_busy_gpus.values[dark].sum() > 0
    assert int(ds.racks_dark.values[-1]) == int(ds.event_racks.values[dark].sum())
    assert ds.attrs["tier_trips"] == int(trips.sum()) and ds.throughput.values[-1] < 0.5


def test_a_short_outage_under_the_curve_trips_nothing(c100, hot):
    """Feed A away for 3 min (under the UPS's ~8 min at this load) and back: no trip, shares return to 50/50."""
    sc = hot.with_changes(faults=(parse_fault(f"feed-loss:utility-A@{FAULT_AT}+3min"),))
    ds = twin.simulate(c100, sc, start="2026-08-08T13:00:00", duration="30min", record_every="60s")
    assert list(ds.event_kind.values) == ["opened", "closed"] and ds.attrs["tier_trips"] == 0
    assert float(ds.racks_dark.max()) == 0.0
    last = ds.tier_load_kw.values[-1]
    topo = c100.topology
    a, b = topo.index["A-bus-01"], topo.index["B-bus-01"]
    assert last[a] == pytest.approx(last[b], rel=1e-12)


def test_scenario_faults_are_read_and_checked(c100, tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('start = "2026-08-08T00:00:00"\n[[faults]]\nkind = "feed-loss"\nelement = "utility-B"\n'
                 'at = "2026-08-08T01:00:00"\nduration_h = 0.5\n')  # fmt: skip
    sc = twin.load_scenario(p, c100)
    at, until = np.datetime64("2026-08-08T01:00", "s"), np.datetime64("2026-08-08T01:30", "s")
    assert sc.faults == (Fault("feed-loss", "utility-B", at, until),)
    p.write_text('[[faults]]\nkind = "feed-loss"\nelement = "utility-C"\nat = "2026-08-08T01:00:00"\n')
    with pytest.raises(twin.SpecError) as e:
        twin.load_scenario(p, c100)
    assert ("faults.0.element", "no element 'utility-C' in the facility's one-line diagram") in e.value.errors
    assert parse_fault("feed-loss:A-ups-01@2026-08-08T14:00+30min").until == np.datetime64("2026-08-08T14:30")
    for bad in ("feed-loss:utility-A", "trip:utility-A@2026-08-08T14:00", "feed-loss:x@tomorrow"):
        with pytest.raises(ValueError, match="--fault"):
            parse_fault(bad)


def test_the_netcdf_carries_tiers_and_events(c100, hot, tmp_path):
    sc = hot.with_changes(faults=(parse_fault("feed-loss:A-ups-03@2026-08-08T00:01:00"),))
    ds = twin.simulate(c100, sc, duration="5min", record_every="60s")
    path = tmp_path / "run.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = xr.load_dataset(path, engine="h5netcdf")
    assert back.sizes["element"] == c100.topology.n and back.element.values[0] == "utility-A"
    for name, m in meters.TIER_METERS.items():
        assert back[name].attrs["units"] == m.units
    assert list(back.event_kind.values) == ["opened"] and back.event_element.values[0] == "A-ups-03"
    e = c100.topology.index["A-ups-03"]
    assert back.tier_closed.values[-1, e] == 0 and back.tier_load_kw.values[-1, e] == 0
    want = back.element_limit_kw.values - back.tier_load_kw.values[-1]
    assert back.tier_headroom_kw.values[-1] == pytest.approx(want, abs=1e-2)


def test_a_facility_without_topology_records_as_before():
    f = twin.load_facility("emerald-phoenix")
    ds = twin.simulate(f, twin.load_scenario(None, f), duration="2min", record_every="60s")
    assert "element" not in ds.dims and "racks_dark" not in ds and "event" not in ds.dims
