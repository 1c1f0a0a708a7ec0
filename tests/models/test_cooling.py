"""Coolant rise, flow rule and mixing (physics.md V3, V4, V11)."""

import numpy as np
import pytest
from CoolProp.CoolProp import PropsSI
from factory_twin.models.cooling import coolant_rise_k, flow_for_rise, flow_rule_kg_s, mix_streams
from factory_twin.models.fluids import Coolant


def test_v3_rise_and_inverse():
    assert coolant_rise_k(100e3, 2.0, 4180.0) == pytest.approx(100e3 / (2.0 * 4180.0), rel=1e-12)
    assert coolant_rise_k(100e3, 2.0, 4180.0) == pytest.approx(11.961722, rel=1e-7)
    assert flow_for_rise(100e3, 100e3 / (2.0 * 4180.0), 4180.0) == pytest.approx(2.0, rel=1e-12)
    q = np.array([0.0, 50e3, 132e3])
    np.testing.assert_allclose(
        coolant_rise_k(q, flow_for_rise(q + 1.0, 10.0, 4000.0), 4000.0),
        10 * q / (q + 1),
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    ("name", "fluid", "rise_k"),
    [("water", "Water", 9.611799), ("MPG-25%", "INCOMP::MPG-25%", 9.991432)],
)
def test_v4_rack_flow_rule(name, fluid, rise_k):
    """132 kW at 1.5 L/min/kW = 198 L/min, coolant at 30 degC, 2 bar."""
    c = Coolant(name)
    rho, cp = PropsSI("D", "T", 303.15, "P", 2e5, fluid), PropsSI("C", "T", 303.15, "P", 2e5, fluid)
    m = flow_rule_kg_s(132e3, 1.5, c.rho_kg_m3(30.0))
    assert m == pytest.approx(198.0 / 60000.0 * rho, rel=1e-4)
    dt = coolant_rise_k(132e3, m, c.cp_j_kgk(30.0))
    assert dt == pytest.approx(132e3 / (198.0 / 60000.0 * rho * cp), rel=1e-4)
    assert dt == pytest.approx(rise_k, rel=1e-6)
    if name == "water":
        assert m == pytest.approx(3.28579, rel=2e-6)


def test_v11_mixing_and_groups():
    assert mix_streams([2.0, 3.0], [30.0, 40.0]) == pytest.approx(36.0, rel=1e-12)
    # CoolProp enthalpy mix (physics.md V11: 35.99993 degC) differs by < 1e-5 relative
    h = [PropsSI("H", "T", t + 273.15, "P", 2e5, "Water") for t in (30.0, 40.0)]
    t_h = PropsSI("T", "H", (2 * h[0] + 3 * h[1]) / 5, "P", 2e5, "Water") - 273.15
    assert t_h == pytest.approx(35.99993, abs=1e-5)
    assert mix_streams([2.0, 3.0], [30.0, 40.0]) == pytest.approx(t_h, rel=1e-5)
    m = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    t = np.array([30.0, 33.0, 40.0, 41.0, 50.0])
    into = np.array([0, 0, 2, 2, 2])
    out = mix_streams(m, t, into, n=4)
    np.testing.assert_allclose(out[[0, 2]], [(30 + 66) / 3, (120 + 164 + 250) / 12], rtol=1e-12)
    assert np.isnan(out[1]) and np.isnan(out[3])
    # energy: sum of group flow * group temperature = sum over streams
    assert np.nansum(np.bincount(into, m, 4) * out) == pytest.approx(m @ t, rel=1e-12)
    batch = mix_streams(np.ones((3, 2)), np.array([[1.0, 3.0], [2.0, 4.0], [5.0, 5.0]]))
    np.testing.assert_allclose(batch, [2.0, 3.0, 5.0], rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: coolant_rise_k(1e3, 0.0, 4180.0), "m_dot_kg_s"),
        (lambda: coolant_rise_k(np.nan, 1.0, 4180.0), "q_w"),
        (lambda: flow_for_rise(1e3, -2.0, 4180.0), "rise_k"),
        (lambda: flow_rule_kg_s(1e3, 1.5, -1.0), "rho_kg_m3"),
        (lambda: mix_streams([-1.0, 1.0], [30.0, 40.0]), "m_dot_kg_s"),
        (lambda: mix_streams([1.0, 1.0], [30.0, np.inf]), "t_c"),
        (lambda: mix_streams([1.0, 1.0], [30.0, 40.0], into=[0.5, 1]), "into"),
        (lambda: mix_streams([1.0, 1.0], [30.0, 40.0], into=[0, -1]), "into"),
    ],
)
def test_invalid_inputs(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
