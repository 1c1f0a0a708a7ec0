"""The plant's heat-rejection capacity at an ambient is the duty at which ``Plant.reject`` stops holding the
facility-water supply setpoint (round trip through the staging model, with and without each stage)."""

from __future__ import annotations

import numpy as np
import pytest
from factory_twin.models.units import MW
from factory_twin.twin import load_facility
from factory_twin.twin.simulation.plant import MODES, build_plant


@pytest.fixture(scope="module")
def facility():
    return load_facility("campus-100mw")


def _without(f, **stages):
    plant = f.spec.cooling.plant.model_copy(update=stages)
    cooling = f.spec.cooling.model_copy(update={"plant": plant})
    spec = f.spec.model_copy(update={"cooling": cooling})
    return type(f)(**{**f.__dict__, "spec": spec})


@pytest.mark.parametrize(
    "stages", [{}, {"chiller": None}, {"evaporative": None}, {"chiller": None, "evaporative": None}]
)
@pytest.mark.parametrize(("db", "wb"), [(10.0, 5.0), (33.0, 21.0), (45.0, 34.0)])
def test_capacity_is_where_the_setpoint_is_lost(facility, stages, db, wb):
    plant = build_plant(_without(facility, **stages) if stages else facility)
    c = 12e6  # facility-water heat-capacity rate [W/K] (campus-100mw's is ~12.2 MW/K)
    t_set = facility.spec.cooling.facility_water.supply_setpoint_c
    q_max = plant.capacity_w(db, wb, c)
    below = plant.reject(t_set + 0.999 * q_max / c, c, db, wb)
    above = plant.reject(t_set + (1.01 * q_max + 1e3) / c, c, db, wb)  # 1 kW: the zero-capacity case
    assert below.t_supply_c == pytest.approx(t_set, abs=1e-9) and MODES[below.mode] != "over capacity"
    assert above.t_supply_c > t_set + 1e-6 and MODES[above.mode] == "over capacity"


def test_capacity_follows_the_ambient_by_hand(facility):
    """campus-100mw: dry coolers 100 MW at an 8 K approach, evaporative 4 K to the wet bulb, chiller 20 MW."""
    plant, c = build_plant(facility), 12e6
    t_set = facility.spec.cooling.facility_water.supply_setpoint_c  # 32 degC
    db, wb = np.array([20.0, 30.0]), np.array([25.0, 29.0])
    expect = np.maximum(100 * (t_set - db + 20 / 12) / 8, 100 * (t_set - wb + 20 / 12) / 4)
    np.testing.assert_allclose(plant.capacity_w(db, wb, c) / MW, expect, rtol=1e-12)
    assert plant.capacity_w(60.0, 60.0, c) == 20 * MW  # hotter than the setpoint: the chiller alone


def test_the_optimizer_plans_with_the_same_capacity(facility):
    """One definition: the dispatch LP's heat-rejection bound is Plant.capacity_w at the full facility-water flow."""
    from factory_twin.optimization.linearization import heat_capacity_mw

    db, wb = np.array([5.0, 25.0, 38.0]), np.array([2.0, 20.0, 27.0])
    c = float(facility.c_fws_max_w_k.sum())
    expect = build_plant(facility).capacity_w(db, wb, c) / MW
    np.testing.assert_array_equal(heat_capacity_mw(facility, db, wb), expect)
