"""Facility and per-token metrics: V17 PUE stack, hand ratios, zero denominators, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from factory_twin.models.metrics import carbon_per_mtok, cost_per_mtok, energy_per_token_j, ppue, pue

REL = 1e-9


def test_v17_pue_stack():
    it = 100e6
    electrical = it / (0.995 * 0.97 * 0.99)
    total = electrical + 8e6 + 1e6
    assert pue(total, it) == pytest.approx(total / it, rel=REL)
    assert pue(total, it) == pytest.approx(1.136574, abs=5e-7)
    # partial PUEs of the electrical chain and of cooling (+ misc) add up to PUE - 1 + 1
    p_el, p_cool = ppue(it, electrical - it), ppue(it, 9e6)
    assert p_el == pytest.approx(1.046574, abs=5e-7)
    assert p_cool == pytest.approx(1.09, rel=REL)
    assert p_el + p_cool - 1 == pytest.approx(pue(total, it), rel=REL)


def test_pue_vectorized_and_zero_it_is_nan():
    total = np.array([120e6, 0.0, 5e5])
    it = np.array([100e6, 0.0, 0.0])
    out = pue(total, it)
    assert out[0] == pytest.approx(1.2, rel=REL)
    assert np.isnan(out[1]) and np.isnan(out[2])
    big = np.full(10_000, 1.25e6)
    np.testing.assert_allclose(pue(big, np.full(10_000, 1e6)), 1.25, rtol=REL)


def test_per_token_metrics_hand_values():
    # 100 MW producing 10 million tokens/s: 10 J/token; 100 MWh per hour over 3.6e10 tokens
    assert energy_per_token_j(100e6, 1e7) == pytest.approx(10.0, rel=REL)
    # at 80 /MWh: 100 MW costs 8000 per hour = 8000 / 36,000 Mtok
    assert cost_per_mtok(100e6, 80.0, 1e7) == pytest.approx(8000 / 36_000, rel=REL)
    assert cost_per_mtok(100e6, -20.0, 1e7) == pytest.approx(-2000 / 36_000, rel=REL)
    # at 400 kg/MWh: 40 t per hour over 36,000 Mtok
    assert carbon_per_mtok(100e6, 400.0, 1e7) == pytest.approx(40_000 / 36_000, rel=REL)


def test_per_token_metrics_zero_tokens_is_nan():
    rate = np.array([1e7, 0.0])
    assert np.isnan(energy_per_token_j(1e6, rate)[1])
    assert np.isnan(cost_per_mtok(1e6, 50.0, rate)[1])
    assert np.isnan(carbon_per_mtok(0.0, 50.0, rate)[1])
    assert energy_per_token_j(0.0, 1e3) == 0.0


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: pue(-1.0, 1.0), "total_facility_w"),
        (lambda: pue(1.0, np.nan), "it_w"),
        (lambda: ppue(1.0, -1.0), "subsystem_w"),
        (lambda: energy_per_token_j(1.0, -1.0), "tokens_per_s"),
        (lambda: energy_per_token_j(-1.0, 1.0), "power_w"),
        (lambda: cost_per_mtok(1.0, np.inf, 1.0), "price_per_mwh"),
        (lambda: carbon_per_mtok(1.0, -5.0, 1.0), "carbon_kg_per_mwh"),
    ],
)
def test_invalid_inputs_name_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()
