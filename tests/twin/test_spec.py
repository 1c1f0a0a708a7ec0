"""Facility spec validation: every error named by key path and rule; unknown keys rejected."""

import tomllib

import pytest
from factory_twin.twin.facility.spec import SpecError, parse_facility

from factory_twin import data

RACKS = {"gb200-nvl72", "gb300-nvl72"}


def _reference_text() -> str:
    return data.path("facilities", "campus-100mw.toml").read_text()


def test_reference_campuses_parse():
    for name in ("campus-100mw", "campus-1gw"):
        spec = parse_facility(data.path("facilities", f"{name}.toml").read_text(), name, RACKS)
        assert spec.name == name


def test_error_names_key_path_and_rule():
    text = _reference_text().replace("design_approach_k = 3.0", "design_approach_k = -2.0")
    with pytest.raises(SpecError) as e:
        parse_facility(text, "x.toml", RACKS)
    assert ("cooling.cdu.design_approach_k", "must be > 0, got -2.0") in e.value.errors
    assert "cooling.cdu.design_approach_k: must be > 0, got -2.0" in str(e.value)


def test_every_error_is_reported_not_just_the_first():
    text = (
        _reference_text()
        .replace("design_approach_k = 3.0", "design_approach_k = -2.0")
        .replace("pump_efficiency = 0.75", "pump_efficiency = 1.5")
        .replace("import_limit_mw = 125.0", "import_limit_mw = 0.0")
    )
    with pytest.raises(SpecError) as e:
        parse_facility(text, "x.toml", RACKS)
    paths = {p for p, _ in e.value.errors}
    assert {"cooling.cdu.design_approach_k", "cooling.facility_water.pump_efficiency", "grid.import_limit_mw"} <= paths
    assert len(e.value.errors) == 3


def test_unknown_key_is_an_error():
    text = _reference_text().replace("capacity_kw = 1400.0", "capacity_kw = 1400.0\ncapacty_mw = 1.4")
    with pytest.raises(SpecError) as e:
        parse_facility(text, "x.toml", RACKS)
    assert e.value.errors == [("cooling.cdu.capacty_mw", "unknown key (check the spelling)")]


def test_missing_key_and_cross_references():
    raw = tomllib.loads(_reference_text())
    text = _reference_text().replace(
        'rack_type = "gb200-nvl72"\ncdus = 42\nracks_per_cdu = 10\nthermal_r_spread = 0.04\n'
        "workloads = { training = 1.0 }",
        'rack_type = "gb999"\ncdus = 42\nracks_per_cdu = 10\nthermal_r_spread = 0.04\nworkloads = { trainin = 1.0 }',
    )
    assert raw["halls"][0]["rack_type"] == "gb200-nvl72"
    with pytest.raises(SpecError) as e:
        parse_facility(text, "x.toml", RACKS)
    paths = {p for p, _ in e.value.errors}
    assert paths == {"halls.0.rack_type", "halls.0.workloads.trainin"}
    without = _reference_text().replace("supply_setpoint_c = 32.0\n", "")
    with pytest.raises(SpecError) as e:
        parse_facility(without, "x.toml", RACKS)
    assert e.value.errors == [("cooling.facility_water.supply_setpoint_c", "required key is missing")]


def test_shares_must_sum_to_one_and_toml_syntax_is_reported():
    text = _reference_text().replace(
        "workloads = { training = 0.5, inference = 0.5 }", "workloads = { training = 0.5, inference = 0.4 }"
    )
    with pytest.raises(SpecError) as e:
        parse_facility(text, "x.toml", RACKS)
    assert e.value.errors[0][0] == "halls.1"
    assert "must sum to 1, got 0.9" in e.value.errors[0][1]
    with pytest.raises(SpecError) as e:
        parse_facility("name = ", "bad.toml", RACKS)
    assert e.value.errors[0][0] == "<toml>"


def test_cdu_fouling_names_the_hall_and_cdu_it_refers_to():
    def fouling(hall, cdus, ua):
        return _reference_text() + f'\n[[cooling.cdu.fouling]]\nhall = "{hall}"\ncdus = {cdus}\nua_fraction = {ua}\n'

    spec = parse_facility(fouling("hall-b", [0, 41], 0.6), "x.toml", RACKS)
    assert spec.cooling.cdu.fouling[0].cdus == [0, 41] and spec.cooling.tcs.max_rise_k is None
    with pytest.raises(SpecError) as e:
        parse_facility(fouling("hall-z", [0], 0.6), "x.toml", RACKS)
    assert e.value.errors == [("cooling.cdu.fouling.0.hall", "no hall named 'hall-z'; defined: ['hall-a', 'hall-b']")]
    with pytest.raises(SpecError) as e:
        parse_facility(fouling("hall-a", [3, 42], 0.6), "x.toml", RACKS)
    assert e.value.errors == [("cooling.cdu.fouling.0.cdus", "hall 'hall-a' has CDUs 0..41, got 42")]
    with pytest.raises(SpecError) as e:
        parse_facility(fouling("hall-a", [3], 0.0), "x.toml", RACKS)
    assert e.value.errors == [("cooling.cdu.fouling.0.ua_fraction", "must be > 0, got 0.0")]
