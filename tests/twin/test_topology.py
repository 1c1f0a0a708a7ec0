"""The one-line diagram: the aggregate chain as its degenerate case, conservation and A/B shares on the reference
campuses, repetition, and refusals naming the element."""

import tomllib

import numpy as np
import pytest
from factory_twin.models.power import PowerChain
from factory_twin.twin.facility.assembly import assemble, rack_catalog
from factory_twin.twin.facility.spec import FacilitySpec, SpecError, parse_facility
from factory_twin.twin.facility.topology import compile_topology
from support import check_conservation

from factory_twin import data, twin

REL = 1e-9


@pytest.fixture(scope="module")
def c100():
    return twin.load_facility("campus-100mw")


def _rack_inputs(f, seed=0):
    """Per-rack inputs [W] that differ rack by rack (independent draws around the nameplate)."""
    return np.random.default_rng(seed).uniform(0.3, 1.05, f.n_racks) * 1.04 * f.rack_design_w


def test_aggregate_chain_is_the_degenerate_diagram_exactly():
    """Without [topology]: feed -> transformers -> UPS -> busway -> racks reproduces PowerChain bit for bit."""
    f = twin.load_facility("emerald-phoenix")
    g = f.spec.grid
    chain = PowerChain(g.transformer.count, g.transformer.rating_mva * 1e6, g.transformer.no_load_loss_kw * 1e3,
                       g.transformer.load_loss_kw * 1e3, g.ups.modules, g.ups.module_rating_mw * 1e6, g.ups.c0,
                       g.ups.c1, g.ups.c2, g.busway.rating_mw * 1e6, g.busway.loss_fraction_at_rating,
                       g.power_factor)  # fmt: skip
    topo = f.topology
    assert not topo.explicit and topo.names == ("grid", "transformers", "ups", "busway")
    rack_in = np.random.default_rng(1).uniform(0, 9e3, (f.n_racks, 50))
    mech = np.linspace(0.0, 30e3, 50)
    flow = topo.flow(topo.routing(), rack_in, mech)
    want = chain.upstream(rack_in.sum(axis=0), mech)
    assert np.array_equal(flow.grid_w, want.grid_w)
    assert np.array_equal(flow.losses_w, want.losses_w)
    assert np.array_equal(flow.loss_w[1:], np.stack([want.transformer_loss_w, want.ups_loss_w, want.busway_loss_w]))


def test_campus_100mw_is_2n_and_conserves_power(c100):
    topo = c100.topology
    assert topo.explicit and topo.n == 430
    parents = np.bincount(topo.rack_edge_rack, minlength=c100.n_racks)
    assert np.all(parents == 2)  # every rack on an A and a B busway
    paths = {topo.path[p] for p in topo.rack_edge_parent}
    assert paths == {"A", "B"}
    rack_in, mech = _rack_inputs(c100), 6.2e6
    routing = topo.routing()
    flow = topo.flow(routing, rack_in, mech)
    check_conservation(topo, routing, rack_in, mech, flow)
    # A/B shares of every rack sum to its load
    assert np.allclose(np.asarray(routing.rack.sum(axis=0)).ravel(), 1.0, rtol=0, atol=1e-15)
    a = np.array([p == "A" for p in topo.path])
    assert flow.out_w[a & (topo.kind == topo.kind[topo.index["A-bus-01"]])].sum() == pytest.approx(rack_in.sum() / 2)


def test_a_path_loss_moves_the_load_onto_the_survivors(c100):
    topo = c100.topology
    closed = np.ones(topo.n, bool)
    closed[topo.index["utility-A"]] = False
    routing = topo.routing(closed)
    a = np.array([p == "A" for p in topo.path])
    assert not routing.energized[a].any() and routing.energized[~a].all() and routing.rack_on.all()
    rack_in, mech = _rack_inputs(c100, 2), 6.2e6
    flow = topo.flow(routing, rack_in, mech)
    check_conservation(topo, routing, rack_in, mech, flow)
    assert np.all(flow.in_w[a] == 0.0)
    b_bus = [topo.index[f"B-bus-{i:02d}"] for i in range(1, 85)]
    want = np.array([rack_in[topo.rack_edge_rack[topo.rack_edge_parent == e]].sum() for e in b_bus])
    assert np.allclose(flow.out_w[b_bus], want, rtol=1e-12)  # all of each busway's racks
    # both paths of one block open: its 20 racks go dark, the rest keep power
    closed[topo.index["B-ups-07"]] = False
    routing = topo.routing(closed)
    dark = np.flatnonzero(~routing.rack_on)
    assert dark.size == 20 and np.array_equal(dark, np.arange(120, 140))
    check_conservation(topo, routing, rack_in, mech, topo.flow(routing, rack_in, mech))


def test_repeated_elements_map_to_their_block():
    f = twin.load_facility("campus-1gw")
    topo = f.topology
    idx = topo.index
    assert topo.n == 3652 and topo.depth.max() == 6
    assert topo.names[topo.parents(idx["A-bus-001"])[0]] == "A-ups-001"
    assert topo.names[topo.parents(idx["A-bus-720"])[0]] == "A-ups-360"
    assert topo.names[topo.parents(idx["A-tx-046"])[0]] == "A-mv-2"  # 45 blocks per hall
    assert topo.names[topo.parents(idx["A-main-tx-5"])[0]] == "utility-A2"
    racks = topo.rack_edge_rack[topo.rack_edge_parent == idx["B-bus-003"]]
    assert np.array_equal(racks, np.arange(20, 30))
    assert topo.redundancy[idx["A-ups-017"]] == topo.redundancy[idx["B-ups-017"]] == "ups-017"
    rack_in, mech = _rack_inputs(f, 3), 60e6
    routing = topo.routing()
    check_conservation(topo, routing, rack_in, mech, topo.flow(routing, rack_in, mech))


# ---------------------------------------------------------------------------------------------- refusals
def _sdk_raw() -> dict:
    with data.path("facilities", "dps-sdk.toml").open("rb") as f:
        return tomllib.load(f)


def _compile(raw: dict):
    return compile_topology(FacilitySpec.model_validate(raw), "x.toml")


def _errors(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as e:
        _compile(raw)
    return e.value.errors


def test_the_sdk_diagram_compiles():
    topo = _compile(_sdk_raw())
    assert topo.names[:2] == ("Utility", "Switchboard") and topo.n == 6
    pdu1 = topo.index["FloorPDU-1"]
    assert np.array_equal(topo.rack_edge_rack[topo.rack_edge_parent == pdu1], [0, 4])  # racks 1 and 5


def test_cycle_is_refused_naming_the_elements():
    raw = _sdk_raw()
    raw["topology"]["elements"][1]["parents"] = ["FloorPDU-1"]  # Switchboard under its own PDU
    msgs = [m for _, m in _errors(raw)]
    assert any(m.startswith("cycle:") and "Switchboard" in m and "FloorPDU-1" in m for m in msgs), msgs


def test_orphan_element_and_orphan_rack_are_refused():
    raw = _sdk_raw()
    raw["topology"]["elements"][2]["parents"] = []  # FloorPDU-1 hangs from nothing
    errors = _errors(raw)
    assert ("topology.elements.2", "'FloorPDU-1' is an orphan: no parents and not a feed") in errors
    assert any("rack sdk:0 is an orphan" in m and "FloorPDU-1" in m for _, m in errors), errors


def test_missing_rating_is_refused_naming_the_element():
    raw = _sdk_raw()
    del raw["topology"]["elements"][3]["rating_kw"]
    assert ("topology.elements.3", "'FloorPDU-2': rating missing: give rating_kw or rating_kva") in _errors(raw)


def test_rack_on_no_path_and_rack_outside_its_hall():
    raw = _sdk_raw()
    raw["topology"]["elements"][5]["racks"] = ["sdk:3"]  # rack 8 (index 7) no longer fed
    assert any("rack sdk:7 on no path" in m for _, m in _errors(raw))
    raw = _sdk_raw()
    raw["topology"]["elements"][5]["racks"] = ["sdk:3", "sdk:8"]
    assert any(k == "topology.elements.5.racks" and "rack 8 does not exist" in m for k, m in _errors(raw))


def test_other_refusals():
    raw = _sdk_raw()
    raw["topology"]["elements"][4]["parents"] = ["Switchbord"]
    assert ("topology.elements.4.parents", "'FloorPDU-3': no element named 'Switchbord'") in _errors(raw)
    raw = _sdk_raw()
    raw["topology"]["elements"][0]["parents"] = ["Switchboard"]
    assert any("a feed has no parents" in m for _, m in _errors(raw))
    raw = _sdk_raw()
    raw["topology"]["elements"][2]["protection"] = "no-such-breaker"
    assert any(k == "topology.elements.2.protection" for k, _ in _errors(raw))
    raw = _sdk_raw()
    raw["topology"]["mechanical"] = [{"name": "m", "share": 0.5, "parents": ["Utility"]}]
    assert ("topology.mechanical", "shares must sum to 1, got 0.5") in _errors(raw)


def test_aggregate_chain_and_topology_exclude_each_other():
    text = data.path("facilities", "dps-sdk.toml").read_text()
    extra = "[grid.busway]\nrating_mw = 1.0\nloss_fraction_at_rating = 0.01\n\n[[halls]]"
    with pytest.raises(SpecError) as e:
        parse_facility(text.replace("[[halls]]", extra, 1), "x.toml", set(rack_catalog()))
    assert ("grid.busway", "the [topology] replaces the aggregate chain: remove this table") in e.value.errors
    text = data.path("facilities", "emerald-phoenix.toml").read_text()
    start = text.index("[grid.ups]")
    no_chain = text[:start] + text[text.index("[grid.busway]") :]
    with pytest.raises(SpecError) as e:
        parse_facility(no_chain, "x.toml", set(rack_catalog()))
    assert ("grid.ups", "required key is missing (or give a [topology])") in e.value.errors


def test_refused_before_the_cooling_is_assembled():
    raw = _sdk_raw()
    raw["topology"]["elements"][1]["parents"] = ["FloorPDU-1"]
    raw["cooling"]["cdu"]["capacity_kw"] = 1.0  # a design error assembly would report later
    with pytest.raises(SpecError, match="cycle"):
        assemble(FacilitySpec.model_validate(raw), rack_catalog(), "x.toml")


def test_each_element_loses_what_its_kinds_model_says(c100):
    """The diagram evaluates every element's loss as the quadratic read off its kind's model (models/power.py); at
    any load it equals the model called directly."""
    topo = c100.topology
    out = np.random.default_rng(4).uniform(0, 1.5, (topo.n, 7)) * topo.rating_w[:, None]
    q0, q1, q2 = (q[:, None] for q in topo.loss_quadratic)
    for lv in topo.levels:
        direct = topo._model_losses(lv, out[lv])
        quadratic = q0[lv] + out[lv] * (q1[lv] + q2[lv] * out[lv])
        assert np.allclose(quadratic, direct, rtol=1e-9, atol=1e-6)
    kinds = {topo.kind_name(e) for e in range(topo.n) if topo.loss_quadratic[2][e] > 0}
    assert kinds == {"transformer", "ups", "busway"}  # switchboards and feeds lossless in this diagram


def test_rack_shares_are_each_racks_share_through_each_element(c100):
    """The matrix a per-GPU allocator keeps tiers with: every rack's power reaches the feeds in full (column sums 1
    over the feeds), half through each path, all through B after A opens; busways carry S @ P."""
    topo = c100.topology
    S = topo.rack_shares(topo.routing())
    assert np.allclose(np.asarray(S[topo.roots].sum(axis=0)).ravel(), 1.0)
    assert S[topo.index["A-ups-03"], 40] == pytest.approx(0.5) and S[topo.index["B-ups-03"], 40] == pytest.approx(0.5)
    closed = np.ones(topo.n, bool)
    closed[topo.index["utility-A"]] = False
    routing = topo.routing(closed)
    S = topo.rack_shares(routing)
    assert S[topo.index["B-ups-03"], 40] == pytest.approx(1.0) and S[topo.index["A-ups-03"], 40] == 0
    rack_in = _rack_inputs(c100, 5)
    flow = topo.flow(routing, rack_in, 0.0)
    bus = [e for e in range(topo.n) if topo.kind_name(e) == "busway"]
    assert np.allclose((S @ rack_in)[bus], flow.out_w[bus], rtol=1e-12)
