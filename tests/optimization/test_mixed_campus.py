"""A Vera Rubin hall on campus-1gw's site (campus-1gw-mixed: six GB300 halls on AC, two Vera Rubin halls on 800 VDC,
and hall B converted): 24 h through the engine and through the dispatch, the energy books closed to 1e-9."""

import numpy as np
import pytest
from factory_twin.models.units import S_PER_H
from factory_twin.optimization.dispatch import dispatch_plan
from factory_twin.optimization.plan_follower import PlanFollower
from factory_twin.twin.simulation.conversion import converted, parse_conversion

from factory_twin import twin

BOOKS = 1e-9


@pytest.fixture(scope="module")
def site():
    f = converted(twin.load_facility("campus-1gw-mixed"), parse_conversion("hall-B:vr-nvl72"))
    return f, twin.load_scenario(None, f)


def _books(ds):
    assert abs(ds.attrs["electric_book_residual"]) < BOOKS
    assert abs(ds.attrs["heat_book_residual"]) < BOOKS
    np.testing.assert_allclose(
        ds.grid_import_mw, ds.it_power_mw + ds.losses_mw + ds.cooling_power_mw - ds.bess_power_mw, rtol=BOOKS
    )


def test_24h_through_the_engine(site):
    f, sc = site
    ds = twin.simulate(f, sc, duration="24h", step="20s", plant_step="60s", record_every="15min")
    _books(ds)
    vr = np.isin(f.rack_hall, [list(f.hall_names).index(h) for h in ("hall-B", "hall-G", "hall-H")])
    assert vr.sum() == 3 * 630
    assert float(ds.gpu_power_w.isel(rack=np.flatnonzero(vr)).mean()) > 1500.0  # Rubin GPUs at work (TDP 2.3 kW)
    assert ds.attrs["tier_trips"] == 0 and float(ds.tier_loading_max.max()) < 1.0


def test_24h_through_the_dispatch(site):
    f, sc = site
    plan = dispatch_plan(f, sc, horizon="24h", step="15min")
    assert plan.status == "optimal"
    ds = twin.simulate(f, sc, duration="24h", step="20s", plant_step="60s", record_every="15min",
                       controller=PlanFollower(f, plan))  # fmt: skip
    _books(ds)
    # the plan's storage book: the BESS energy at each step's end follows its power (HiGHS's feasibility tolerance)
    b = f.spec.grid.bess
    e = np.concatenate([[b.soc_initial * b.energy_mwh * 3.6e9], plan.bess_energy_j])
    p = plan.bess_power_w
    de = (b.eta_charge * np.maximum(-p, 0.0) - np.maximum(p, 0.0) / b.eta_discharge) * plan.step_s
    np.testing.assert_allclose(np.diff(e), de, atol=1e-6 * b.energy_mwh * 3.6e9)
    assert plan.energy_cost == pytest.approx(float(np.sum(plan.grid_import_w * plan.price_per_mwh)) * plan.step_s
                                             / S_PER_H / 1e6, rel=1e-12)  # fmt: skip
