"""Power chain and BESS: field-guide validation cases V15, V16, V17, V19, V20, V21, closed forms
written out by hand, conservation, inverse round trip, SOC and power limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factory_twin.models.power import (
    Bess,
    PowerChain,
    bess_step,
    busway_loss_w,
    psu_input_w,
    three_phase_current_a,
    transformer_efficiency,
    transformer_loss_w,
    transformer_optimal_load_fraction,
    ups_loss_w,
)

REL = 1e-9
MWH = 3.6e9


def chain(**kw) -> PowerChain:
    """Round-number chain: 2 x 1 MVA transformers (P0 1 kW, Pk 8 kW), 2 x 1 MW UPS (c = 0.01),
    2 MW busway losing 1 % at rating, pf 0.95."""
    args = dict(
        transformer_count=2,
        transformer_rating_va=1e6,
        transformer_no_load_loss_w=1e3,
        transformer_load_loss_w=8e3,
        ups_count=2,
        ups_rating_w=1e6,
        ups_c0=0.01,
        ups_c1=0.01,
        ups_c2=0.01,
        busway_rating_w=2e6,
        busway_loss_fraction=0.01,
        power_factor=0.95,
    )
    return PowerChain(**(args | kw))


# --- V15 transformer ------------------------------------------------------------------------


def test_v15_transformer_loss_and_efficiency():
    s_r, p0, pk = 3e6, 3e3, 25e3
    assert transformer_loss_w(1.5e6, s_r, p0, pk) == pytest.approx(9250.0, rel=REL)
    assert transformer_loss_w(3e6, s_r, p0, pk) == pytest.approx(28000.0, rel=REL)
    eta = transformer_efficiency(np.array([1.5e6, 3e6]), s_r, p0, pk, power_factor=1.0)
    np.testing.assert_allclose(eta, [1.5e6 / 1.50925e6, 3e6 / 3.028e6], rtol=REL)
    np.testing.assert_allclose(eta, [0.9938711, 0.9907530], atol=5e-8)  # field-guide digits
    x_opt = transformer_optimal_load_fraction(p0, pk)
    assert x_opt == pytest.approx(math.sqrt(0.12), rel=REL)
    assert x_opt == pytest.approx(0.346410, abs=5e-7)


def test_transformer_efficiency_peaks_at_optimal_load():
    s_r, p0, pk = 3e6, 3e3, 25e3
    x_opt = math.sqrt(p0 / pk)
    # at the optimum the winding loss equals the core loss
    assert transformer_loss_w(x_opt * s_r, s_r, p0, pk) == pytest.approx(2 * p0, rel=REL)
    x = np.linspace(0.05, 1.0, 10_001)
    eta = transformer_efficiency(x * s_r, s_r, p0, pk, power_factor=0.9)
    assert abs(x[np.argmax(eta)] - x_opt) <= 0.5 * (x[1] - x[0])
    eta_opt = x_opt * s_r * 0.9 / (x_opt * s_r * 0.9 + 2 * p0)
    assert np.max(eta) <= eta_opt


# --- V16 UPS, busway, V19 PSU, V20 current ------------------------------------------------------


def test_v16_ups_three_term_curve():
    x = np.array([0.25, 0.5, 0.75, 1.0])
    loss = ups_loss_w(x * 1e6, 1e6, 0.01, 0.01, 0.01)
    np.testing.assert_allclose(loss, 1e6 * (0.01 + 0.01 * x + 0.01 * x**2), rtol=REL)
    eta = x * 1e6 / (x * 1e6 + loss)
    np.testing.assert_allclose(eta, [0.950119, 0.966184, 0.970089, 0.970874], atol=5e-7)
    assert ups_loss_w(0.0, 1e6, 0.01, 0.01, 0.01) == pytest.approx(1e4, rel=REL)


def test_busway_loss_is_square_law():
    p = np.array([0.0, 0.5e6, 1e6, 2e6])
    np.testing.assert_allclose(busway_loss_w(p, 1e6, 0.02), [0.0, 5e3, 2e4, 8e4], rtol=REL)


def test_v19_psu_titanium_and_interpolation():
    assert psu_input_w(5500.0, 11000.0) == pytest.approx(5500.0 / 0.96, rel=REL)
    assert psu_input_w(5500.0, 11000.0) - 5500.0 == pytest.approx(229.1667, abs=5e-5)
    x = np.array([0.05, 0.1, 0.15, 0.35, 0.75, 1.0, 1.2])
    eta = np.array(
        [0.90, 0.90, 0.92, 0.95, 0.96 - 0.05 * (0.25 / 0.5), 0.91, 0.91]
    )  # held at the ends, linear between the 10/20/50/100 % points
    np.testing.assert_allclose(psu_input_w(x * 5500.0, 5500.0), x * 5500.0 / eta, rtol=REL)
    flat = psu_input_w(1e3, 2e3, load_points=(0.1, 1.0), efficiencies=(0.8, 0.8))
    assert flat == pytest.approx(1250.0, rel=REL)


def test_v20_three_phase_current():
    i = three_phase_current_a(2.5e6, 480.0, 0.95)
    assert i == pytest.approx(2.5e6 / (math.sqrt(3) * 480 * 0.95), rel=REL)
    assert i == pytest.approx(3165.30, abs=5e-3)


# --- chain --------------------------------------------------------------------------------------


def test_chain_forward_hand_values():
    c = chain()
    dc = np.array([5500.0, 2750.0, 11000.0])
    f = c.forward(dc, 2e5, psu_rating_w=11000.0)
    eta_psu = np.array([0.96, 0.94 + 0.02 * (0.05 / 0.3), 0.91])
    np.testing.assert_allclose(f.psu_loss_w, dc / eta_psu - dc, rtol=REL)
    it = float(np.sum(dc / eta_psu))
    assert f.it_w == pytest.approx(it, rel=REL)
    # busway 2 MW at 1 %: f * P^2 / P_r
    bus = 0.01 * it**2 / 2e6
    x = (it + bus) / 2e6  # per UPS module, per unit
    ups = 2 * 1e6 * (0.01 + 0.01 * x + 0.01 * x**2)
    w = it + bus + ups + 2e5
    tx = 2 * (1e3 + 8e3 * (w / 0.95 / 2 / 1e6) ** 2)
    assert f.busway_loss_w == pytest.approx(bus, rel=REL)
    assert f.ups_loss_w == pytest.approx(ups, rel=REL)
    assert f.transformer_loss_w == pytest.approx(tx, rel=REL)
    assert f.grid_w == pytest.approx(w + tx, rel=REL)


def test_chain_conservation_over_10000_racks_and_time():
    c = chain(busway_rating_w=2e8, ups_count=200, transformer_count=100)
    rng = np.random.default_rng(2)
    dc = rng.uniform(0, 132e3, 10_000)
    mech = rng.uniform(0, 3e6, 96)  # a day of 15-min mechanical loads
    f = c.forward(dc, mech, psu_rating_w=6 * 33e3)
    assert f.psu_loss_w.shape == (10_000,)
    assert f.grid_w.shape == (96,)
    assert f.it_w == pytest.approx(np.sum(dc + f.psu_loss_w), rel=1e-12)
    total = f.it_w + f.busway_loss_w + f.ups_loss_w + f.transformer_loss_w + f.mech_w
    np.testing.assert_allclose(f.grid_w, total, rtol=1e-14)
    np.testing.assert_allclose(f.losses_w, f.grid_w - f.it_w - mech, rtol=1e-12)
    # campus totals over time (rack_axis=None) give one IT value per time step
    g = c.forward(np.full(96, 1e6), mech, psu_rating_w=2e6, rack_axis=None)
    np.testing.assert_allclose(g.it_w, 1e6 / 0.96, rtol=REL)


def test_chain_reproduces_v17_stack():
    it = 100e6
    v = it / 0.99 / 0.97  # UPS input
    c = PowerChain(
        transformer_count=1,
        transformer_rating_va=v,
        transformer_no_load_loss_w=0.0,
        transformer_load_loss_w=v * (1 / 0.995 - 1),  # 99.5 % at rating
        ups_count=1,
        ups_rating_w=it,
        ups_c0=0.0,
        ups_c1=1 / 0.97 - 1,  # constant 97 %
        ups_c2=0.0,
        busway_rating_w=it,
        busway_loss_fraction=1 / 0.99 - 1,  # 99 % at rating
        power_factor=1.0,
        psu_load_points=(0.5, 1.0),
        psu_efficiencies=(1.0, 1.0),
    )
    f = c.forward(it, 0.0, psu_rating_w=it)
    assert f.grid_w == pytest.approx(it / (0.995 * 0.97 * 0.99), rel=REL)
    assert f.grid_w - it == pytest.approx(4.6574e6, abs=50)
    assert f.grid_w + 9e6 == pytest.approx(113.6574e6, abs=50)


def test_max_it_round_trip_over_10000_limits():
    c = chain(psu_load_points=(0.5, 1.0), psu_efficiencies=(1.0, 1.0))
    rng = np.random.default_rng(3)
    limit, mech = rng.uniform(0.3e6, 4e6, 10_000), rng.uniform(0, 2e5, 10_000)
    it = c.max_it_w(limit, mech)
    assert np.all(it >= 0)
    grid = c.forward(it, mech, psu_rating_w=1e7, rack_axis=None).grid_w
    np.testing.assert_allclose(grid, limit, rtol=1e-10)
    # zero IT exactly at the no-load grid import; below it nothing fits
    g0 = c.forward(0.0, 1e5, psu_rating_w=1e7).grid_w
    assert c.max_it_w(g0, 1e5) == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(c.max_it_w(g0 * (1 - 1e-6), 1e5))
    assert np.isnan(c.max_it_w(1e3, 0.0))  # below the transformer core losses


# --- V21 BESS -------------------------------------------------------------------------------------


def test_v21_bess_round_trip():
    b = Bess(energy_capacity_j=200 * MWH, power_limit_w=50e6)
    assert b.round_trip_efficiency == pytest.approx(0.85, rel=1e-15)
    e0 = e = 150 * MWH
    delivered = 0.0
    for _ in range(3):  # 25 MW (25 % of a 100 MW site) for 3 h
        e, p = bess_step(e, 25e6, 3600.0, b)
        delivered += p * 3600.0
    assert delivered == pytest.approx(75 * MWH, rel=REL)
    assert e == pytest.approx(e0 - 75 * MWH / math.sqrt(0.85), rel=REL)
    dt = (e0 - e) / (math.sqrt(0.85) * 25e6)  # charge at 25 MW until refilled
    e, p = bess_step(e, -25e6, dt, b)
    assert p == -25e6
    assert e == pytest.approx(e0, rel=REL)
    assert -p * dt == pytest.approx(75 * MWH / 0.85, rel=REL)
    assert -p * dt / MWH == pytest.approx(88.235, abs=5e-4)


def test_bess_power_clip_and_soc_window():
    b = Bess(1e9, 1e6, eta_charge=0.95, eta_discharge=0.9, soc_min=0.2, soc_max=0.9)
    e, p = bess_step(5e8, 2e6, 10.0, b)  # power clip
    assert p == 1e6 and e == pytest.approx(5e8 - 1e7 / 0.9, rel=REL)
    e, p = bess_step(5e8, -2e6, 10.0, b)
    assert p == -1e6 and e == pytest.approx(5e8 + 0.95e7, rel=REL)
    e, p = bess_step(2e8 + 1e6, 1e6, 10.0, b)  # floor reached within the step
    assert p == pytest.approx(1e6 * 0.9 / 10, rel=REL) and e == 2e8
    e, p = bess_step(9e8 - 1e5, -1e6, 10.0, b)  # ceiling reached within the step
    assert p == pytest.approx(-1e5 / (0.95 * 10), rel=REL) and e == 9e8
    e, p = bess_step(np.array([2e8, 1e8, 1e8]), np.array([5e5, 5e5, -5e5]), 10.0, b)
    np.testing.assert_array_equal(p, [0.0, 0.0, -5e5])  # below the floor: charge only
    np.testing.assert_allclose(e, [2e8, 1e8, 1e8 + 0.95 * 5e6], rtol=REL)


def test_bess_vectorized_limits_and_accounting():
    b = Bess(1e9, 1e6, soc_min=0.1, soc_max=0.9)
    rng = np.random.default_rng(4)
    e = rng.uniform(1e8, 9e8, 10_000)
    p = rng.uniform(-3e6, 3e6, 10_000)
    e_next, p_act = bess_step(e, p, 300.0, b)
    assert np.all(np.abs(p_act) <= 1e6)
    assert np.all((e_next >= 1e8) & (e_next <= 9e8))
    assert np.all(np.sign(p_act) * np.sign(p) >= 0) and np.all(np.abs(p_act) <= np.abs(p))
    eta = math.sqrt(0.85)
    de = np.where(p_act < 0, -eta * p_act, -p_act / eta) * 300.0
    np.testing.assert_allclose(e_next - e, de, rtol=1e-9, atol=1e-6)


# --- invalid inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: transformer_loss_w(-1.0, 1e6, 1e3, 1e4), "s_va"),
        (lambda: transformer_loss_w(1.0, 0.0, 1e3, 1e4), "rating_va"),
        (lambda: transformer_efficiency(1.0, 1e6, 1e3, 1e4, power_factor=0.0), "power_factor"),
        (lambda: transformer_optimal_load_fraction(1e3, 0.0), "load_loss_w"),
        (lambda: ups_loss_w(np.nan, 1e6, 0.01, 0.01, 0.01), "p_out_w"),
        (lambda: ups_loss_w(1.0, 1e6, 0.01, -0.01, 0.01), "c1"),
        (lambda: busway_loss_w(1.0, 1e6, 1.0), "loss_fraction_at_rating"),
        (lambda: psu_input_w(1.0, 1e3, load_points=(0.5, 0.2)), "load_points"),
        (lambda: psu_input_w(1.0, 1e3, efficiencies=(0.9, 0.9, 1.2, 0.9)), "efficiencies"),
        (lambda: three_phase_current_a(1.0, 480.0, 1.1), "pf"),
        (lambda: chain(power_factor=1.2), "power_factor"),
        (lambda: chain(ups_count=0), "ups_count"),
        (lambda: chain(busway_loss_fraction=-0.1), "busway_loss_fraction"),
        (lambda: chain().forward([1.0, -1.0], 0.0, psu_rating_w=1e3), "rack_dc_w"),
        (lambda: chain().forward(1.0, np.nan, psu_rating_w=1e3), "mech_w"),
        (lambda: chain().forward(1.0, 0.0, psu_rating_w=0.0), "rating_w"),
        (lambda: chain().max_it_w(-1.0, 0.0), "grid_limit_w"),
        (lambda: Bess(1e9, 1e6, soc_min=0.5, soc_max=0.5), "soc_min"),
        (lambda: Bess(1e9, 1e6, eta_charge=1.5), "eta_charge"),
        (lambda: Bess(0.0, 1e6), "energy_capacity_j"),
        (lambda: bess_step(2e9, 0.0, 1.0, Bess(1e9, 1e6)), "energy_j"),
        (lambda: bess_step(1e8, np.inf, 1.0, Bess(1e9, 1e6)), "p_w"),
        (lambda: bess_step(1e8, 0.0, 0.0, Bess(1e9, 1e6)), "dt_s"),
    ],
)
def test_invalid_inputs_name_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


def test_upstream_equals_forward_above_the_psus():
    from factory_twin.models.power import PowerChain

    chain = PowerChain(4, 3e6, 3e3, 25e3, 10, 1.25e6, 0.008, 0.012, 0.01, 12e6, 0.01, 0.95)
    dc = np.linspace(50e3, 120e3, 90)
    fwd = chain.forward(dc, 1.5e6, psu_rating_w=264e3)
    up = chain.upstream(float(np.sum(dc + fwd.psu_loss_w)), 1.5e6)
    assert float(up.grid_w) == pytest.approx(float(fwd.grid_w), rel=1e-15)
    assert float(up.grid_w) == pytest.approx(float(up.it_w + up.losses_w + up.mech_w), rel=1e-15)
