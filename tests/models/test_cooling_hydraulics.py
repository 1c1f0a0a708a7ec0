"""Pumps, pipe friction and the plug-flow delay (physics.md V12-V14)."""

import fluids.core
import fluids.friction
import numpy as np
import pytest
from factory_twin.models.cooling import (
    PlugFlowDelay,
    affinity,
    friction_factor_darcy,
    pipe_pressure_drop_pa,
    pump_head_m,
    pump_operating_point,
    pump_power_w,
    system_head_m,
)
from factory_twin.models.fluids import Coolant

G = 9.80665


def test_v12_affinity():
    q, h, p = affinity(100.0, 30.0, 10e3, 0.8)
    assert (q, h, p) == (
        pytest.approx(80.0, rel=1e-15),
        pytest.approx(19.2, rel=1e-15),
        pytest.approx(5120.0, rel=1e-15),
    )


def test_v13_pump_times_system_with_static_head():
    """H_p = 40 - 0.002 Q^2, H_s = 10 + 0.001 Q^2 (Q in m3/h)."""
    q, h = pump_operating_point(40.0, 0.002, 10.0, 0.001)
    assert q == pytest.approx(100.0, rel=1e-12) and h == pytest.approx(20.0, rel=1e-12)
    assert pump_power_w(q / 3600.0, h, 997.0, 1.0) == pytest.approx(997.0 * G * q / 3600.0 * 20.0, rel=1e-12)
    assert pump_power_w(q / 3600.0, h, 997.0, 1.0) == pytest.approx(5431.79, abs=0.005)
    q8, h8 = pump_operating_point(40.0, 0.002, 10.0, 0.001, speed=0.8)
    assert q8 == pytest.approx(np.sqrt(15.6 / 0.003), rel=1e-12) and q8 == pytest.approx(72.1110, abs=5e-5)
    assert h8 == pytest.approx(15.2, rel=1e-12)
    assert pump_head_m(q8, 40.0, 0.002, 0.8) == pytest.approx(system_head_m(q8, 10.0, 0.001), rel=1e-12)
    assert affinity(q, h, 1.0, 0.8)[0] == pytest.approx(80.0)  # what affinity would (wrongly) predict here


def test_no_static_head_follows_affinity_and_shutoff():
    q1, h1 = pump_operating_point(40.0, 0.002, 0.0, 0.001)
    q8, h8 = pump_operating_point(40.0, 0.002, 0.0, 0.001, speed=0.8)
    aq, ah, _ = affinity(q1, h1, 1.0, 0.8)
    assert (q8, h8) == (pytest.approx(aq, rel=1e-12), pytest.approx(ah, rel=1e-12))
    q, h = pump_operating_point(np.array([40.0, 40.0]), 0.002, 30.0, 0.001, speed=np.array([0.8, 0.5]))
    np.testing.assert_array_equal(q, [0.0, 0.0])  # 0.64*40 = 25.6 m and 10 m < 30 m static head
    np.testing.assert_allclose(h, [25.6, 10.0], rtol=1e-12)


def test_pump_power_efficiencies():
    p = pump_power_w(0.05, 30.0, 1017.0, 0.7, 0.95)
    assert p == pytest.approx(1017.0 * G * 0.05 * 30.0 / (0.7 * 0.95), rel=1e-12)


def test_v14_friction_and_pressure_drop_vs_fluids():
    water = Coolant("water")
    rho, mu = float(water.rho_kg_m3(30.0)), float(water.mu_pa_s(30.0))
    v = 0.05 / (np.pi * 0.1**2)
    assert v == pytest.approx(1.591549, abs=5e-7)
    re = fluids.core.Reynolds(V=v, D=0.2, rho=rho, mu=mu)
    assert re == pytest.approx(3.9756e5, rel=1e-4)
    f_ref = fluids.friction.friction_factor(re, 0.045e-3 / 0.2, Method="Clamond")
    assert friction_factor_darcy(re, 0.045e-3 / 0.2) == pytest.approx(f_ref, rel=1e-9)
    assert f_ref == pytest.approx(0.015978, abs=5e-7)
    dp = pipe_pressure_drop_pa(0.05, 100.0, 0.2, 0.045e-3, rho, mu)
    assert dp == pytest.approx(f_ref * 100.0 / 0.2 * rho * v**2 / 2.0, rel=1e-9)
    assert dp == pytest.approx(10.07e3, abs=5.0)
    assert pipe_pressure_drop_pa(0.0, 100.0, 0.2, 0.0, rho, mu) == 0.0


def test_friction_regimes_vs_fluids():
    re = np.array([500.0, 1500.0, 3000.0, 1e4, 1e6, 1e8])
    for ed in (0.0, 1e-4, 1e-2):
        ref = [fluids.friction.friction_factor(r, ed, Method="Clamond") for r in re]
        np.testing.assert_allclose(friction_factor_darcy(re, ed), ref, rtol=1e-9)
    np.testing.assert_allclose(friction_factor_darcy(re[:2], 0.0), 64.0 / re[:2], rtol=1e-15)


# ---------------------------------------------------------------- plug-flow delay
def test_v14_constant_flow_delay():
    vol = np.pi * 0.1**2 * 100.0
    t_d = vol / 0.05
    assert t_d == pytest.approx(62.83185, abs=5e-6)
    d = PlugFlowDelay(vol, 20.0)
    out = np.array([d.push(30.0, 0.05, 1.0)[0] for _ in range(80)])
    k = int(np.floor(t_d))  # step [62, 63] straddles the front
    np.testing.assert_allclose(out[:k], 20.0, rtol=1e-12)
    assert out[k] == pytest.approx(20.0 + 10.0 * (k + 1 - t_d), rel=1e-9)
    np.testing.assert_allclose(out[k + 1 :], 30.0, rtol=1e-12)
    d2 = PlugFlowDelay(vol, 20.0)  # step = t_d / 10: front leaves exactly after 10 steps
    out2 = [d2.push(30.0, 0.05, t_d / 10)[0] for _ in range(12)]
    np.testing.assert_allclose(out2, [20.0] * 10 + [30.0] * 2, rtol=1e-12)


def test_variable_flow_by_hand():
    """V = 1 m3 at 20 degC; a 0.25 m3 parcel at 50 degC leaves once 1 m3 has entered behind it."""
    d = PlugFlowDelay([1.0, 1.0], 20.0)
    steps = [  # (t_in, dV pipe 0, dV pipe 1)
        (50.0, 0.25, 0.25),
        (20.0, 0.5, 0.75),
        (20.0, 0.5, 0.0),  # pipe 1 stops with the hot parcel at its outlet
        (20.0, 0.0, 0.125),
        (20.0, 0.1, 0.25),
    ]
    expected = [
        (20.0, 20.0),
        (20.0, 20.0),
        (35.0, 50.0),  # pipe 0 window [-0.25, 0.25]: half hot; pipe 1: fluid standing at outlet
        (20.0, 50.0),  # pipe 0 stopped, 20 degC at outlet; pipe 1 window [0, 0.125] all hot
        (20.0, 35.0),  # pipe 1 window [0.125, 0.375]: half hot
    ]
    for i, ((t_in, a, b), exp) in enumerate(zip(steps, expected, strict=True)):
        np.testing.assert_allclose(d.push(t_in, np.array([a, b]), 1.0), exp, rtol=1e-12)
        if i == 2:  # pipe 0 holds [0.25, 1.25] (all 20); pipe 1 holds [0, 1] with the hot quarter
            np.testing.assert_allclose(d.mean_temp_c(), [20.0, 20.0 + 30.0 * 0.25], rtol=1e-12)
    np.testing.assert_allclose(d.mean_temp_c(), [20.0, 20.0], rtol=1e-12)


def test_energy_conservation_many_pipes():
    rng = np.random.default_rng(7)
    n, rho_cp = 50, 4.1e6
    vol = rng.uniform(0.1, 5.0, n)
    d = PlugFlowDelay(vol, rng.uniform(20.0, 40.0, n))
    e0 = d.stored_energy_j(rho_cp)
    np.testing.assert_allclose(e0, rho_cp * vol * d.mean_temp_c(), rtol=1e-15)
    net = np.zeros(n)
    for _ in range(400):
        v_dot = rng.uniform(0.0, 0.05, n) * (rng.random(n) > 0.1)  # some pipes stall each step
        v_dot[0] = 0.0  # one pipe never flows
        t_in = rng.uniform(20.0, 60.0, n)
        dt = rng.uniform(1.0, 20.0)
        t_out = d.push(t_in, v_dot, dt)
        net += rho_cp * v_dot * dt * (t_in - t_out)
    np.testing.assert_allclose(d.stored_energy_j(rho_cp) - e0, net, rtol=1e-9, atol=1e-9 * rho_cp * vol.max() * 60)
    assert d.stored_energy_j(rho_cp)[0] == pytest.approx(e0[0], rel=1e-15)


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: PlugFlowDelay([1.0, 0.0], 20.0), "volume_m3"),
        (lambda: PlugFlowDelay([[1.0]], 20.0), "volume_m3"),
        (lambda: PlugFlowDelay(1.0, np.nan), "t_init_c"),
        (lambda: PlugFlowDelay(1.0, 20.0).push(30.0, -0.1, 1.0), "v_dot_m3_s"),
        (lambda: PlugFlowDelay(1.0, 20.0).push(30.0, 0.1, 0.0), "dt_s"),
        (lambda: PlugFlowDelay(1.0, 20.0).push(np.nan, 0.1, 1.0), "t_in_c"),
        (lambda: pump_operating_point(40.0, 0.002, -1.0, 0.001), "h_static_m"),
        (lambda: pump_power_w(0.1, 10.0, 997.0, 1.2), "eta_pump"),
        (lambda: pump_power_w(-0.1, 10.0, 997.0, 0.7), "v_dot_m3_s"),
        (lambda: affinity(1.0, 1.0, 1.0, -0.5), "speed_ratio"),
        (lambda: pipe_pressure_drop_pa(0.05, 100.0, 0.0, 0.0, 997.0, 1e-3), "diameter_m"),
        (lambda: friction_factor_darcy(0.0, 0.0), "re"),
    ],
)
def test_invalid_inputs(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
