"""The feed-loss scenario on campus-100mw (data/scenarios/feed-loss.toml: utility feed A lost at 14:00 on the hottest
day): the MPC with N-1 rows rides through, without them the survivors' UPS trip and their racks go dark; both read
back from the NetCDF."""

import numpy as np
import pytest
import xarray as xr
from factory_twin.optimization.controllers import make_controller
from factory_twin.twin.runs.netcdf import write_netcdf

from factory_twin import twin


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    f = twin.load_facility("campus-100mw")
    sc = twin.load_scenario("feed-loss", f)
    out = {}
    for name in ("mpc", "mpc-n1"):
        ds = twin.simulate(f, sc, start="2026-08-08T13:45:00", duration="45min", record_every="60s",
                           controller=make_controller(name, f, sc))  # fmt: skip
        path = tmp_path_factory.mktemp(name) / "run.nc"
        write_netcdf(ds, path)
        out[name] = xr.load_dataset(path, engine="h5netcdf")
    return out


def test_without_n_minus_1_the_survivors_trip_and_racks_go_dark(runs):
    out = runs
    ds = out["mpc"]
    kinds = list(ds.event_kind.values)
    assert kinds[0] == "opened" and ds.event_element.values[0] == "utility-A"
    trips = ds.event_kind.values == "trip"
    assert trips.sum() >= 21 and all(str(e).startswith("B-ups-") for e in ds.event_element.values[trips])
    first_trip = ds.event_time.values[trips].min()
    assert np.timedelta64(5, "m") < first_trip - np.datetime64("2026-08-08T14:00") < np.timedelta64(15, "m")
    dark = ds.rack_powered.values[-1] == 0
    assert dark.sum() >= 420 and int(ds.racks_dark.values[-1]) == int(dark.sum())  # all of hall-a at least
    assert np.all(ds.gpu_power_w.values[-1][dark] == 0) and ds.attrs["tier_trips"] == int(trips.sum())
    lost = ds.event_busy_gpus.values[ds.event_kind.values == "racks dark"].sum()
    assert lost >= 72 * dark.sum() * 0.5  # busy GPUs on the dark racks: their jobs lost


def test_with_n_minus_1_the_plan_rides_through(runs):
    out = runs
    ds = out["mpc-n1"]
    assert list(ds.event_kind.values) == ["opened"] and ds.attrs["tier_trips"] == 0
    assert float(ds.racks_dark.max()) == 0 and np.all(ds.rack_powered.values == 1)
    after = ds.time.values > np.datetime64("2026-08-08T14:01")
    b_ups = np.array([str(n).startswith("B-ups-") for n in ds.element.values])
    peak = float(ds.tier_loading.values[after][:, b_ups].max())
    assert 0.95 < peak <= 1.0 + 1e-9  # carrying every rack of its block, at (not over) its rating
    assert float(ds.throughput.values[after].mean()) > float(out["mpc"].throughput.values[after].mean()) + 0.2
