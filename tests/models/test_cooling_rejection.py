"""Heat rejection: chiller Carnot fraction (physics.md V18), dry and evaporative coolers."""

import numpy as np
import pytest
from CoolProp.CoolProp import PropsSI
from factory_twin.models.cooling import chiller_cop_carnot, chiller_power_w, dry_cooler, evaporative_cooler


def test_v18_chiller_carnot_fraction():
    t_e, t_c = 12.0 + 273.15, 32.0 + 273.15
    assert chiller_cop_carnot(12.0, 32.0, 1.0) == pytest.approx(t_e / (t_c - t_e), rel=1e-12)
    assert chiller_cop_carnot(12.0, 32.0, 1.0) == pytest.approx(14.2575, rel=1e-12)
    assert chiller_cop_carnot(12.0, 32.0, 0.5) == pytest.approx(7.12875, rel=1e-12)
    # chilled water 14 degC, heat sink 30 degC, 2 K approaches on both sides -> same 12 / 32 degC
    assert chiller_power_w(1e6, 14.0, 30.0, 0.5, 2.0, 2.0) == pytest.approx(1e6 / 7.12875, rel=1e-12)
    assert chiller_power_w(1e6, 14.0, 30.0, 0.5) == pytest.approx(140277.047, rel=1e-8)


def test_chiller_lift_part_load_and_zero_duty():
    p = chiller_power_w(np.array([0.0, 5e5, 1e6]), 14.0, np.array([10.0, 28.0, 35.0]), 0.5, 2.0, 5.0)
    lift = np.array([35.0 + 5 - 12.0])
    assert p[0] == 0.0  # zero duty, even with the sink below the chilled water
    assert p[1] == pytest.approx(5e5 / (0.5 * 285.15 / (33.0 - 12.0)), rel=1e-12)
    assert p[2] == pytest.approx(1e6 / (0.5 * 285.15 / lift[0]), rel=1e-12)
    a = (0.7, 0.6, -0.3)  # eta_PL(0.5) = 0.7 + 0.3 - 0.075 = 0.925
    p_pl = chiller_power_w(1e6, 14.0, 30.0, 0.5, part_load_coeffs=a, q_nom_w=2e6)
    assert p_pl == pytest.approx(1e6 / (7.12875 * 0.925), rel=1e-12)


def test_dry_cooler_fan_modulation_by_hand():
    """100 MW rated at 8 K approach, 15 kW fan per MW at full speed; setpoint 32, dry bulb 25."""
    q = np.array([0.0, 50e6, 87.5e6, 100e6])
    r = dry_cooler(q, 32.0, 25.0, 100e6, 8.0, 0.015)
    np.testing.assert_allclose(r.t_min_out_c, 25.0 + 8.0 * q / 100e6, rtol=1e-12)
    np.testing.assert_allclose(r.speed, [0.0, 4.0 / 7.0, 1.0, 1.0], rtol=1e-12)
    np.testing.assert_array_equal(r.feasible, [True, True, True, False])
    np.testing.assert_allclose(r.fan_w, 1.5e6 * r.speed**3, rtol=1e-12)
    np.testing.assert_array_equal(r.water_kg_s, 0.0)
    assert np.all(r.t_min_out_c >= 25.0)
    hot = dry_cooler(1e6, 32.0, 33.0, 100e6, 8.0, 0.015)  # dry bulb above setpoint
    assert not hot.feasible and hot.speed == 1.0 and hot.t_min_out_c == pytest.approx(33.08, rel=1e-12)
    m2 = dry_cooler(50e6, 32.0, 25.0, 100e6, 8.0, 0.015, speed_exponent=2.0)
    assert m2.speed == pytest.approx(np.sqrt(4.0 / 7.0), rel=1e-12)


def test_evaporative_cooler_water_and_approach():
    r = evaporative_cooler(np.array([20e6, 100e6]), 32.0, 24.0, 100e6, 4.0, 0.02, water_l_per_kwh=1.8)
    np.testing.assert_allclose(r.t_min_out_c, [24.8, 28.0], rtol=1e-12)
    np.testing.assert_allclose(r.speed, [0.1, 0.5], rtol=1e-12)
    np.testing.assert_allclose(r.fan_w, 2e6 * np.array([0.1, 0.5]) ** 3, rtol=1e-12)
    rho = PropsSI("D", "T", 298.15, "P", 101325.0, "Water")
    np.testing.assert_allclose(r.water_kg_s, np.array([20e6, 100e6]) * 1.8 / 3.6e6 * 1e-3 * rho, rtol=1e-5)
    latent = evaporative_cooler(100e6, 32.0, 24.0, 100e6, 4.0, 0.02)
    h_fg = PropsSI("H", "T", 303.15, "Q", 1, "Water") - PropsSI("H", "T", 303.15, "Q", 0, "Water")
    assert latent.water_kg_s == pytest.approx(100e6 / h_fg, rel=1e-4)
    assert latent.water_kg_s * 3.6e6 / 100e6 == pytest.approx(1.48, abs=0.005)  # kg per kWh


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: chiller_cop_carnot(32.0, 12.0, 0.5), "t_cond_c"),
        (lambda: chiller_cop_carnot(12.0, 32.0, 0.0), "carnot_fraction"),
        (lambda: chiller_cop_carnot(12.0, 32.0, 1.5), "carnot_fraction"),
        (lambda: chiller_power_w(-1.0, 14.0, 30.0, 0.5), "q_w"),
        (lambda: chiller_power_w(1e6, 14.0, 30.0, 0.5, part_load_coeffs=(1.0, 0.1)), "q_nom_w"),
        (lambda: dry_cooler(-1.0, 32.0, 25.0, 1e6, 8.0, 0.01), "q_w"),
        (lambda: dry_cooler(1.0, 32.0, np.nan, 1e6, 8.0, 0.01), "t_db_c"),
        (lambda: dry_cooler(1.0, 32.0, 25.0, 0.0, 8.0, 0.01), "capacity_w"),
        (lambda: evaporative_cooler(1.0, 32.0, np.nan, 1e6, 4.0, 0.01), "t_wb_c"),
        (lambda: evaporative_cooler(1.0, 32.0, 20.0, 1e6, 4.0, 0.01, -1.0), "water_l_per_kwh"),
    ],
)
def test_invalid_inputs(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
