"""Flexible headroom (envelope-limited Duke headroom) and firm/non-firm sizing: closed forms."""

import numpy as np
import pytest
from factory_twin.optimization.studies.balancing_area import synthetic_load
from factory_twin.optimization.studies.flexible_headroom import allowed_depth, curtailment_events, flexible_headroom
from factory_twin.optimization.studies.headroom import HeadroomBasis
from factory_twin.optimization.studies.sizing import nonfirm_mw, sizing

P, K = 1000.0, 0.8
G = (1 - K) * P  # gap of every ordinary hour [MW]
H = 8760


def two_peak_year():
    """2021 at K x P every hour except one hour at P in July and one in January."""
    t = np.arange("2021-01-01T00", "2022-01-01T00", dtype="datetime64[h]")
    d = np.full(t.size, K * P)
    jan, jul = 100, int(np.flatnonzero(t == np.datetime64("2021-07-15T15"))[0])
    d[[jan, jul]] = P
    return t, d, (jan, jul)


@pytest.fixture(scope="module")
def synthetic():
    return HeadroomBasis.from_load(*synthetic_load(years=(2016, 2018), seed=0))


def test_two_peak_year_closed_forms():
    t, d, peaks = two_peak_year()
    basis = HeadroomBasis.from_load(t, d)
    first, n, q = curtailment_events(basis, 0.5 * G)
    assert list(first) == list(peaks) and list(n) == [1, 1] and list(q) == [1.0, 1.0]
    b = 0.01
    duke = basis.solve(b)
    assert duke == pytest.approx((H - 2) * G / (H * (1 - b)), rel=1e-9)  # all hours curtailed above G
    # above G the whole year is one event held at full depth: block rate 1 > b, so the flexible
    # headroom stops exactly at G (every hour from there on is curtailed)
    full = flexible_headroom(basis, b, [1.0, 1e4], [1.0, 1.0])
    assert full["headroom_mw"] == pytest.approx(G, rel=1e-8) and full["limited_by"] == "budget"
    assert full["rate"] == pytest.approx(2 / H, rel=1e-12) and full["events_per_year"] == 2
    half = flexible_headroom(basis, b, [1.0, 1e4], [0.5, 0.5])  # 1-h events need depth 1
    assert half["headroom_mw"] == 0.0 and half["limited_by"] == "envelope"


def test_flexible_headroom_needs_firm_mw_and_grows_with_the_envelope(synthetic):
    dur = np.array([0.25, 1, 2, 4, 6, 10])
    shallow = np.array([0.4, 0.35, 0.3, 0.25, 0.2, 0.15])
    deep = shallow + 0.3
    firm = 2000.0
    for b in (0.005, 0.01):
        # the threshold hour itself (gap 0) asks for the whole new load: no partial shedder fits at F = 0
        assert flexible_headroom(synthetic, b, dur, deep)["headroom_mw"] == 0.0
        assert flexible_headroom(synthetic, b, dur, np.ones(6))["headroom_mw"] <= synthetic.solve(b)
        flat = nonfirm_mw(synthetic, b, [firm])[0]
        lo = flexible_headroom(synthetic, b, dur, shallow, firm_mw=firm)["headroom_mw"]
        hi = flexible_headroom(synthetic, b, dur, deep, firm_mw=firm)["headroom_mw"]
        assert 0 < lo <= hi <= flat
        # at the peak hour the non-firm share N / (F + N) is the depth asked: <= the 15-min envelope
        assert lo / (firm + lo) <= shallow[0] + 1e-9
        capped = flexible_headroom(synthetic, b, dur, deep, max_event_h=1.0, firm_mw=firm)["headroom_mw"]
        assert capped <= hi


def test_allowed_depth_is_a_conservative_step():
    got = allowed_depth([0.1, 1.0, 1.5, 4.0, 11.0], [1.0, 4.0, 10.0], [0.5, 0.3, np.nan])
    np.testing.assert_array_equal(got, [0.5, 0.5, 0.3, 0.3, 0.0])  # NaN cell counts as 0
    with pytest.raises(ValueError, match="env_duration_h"):
        allowed_depth([1.0], [-1.0], [0.5])


def test_sizing_closed_forms(synthetic):
    t = two_peak_year()[0]
    flat = HeadroomBasis.from_load(t, np.full(t.size, K * P))  # every gap zero: c_t = N in every hour
    firm = np.array([10.0, 100.0, 1000.0])
    for b in (0.0025, 0.05):
        np.testing.assert_allclose(nonfirm_mw(flat, b, firm), b * firm / (1 - b), rtol=1e-9)
        assert nonfirm_mw(synthetic, b, [0.0])[0] == pytest.approx(synthetic.solve(b), rel=1e-9)
    ds = sizing(synthetic, (0.005, 0.01), [0.0, 200.0, 800.0])
    assert np.all(np.diff(ds.nonfirm_mw.values, axis=1) > 0)  # more firm lets more non-firm in
    np.testing.assert_allclose(ds.total_mw, (ds.firm_mw + ds.nonfirm_mw).transpose(*ds.total_mw.dims), rtol=1e-12)
    # with firm MW under it, the flexible non-firm part can only be larger
    dur, depth = np.array([1.0, 4.0, 10.0]), np.array([0.5, 0.4, 0.3])
    f1 = flexible_headroom(synthetic, 0.01, dur, depth, firm_mw=800.0)["headroom_mw"]
    assert flexible_headroom(synthetic, 0.01, dur, depth, firm_mw=1600.0)["headroom_mw"] >= f1 > 0
    with pytest.raises(ValueError, match="firm_mw"):
        nonfirm_mw(synthetic, 0.01, [-1.0])
    with pytest.raises(ValueError, match="budget"):
        nonfirm_mw(synthetic, 0.0, [1.0])
