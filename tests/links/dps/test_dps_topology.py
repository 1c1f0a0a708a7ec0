"""DPS topology interchange: our check of the documented format (pydantic) against the same rules as a JSON Schema
run by an independent validator (jsonschema), on the examples the DPS documentation shows; the SDK simulator's
topology imports, validates, runs 24 h and exports; round trips are lossless for what both sides express."""

import copy
import json

import jsonschema
import numpy as np
import pytest
from factory_twin.links.dps.schema import DpsError, parse
from factory_twin.links.dps.topology import export_topology, import_topology
from factory_twin.twin.facility.assembly import assemble, rack_catalog
from factory_twin.twin.facility.spec import parse_facility
from factory_twin.twin.facility.topology_toml import with_topology

from factory_twin import data, twin
from factory_twin.cli import main

SCHEMA = json.loads(data.path("dps", "topology.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)

# As shown in the DPS documentation (Entities, Managing topologies, Power policies, the MaxLPS pilot example).
ENTITY_PD = {
    "Name": "PD-A",
    "Type": "PowerDomain",
    "Model": "Generic Power Domain 95 Pct Eff",
    "OperatingLimit": {"PowerValue": {"Value": 1150000, "Type": "W"}, "PowerFactor": 0.9},
}
ENTITY_RPDU = {
    "Name": "rPDU-A1-001",
    "Type": "PowerDistribution",
    "Model": "RackPDU95_57500W",
    "Constraints": {"PowerValue": {"Value": 57500, "Type": "W"}},
    "StaticLoad": {"Value": 3400, "Type": "W"},
}
ENTITY_NODE = {
    "Name": "node001",
    "Type": "ComputerSystem",
    "Model": "DGX_H100",
    "Policy": "Node-High",
    "Redfish": {"URL": "https://10.0.0.21", "SecretName": "node001-bmc"},
    "TelemetryId": "node001-power",
}
POLICY_HIGH = {
    "Name": "Node-High",
    "Limits": [
        {"ElementType": t, "PowerLimit": {"Watts": w}}
        for t, w in (("Node", 10200), ("GPU", 7650), ("CPU", 1530), ("Memory", 1020))
    ],
}
POLICY_HALF = {"Name": "Node-Half", "Limits": [{"ElementType": "GPU", "PowerLimit": {"Percentage": 50}}]}
PILOT_NODES = [f"gb300-nvl-001-compute{k:02d}" for k in range(1, 19)]
DOCUMENTED = {
    "managing-topologies": {
        "Entities": [ENTITY_PD, ENTITY_NODE],
        "Topology": {"Name": "example", "Entities": [{"Name": "PD-A", "Children": ["node001"]}, {"Name": "node001"}]},
    },
    "entities": {"Entities": [ENTITY_PD, ENTITY_RPDU, ENTITY_NODE]},
    "policies": {"Policies": [POLICY_HIGH, POLICY_HALF]},
    "maxlps-pilot": {
        "Entities": [{"Name": "FloorPDU-Rack01", "Type": "PowerDistribution"}]
        + [{"Name": n, "Type": "ComputerSystem", "Model": "DGX_GB300"} for n in PILOT_NODES],
        "Topology": {
            "Name": "maxlps-pilot",
            "Entities": [{"Name": "FloorPDU-Rack01", "FeedTag": "rack-01", "Children": PILOT_NODES}],
        },
    },
}


def _schema_ok(doc) -> bool:
    return VALIDATOR.is_valid(doc)


def _ours_ok(doc) -> bool:
    try:
        parse(doc)
        return True
    except DpsError:
        return False


@pytest.mark.parametrize("name", DOCUMENTED)
def test_documented_examples_pass_both_checks(name):
    doc = DOCUMENTED[name]
    assert _schema_ok(doc), list(VALIDATOR.iter_errors(doc))
    assert _ours_ok(doc)


def _broken():
    bad = []
    d = copy.deepcopy(DOCUMENTED["entities"])
    d["Entities"][0]["Type"] = "Rack"
    bad.append(("unknown entity type", d))
    d = copy.deepcopy(DOCUMENTED["entities"])
    del d["Entities"][1]["Name"]
    bad.append(("entity without a name", d))
    d = copy.deepcopy(DOCUMENTED["entities"])
    d["Entities"][0]["OperatingLimit"]["PowerValue"]["Type"] = "kW"
    bad.append(("power in kW", d))
    d = copy.deepcopy(DOCUMENTED["entities"])
    d["Entities"][1]["Constraints"]["PowerValue"]["Value"] = -5
    bad.append(("negative power", d))
    d = copy.deepcopy(DOCUMENTED["entities"])
    d["Entities"][0]["OperatingLimit"]["PowerFactor"] = 1.2
    bad.append(("power factor above 1", d))
    d = copy.deepcopy(DOCUMENTED["managing-topologies"])
    del d["Topology"]["Name"]
    bad.append(("topology without a name", d))
    d = copy.deepcopy(DOCUMENTED["policies"])
    d["Policies"][0]["Limits"][0]["PowerLimit"]["Percentage"] = 40
    bad.append(("watts and percentage", d))
    d = copy.deepcopy(DOCUMENTED["policies"])
    d["Policies"][1]["Limits"][0]["PowerLimit"]["Percentage"] = 150
    bad.append(("percentage above 100", d))
    d = copy.deepcopy(DOCUMENTED["policies"])
    d["Policies"][0]["Limits"][0]["ElementType"] = "Fan"
    bad.append(("unknown element type", d))
    return bad


@pytest.mark.parametrize(("what", "doc"), _broken(), ids=[w for w, _ in _broken()])
def test_broken_files_fail_both_checks(what, doc):
    assert not _schema_ok(doc)
    assert not _ours_ok(doc)


def test_semantic_checks_name_the_entity():
    d = copy.deepcopy(DOCUMENTED["managing-topologies"])
    d["Topology"]["Entities"][0]["Children"].append("node002")
    with pytest.raises(DpsError) as e:
        parse(d)
    assert ("Topology.Entities.0.Children.1", "referenced_entity_not_found: 'node002'") in e.value.errors
    d = copy.deepcopy(DOCUMENTED["managing-topologies"])
    d["Entities"].append({"Name": "PD-B", "Type": "PowerDomain"})
    d["Topology"]["Entities"] += [{"Name": "PD-B", "Children": ["PD-A"]}]
    d["Topology"]["Entities"][0]["Children"].append("PD-B")
    with pytest.raises(DpsError, match="circular_dependency: PD-A -> PD-B -> PD-A"):
        parse(d)
    d = copy.deepcopy(DOCUMENTED["entities"])
    d["Entities"].append(dict(ENTITY_PD))
    with pytest.raises(DpsError, match="duplicate entity name 'PD-A'"):
        parse(d)


def test_undocumented_keys_are_kept_and_reported():
    d = copy.deepcopy(DOCUMENTED["entities"])
    d["Entities"][0]["Vendor"] = "x"
    _, unknown = parse(d)
    assert unknown == ["Entities.0.Vendor"] and _schema_ok(d)


# ---------------------------------------------------------------------------------------------- the SDK
@pytest.fixture(scope="module")
def sdk():
    return twin.load_facility("dps-sdk")


def _same_diagram(a, b) -> None:
    """Two compiled topologies carry the same power tree: names, kinds, parents, ratings, racks, policies."""
    assert a.names == b.names
    assert np.array_equal(a.kind, b.kind) and np.array_equal(a.kva, b.kva)
    assert np.allclose(a.continuous_limit_w, b.continuous_limit_w, rtol=1e-12)
    assert np.allclose(a.power_factor, b.power_factor, rtol=1e-12)
    assert sorted(zip(a.edge_child.tolist(), a.edge_parent.tolist(), strict=True)) == sorted(
        zip(b.edge_child.tolist(), b.edge_parent.tolist(), strict=True)
    )
    assert sorted(zip(a.rack_edge_rack.tolist(), a.rack_edge_parent.tolist(), strict=True)) == sorted(
        zip(b.rack_edge_rack.tolist(), b.rack_edge_parent.tolist(), strict=True)
    )
    assert a.policies == b.policies and a.dps_model == b.dps_model


def _with(f, spec):
    text = with_topology(data.path("facilities", f"{f.spec.name}.toml").read_text(), spec)
    cat = rack_catalog()
    return assemble(parse_facility(text, "x.toml", set(cat)), cat, "x.toml")


def test_sdk_file_is_the_builtin_facility(sdk):
    """The hand-written DPS SDK file validates (both checks) and imports as the built-in dps-sdk diagram: Utility
    750 kW -> Switchboard 1.6 MW -> FloorPDU-1..4 450 kW, racks 1+5, 2+6, 3+7, 4+8, 18 DGX GB300 nodes each."""
    raw = json.loads(data.path("topologies", "dps-sdk.json").read_text())
    assert _schema_ok(raw)
    doc, unknown = parse(raw)
    nodes = [e for e in doc.Entities if e.Type == "ComputerSystem"]
    assert len(nodes) == 144 and {e.Model for e in nodes} == {"DGX_GB300"}
    spec, lost = import_topology(doc, sdk, unknown)
    _same_diagram(_with(sdk, spec).topology, sdk.topology)
    assert lost == ["rack and node names: 8 racks and 144 nodes take the facility's names (twin.facility.nodes)"]
    assert {p.name: p.node_w for p in spec.policies} == {"GB300-High": 5600, "GB300-Med": 3200, "GB300-Low": 1600}
    idx = sdk.topology.index
    assert sdk.topology.rating_w[[idx["Utility"], idx["Switchboard"], idx["FloorPDU-1"]]].tolist() == [
        750e3, 1600e3, 450e3]  # fmt: skip


def test_sdk_exports_a_valid_file_and_round_trips_exactly(sdk):
    doc, lost = export_topology(sdk)
    assert _schema_ok(doc) and lost == []
    again, lost_back = import_topology(parse(doc)[0], sdk)
    assert lost_back == [] and again == sdk.spec.topology  # every field of the facility's [topology]


def test_campus_round_trip_keeps_what_dps_expresses_and_reports_the_rest():
    f = twin.load_facility("campus-100mw")
    doc, lost = export_topology(f)
    assert _schema_ok(doc)
    assert sum(e["Type"] == "ComputerSystem" for e in doc["Entities"]) == 840 * 18
    text = "\n".join(lost)
    for what in ("'busway'", "'transformer'", "'ups'", "trip curves", "loss models", "parallel units",
                 "continuous derate", "redundancy groups", "mechanical"):  # fmt: skip
        assert what in text, what
    back = _with(f, import_topology(parse(doc)[0], f)[0]).topology
    t = f.topology
    assert back.names == t.names
    assert np.allclose(back.continuous_limit_w, t.continuous_limit_w, rtol=1e-12)  # rating x derate survives
    assert sorted(zip(back.rack_edge_rack.tolist(), back.rack_edge_parent.tolist(), strict=True)) == sorted(
        zip(t.rack_edge_rack.tolist(), t.rack_edge_parent.tolist(), strict=True)
    )  # both paths of every rack
    assert back.trip.characteristic.max() == 0 and np.all(back.derate == 1)  # reported above, not carried


def test_import_refuses_what_does_not_fit(sdk):
    doc, _ = parse(json.loads(data.path("topologies", "dps-sdk.json").read_text()))
    with pytest.raises(DpsError, match="8 racks in the file, 840 in facility 'campus-100mw'"):
        import_topology(doc, twin.load_facility("campus-100mw"))
    raw = json.loads(data.path("topologies", "dps-sdk.json").read_text())
    for e in raw["Entities"]:
        if e["Type"] == "ComputerSystem":
            e["Model"] = "DGX_H100"
    with pytest.raises(DpsError, match=r"18 DGX_H100 nodes|rack 1 .* is hgx-h100"):
        import_topology(parse(raw)[0], sdk)


def test_cli_import_export_and_a_missing_rating(tmp_path, capsys):
    out = tmp_path / "sdk.toml"
    assert main(["topology", "import", str(data.path("topologies", "dps-sdk.json")), "--facility", "dps-sdk",
                 "--out", str(out)]) == 0  # fmt: skip
    assert main(["topology", "import", str(data.path("topologies", "dps-sdk.json")), "--facility", "dps-sdk",
                 "--out", str(out)]) == 1  # fmt: skip
    assert "exists; pass --force" in capsys.readouterr().err
    exported = tmp_path / "sdk.json"
    assert main(["topology", "export", str(out), "--out", str(exported)]) == 0
    assert _schema_ok(json.loads(exported.read_text()))
    raw = json.loads(data.path("topologies", "dps-sdk.json").read_text())
    del raw["Entities"][3]["OperatingLimit"]  # FloorPDU-2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    assert main(["topology", "import", str(bad), "--facility", "dps-sdk", "--out", str(tmp_path / "b.toml")]) == 1
    assert "'FloorPDU-2': rating missing" in capsys.readouterr().err
    assert not (tmp_path / "b.toml").exists()


def test_sdk_facility_runs_a_day_and_reports_its_oversubscribed_feed(sdk):
    """Uncapped, eight GB300 racks draw ~1.1 MW through a 750 kW utility: the run says so."""
    ds = twin.simulate(sdk, twin.load_scenario(None, sdk), duration="24h", record_every="15min")
    u = sdk.topology.index["Utility"]
    assert ds.sizes["time"] == 96 and float(ds.tier_loading.isel(element=u).min()) > 1.3
    assert ds.attrs["tier_over_limit"].startswith("Utility ")
    assert ds.attrs["tier_trips"] == 0  # DPS expresses no breakers: nothing trips, the overload is reported
    assert float(ds.tier_load_kw.isel(element=sdk.topology.index["FloorPDU-1"]).max()) < 450.0  # two racks fit
