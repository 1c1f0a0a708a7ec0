"""Synthetic balancing-area load: calibration against the Duke 2025 aggregate ratios, structure,
validation."""

import dataclasses

import numpy as np
import pytest
from factory_twin.optimization.studies.balancing_area import BalancingAreaParams, synthetic_load
from factory_twin.optimization.studies.headroom import headroom

# Duke 2025: 76/98/126/215 GW over 744 GW summed peak; load factor 0.53; 85/177/366 h/yr;
# 1.7/2.1/2.5 h
DUKE_PCT = 100 * np.array([76, 98, 126, 215]) / 744
DUKE_HOURS = np.array([85, 177, 366])
DUKE_EVENT_H = np.array([1.7, 2.1, 2.5])


@pytest.fixture(scope="module")
def default():
    return synthetic_load()


def test_default_seed_reproduces_duke_load_factor_and_headroom(default):
    t, d = default
    ds = headroom(t, d)
    assert abs(float(ds.load_factor) - 0.53) < 0.03  # measured 0.553
    np.testing.assert_allclose(ds.headroom_pct_of_peak.values, DUKE_PCT, atol=1.5)  # measured |err| <= 0.4
    np.testing.assert_allclose(ds.curtailed_hours_per_year.values[:3], DUKE_HOURS, rtol=0.15)
    np.testing.assert_allclose(ds.mean_event_duration_h.values[:3], DUKE_EVENT_H, atol=0.4)


def test_series_covers_whole_years_and_is_scaled_to_the_peak(default):
    t, d = default
    assert t[0] == np.datetime64("2016-01-01T00") and t[-1] == np.datetime64("2024-12-31T23")
    assert t.size == 3 * 8784 + 6 * 8760  # 2016, 2020, 2024 are leap years
    assert np.all(np.diff(t) == np.timedelta64(1, "h"))
    assert d.max() == pytest.approx(BalancingAreaParams().peak_mw, rel=1e-12)


def test_seed_reproducible_and_weekends_lower(default):
    t, d = default
    _, again = synthetic_load()
    np.testing.assert_array_equal(d, again)
    assert not np.array_equal(d, synthetic_load(seed=1)[1])
    weekday = (t.astype("datetime64[D]").astype(np.int64) + 3) % 7
    p = BalancingAreaParams()
    drop = 1 - d[weekday >= 5].mean() / d[weekday < 5].mean()
    assert 0.5 * p.weekend_drop < drop < 1.5 * p.weekend_drop  # w is on the m = 1 scale; mean x is ~1.2


def test_invalid_parameters_name_the_argument():
    with pytest.raises(ValueError, match="ar1_phi"):
        BalancingAreaParams(ar1_phi=1.0)
    with pytest.raises(ValueError, match="peak_mw"):
        BalancingAreaParams(peak_mw=-1.0)
    with pytest.raises(ValueError, match="wave_days"):
        BalancingAreaParams(wave_days=(3, 2))
    with pytest.raises(ValueError, match="years"):
        synthetic_load(years=(2024, 2020))
    with pytest.raises(ValueError, match="params"):
        synthetic_load(dataclasses.replace(BalancingAreaParams(), base=-2.0))
