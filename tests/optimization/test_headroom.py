"""Duke headroom method: closed forms on hand-built series, event statistics, monotonicity,
validation."""

import numpy as np
import pytest
from factory_twin.optimization.studies.balancing_area import synthetic_load
from factory_twin.optimization.studies.headroom import HeadroomBasis, Seasons, headroom

H = np.timedelta64(1, "h")


def hours(first: str, last: str) -> np.ndarray:
    """Hourly datetime64 grid over whole calendar years ``first``..``last``."""
    return np.arange(np.datetime64(f"{first}-01-01T00", "h"), np.datetime64(f"{int(last) + 1}-01-01T00", "h"))


def test_flat_demand_curtails_nothing_until_the_gap_is_used():
    # 2023 (8760 h) and 2024 (8784 h): flat at k P, one peak hour in July 2023 and one in January
    # 2024
    p_mw, k = 1000.0, 0.8
    t = hours(2023, 2024)
    d = np.full(t.size, k * p_mw)
    i_jul = int((np.datetime64("2023-07-15T17") - t[0]) / H)
    i_jan = int((np.datetime64("2024-01-10T08") - t[0]) / H)
    d[[i_jul, i_jan]] = p_mw
    basis = HeadroomBasis.from_load(t, d)
    assert basis.t_summer_mw == p_mw and basis.t_winter_mw == p_mw
    assert list(basis.hours_per_year) == [8760, 8784]
    gap = (1 - k) * p_mw
    flat = np.ones(t.size, bool)
    flat[[i_jul, i_jan]] = False
    assert np.all(basis.curtailment_mw(gap)[flat] == 0.0)
    assert np.all(basis.curtailment_mw(gap + 1.0)[flat] > 0.0)
    # closed form: only the peak hour of each year curtails (fully) while L <= (1-k) P
    new = np.array([1.0, 50.0, gap, gap + 10.0, 3 * gap])
    expected = np.mean([(new + np.maximum(0, new - gap) * (n - 1)) / (new * n) for n in (8760, 8784)], axis=0)
    np.testing.assert_allclose(basis.rate(new), expected, rtol=1e-12)


def test_piecewise_linear_load_duration_curve_matches_closed_form():
    # gaps below the peak, sorted: one extra peak hour (gap 0), n1 hours at slope s1, n2 at slope s2
    p_mw, s1, n1, s2 = 5000.0, 0.5, 400, 0.1
    n = 8760
    n2 = n - 1 - n1
    gaps = np.r_[0.0, s1 * np.arange(n1), s1 * n1 + s2 * np.arange(n2)]
    t = hours(2023, 2023)
    rng = np.random.default_rng(1)
    order = rng.permutation(n)
    i_jul, i_jan = int((np.datetime64("2023-07-20T16") - t[0]) / H), 100
    order = order[(order != i_jul) & (order != i_jan)]
    d = np.empty(n)
    d[[i_jul, i_jan]] = p_mw  # the two zero-gap hours set both season thresholds to P
    d[order] = p_mw - gaps[2:]  # the other gaps, on shuffled hours

    def sum_closed(new):  # sum_t max(0, L - g_t), by segment
        k1 = np.minimum(np.ceil(new / s1), n1)  # hours of segment 1 with g < L
        seg1 = k1 * new - s1 * k1 * (k1 - 1) / 2
        m = np.clip(np.ceil((new - s1 * n1) / s2), 0, n2)
        seg2 = m * (new - s1 * n1) - s2 * m * (m - 1) / 2
        return new + seg1 + seg2  # the extra zero gap curtails all of L

    new = np.array([0.3, 7.25, 150.0, 199.9, 200.05, 230.0, 400.0])
    basis = HeadroomBasis.from_load(t, d)
    np.testing.assert_allclose(basis.rate(new), sum_closed(new) / (new * n), rtol=1e-9)
    ds = headroom(t, d, budgets=(0.005, 0.01, 0.05))
    root = ds.headroom_mw.values
    np.testing.assert_allclose(sum_closed(root) / (root * n), [0.005, 0.01, 0.05], rtol=1e-9)


def test_event_counts_durations_depth_and_energy_by_hand():
    # 2023, base load far below the peak; a 3-hour run at the peak in July and a 2-hour run in
    # January (gaps 0 and x). For x < L < base gap: r = (5 L - x) / (8760 L) = b  ->  L = x / (5 -
    # 8760 b)
    p_mw, x = 1000.0, 40.0
    t = hours(2023, 2023)
    d = np.full(t.size, 100.0)
    i_jul = int((np.datetime64("2023-07-03T15") - t[0]) / H)
    i_jan = int((np.datetime64("2023-01-17T18") - t[0]) / H)
    d[i_jul : i_jul + 3] = p_mw
    d[i_jan : i_jan + 2] = [p_mw, p_mw - x]
    b = 4.5 / 8760  # -> L = 2 x
    ds = headroom(t, d, budgets=(b,))
    r = ds.isel(budget=0)
    np.testing.assert_allclose(float(r.headroom_mw), 2 * x, rtol=1e-9)
    np.testing.assert_allclose(float(r.headroom_pct_of_peak), 100 * 2 * x / p_mw, rtol=1e-9)
    assert float(r.curtailed_hours_per_year) == 5
    assert float(r.events_per_year) == 2
    assert float(r.mean_event_duration_h) == 2.5 and float(r.max_event_duration_h) == 3
    # kept share of L: 0 in the four peak hours, x / L = 0.5 in the fifth
    np.testing.assert_allclose(r.share_keeping.values, [0.2, 0.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(float(r.curtailed_energy_mwh_per_year), 4 * 2 * x + x, rtol=1e-9)
    np.testing.assert_allclose(float(r.summer_share), 3 / 5, rtol=1e-12)
    assert ds.budget.attrs["units"] == "%" and ds.headroom_mw.attrs["units"] == "MW"
    np.testing.assert_allclose(float(ds.load_factor), d.mean() / p_mw, rtol=1e-12)


@pytest.fixture(scope="module")
def ba():
    return synthetic_load()


def test_rate_is_monotone_and_headroom_grows_with_budget(ba):
    t, d = ba
    basis = HeadroomBasis.from_load(t, d)
    r = basis.rate(np.linspace(1.0, 0.6 * basis.peak_mw, 2000))
    assert np.all(np.diff(r) >= 0)
    # the sorted-gap evaluation equals the hourly definition, year by year
    new = 0.12 * basis.peak_mw
    c = basis.curtailment_mw(new)
    by_year = np.add.reduceat(c, basis.year_start) / (new * basis.hours_per_year)
    np.testing.assert_allclose(basis.rate_by_year(new), by_year, rtol=1e-9)
    ds = headroom(t, d)
    h = ds.headroom_mw.values
    assert np.all(np.diff(h) > 0) and h[3] > h[2]
    np.testing.assert_allclose(ds.curtailment_rate.values, [0.0025, 0.005, 0.01, 0.05], rtol=1e-9)


def test_custom_season_map_moves_september_to_winter():
    t = hours(2023, 2023)
    d = np.full(t.size, 500.0)
    month = t.astype("datetime64[M]").astype(int) % 12 + 1
    d[month == 7] = 900.0
    d[month == 1] = 800.0
    d[np.flatnonzero(month == 9)[0]] = 790.0  # below T_summer; below T_winter too
    duke = HeadroomBasis.from_load(t, d)
    shifted = HeadroomBasis.from_load(t, d, Seasons(summer_months=(4, 5, 6, 7, 8)))
    i = np.flatnonzero(month == 9)[0]
    assert duke.gap_mw[i] == 110.0 and shifted.gap_mw[i] == 10.0


def test_invalid_inputs_name_the_argument():
    t = hours(2023, 2023)
    d = np.full(t.size, 500.0)
    with pytest.raises(ValueError, match="load_mw"):
        HeadroomBasis.from_load(t, np.where(np.arange(t.size) == 5, np.nan, d))
    with pytest.raises(ValueError, match="time"):
        HeadroomBasis.from_load(np.delete(t, 10), np.delete(d, 10))
    with pytest.raises(ValueError, match="time"):
        HeadroomBasis.from_load(np.arange(t.size), d)
    month = t.astype("datetime64[M]").astype(int) % 12 + 1
    with pytest.raises(ValueError, match=r"load_mw: .*exceed"):
        HeadroomBasis.from_load(t, np.where(month == 9, 600.0, d))  # September above the Jun-Aug max
    with pytest.raises(ValueError, match="summer_peak_months"):
        Seasons(summer_months=(6, 7), summer_peak_months=(6, 7, 8))
    with pytest.raises(ValueError, match="budget"):
        headroom(t, np.where(month == 7, 600.0, d), budgets=(1.5,))
    with pytest.raises(ValueError, match="new_load_mw"):
        HeadroomBasis.from_load(t, d).rate(-1.0)
