"""The contract layer: every point of the reference facilities has metadata that validates against
bms.yaml, topics round-trip, units convert, and the validator itself rejects what the contract forbids."""

from __future__ import annotations

import json

import pytest
from factory_twin.links.dsx_exchange.contract import (
    integration_value_topic,
    parse_topic,
    parse_value,
    to_internal,
    value_payload,
)
from factory_twin.links.dsx_exchange.points import Catalog, classify, entity_id_of
from factory_twin.twin import load_facility


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(load_facility("campus-100mw"), "FactoryTwin")


def test_every_metadata_message_validates_and_classifies_back(catalog, bms_contract):
    n = 0
    for g in catalog.groups:
        for topic, meta, eid in zip(g.metadata_topics, g.metadata, g.ids, strict=True):
            bms_contract.validate(topic, json.dumps(meta).encode())
            assert classify(meta) is g.signal
            assert g.signal.object_type == "System" or entity_id_of(meta) == eid
            n += 1
    f = catalog.facility
    # racks x 6 + CDUs x 11 + meters (util, 2 halls, 84 rows, mech, HR) + HR x 3 + 4 heartbeat points
    assert n == 6 * f.n_racks + 11 * f.n_cdus + (1 + 2 + 84 + 2) + 3 + 4 + (2 * catalog.has_bess + catalog.has_bess)


def test_value_payloads_validate_including_null_and_bad_quality(catalog, bms_contract):
    g = catalog.group("cdu", "sec_supply_c")
    for payload in (value_payload(35.05, 1_764_000_000_000), value_payload(float("nan"), 1, 0)):
        bms_contract.validate(g.value_topics[0], payload)
    assert parse_value(value_payload(None, 5, 0)) == (None, 5, 0)
    with pytest.raises(AssertionError, match="quality"):
        bms_contract.validate(g.value_topics[0], b'{"value": 1.0, "timestamp": 1}')


def test_integration_topic_derivation_and_validation(catalog, bms_contract):
    g = catalog.group("cdu", "sp_request_c")
    topic = integration_value_topic(g.metadata_topics[3], "FactoryTwin")
    assert topic == g.metadata_topics[3].replace("/PUB/", "/FactoryTwin/").replace("/Metadata/", "/Value/")
    bms_contract.validate(topic, value_payload(36.0, 1))
    with pytest.raises(ValueError, match="--integration"):
        integration_value_topic(g.metadata_topics[0], "a/b")
    t = parse_topic(topic)
    assert (t.publisher, t.kind, t.object_type, t.point_type) == (
        "FactoryTwin",
        "Value",
        "CDU",
        "LiquidTemperatureSpRequest",
    )


def test_validator_rejects_extra_metadata_fields(catalog, bms_contract):
    g = catalog.group("rack", "power_kw")
    bad = dict(g.metadata[0], servesId=["x"])  # racks carry no servesId (unevaluatedProperties: false)
    with pytest.raises(AssertionError, match="Unevaluated properties"):
        bms_contract.validate(g.metadata_topics[0], bad)
    with pytest.raises(AssertionError, match=r"no bms\.yaml channel"):
        bms_contract.validate("BMS/v1/PUB/Value/Rack/NotAPointType/x", value_payload(1.0, 1))


def test_units_convert_to_internal():
    assert to_internal(1.5, "kW") == 1500.0
    assert to_internal(60.0, "LPM") == pytest.approx(1e-3)
    assert to_internal(212.0, "F") == pytest.approx(100.0)
    assert to_internal(50.0, "%") == 0.5
    with pytest.raises(KeyError):
        to_internal(1.0, "furlongs")


def test_topology_serves_every_rack_once(catalog):
    served = [r for m, s in catalog.meters.items() if m.startswith("M-") and m[2:] in catalog.cdu_index for r in s]
    assert sorted(served) == sorted(catalog.rack_ids)
    assert len(set(catalog.rack_ids)) == catalog.facility.n_racks
