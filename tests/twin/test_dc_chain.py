"""The 800 VDC chain in the one-line diagram: conservation at every tier (with independent loss formulas for the
rectifiers and DC busways), AC/DC checks that name the element, rack DC-DC curves, the Vera Rubin flow law and the
hall conversion what-if."""

import math

import numpy as np
import pytest
from factory_twin.twin.facility.assembly import assemble, load_facility, rack_catalog
from factory_twin.twin.facility.electrical import converter_curve
from factory_twin.twin.facility.power_chains import convert_hall, with_chains
from factory_twin.twin.facility.spec import SpecError
from factory_twin.twin.facility.topology import compile_topology
from factory_twin.twin.simulation import design
from factory_twin.twin.simulation.conversion import converted, design_figures, parse_conversion
from support import check_conservation

RHO_90 = 0.017241 * (1 + 0.00393 * 70.0)  # IEC 60028 copper at the catalog's 90 degC [ohm mm2/m]


@pytest.fixture(scope="module")
def mixed():
    return load_facility("campus-1gw-mixed")


@pytest.fixture(scope="module")
def small():
    """campus-100mw cut to two small halls: GB200 on the AC chain, Vera Rubin on 800 VDC."""
    base = load_facility("campus-100mw").spec
    a = base.halls[0].model_copy(update={"cdus": 4})
    b = base.halls[1].model_copy(update={"name": "hall-vr", "rack_type": "vr-nvl72", "cdus": 6, "racks_per_cdu": 6})
    spec = base.model_copy(update={"halls": [a, b]})
    return with_chains(spec, rack_catalog(), {"hall-a": "ac-2n", "hall-vr": "dc800-2n"})


def _independent_dc_losses(topo, out_w):
    """Rectifier and DC busway losses from the cited points and IEC 60028 copper, written here."""
    loss = np.full(topo.n, np.nan)
    sst = converter_curve("sst-mv-800vdc")
    x, eta = np.array(sst.load), np.array(sst.efficiency)
    coef = np.linalg.lstsq(np.column_stack([np.ones_like(x), x, x * x]), x / eta - x, rcond=None)[0]
    for e in range(topo.n):
        kind = topo.kind_name(e)
        if kind == "rectifier":
            r = topo.rating_w[e] / topo.units[e]
            u = out_w[e] / topo.units[e] / r
            loss[e] = topo.units[e] * r * (coef[0] + coef[1] * u + coef[2] * u * u)
        elif kind == "dc-busway":
            r_cond = RHO_90 * topo.length_m[e] / _area(topo, e)
            loss[e] = 2.0 * (out_w[e] / topo.voltage_v[e]) ** 2 * r_cond
    return loss


def _area(topo, e):
    # the template sized the conductor at 2 A/mm2 for the busway's rated current
    return round(topo.rating_w[e] / topo.voltage_v[e] / 2.0, 1)


@pytest.mark.parametrize("lose", [None, "A"])
def test_the_dc_chain_conserves_power_at_every_tier(mixed, lose):
    topo = mixed.topology
    closed = None if lose is None else np.array([p != lose for p in topo.path])
    routing = topo.routing(closed)
    rt = design.rack_totals(mixed, 0.8 * mixed.tdp_w)
    mech = 40e6
    flow = topo.flow(routing, rt.rack_in_w, mech)
    check_conservation(topo, routing, rt.rack_in_w, mech, flow)  # every parent = its children x shares + losses, 1e-9
    dc = np.array([topo.kind_name(e) in ("rectifier", "dc-switchboard", "dc-busway") for e in range(topo.n)])
    assert dc.sum() == 2 * 2 * (30 + 30 + 90) if lose is None else True
    want = _independent_dc_losses(topo, flow.out_w)
    sel = np.isfinite(want) & routing.energized
    assert sel.sum() > 100
    np.testing.assert_allclose(flow.loss_w[sel], want[sel], rtol=1e-9)
    # per tier: the DC power into each hall-G busway = its racks' input + its I^2 R; the boards pass it through
    for e in np.flatnonzero(dc & routing.energized):
        kids = topo.children(e)
        racks = topo.rack_edge_rack[topo.rack_edge_parent == e]
        below = flow.in_w[kids].sum() if kids.size else 0.0
        shares = np.array([np.sum(routing.energized[topo.rack_parents(r)]) for r in racks])
        direct = np.sum(rt.rack_in_w[racks] / shares) if racks.size else 0.0
        if kids.size:  # children may be shared with the other path: their share is 1 / live parents
            below = sum(flow.in_w[k] / routing.energized[topo.parents(k)].sum() for k in kids)
        assert flow.in_w[e] == pytest.approx(below + direct + flow.loss_w[e], rel=1e-9)


def test_the_busway_loss_at_rating(mixed):
    topo = mixed.topology
    e = topo.index["A-hall-G-dcbus-01"]
    # 800 V at 2 A/mm2 over 30 m: f = 2 rho J L / V (module docstring of models.conductors)
    assert topo.loss_fraction[e] == pytest.approx(2 * RHO_90 * 2.0 * 30.0 / 800.0, rel=1e-3)
    ac = topo.index["A-hall-A-bus-01"]
    assert topo.loss_fraction[ac] == pytest.approx(math.sqrt(3) * RHO_90 * 2.0 * 30.0 / (415.0 * 0.95), rel=1e-3)


def test_rack_converters_by_hall(mixed):
    f = mixed
    vr = np.flatnonzero(f.rack_hall == list(f.hall_names).index("hall-G"))[0]
    gb = 0
    dc = f.gpus * f.tdp_w + f.non_gpu_w
    rating = f.psu_count * f.psu_rating_w
    rin = design._plant(f).psu_input_w(dc, rating, f.psu_curve)
    dcdc, ti = converter_curve("dcdc-800v-50v"), converter_curve("titanium-ac")
    assert rin[vr] == pytest.approx(dc[vr] / np.interp(dc[vr] / rating[vr], dcdc.load, dcdc.efficiency), rel=1e-12)
    assert rin[gb] == pytest.approx(dc[gb] / np.interp(dc[gb] / rating[gb], ti.load, ti.efficiency), rel=1e-12)
    with pytest.raises(ValueError, match="curve: the racks of this facility convert with several curves"):
        design._plant(f).psu_input_w(dc, rating)


def test_vera_rubin_flow_law(mixed):
    f = mixed
    vr = f.rack_hall == list(f.hall_names).index("hall-G")
    q_l_min = f.rack_m_dot_kg_s[vr][0] / f.tcs.rho_kg_m3(35.0) * 60_000.0
    assert q_l_min == pytest.approx((17370.0 / (57.2 - 35.0)) ** 0.796, rel=1e-9)
    assert q_l_min == pytest.approx(201.0, abs=0.5)  # firmus/NVIDIA table: 200 L/min at 35 degC


def test_current_mismatches_are_refused_naming_the_element(small):
    els = list(small.topology.elements)
    i = next(k for k, e in enumerate(els) if e.kind == "dc-busway")
    ups = next(e.name for e in els if e.kind == "ups")
    bad = [*els[:i], els[i].model_copy(update={"parents": [ups]}), *els[i + 1 :]]
    with pytest.raises(SpecError, match=r"takes DC but its parent .*\(ups\) delivers AC"):
        compile_topology(small.model_copy(update={"topology": small.topology.model_copy(update={"elements": bad})}))
    ac_hall = [small.halls[0].model_copy(update={"psu_curve": "dcdc-800v-50v"}), small.halls[1]]
    with pytest.raises(SpecError, match=r"delivers AC to racks of 'hall-a'.*halls.0.psu_curve"):
        compile_topology(small.model_copy(update={"halls": ac_hall}))
    unknown = [small.halls[0], small.halls[1].model_copy(update={"psu_curve": "dcdc-9000v"})]
    with pytest.raises(SpecError, match="unknown converter curve 'dcdc-9000v'"):
        compile_topology(small.model_copy(update={"halls": unknown}))
    j = next(k for k, e in enumerate(els) if e.kind == "rectifier")
    ti = [*els[:j], els[j].model_copy(update={"curve": "titanium-ac"}), *els[j + 1 :]]
    with pytest.raises(SpecError, match="does not follow the three-term loss"):
        compile_topology(small.model_copy(update={"topology": small.topology.model_copy(update={"elements": ti})}))


def test_convert_hall_replaces_only_the_halls_chain(mixed):
    f, g = mixed, converted(mixed, parse_conversion("hall-B:vr-nvl72"))
    k = list(f.hall_names).index("hall-B")
    hb = g.spec.halls[k]
    assert (hb.rack_type, hb.racks_per_cdu, hb.psu_curve) == ("vr-nvl72", 7, "dcdc-800v-50v")
    assert hb.workloads == {"training-rubin": 1.0}  # the facility's Rubin class replaces 'training'
    names_f, names_g = set(f.topology.names), set(g.topology.names)
    assert not any("hall-B-ups" in n or "hall-B-bus" in n or "hall-B-tx" in n for n in names_g)
    assert {"A-hall-B-rect-01", "B-hall-B-dcbus-90", "A-hall-B-main-tx", "A-hall-B-mech"} <= names_g
    kept = names_f - {n for n in names_f if "hall-B-" in n and ("-tx-" in n or "-lv-" in n or "-ups-" in n
                                                                or "-bus-" in n)}  # fmt: skip
    assert kept <= names_g
    for n in ("A-hall-A-ups-01", "B-hall-G-dcbus-07", "A-hall-B-main-tx", "utility-A1"):
        e, e2 = f.topology.index[n], g.topology.index[n]
        assert (f.topology.rating_w[e], f.topology.kind[e]) == (g.topology.rating_w[e2], g.topology.kind[e2])
    rect = g.topology.index["A-hall-B-rect-01"]
    assert g.topology.kind_name(int(g.topology.parents(rect)[0])) == "switchboard"  # under the hall's MV board
    b, a = design_figures(f, "hall-B"), design_figures(g, "hall-B")
    assert a.hall_efficiency > b.hall_efficiency + 0.02 and a.grid_mw > b.grid_mw


def test_convert_hall_errors_name_the_cause(mixed):
    cat = rack_catalog()
    with pytest.raises(ValueError, match="no hall named 'hall-Z'"):
        convert_hall(mixed.spec, cat, "hall-Z", "vr-nvl72")
    with pytest.raises(ValueError, match="unknown 'vr-nvl999'"):
        convert_hall(mixed.spec, cat, "hall-B", "vr-nvl999")
    cool = mixed.spec.cooling
    small_cdu = mixed.spec.model_copy(update={"cooling": cool.model_copy(update={"cdu": cool.cdu.model_copy(
        update={"capacity_kw": 500.0})})})  # fmt: skip
    with pytest.raises(ValueError, match=r"rubin-ultra-nvl576: one rack \(594 kW to liquid\) exceeds a CDU"):
        convert_hall(small_cdu, cat, "hall-B", "rubin-ultra-nvl576")
    agg = load_facility("emerald-phoenix").spec
    with pytest.raises(ValueError, match="needs a \\[topology\\]"):
        convert_hall(agg, cat, agg.halls[0].name, "vr-nvl72")
    with pytest.raises(ValueError, match="HALL:RACK_TYPE"):
        parse_conversion("hall-B")


def test_small_mixed_facility_assembles(small):
    f = assemble(small, rack_catalog())
    assert len(f.psu_curves) == 2 and set(np.unique(f.psu_curve)) == {0, 1}
