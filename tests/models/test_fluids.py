"""Coolant property tables vs direct CoolProp; wet bulb and dew point vs CoolProp humid air."""

import dataclasses

import numpy as np
import pytest
from CoolProp.CoolProp import PropsSI
from CoolProp.HumidAirProp import HAPropsSI
from factory_twin.models.fluids import Coolant, coolprop_name, dew_point_c, wet_bulb_c

P_PA = 2e5
FLUIDS = [
    ("water", "Water"),
    ("MPG-25%", "INCOMP::MPG-25%"),
    ("MPG-30%", "INCOMP::MPG[0.3]"),
    ("MEG-25%", "INCOMP::MEG-25%"),
]
PROPS = [("cp_j_kgk", "C"), ("rho_kg_m3", "D"), ("mu_pa_s", "V"), ("k_w_mk", "L")]


@pytest.mark.parametrize(("name", "fluid"), FLUIDS)
@pytest.mark.parametrize(("method", "out"), PROPS)
def test_properties_match_coolprop(name, fluid, method, out):
    c = Coolant(name)
    lo, hi = c.valid_range_c
    t_c = np.r_[lo, hi, np.random.default_rng(1).uniform(lo, hi, 300)]
    expected = PropsSI(out, "T", t_c + 273.15, "P", P_PA, fluid)
    np.testing.assert_allclose(getattr(c, method)(t_c), expected, rtol=1e-4)


def test_field_guide_table_values():
    """physics.md 2.3 (CoolProp 8.0 at 2 bar), rounded there to 4-5 digits."""
    water, pg25, eg25 = Coolant("water"), Coolant("MPG-25%"), Coolant("MEG-25%")
    np.testing.assert_allclose(water.cp_j_kgk([25.0, 30.0]), [4181.0, 4179.6], rtol=1e-4)
    np.testing.assert_allclose(water.rho_kg_m3([25.0, 30.0]), [997.09, 995.69], rtol=1e-4)
    np.testing.assert_allclose(water.mu_pa_s(25.0), 0.890e-3, rtol=1e-3)
    np.testing.assert_allclose(pg25.cp_j_kgk([25.0, 30.0, 45.0]), [3932.6, 3944.6, 3980.6], rtol=1e-4)
    np.testing.assert_allclose(pg25.rho_kg_m3([25.0, 30.0, 45.0]), [1017.17, 1014.90, 1007.21], rtol=1e-4)
    np.testing.assert_allclose(pg25.mu_pa_s([25.0, 30.0, 45.0]), [2.071e-3, 1.776e-3, 1.199e-3], rtol=1e-3)
    np.testing.assert_allclose(eg25.k_w_mk(25.0), 0.4910, rtol=1e-3)
    assert pg25.t_freeze_c == pytest.approx(-9.79, abs=0.005)
    assert pg25.valid_range_c == (pytest.approx(-9.785447896, abs=1e-6), 100.0)
    assert water.valid_range_c == (1.0, 99.0)


def test_names_and_cache():
    assert coolprop_name("Water") == "Water"
    assert coolprop_name("mpg-25%") == "INCOMP::MPG[0.25]"
    assert coolprop_name("MEG-30%") == "INCOMP::MEG[0.3]"
    a, b = Coolant("MPG-25%"), Coolant("MPG-25%")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.name = "water"


def test_broadcast_shape():
    t = np.full((3, 4), 35.0)
    assert Coolant("water").cp_j_kgk(t).shape == (3, 4)


@pytest.mark.parametrize("bad", ["glycol", "MPG-25", "XYZ-10%", "MPG-90%"])
def test_bad_name(bad):
    with pytest.raises(ValueError, match="name"):
        Coolant(bad)


@pytest.mark.parametrize("t", [-20.0, 100.5, np.nan, [30.0, 120.0]])
def test_out_of_range_temperature(t):
    with pytest.raises(ValueError, match=r"t_c.*(-9\.78|finite)"):
        Coolant("MPG-25%").rho_kg_m3(t)


def test_water_range_in_message():
    with pytest.raises(ValueError, match=r"t_c: must be within \[1, 99\]"):
        Coolant("water").cp_j_kgk(0.5)


def test_wet_bulb_and_dew_point_vs_coolprop_humid_air():
    """psychrolib (ASHRAE) vs CoolProp HAPropsSI (Hyland-Wexler): formulations differ < 0.02 K."""
    t = np.array([30.0, 35.0, 10.0, 40.0, -5.0])
    rh = np.array([0.5, 0.2, 0.9, 0.4, 0.7])
    wb_ref = [HAPropsSI("B", "T", a + 273.15, "P", 101325.0, "R", r) - 273.15 for a, r in zip(t, rh, strict=True)]
    dp_ref = [HAPropsSI("D", "T", a + 273.15, "P", 101325.0, "R", r) - 273.15 for a, r in zip(t, rh, strict=True)]
    np.testing.assert_allclose(wet_bulb_c(t, rh), wb_ref, atol=0.02)
    np.testing.assert_allclose(dew_point_c(t, rh), dp_ref, atol=0.02)


def test_saturated_air_and_broadcast():
    t = np.array([[5.0, 25.0], [35.0, 45.0]])
    np.testing.assert_allclose(wet_bulb_c(t, 1.0), t, atol=2e-3)  # psychrolib tolerance 1e-3 K
    np.testing.assert_allclose(dew_point_c(t, 1.0), t, atol=2e-3)
    wb_low_p = wet_bulb_c(30.0, 0.3, 80000.0)
    assert wb_low_p < wet_bulb_c(30.0, 0.3)  # thinner air evaporates more: lower wet bulb


@pytest.mark.parametrize(
    ("args", "arg"),
    [
        ((30.0, 1.2), "rh_frac"),
        ((30.0, -0.1), "rh_frac"),
        ((np.nan, 0.5), "t_db_c"),
        ((30.0, 0.5, -1.0), "p_pa"),
    ],
)
def test_psychro_invalid(args, arg):
    with pytest.raises(ValueError, match=arg):
        wet_bulb_c(*args)


def test_dew_point_needs_humidity():
    with pytest.raises(ValueError, match="rh_frac"):
        dew_point_c(30.0, 0.0)
