"""Conductors: IEC 60028 resistance, the I^2 R of DC and three-phase circuits, sizing and copper mass, and the rise of
a bolted DC fault current (closed forms against numerical integration)."""

import math

import numpy as np
import pytest
from factory_twin.models import conductors as c
from factory_twin.models.power import busway_loss_w
from scipy.integrate import quad

RHO20, ALPHA = 0.017241, 0.00393  # IEC 60028


def test_resistance_is_iec_60028_copper():
    assert c.resistance_ohm(1000.0, 1.0, RHO20, ALPHA, 20.0) == pytest.approx(17.241, rel=1e-12)
    # 0.393 %/K: 90 degC is 27.5 % above 20 degC (tnlab: "~28 % higher at 90 degC")
    assert c.resistance_ohm(1.0, 1.0, RHO20, ALPHA, 90.0) / c.resistance_ohm(1.0, 1.0, RHO20, ALPHA, 20.0) == (
        pytest.approx(1.2751, abs=1e-4)
    )


def test_dc_and_three_phase_losses():
    # 1 MW at 800 V DC: 1,250 A in each of two conductors
    assert c.line_current_a(1e6, 800.0, "dc") == pytest.approx(1250.0)
    assert c.circuit_loss_w(1e6, 800.0, 1e-3, "dc") == pytest.approx(2 * 1250.0**2 * 1e-3)
    # 1 MW at 415 V, pf 0.95: I = P / (sqrt(3) V pf), three conductors
    i = 1e6 / (math.sqrt(3) * 415.0 * 0.95)
    assert c.line_current_a(1e6, 415.0, "ac3", 0.95) == pytest.approx(i)
    assert c.circuit_loss_w(1e6, 415.0, 1e-3, "ac3", 0.95) == pytest.approx(3 * i * i * 1e-3)
    # same conductor, same power: the DC circuit loses 2 (415 x 0.95)^2 / 800^2 of the AC one
    ratio = c.circuit_loss_w(1e6, 800.0, 1e-3, "dc") / c.circuit_loss_w(1e6, 415.0, 1e-3, "ac3", 0.95)
    assert ratio == pytest.approx(2 * (415 * 0.95) ** 2 / 800**2)


def test_loss_fraction_feeds_the_busway_form():
    """f of the busway model reproduces the conductor's I^2 R at every load (both quadratic in P)."""
    r, rating = 6.8e-4, 1.5e6
    f = c.loss_fraction_at_rating(rating, 800.0, r, "dc")
    p = np.linspace(0.0, 1.5, 7) * rating
    np.testing.assert_allclose(busway_loss_w(p, rating, f), c.circuit_loss_w(p, 800.0, r, "dc"), rtol=1e-12)


def test_sizing_and_mass():
    assert c.busbar_area_mm2(2000.0, 2.0) == pytest.approx(1000.0)
    np.testing.assert_array_equal(c.parallel_runs([0.0, 430.0, 431.0, 4300.0], 430.0), [1, 1, 2, 10])
    # 1,000 mm2 x 1 m of copper at 8,890 kg/m3 is 8.89 kg
    assert c.copper_mass_kg(1000.0, 1.0, 1, 8890.0) == pytest.approx(8.89)
    with pytest.raises(ValueError, match="system"):
        c.line_current_a(1.0, 1.0, "ac1")


def test_dc_fault_current_rise():
    v, r, lh, i0 = 800.0, 1.3e-3, 3e-6, 1000.0
    tau = lh / r
    # initial slope V/L from the load current, final value V/R
    assert c.dc_fault_current_a(0.0, v, r, lh, i0) == pytest.approx(i0)
    dt = 1e-9
    slope = (c.dc_fault_current_a(dt, v, r, lh, i0) - i0) / dt
    assert slope == pytest.approx((v - r * i0) / lh, rel=1e-5)
    assert c.dc_fault_current_a(50 * tau, v, r, lh, i0) == pytest.approx(v / r, rel=1e-12)
    # time to a current is the inverse
    t = c.time_to_current_s(4000.0, v, r, lh, i0)
    assert c.dc_fault_current_a(t, v, r, lh, i0) == pytest.approx(4000.0, rel=1e-12)
    assert c.time_to_current_s(500.0, v, r, lh, i0) == 0.0 and c.time_to_current_s(1e9, v, r, lh, i0) == np.inf
    # let-through I^2 t against numerical integration
    num, _ = quad(lambda s: float(c.dc_fault_current_a(s, v, r, lh, i0)) ** 2, 0.0, 2e-5)
    assert c.dc_fault_i2t_a2s(2e-5, v, r, lh, i0) == pytest.approx(num, rel=1e-9)
