"""ConstantFlowDelay: exact against the analytic delay, against PlugFlowDelay, and energy-conserving."""

import numpy as np
import pytest
from factory_twin.models.cooling import ConstantFlowDelay, PlugFlowDelay


def test_pure_delay_with_fractional_steps():
    # V = 1 m3, V_dot = 0.04 m3/s, dt = 10 s -> tau = 25 s = 2.5 steps: a unit step at k=0 leaves
    # half in step 2 and fully from step 3 on
    d = ConstantFlowDelay(1.0, 0.04, 10.0, 0.0)
    out = [float(d.push(1.0)[0]) for _ in range(5)]
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0], rtol=0, atol=1e-15)


def test_matches_general_plug_flow_and_conserves_energy():
    rng = np.random.default_rng(3)
    vol = rng.uniform(0.1, 3.0, 40)
    flow = rng.uniform(0.01, 0.2, 40)
    a = ConstantFlowDelay(vol, flow, 7.0, 30.0)
    b = PlugFlowDelay(vol, 30.0)
    rho_cp = 4.1e6
    e0 = a.stored_energy_j(rho_cp)
    net = np.zeros(40)
    for _ in range(200):
        t_in = rng.uniform(20, 50, 40)
        out_a = a.push(t_in)
        np.testing.assert_allclose(out_a, b.push(t_in, flow, 7.0), rtol=1e-12)
        net += rho_cp * flow * 7.0 * (t_in - out_a)
    np.testing.assert_allclose(a.stored_energy_j(rho_cp) - e0, net, rtol=1e-9)
    np.testing.assert_allclose(a.stored_energy_j(rho_cp), b.stored_energy_j(rho_cp), rtol=1e-12)


def test_invalid_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"^v_dot_m3_s"):
        ConstantFlowDelay(1.0, 0.0, 1.0, 20.0)
    d = ConstantFlowDelay(1.0, 1.0, 1.0, 20.0)
    with pytest.raises(ValueError, match=r"^t_in_c"):
        d.push(np.nan)
