"""OpenADR events -> targets by the facility's stated mapping; every inbound number checked before it can act."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from factory_twin.links.openadr.signals import UnmappableError, map_event
from factory_twin.twin.facility.spec import OpenADR

NOW = datetime(2026, 8, 7, 6, 0, tzinfo=UTC)
CFG = OpenADR(simple_levels={1: 0.1, 2: 0.25}, capacity_mw=0.25, grid_hz=60, meter_voltage_kv=12.47)
LIMIT_W, BASE_W = 300e3, 236e3


def event(name, kind, payloads, start=NOW + timedelta(minutes=5), seconds=600, ramp=None, measurement=None,
          status="far", context="oadr://test/dr", interval_starts=True):  # fmt: skip
    ivs = []
    t = start
    for v in payloads:
        iv = {"duration": timedelta(seconds=seconds), "signal_payload": v, "uid": len(ivs)}
        if interval_starts:
            iv["dtstart"] = t
        ivs.append(iv)
        t += timedelta(seconds=seconds)
    ap = {"dtstart": start, "duration": timedelta(seconds=seconds * len(payloads))}
    if ramp is not None:
        ap["ramp_up"] = timedelta(seconds=ramp)
    sig = {"signal_name": name, "signal_type": kind, "signal_id": "s", "intervals": ivs}
    if measurement:
        sig["measurement"] = measurement
    d = {"event_id": "e1", "modification_number": 0, "event_status": status, "market_context": context}
    return {"event_descriptor": d, "active_period": ap, "event_signals": [sig], "response_required": "always"}


def mapped(ev, cfg=CFG):
    return map_event(ev, cfg, LIMIT_W, BASE_W, NOW)


def test_simple_levels_map_to_the_facilitys_depths():
    m = mapped(event("SIMPLE", "level", [2.0, 0.0, 1.0], ramp=120))
    assert [(t.kind, t.value) for t in m.targets] == [("dr", 0.25), ("dr", 0.1)]  # level 0: normal, no target
    assert m.targets[1].start == NOW + timedelta(minutes=25) and m.ramp_s == 120
    assert "level 2 -> DR depth 25% of the baseline 0.236 MW" in m.notes[0]
    with pytest.raises(UnmappableError, match=r"SIMPLE level 3: the facility states no depth.*simple_levels"):
        mapped(event("SIMPLE", "level", [3.0]))
    for bad in (4.0, 1.5, -1.0):
        with pytest.raises(UnmappableError, match="a SIMPLE level is 0, 1, 2 or 3"):
            mapped(event("SIMPLE", "level", [bad]))


def test_load_control_capacity_and_percent_offset():
    m = mapped(event("LOAD_CONTROL", "x-loadControlCapacity", [0.7]))
    assert m.targets[0].kind == "import" and m.targets[0].value == pytest.approx(0.7 * 0.25e6)
    no_capacity = CFG.model_copy(update={"capacity_mw": None})  # 1.0 then stands for the import limit
    assert mapped(event("LOAD_CONTROL", "x-loadControlCapacity", [0.5]), no_capacity).targets[0].value == 150e3
    assert mapped(event("LOAD_CONTROL", "x-loadControlPercentOffset", [-20.0])).targets[0].value == pytest.approx(
        0.8 * BASE_W
    )
    for bad, word in ((1.5, r"\[0, 1\], got 1.5"), (float("nan"), "finite"), (float("inf"), "finite"), (-0.1, "got")):
        with pytest.raises(UnmappableError, match=word):
            mapped(event("LOAD_CONTROL", "x-loadControlCapacity", [bad]))
    with pytest.raises(UnmappableError, match="percentage"):
        mapped(event("LOAD_CONTROL", "x-loadControlPercentOffset", [-150.0]))


def test_load_dispatch_setpoint_and_delta_in_stated_units():
    kw = {"name": "powerReal", "description": "RealPower", "unit": "W", "scale": "k"}
    assert mapped(event("LOAD_DISPATCH", "setpoint", [210.0], measurement=kw)).targets[0].value == 210e3
    assert mapped(event("LOAD_DISPATCH", "delta", [-30.0], measurement=kw)).targets[0].value == BASE_W - 30e3
    with pytest.raises(UnmappableError, match="states no units and the facility no"):
        mapped(event("LOAD_DISPATCH", "setpoint", [210.0]))
    mw = CFG.model_copy(update={"dispatch_unit": "MW"})
    assert mapped(event("LOAD_DISPATCH", "setpoint", [0.21]), mw).targets[0].value == pytest.approx(210e3)
    with pytest.raises(UnmappableError, match="outside"):  # 210 MW at a 0.3 MW site: kW meant, refused
        mapped(event("LOAD_DISPATCH", "setpoint", [210.0]), mw)
    with pytest.raises(UnmappableError, match="leaves"):
        mapped(event("LOAD_DISPATCH", "delta", [-300.0], measurement=kw))
    with pytest.raises(UnmappableError, match="not a power"):
        mapped(event("LOAD_DISPATCH", "setpoint", [1.0], measurement=kw | {"unit": "A"}))


def test_times_ramps_programs_and_unsupported_signals():
    m = mapped(event("LOAD_CONTROL", "x-loadControlCapacity", [0.9, 0.8], interval_starts=False))
    assert [t.start for t in m.targets] == [NOW + timedelta(minutes=5), NOW + timedelta(minutes=15)]
    assert m.ramp_s == 900  # no x-eiRampUp and no [openadr] ramp_min: the scenarios' DR ramp, 15 min
    ramped = CFG.model_copy(update={"ramp_min": 5.0})
    assert mapped(event("SIMPLE", "level", [1.0]), ramped).ramp_s == 300
    open_ended = mapped(event("LOAD_CONTROL", "x-loadControlCapacity", [0.9], seconds=0))
    assert open_ended.targets[0].end is None
    with pytest.raises(UnmappableError, match="no supported signal"):
        mapped(event("ELECTRICITY_PRICE", "price", [0.2]))
    only = CFG.model_copy(update={"market_contexts": ["oadr://utility/cbp"]})
    with pytest.raises(UnmappableError, match="not one the site takes part in"):
        mapped(event("SIMPLE", "level", [1.0]), only)
    with pytest.raises(UnmappableError, match="more than 31 days"):
        mapped(event("SIMPLE", "level", [1.0], start=NOW + timedelta(days=40)))
    with pytest.raises(UnmappableError, match="with its zone"):
        mapped(event("SIMPLE", "level", [1.0], start=datetime(2026, 8, 7, 6, 5)))
    with pytest.raises(UnmappableError, match="x-eiRampUp"):
        mapped(event("SIMPLE", "level", [1.0], ramp=-5))
    test = event("SIMPLE", "level", [2.0])
    test["event_descriptor"]["test_event"] = True
    assert mapped(test).targets == () and mapped(test).notes[0] == "test event: answered, not acted on"
    two = event("SIMPLE", "level", [1.0])
    two["event_signals"].append({**two["event_signals"][0], "signal_name": "BID_PRICE", "signal_type": "price"})
    assert any("BID_PRICE/price: not supported, ignored" in n for n in mapped(two).notes)
