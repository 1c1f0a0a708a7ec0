"""The measurement layer: formulas by hand, interval means, and per-token meters while exporting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factory_twin.twin.simulation import meters
from factory_twin.twin.simulation.meters import METERS, GridNow, IntervalMean, PlantStepResult, Reading

GRID = GridNow(import_limit_mw=50.0, price_per_mwh=120.0, carbon_kg_per_mwh=300.0, dr_depth=0.0)


def step(bess_w: float = 0.0, it_w: float = 10e6, tokens: float = 2e7) -> PlantStepResult:
    losses, cooling = 0.4e6, 1.1e6
    return PlantStepResult(
        gpu_w=7e6,
        rack_dc_w=9.6e6,
        it_w=it_w,
        losses_w=losses,
        cooling_w=cooling,
        grid_w=it_w + losses + cooling,
        bess_w=bess_w,
        q_liquid_w=8e6,
        q_air_w=1.6e6,
        q_rejected_w=9.6e6,
        tokens_per_s=tokens,
        tokens_uncapped_per_s=2.5e7,
        throttled_gpus=3.0,
    )


def value(name: str, s: PlantStepResult) -> float:
    return METERS[name].read(Reading(s, None, GRID))


def test_power_and_token_meters_by_hand():
    s = step(bess_w=1.5e6)
    assert value("grid_import_mw", s) == pytest.approx(10.0, rel=1e-12)  # 11.5 MW at the meter - 1.5 MW BESS
    assert value("pue", s) == pytest.approx(1.15, rel=1e-12)  # before the BESS
    assert value("ppue_cooling", s) == pytest.approx(1.11, rel=1e-12)
    assert value("ppue_electrical", s) == pytest.approx(1.04, rel=1e-12)
    assert value("psu_loss_mw", s) == pytest.approx(0.4, rel=1e-12)
    assert value("throughput", s) == pytest.approx(0.8, rel=1e-12)
    assert value("energy_per_token_j", s) == pytest.approx(0.5, rel=1e-12)  # 10 MW / 2e7 tokens/s
    # 120 /MWh x 0.5 J/token x 1e6 tokens / 3.6e9 J/MWh
    assert value("cost_per_mtok", s) == pytest.approx(120 * 0.5e6 / 3.6e9, rel=1e-12)
    assert value("carbon_t_per_h", s) == pytest.approx(3.0, rel=1e-12)  # 300 kg/MWh x 10 MW


def test_no_tokens_and_exporting_site_are_undefined_not_errors():
    assert value("throughput", step(tokens=0.0)) == pytest.approx(0.0)
    assert math.isnan(value("cost_per_mtok", step(tokens=0.0)))
    exporting = step(bess_w=12e6)
    assert value("grid_import_mw", exporting) == pytest.approx(-0.5, rel=1e-12)
    assert math.isnan(value("energy_per_token_j", exporting)) and math.isnan(value("cost_per_mtok", exporting))


def test_interval_mean_is_the_arithmetic_mean():
    acc = IntervalMean(2)
    for k in range(4):
        acc.add(step(it_w=10e6 + k * 1e5), np.array([100.0 * k, 50.0]))
    m = acc.mean()
    assert m.it_w == pytest.approx(10.15e6, rel=1e-15) and m.grid_w == pytest.approx(11.65e6, rel=1e-15)
    np.testing.assert_allclose(acc.gpu_power_w(), [150.0, 50.0], rtol=1e-15)
    acc.reset()
    assert acc.count == 0


def test_every_meter_has_units_and_a_long_name():
    for name, m in METERS.items():
        assert m.units and m.long_name, name
        assert meters.attrs(name) == {"units": m.units, "long_name": m.long_name}
    assert "pue" in meters.RECORDED and "cost_per_mtok" not in meters.RECORDED
