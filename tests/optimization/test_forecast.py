"""The site forecast evaluates each rack type once: it equals the steady site model summed rack by rack."""

import numpy as np
import pytest
from factory_twin.optimization.groups import make_groups
from factory_twin.optimization.linearization import LEVELS, forecast
from factory_twin.twin.simulation.design import rack_types, steady_point

from factory_twin import twin


def test_rack_types_partition_the_racks(campus):
    f = campus
    t = rack_types(f)
    # campus-100mw: racks differ only by class (training, inference)
    assert t.rack.size == 2 and t.count.sum() == f.n_racks
    np.testing.assert_array_equal(f.rack_class[t.rack], [0, 1])
    np.testing.assert_array_equal(t.count, np.bincount(f.rack_class))
    for name in ("gpus", "idle_w", "min_cap_w", "demand_w", "non_gpu_w", "non_gpu_liquid_w", "psu_rating_w"):
        a = getattr(f, name)
        for r in t.rack:
            assert np.all(a[f.rack_class == f.rack_class[r]] == a[r]), name


def test_forecast_equals_the_site_model_rack_by_rack(campus):
    f = campus
    sc = twin.load_scenario("hot-day-dr", f)
    times = np.datetime64("2026-08-08T15:00") + np.arange(0, 6 * 3600, 1800).astype("timedelta64[s]")
    fc = forecast(f, sc, make_groups(f, "hall"), times, 1800.0)
    db, wb = sc.ambient(times)
    for i in (0, 5, 11):
        u = np.array([sc.utilization(c, times[i : i + 1])[0] for c in f.class_names])[f.rack_class]
        assert 0 < u.min() < 1  # busy and idle GPUs both count
        for j, lam in enumerate(LEVELS):
            p = u * (f.min_cap_w + lam * (f.demand_w - f.min_cap_w)) + (1 - u) * f.idle_w
            sp = steady_point(f, p, float(db[i]), float(wb[i]))
            assert fc.grid_mw[i, j] * 1e6 == pytest.approx(sp.grid_w, rel=1e-12)
            assert fc.cooling_mw[i, j] * 1e6 == pytest.approx(sp.cooling_w, rel=1e-12)
            assert fc.it_mw[i, j] * 1e6 == pytest.approx(sp.it_w, rel=1e-12)
            assert fc.gpu_mw[i, j] * 1e6 == pytest.approx(float(f.gpus @ p), rel=1e-12)
