"""Steering units (GPUs steered as one): a unit's demand is the mean of its GPUs', from the same random draws, and
the power loop's meters count every GPU either way."""

import numpy as np
import pytest
from factory_twin.optimization.steering_control import SteeringController
from factory_twin.twin import load_facility, load_scenario
from factory_twin.twin.facility.resource_groups import units_per_rack
from factory_twin.twin.scenario.demand import Demand
from factory_twin.twin.simulation.power_loop import PowerLoop

START = "2026-08-07T14:00:00"


@pytest.fixture(scope="module")
def sdk():
    return load_facility("dps-sdk")


def test_a_unit_demands_the_mean_of_its_gpus(sdk):
    sc = load_scenario(None, sdk)
    per_gpu, per_unit = Demand(sdk, sc, START, seed=5), Demand(sdk, sc, START, seed=5, gpus_per_unit=8)
    assert per_unit.gpu_factor.size * 8 == per_gpu.gpu_factor.size == sdk.gpus.sum()
    for t in range(600):
        a, b = per_gpu.step(float(t)), per_unit.step(float(t))
        assert np.array_equal(a.rack_w, b.rack_w) and np.array_equal(a.rack_tokens_per_s, b.rack_tokens_per_s)
        np.testing.assert_allclose(b.gpu_w, a.gpu_w.reshape(-1, 8).mean(axis=1), rtol=1e-6)


def test_the_loop_meters_count_every_gpu_at_any_unit(sdk):
    """Demanded GPU energy and GPU-steps are the same per GPU and per unit of 8 (the demand is the same); what is
    served differs only by how limits fall within a unit."""
    sc = load_scenario(None, sdk)
    meters = {}
    for m in (1, 8):
        loop = PowerLoop(sdk, sc, SteeringController(sdk, gpus_per_unit=m), start=np.datetime64(START), seed=2)
        meters[m] = loop.run(300)
    one, eight = meters[1], meters[8]
    assert eight.gpu_steps == one.gpu_steps == 300 * sdk.gpus.sum()
    assert eight.demanded_j == pytest.approx(one.demanded_j, rel=1e-6)
    assert eight.tokens_demanded == pytest.approx(one.tokens_demanded, rel=1e-12)
    assert eight.satisfaction == pytest.approx(one.satisfaction, abs=5e-3)


def test_a_unit_must_divide_every_rack(sdk):
    assert units_per_rack(sdk, 72).tolist() == [1] * sdk.n_racks
    for bad in (7, 0, 2.5):
        with pytest.raises(ValueError, match=r"gpus_per_unit: .*divides every rack's GPU count \[72\]"):
            units_per_rack(sdk, bad)
