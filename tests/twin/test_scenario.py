"""Scenario inputs: weather synthesis and EPW, grid-signal CSVs, DR events, workload profiles."""

from pathlib import Path

import numpy as np
import pytest
from factory_twin.twin.facility.spec import SpecError
from factory_twin.twin.scenario.grid_signals import DREvent, read_signals_csv
from factory_twin.twin.scenario.scenario import WorkloadProfile
from factory_twin.twin.scenario.weather import read_epw, typical_year

from factory_twin import twin


@pytest.fixture(scope="module")
def facility():
    return twin.load_facility("campus-100mw")


def test_typical_year_matches_normals_and_design_tail():
    from factory_twin.twin.scenario.weather import climate_normals

    n = climate_normals()["seoul"]
    w = typical_year("seoul")
    db = w.dry_bulb_c.reshape(365, 24)
    # August (days 213-243): mean daily max/min within 1 K of the normals (AR(1) anomaly averages out)
    aug = db[213:244]
    assert abs(aug.max(axis=1).mean() - n["daily_max_c"][7]) < 1.0
    assert abs(aug.min(axis=1).mean() - n["daily_min_c"][7]) < 1.0
    # the 0.4 % hottest hours reach the ASHRAE design dry bulb (the calibration target), to 1e-6 K
    assert abs(np.quantile(w.dry_bulb_c, 0.996) - n["design_dry_bulb_c"]) < 1e-6
    wb = w.wet_bulb_c
    assert np.all(wb <= w.dry_bulb_c + 1e-9)
    assert 24.0 < np.quantile(wb, 0.996) < 29.0  # design wet bulb 26.5-27 degC


def test_weather_interpolates_in_time_and_offsets(facility):
    sc = twin.load_scenario(None, facility)
    t = np.array(["2026-08-07T14:00", "2026-08-07T14:30", "2026-08-07T15:00"], dtype="datetime64[s]")
    db, wb = sc.ambient(t)
    assert db[1] == pytest.approx(0.5 * (db[0] + db[2]), rel=1e-12)
    db5, wb5 = sc.with_changes(offset_k=5.0).ambient(t)
    np.testing.assert_allclose(db5 - db, 5.0, rtol=1e-12)
    np.testing.assert_allclose(wb5 - wb, 5.0, rtol=1e-12)


def _epw_rows() -> list[str]:
    """A year of hourly EPW rows: dry bulb 10 + 0.5 * hour-of-day degC, RH 60-69 %, 101 kPa."""
    rows = []
    for h in range(8760):
        m, d = 1 + h // 730, 1 + (h % 730) // 24
        rows.append(
            f"2026,{min(m, 12)},{min(d, 28)},{h % 24 + 1},0,src,{10 + h % 24 * 0.5:.1f},5.0,{60 + h % 10},101000,0,0,0"
        )
    return rows


def test_epw_round_trip(tmp_path):
    rows = _epw_rows()
    p = tmp_path / "x.epw"
    p.write_text("\n".join(["HEADER"] * 8 + rows))
    w = read_epw(p)
    assert w.dry_bulb_c[23] == pytest.approx(10 + 23 * 0.5)
    assert w.rel_humidity[5] == pytest.approx(0.65)
    assert w.pressure_pa == 101000
    p.write_text("\n".join(["HEADER"] * 8 + rows[:100]))
    with pytest.raises(ValueError, match="100 hourly rows"):
        read_epw(p)


def test_a_facility_epw_path_is_relative_to_its_spec_file(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "weather.epw").write_text("\n".join(["HEADER"] * 8 + _epw_rows()))
    spec = (Path(__file__).parents[1] / "data" / "one-rack.toml").read_text()
    (site / "f.toml").write_text(spec.replace('climate = "seoul"', 'climate = "weather.epw"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the spec's folder: the path must not resolve against the CWD
    f = twin.load_facility(Path("..") / "site" / "f.toml")
    w = twin.load_scenario(None, f).weather
    assert w.name == "EPW weather.epw"
    assert w.dry_bulb_c[23] == pytest.approx(10 + 23 * 0.5)


def test_signals_csv_units_gaps_and_columns(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text(
        "time,price_per_kwh,carbon_g_per_kwh,import_limit_kw\n"
        "2026-08-07T00:00,0.1,400,100000\n2026-08-07T01:00,0.2,410,90000\n"
    )
    s = read_signals_csv(p)
    np.testing.assert_allclose(s.price_per_mwh, [100.0, 200.0])
    np.testing.assert_allclose(s.import_limit_mw, [100.0, 90.0])
    t = np.array(["2026-08-07T00:30", "2026-08-07T01:59"], dtype="datetime64[s]")
    np.testing.assert_allclose(s.at(t, "price_per_mwh"), [100.0, 200.0])
    with pytest.raises(ValueError, match="grid signals cover"):
        s.at(np.array(["2026-08-07T02:01"], dtype="datetime64[s]"), "price_per_mwh")
    p.write_text("time,price_per_mwh\n2026-08-07T00:00,1\n2026-08-07T01:00,2\n2026-08-07T03:00,3\n")
    with pytest.raises(ValueError, match="gap or irregular step at row 4"):
        read_signals_csv(p)
    p.write_text("time,price_eur_per_mwh\n2026-08-07T00:00,1\n")
    with pytest.raises(ValueError, match=r"unknown column.*price_eur_per_mwh"):
        read_signals_csv(p)
    p.write_text("time,price_per_mwh\n2026-08-07T00:00,\n2026-08-07T01:00,2\n")
    with pytest.raises(ValueError, match="row 2, column 'price_per_mwh'"):
        read_signals_csv(p)


def test_dr_event_shape():
    ev = DREvent(np.datetime64("2026-08-07T16:00:00"), 3 * 3600, 0.25, ramp_s=900)
    t = np.datetime64("2026-08-07T16:00:00") + np.array(
        [-60, 0, 450, 900, 3600, 3 * 3600 - 1, 3 * 3600]
    ) * np.timedelta64(1, "s")
    np.testing.assert_allclose(ev.depth_at(t), [0, 0, 0.125, 0.25, 0.25, 0.25, 0])
    assert ev.announced == np.datetime64("2026-08-07T15:00:00")
    with pytest.raises(ValueError, match="depth"):
        DREvent(np.datetime64("2026-08-07T16:00:00"), 3600, 1.5)


def test_workload_profiles():
    w = WorkloadProfile(profile="diurnal", min=0.5, max=0.9, peak_hour=14)
    t = np.array(["2026-08-07T14:00", "2026-08-07T02:00", "2026-08-07T08:00"], dtype="datetime64[s]")
    np.testing.assert_allclose(w.utilization(t), [0.9, 0.5, 0.7], atol=1e-12)
    pl = WorkloadProfile(profile="plateaus", plateaus=[(2.0, 0.4), (9.5, 1.0), (18.0, 0.7)])
    t = np.array(["2026-08-07T00:30", "2026-08-07T02:00", "2026-08-07T09:29", "2026-08-07T09:30", "2026-08-07T23:00"],
                 dtype="datetime64[s]")  # fmt: skip
    np.testing.assert_array_equal(pl.utilization(t), [0.7, 0.4, 0.4, 1.0, 0.7])
    with pytest.raises(ValueError, match="hours must increase"):
        WorkloadProfile(profile="plateaus", plateaus=[(9.0, 1.0), (2.0, 0.5)])
    osc = WorkloadProfile(oscillation_depth=0.3, oscillation_period_s=10, oscillation_duty=0.7)
    s = 1.786e9 + np.arange(20) * 0.5  # epoch seconds, a whole multiple of the period at the start
    np.testing.assert_allclose(osc.power_factor(s), [1.0] * 14 + [0.7] * 6)


def test_scenario_file_errors(tmp_path, facility):
    p = tmp_path / "s.toml"
    p.write_text('start = "yesterday"\n[weather]\noffset_k = 99\n[workload.trainin]\nlevel = 1.0\n')
    with pytest.raises(SpecError) as e:
        twin.load_scenario(p, facility)
    assert [k for k, _ in e.value.errors] == ["weather.offset_k"]
    p.write_text('start = "yesterday"\n[workload.trainin]\nlevel = 1.0\n')
    with pytest.raises(SpecError) as e:
        twin.load_scenario(p, facility)
    assert {k for k, _ in e.value.errors} == {"start", "workload"}
    with pytest.raises(FileNotFoundError, match="scenario file not found"):
        twin.load_scenario(tmp_path / "missing.toml", facility)
    sc = twin.load_scenario("hot-day-dr", facility)
    assert sc.dr_events[0].depth == 0.25 and sc.offset_k == 0.5


def test_import_limit_precedence_what_if_then_csv_then_scenario_then_contract(tmp_path, facility):
    from support import scenario_with_csv_limit

    t = np.array(["2026-08-07T10:00", "2026-08-08T23:30"], dtype="datetime64[s]")
    contract = facility.spec.grid.import_limit_mw
    plain = twin.load_scenario(None, facility)
    assert plain.import_limit_in_force.source == "contract"
    np.testing.assert_array_equal(plain.import_limit(t), [contract, contract])
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "s.toml").write_text("[grid]\nimport_limit_mw = 77.0\n")
    own = twin.load_scenario(tmp_path / "own" / "s.toml", facility)
    assert (own.import_limit_in_force.source, own.import_limit_in_force.limit_mw) == ("scenario", 77.0)
    # the CSV column wins over the scenario file's constant, a what-if over both, and clearing it restores them
    sc = scenario_with_csv_limit(tmp_path, facility, 90.0, scenario_limit_mw=77.0)
    assert sc.import_limit_in_force.source == "grid signals" and sc.import_limit_in_force.describe() == (
        "time series (grid signals)"
    )
    np.testing.assert_array_equal(sc.import_limit(t), [90.0, 90.0])
    what_if = sc.with_changes(what_if_import_limit_mw=60.0)
    assert what_if.import_limit_in_force.describe() == "60 MW (what-if)"
    np.testing.assert_array_equal(what_if.import_limit(t), [60.0, 60.0])
    assert what_if.with_changes(what_if_import_limit_mw=None).import_limit_in_force.source == "grid signals"
    # a tighter DSX Flex target on the grid meter is reported as the source while it is in force
    from factory_twin.twin.scenario.scenario import GridTarget

    target = what_if.with_changes(grid_targets=(GridTarget(t[0], t[0] + np.timedelta64(3600, "s"), 50.0),))
    assert target.import_limit_now(t[0]) == (50.0, "grid target")
    assert target.import_limit_now(t[1]) == (60.0, "what-if")
    with pytest.raises(ValueError, match="import_limit_mw: a what-if must be finite and > 0 MW, got -5"):
        sc.with_changes(what_if_import_limit_mw=-5.0)


def test_a_scenario_built_for_another_contract_is_refused(facility):
    other = twin.load_facility("campus-1gw")
    sc = twin.load_scenario(None, other)
    with pytest.raises(ValueError, match=r"contracted import limit of .* MW, the facility 'campus-100mw' has"):
        twin.Twin(facility, sc)
