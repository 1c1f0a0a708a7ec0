"""Assembly: facility spec -> arrays; design UA reproduces the design approach; design point books."""

from pathlib import Path

import numpy as np
import pytest
from factory_twin.models.cooling import cdu_supply_control
from factory_twin.twin.simulation.design import design_point, steady_point

from factory_twin import twin


@pytest.fixture(scope="module")
def campus():
    return twin.load_facility("campus-100mw")


def test_counts_and_placement(campus):
    f = campus
    assert (f.n_racks, f.n_cdus) == (840, 84)
    assert f.gpus.sum() == 840 * 72
    assert f.rack_design_w.sum() == pytest.approx(840 * (72 * 1200.0 + 33600.0), rel=1e-12)
    # hall-b is split 50/50 training/inference by whole CDUs, contiguous
    hall_b = f.cdu_class[f.cdu_hall == 1]
    assert list(hall_b) == [0] * 21 + [1] * 21
    assert np.all(f.rack_class == f.cdu_class[f.rack_cdu])
    assert f.rack_row.max() == 41 and f.rack_slot.max() == 9
    # built-in name and path give the same facility
    g = twin.load_facility(f.source)
    np.testing.assert_array_equal(g.rack_cdu, f.rack_cdu)


def test_flow_rule_and_design_approach(campus):
    f = campus
    cool = f.spec.cooling
    rho = f.tcs.rho_kg_m3(cool.tcs.supply_setpoint_c)
    v_dot = f.rack_m_dot_kg_s / rho * 60e3  # L/min
    np.testing.assert_allclose(v_dot, 1.5 * f.rack_design_w / 1e3, rtol=1e-12)
    # at design load with facility water at its setpoint the CDU lands exactly on the design approach
    t_ret = cool.tcs.supply_setpoint_c + f.cdu_design_q_w / f.c_tcs_w_k
    t_fws = cool.facility_water.supply_setpoint_c
    st = cdu_supply_control(
        t_ret,
        f.c_tcs_w_k,
        t_fws,
        f.c_fws_max_w_k,
        f.cdu_ua_nom_w_k,
        cool.tcs.supply_setpoint_c - 1.0,
        arrangement=cool.cdu.arrangement,
        exponent=cool.cdu.ua_flow_exponent,
    )
    np.testing.assert_allclose(st.t_supply_c - t_fws, cool.cdu.design_approach_k, rtol=1e-9)
    assert st.at_capacity.all()


def test_resistance_spread_is_seeded_with_the_stated_moments(campus):
    f = campus
    r = f.r_die_plate_k_w + f.r_plate_coolant_k_w
    ratio = r / 0.035
    assert ratio.mean() == pytest.approx(1.0, abs=0.01)
    assert ratio.std() == pytest.approx(0.04, rel=0.15)
    np.testing.assert_array_equal(twin.load_facility("campus-100mw").r_die_plate_k_w, f.r_die_plate_k_w)


def test_design_point_books(campus):
    d = design_point(campus)
    assert d["grid_import_mw"] == pytest.approx(d["it_power_mw"] + d["losses_mw"] + d["cooling_power_mw"], rel=1e-12)
    assert 1.05 < d["pue"] < 1.25  # liquid + dry/adiabatic coolers, W32 (field guide: 1.10-1.25)
    cool = steady_point(campus, campus.tdp_w, 10.0, 5.0)
    hot = steady_point(campus, campus.tdp_w, 38.0, 30.0)
    assert hot.cooling_w > cool.cooling_w
    assert hot.fws_supply_c >= cool.fws_supply_c


def test_bad_facility_paths_and_design_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a file and not a built-in name"):
        twin.load_facility("campus-2gw")
    src = Path(twin.load_facility("campus-100mw").source).read_text()
    src = src.replace("capacity_kw = 1400.0", "capacity_kw = 900.0")
    p = tmp_path / "f.toml"
    p.write_text(src)
    with pytest.raises(twin.SpecError) as e:
        twin.load_facility(p)
    assert e.value.errors[0][0] == "cooling.cdu.capacity_kw"


def test_rack_types_split_into_whole_nodes():
    """Every rack type's GPUs fill whole compute nodes (the hosts the Redfish and Prometheus links name)."""
    from factory_twin.twin.facility.assembly import rack_catalog

    for name, t in rack_catalog().items():
        assert t["gpus"] % t["gpus_per_node"] == 0, name
    f = twin.load_facility("campus-100mw")
    assert np.all(f.gpus / f.gpus_per_node == 18)  # GB200 NVL72: 18 compute trays of 4 GPUs


def test_nodes_are_named_by_hall_row_slot_and_tray(campus):
    from factory_twin.links.dsx_exchange.points import Catalog
    from factory_twin.twin.facility.nodes import cdu_names, nodes, rack_names

    nd = nodes(campus)
    assert nd.n == 15_120 and int(nd.gpus.sum()) == int(campus.gpus.sum()) == 60_480  # issue 25: 15,120 nodes
    assert nd.names[:2] == ("hall-a-r01-01-n00", "hall-a-r01-01-n01") and nd.names[-1] == "hall-b-r42-10-n17"
    assert len(set(nd.names)) == nd.n and len(set(rack_names(campus))) == campus.n_racks
    cat = Catalog(campus, "FactoryTwin")  # the BMS points name racks and CDUs the same way
    assert cat.rack_ids == rack_names(campus) and cat.cdu_ids == cdu_names(campus)
    assert cdu_names(campus)[41:43] == ["hall-a-cdu42", "hall-b-cdu01"]
    assert nd.gpu_model == ("NVIDIA GB200", "NVIDIA GB200") and np.all(nd.rack[18:36] == 1)
