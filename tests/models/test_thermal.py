"""Rack RC thermals: V1, V2 (closed form, matrix-exponential reference), exactness, V5, errors."""

import math

import numpy as np
import pytest
from CoolProp.CoolProp import PropsSI
from factory_twin.models.thermal import TwoNodeRC, junction_temp_c, rc1_response
from scipy.linalg import expm

R1, R2, C1, C2, P = 0.02, 0.03, 50.0, 500.0, 1000.0  # V2 inputs


def _reference(r1, r2, c1, c2, dt, theta0, p):
    """[theta_die, theta_plate, heat to coolant] after dt, by scipy expm of the augmented system
    z = (theta1, theta2, Q, P): dQ/dt = theta2 / R2, dP/dt = 0 (independent of the code tested)."""
    m = np.zeros((4, 4))
    m[0, :2], m[0, 3] = [-1 / (r1 * c1), 1 / (r1 * c1)], 1 / c1
    m[1, :2] = [1 / (r1 * c2), -(1 / r1 + 1 / r2) / c2]
    m[2, 1] = 1 / r2
    z = expm(m * dt) @ np.array([theta0[0], theta0[1], 0.0, p])
    return z[:3]


# ---------------------------------------------------------------- one node (V1)
def test_v1_one_node_step():
    t = rc1_response(30.0, 1000.0, 0.05, 100.0, 30.0, np.array([5.0, 15.0, 1e6]))
    hand = 30.0 + 50.0 * (1 - np.exp(-np.array([1.0, 3.0, 2e5])))
    np.testing.assert_allclose(t, hand, rtol=1e-12)
    np.testing.assert_allclose(t, [61.60603, 77.51065, 80.0], rtol=1e-7)  # physics.md V1 figures


def test_v1_cooling_from_hot_start_and_broadcast():
    t = rc1_response(np.array([[90.0], [50.0]]), 0.0, 0.05, 100.0, 30.0, np.array([0.0, 5.0]))
    np.testing.assert_allclose(t, 30.0 + np.array([[60.0], [20.0]]) * np.exp(-np.array([0.0, 1.0])), rtol=1e-12)


# ---------------------------------------------------------------- two nodes (V2)
def test_v2_eigenvalues_and_closed_form():
    rc = TwoNodeRC(R1, R2, C1, C2)
    s1, s2 = rc.eigenvalues_1_s
    a11, a22 = 1 / (R1 * C1), (1 / R1 + 1 / R2) / C2
    disc = math.sqrt((a11 + a22) ** 2 - 4 / (R1 * R2 * C1 * C2))
    assert s1 == pytest.approx(0.5 * (-(a11 + a22) + disc), rel=1e-9)
    assert s2 == pytest.approx(0.5 * (-(a11 + a22) - disc), rel=1e-9)
    assert (s1, s2) == pytest.approx((-0.0602548, -1.1064118), rel=1e-6)
    # modal form, theta(0) = 0, theta'(0) = (P/C1, 0): A1 + A2 = -ss, s1 A1 + s2 A2 = theta'(0)
    ss, d0 = np.array([P * (R1 + R2), P * R2]), np.array([P / C1, 0.0])
    amp2 = (d0 + s1 * ss) / (s2 - s1)
    amp1 = -ss - amp2
    assert amp1[0] == pytest.approx(-33.76223, rel=1e-6)
    assert amp2[0] == pytest.approx(-16.23777, rel=1e-6)
    want = ss + amp1 * math.exp(s1 * 10.0) + amp2 * math.exp(s2 * 10.0)
    np.testing.assert_allclose(want, [31.5178, 12.6317], rtol=1e-5)  # physics.md V2 figures
    t_die, t_plate = rc.discretize(10.0).step(25.0, 25.0, P, 25.0)
    np.testing.assert_allclose([t_die - 25.0, t_plate - 25.0], want, rtol=1e-9)


@pytest.mark.parametrize("dt", [1e-4, 0.01, 1.0, 10.0, 600.0])
def test_step_matches_expm_reference_vectorized(dt):
    params = np.array([[0.02, 0.015, 0.013], [0.03, 0.020, 0.017], [50.0, 40.0, 45.0], [500.0, 400.0, 450.0]])
    rc = TwoNodeRC(*params)
    t0 = np.array([[70.0, 40.0, 30.0], [50.0, 45.0, 29.0]])  # die, plate
    t_cool, p = np.array([30.0, 35.0, 28.0]), np.array([1000.0, 1200.0, 0.0])
    step = rc.discretize(dt)
    t_die, t_plate = step.step(t0[0], t0[1], p, t_cool)
    q = step.heat_to_coolant_j(t0[0], t0[1], t_die, t_plate, p)
    for i in range(3):
        ref = _reference(*params[:, i], dt, t0[:, i] - t_cool[i], p[i])
        np.testing.assert_allclose([t_die[i] - t_cool[i], t_plate[i] - t_cool[i]], ref[:2], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(q[i], ref[2], rtol=1e-9, atol=1e-9 * max(1.0, p[i] * dt))


def test_one_long_step_equals_many_short_steps():
    rc = TwoNodeRC(R1, R2, C1, C2)
    t_die, t_plate = rc.discretize(10.0).step(30.0, 30.0, P, 30.0)
    short = rc.discretize(0.01)
    a, b = np.float64(30.0), np.float64(30.0)
    for _ in range(1000):
        a, b = short.step(a, b, P, 30.0)
    np.testing.assert_allclose([a, b], [t_die, t_plate], rtol=1e-9)


def test_heat_to_coolant_sums_over_short_steps():
    rc = TwoNodeRC(R1, R2, C1, C2)
    step = rc.discretize(0.5)
    a, b, q = np.float64(30.0), np.float64(30.0), 0.0
    for _ in range(20):
        a2, b2 = step.step(a, b, P, 30.0)
        q += float(step.heat_to_coolant_j(a, b, a2, b2, P))
        a, b = a2, b2
    ref = _reference(R1, R2, C1, C2, 10.0, [0.0, 0.0], P)
    assert q == pytest.approx(ref[2], rel=1e-9)
    # conservation: input = stored rise + delivered
    assert q + C1 * (a - 30.0) + C2 * (b - 30.0) == pytest.approx(P * 10.0, rel=1e-12)


@pytest.mark.parametrize("dt", [1e-3, 1.0, 1e3, 1e9])
def test_steady_state_stays_and_huge_steps_are_stable(dt):
    rc = TwoNodeRC([0.02, 0.013], [0.03, 0.017], [50.0, 45.0], [500.0, 450.0])
    p, tc = np.array([1000.0, 1400.0]), np.array([30.0, 40.0])
    ss = rc.steady_state(p, tc)
    np.testing.assert_allclose(ss, [tc + p * np.array([0.05, 0.03]), tc + p * np.array([0.03, 0.017])], rtol=1e-12)
    step = rc.discretize(dt)
    np.testing.assert_allclose(step.step(*ss, p, tc), ss, rtol=1e-12)
    np.testing.assert_allclose(step.steady_state(p, tc), ss, rtol=0)
    # from far away, a huge step lands on the steady state and never overshoots it
    t_die, t_plate = step.step(np.array([500.0, -20.0]), np.array([-50.0, 200.0]), p, tc)
    assert np.all(np.isfinite(t_die)) and np.all(np.abs(t_die - tc) <= 1000.0)
    if dt >= 1e3:
        np.testing.assert_allclose([t_die, t_plate], ss, rtol=1e-12)


def test_stored_energy():
    rc = TwoNodeRC([0.02, 0.013], [0.03, 0.017], [50.0, 45.0], [500.0, 450.0])
    np.testing.assert_allclose(
        rc.stored_energy_j([60.0, 70.0], [40.0, 50.0]),
        [50 * 60 + 500 * 40, 45 * 70 + 450 * 50],
        rtol=1e-12,
    )


# ---------------------------------------------------------------- junction temperature (V5)
def test_v5_junction_temperature_mean_and_inlet():
    t_k, p_pa = 303.15, 2e5
    rho, cp = (
        PropsSI("D", "T", t_k, "P", p_pa, "Water"),
        PropsSI("C", "T", t_k, "P", p_pa, "Water"),
    )
    m_dot = rho * 1.5e-3 / 60.0
    tj = junction_temp_c(1000.0, 0.035, 30.0, m_dot, cp)
    assert 1000.0 / (m_dot * cp) == pytest.approx(9.6118, rel=1e-4)
    assert tj == pytest.approx(69.806, rel=1e-4)
    assert tj == pytest.approx(30.0 + 1000.0 / (2 * m_dot * cp) + 35.0, rel=1e-12)
    assert junction_temp_c(1000.0, 0.035, 30.0, reference="inlet") == pytest.approx(65.0, rel=1e-12)


# ---------------------------------------------------------------- invalid inputs
def test_invalid_inputs_name_the_argument():
    with pytest.raises(ValueError, match="r_plate_coolant_k_w"):
        TwoNodeRC(0.02, -0.03, 50.0, 500.0)
    with pytest.raises(ValueError, match="c_die_j_k"):
        TwoNodeRC(0.02, 0.03, np.nan, 500.0)
    rc = TwoNodeRC(R1, R2, C1, C2)
    with pytest.raises(ValueError, match="dt_s"):
        rc.discretize(0.0)
    step = rc.discretize(1.0)
    with pytest.raises(ValueError, match="p_w"):
        step.step(30.0, 30.0, -5.0, 30.0)
    with pytest.raises(ValueError, match="p_w"):
        step.step(30.0, 30.0, np.nan, 30.0)
    with pytest.raises(ValueError, match="t_plate_c"):
        step.step(30.0, np.inf, 100.0, 30.0)
    with pytest.raises(ValueError, match="t_coolant_c"):
        step.step(30.0, 30.0, 100.0, np.array([30.0, np.nan]))
    with pytest.raises(ValueError, match="t_s"):
        rc1_response(30.0, 1000.0, 0.05, 100.0, 30.0, -1.0)
    with pytest.raises(ValueError, match="m_dot_kg_s"):
        junction_temp_c(1000.0, 0.035, 30.0, 0.0, 4180.0)
    with pytest.raises(ValueError, match="m_dot_kg_s"):
        junction_temp_c(1000.0, 0.035, 30.0)
    with pytest.raises(ValueError, match="reference"):
        junction_temp_c(1000.0, 0.035, 30.0, 0.02, 4180.0, reference="outlet")
