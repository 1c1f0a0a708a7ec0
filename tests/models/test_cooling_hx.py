"""eps-NTU relations vs ht, UA flow scaling, and the CDU supply control (physics.md V6-V10)."""

import ht
import numpy as np
import pytest
from factory_twin.models.cooling import (
    ARRANGEMENTS,
    ConstantFlowCdus,
    cdu_supply_control,
    effectiveness,
    effectiveness_max,
    hx_duty_w,
    hx_outlet_temps,
    ntu_from_effectiveness,
    ua_at_flow,
)

HT_NAME = {
    "counterflow": "counterflow",
    "parallel": "parallel",
    "crossflow_cmax_mixed": "crossflow, mixed Cmax",
    "crossflow_cmin_mixed": "crossflow, mixed Cmin",
    "crossflow_unmixed": "crossflow approximate",
}
NTU = np.array([0.01, 0.3, 1.0, 2.5, 6.0])
CR = np.array([0.1, 0.5, 0.8, 0.95, 1.0])


def test_v6_v7_v8_field_guide_values():
    assert effectiveness(1.0, 0.5) == pytest.approx(0.5647334016, rel=1e-9)
    assert effectiveness(2.0, 1.0) == pytest.approx(2.0 / 3.0, rel=1e-12)
    expected = {  # physics.md V8, 6 digits
        "parallel": 0.517913,
        "crossflow_cmax_mixed": 0.541969,
        "crossflow_cmin_mixed": 0.544764,
        "crossflow_unmixed": 0.544764,
    }
    for kind, eps in expected.items():
        assert effectiveness(1.0, 0.5, kind) == pytest.approx(eps, abs=5e-7)


@pytest.mark.parametrize("kind", ARRANGEMENTS)
def test_effectiveness_matches_ht(kind):
    n, c = np.meshgrid(NTU, CR)
    expected = [ht.effectiveness_from_NTU(a, b, HT_NAME[kind]) for a, b in zip(n.ravel(), c.ravel(), strict=True)]
    np.testing.assert_allclose(effectiveness(n, c, kind).ravel(), expected, rtol=1e-9)


@pytest.mark.parametrize("kind", ARRANGEMENTS)
def test_cr_zero_limit(kind):
    np.testing.assert_allclose(effectiveness(NTU, 0.0, kind), 1.0 - np.exp(-NTU), rtol=1e-12)


def test_counterflow_near_balanced_is_continuous():
    n = np.array([0.5, 3.0, 20.0])
    np.testing.assert_allclose(effectiveness(n, 1.0 - 1e-12), n / (1.0 + n), rtol=1e-9)
    np.testing.assert_allclose(ntu_from_effectiveness(n / (1.0 + n), 1.0 - 1e-12), n, rtol=1e-9)


def test_v9_inverse():
    assert ntu_from_effectiveness(0.9, 0.9) == pytest.approx(6.41853886, rel=1e-8)
    assert ntu_from_effectiveness(0.9, 0.9) == pytest.approx(
        ht.NTU_from_effectiveness(0.9, 0.9, "counterflow"), rel=1e-9
    )
    assert ntu_from_effectiveness(2.0 / 3.0, 1.0) == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("kind", ARRANGEMENTS)
def test_inverse_matches_ht_and_round_trips(kind):
    c = np.array([0.1, 0.5, 0.8, 1.0])
    eps = 0.9 * effectiveness_max(c, kind) * np.array([0.3, 0.6, 0.9, 0.99])[:, None]
    eps, c = np.broadcast_arrays(eps, c)
    ntu = ntu_from_effectiveness(eps, c, kind)
    expected = [ht.NTU_from_effectiveness(e, r, HT_NAME[kind]) for e, r in zip(eps.ravel(), c.ravel(), strict=True)]
    rtol = 1e-9 if kind != "crossflow_unmixed" else 1e-7  # ht solves that one numerically
    np.testing.assert_allclose(ntu.ravel(), expected, rtol=rtol)
    np.testing.assert_allclose(effectiveness(ntu, c, kind), eps, rtol=1e-12)


def test_effectiveness_max_closed_forms():
    c = 0.5
    assert effectiveness_max(c, "parallel") == pytest.approx(1.0 / 1.5, rel=1e-15)
    assert effectiveness_max(c, "crossflow_cmax_mixed") == pytest.approx((1 - np.exp(-0.5)) / 0.5, rel=1e-15)
    assert effectiveness_max(c, "crossflow_cmin_mixed") == pytest.approx(1 - np.exp(-2.0), rel=1e-15)
    assert effectiveness_max(c, "counterflow") == 1.0


def test_v10_hx_outlets_vs_ht():
    """C_h = 12 kW/K, C_c = 15 kW/K, UA = 36 kW/K: eps = 0.8043280 (NTU 3, Cr 0.8)."""
    cp = 4000.0
    ref = ht.effectiveness_NTU_method(
        mh=12000.0 / cp,
        mc=15000.0 / cp,
        Cph=cp,
        Cpc=cp,
        subtype="counterflow",
        Thi=45.0,
        Tci=30.0,
        UA=36000.0,
    )
    t_ho, t_co, q = hx_outlet_temps(45.0, 30.0, 12000.0, 15000.0, 36000.0)
    assert ref["effectiveness"] == pytest.approx(0.8043280, abs=5e-8)
    assert q == pytest.approx(ref["Q"], rel=1e-9)
    assert t_ho == pytest.approx(ref["Tho"], rel=1e-9)
    assert t_co == pytest.approx(ref["Tco"], rel=1e-9)
    assert hx_duty_w(30.0, 45.0, 15000.0, 12000.0, 36000.0) == pytest.approx(-ref["Q"], rel=1e-12)


def test_ua_at_flow_closed_form():
    assert ua_at_flow(36000.0, 2.0, 2.0, 3.0, 3.0) == pytest.approx(36000.0, rel=1e-15)
    # hot at 50 %, cold at nominal, n = 0.8, hot share 0.4
    expected = 36000.0 / (0.4 * 0.5**-0.8 + 0.6)
    assert ua_at_flow(36000.0, 1.0, 2.0, 3.0, 3.0, 0.8, 0.4) == pytest.approx(expected, rel=1e-12)
    assert ua_at_flow(36000.0, 1.0, 2.0, 0.0, 3.0) == 0.0
    assert ua_at_flow(36000.0, 1.0, 2.0, 1.0, 3.0, exponent=0.0) == pytest.approx(36000.0, rel=1e-15)


# ---------------------------------------------------------------- CDU supply control (V10)
C_TCS, C_FWS, UA, T_FWS = 12000.0, 15000.0, 36000.0, 30.0


def _v10_return_c():
    eps = ht.effectiveness_from_NTU(UA / C_TCS, C_TCS / C_FWS, "counterflow")
    return T_FWS + 120e3 / (eps * C_TCS)


def test_v10_at_capacity_loop_balance():
    t_ret = _v10_return_c()
    s = cdu_supply_control(t_ret, C_TCS, T_FWS, C_FWS, UA, setpoint_c=25.0)
    assert t_ret == pytest.approx(42.432738, abs=5e-7)
    assert bool(s.at_capacity) and s.flow_fraction == 1.0
    assert s.q_w == pytest.approx(120e3, rel=1e-9)
    assert s.t_supply_c == pytest.approx(32.432738, abs=5e-7)
    assert s.t_fws_return_c == pytest.approx(38.0, rel=1e-9)
    assert s.t_supply_c - T_FWS == pytest.approx(2.432738, abs=5e-7)  # approach
    lmtd = ht.LMTD(t_ret, float(s.t_supply_c), T_FWS, float(s.t_fws_return_c))
    assert lmtd == pytest.approx(10.0 / 3.0, rel=1e-9)
    assert UA * lmtd == pytest.approx(float(s.q_w), rel=1e-9)


def test_holds_setpoint_with_partial_valve():
    t_ret, cp = _v10_return_c(), 4000.0
    s = cdu_supply_control(t_ret, C_TCS, T_FWS, C_FWS, UA, setpoint_c=34.0)
    x = float(s.flow_fraction)
    assert not s.at_capacity and 0.0 < x < 1.0
    assert s.t_supply_c == 34.0
    q = C_TCS * (t_ret - 34.0)
    assert s.q_w == pytest.approx(q, rel=1e-12)
    assert s.c_fws_w_k * (s.t_fws_return_c - T_FWS) == pytest.approx(q, rel=1e-12)
    ua_x = UA / (0.5 + 0.5 * x**-0.8)  # TCS side at nominal flow
    ref = ht.effectiveness_NTU_method(
        mh=C_TCS / cp,
        mc=x * C_FWS / cp,
        Cph=cp,
        Cpc=cp,
        subtype="counterflow",
        Thi=t_ret,
        Tci=T_FWS,
        UA=ua_x,
    )
    assert ref["Q"] == pytest.approx(q, rel=1e-9)
    assert ref["Tco"] == pytest.approx(float(s.t_fws_return_c), rel=1e-9)


def test_supply_control_edge_cases_vectorized():
    t_ret = np.array([40.0, 40.0, 33.0, 60.0])
    t_fws = np.array([30.0, 41.0, 30.0, 30.0])
    s = cdu_supply_control(t_ret, C_TCS, t_fws, C_FWS, UA, 34.0, arrangement="crossflow_unmixed")
    # 0: holds; 1: facility water warmer than return -> valve shut, flagged;
    # 2: return below setpoint -> valve shut; 3: load too high -> full valve, flagged
    np.testing.assert_array_equal(s.at_capacity, [False, True, False, True])
    np.testing.assert_array_equal(s.flow_fraction[1:3], [0.0, 0.0])
    np.testing.assert_array_equal(s.t_supply_c[:3], [34.0, 40.0, 33.0])
    np.testing.assert_array_equal(s.q_w[1:3], [0.0, 0.0])
    assert s.t_supply_c[3] > 34.0 and s.flow_fraction[3] == 1.0
    np.testing.assert_allclose(s.q_w, C_TCS * (t_ret - s.t_supply_c), rtol=1e-12)
    np.testing.assert_allclose(s.q_w, s.c_fws_w_k * (s.t_fws_return_c - t_fws), rtol=1e-12, atol=1e-9)


def test_supply_control_many_cdus_one_pass():
    rng = np.random.default_rng(3)
    n = 1000
    t_ret = rng.uniform(30.0, 70.0, n)
    s = cdu_supply_control(t_ret, rng.uniform(8e3, 15e3, n), 32.0, 15000.0, 36000.0, 35.0)
    held = ~s.at_capacity & (t_ret > 35.0)
    assert held.any() and s.at_capacity.any()
    np.testing.assert_array_equal(s.t_supply_c[held], 35.0)
    assert np.all(s.t_supply_c[s.at_capacity] > 35.0)


@pytest.mark.parametrize("arrangement", ["counterflow", "crossflow_unmixed"])
def test_constant_flow_cdus_equal_supply_control_at_full_valve(arrangement):
    """Precomputed full-valve duty: same supply temperatures and at-capacity flags as the general function
    (held, at capacity and shut CDUs all present)."""
    rng = np.random.default_rng(4)
    n = 500
    t_ret, c_tcs, c_fws = rng.uniform(28.0, 70.0, n), rng.uniform(8e3, 15e3, n), rng.uniform(12e3, 20e3, n)
    ua = rng.uniform(2e4, 5e4, n)
    cdus = ConstantFlowCdus(c_tcs, c_fws, ua, 35.0, arrangement)
    for t_fws in (32.0, 29.0):
        ref = cdu_supply_control(t_ret, c_tcs, t_fws, c_fws, ua, 35.0, arrangement=arrangement, iterations=0)
        t_sup, short = cdus.control(t_ret, t_fws)
        np.testing.assert_allclose(t_sup, ref.t_supply_c, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(short, ref.at_capacity)
        assert short.any() and (~short & (t_ret > 35.0)).any() and (t_ret <= 35.0).any()
    with pytest.raises(ValueError, match="t_tcs_return_c"):
        cdus.control(np.full(n, np.nan), 32.0)


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: effectiveness(-1.0, 0.5), "ntu"),
        (lambda: effectiveness(1.0, 1.5), "cr"),
        (lambda: effectiveness(1.0, np.nan), "cr"),
        (lambda: effectiveness(1.0, 0.5, "shell"), "arrangement"),
        (lambda: ntu_from_effectiveness(1.0, 0.5), "eps"),
        (lambda: ntu_from_effectiveness(0.7, 0.5, "parallel"), "eps"),
        (lambda: hx_duty_w(40.0, 30.0, 0.0, 1.0, 1.0), "c_hot_w_k"),
        (lambda: ua_at_flow(1.0, -1.0, 1.0, 1.0, 1.0), "m_hot"),
        (lambda: ua_at_flow(1.0, 1.0, 1.0, 1.0, 1.0, hot_fraction=1.2), "hot_fraction"),
        (lambda: cdu_supply_control(np.nan, 1.0, 30.0, 1.0, 1.0, 35.0), "t_tcs_return_c"),
        (lambda: cdu_supply_control(40.0, 1.0, 30.0, -1.0, 1.0, 35.0), "c_fws_max_w_k"),
    ],
)
def test_invalid_inputs(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
