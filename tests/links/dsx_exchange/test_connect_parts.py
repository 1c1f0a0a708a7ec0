"""The connector's parts on their own: fault specs, point map reports, UA inversion and the Kalman filter,
the history store, group medians."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factory_twin.links.dsx_exchange.diagnosis import group_median
from factory_twin.links.dsx_exchange.estimator import ScalarKalman, ua_nominal_from_measurements
from factory_twin.links.dsx_exchange.faults import parse_fault
from factory_twin.links.dsx_exchange.history import History
from factory_twin.links.dsx_exchange.pointmap import Override, PointMap
from factory_twin.links.dsx_exchange.points import Catalog
from factory_twin.models.heat_exchange import cdu_supply_control
from factory_twin.twin import load_facility


@pytest.fixture(scope="module")
def facility():
    return load_facility("campus-100mw")


def test_fault_specs_parse_and_errors_name_the_option():
    f = parse_fault("drift:hall-a-cdu03/sec_supply_c:3@10min")
    assert (f.kind, f.entity, f.signal, f.value, f.start_s) == ("drift", "hall-a-cdu03", "sec_supply_c", 3.0, 600.0)
    assert parse_fault("pump:hall-a-cdu01").value == 0.5
    for bad, msg in [
        ("melt:x/y", "kind must be one of"),
        ("bias:hall-a-r01-01/return_c", "needs a value"),
        ("stuck:hall-a-r01-01", "ENTITY/SIGNAL"),
        ("fouling:hall-a-cdu01:1.5", r"fraction must be in \(0, 1\)"),
        ("bias:a/b:x", "value must be a number"),
        ("stuck:a/b@soon", "start"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_fault(bad)


def test_ua_inversion_recovers_the_model_ua_exactly(facility):
    """The CDU model forward (valve holding the setpoint, or at capacity), then the inversion back."""
    f, cool = facility, facility.spec.cooling
    n = f.n_cdus
    ua = f.cdu_ua_nom_w_k * np.linspace(1.1, 0.5, n)
    t_ret = 35.0 + np.linspace(0.3, 1.0, n) * f.cdu_design_q_w / f.c_tcs_w_k
    ctl = cdu_supply_control(
        t_ret, f.c_tcs_w_k, 32.0, f.c_fws_max_w_k, ua, 35.0, cool.cdu.arrangement, cool.cdu.ua_flow_exponent
    )
    assert ctl.at_capacity.any() and (~ctl.at_capacity).any()
    est = ua_nominal_from_measurements(
        t_ret, ctl.t_supply_c, np.full(n, 32.0), f.c_tcs_w_k, ctl.c_fws_w_k, f.c_fws_max_w_k,
        cool.cdu.arrangement, cool.cdu.ua_flow_exponent,
    )  # fmt: skip
    np.testing.assert_allclose(est, ua, rtol=1e-9)
    # no duty: no information
    assert np.isnan(
        ua_nominal_from_measurements(*(np.array([35.0]),) * 3, *(np.array([1e4]),) * 3, "counterflow", 0.8)
    )[0]


def test_kalman_converges_to_the_truth_with_the_right_variance():
    rng = np.random.default_rng(1)
    kf = ScalarKalman.start(np.full(500, 100.0), 0.2, 0.0)  # no drift allowed: a constant is estimated
    for _ in range(400):
        kf.update(70.0 + rng.normal(0, 5.0, 500), np.full(500, 25.0), 10.0)
    err = kf.theta - 70.0
    assert abs(err.mean()) < 0.1
    assert err.std() == pytest.approx(kf.sd.mean(), rel=0.15)  # the filter's variance is honest
    assert kf.sd.mean() == pytest.approx(5.0 / np.sqrt(400), rel=0.05)


def test_group_median_matches_numpy():
    rng = np.random.default_rng(2)
    g = rng.integers(0, 7, 200)
    v = rng.normal(size=200)
    v[::9] = np.nan
    got = group_median(v, g, 8)
    want = [np.nanmedian(v[g == k]) if np.isfinite(v[g == k]).any() else np.nan for k in range(8)]
    np.testing.assert_allclose(got, want)


def test_point_map_reports_units_topology_overrides_and_missing(facility):
    cat = Catalog(facility, "FactoryTwin")
    pm = PointMap(cat, Override({"SITE-CDU-1": "hall-a-cdu01"}, {}))
    g = cat.group("cdu", "sec_supply_c")
    for p, meta in zip(g.points, g.metadata, strict=True):
        pm.on_metadata(p, json.dumps(meta).encode())
    assert len(pm.points) == facility.n_cdus and not pm.unmapped and not pm.topology
    # a site id renamed through the override; a wrong servesId; an unknown unit; a foreign entity
    meta = dict(g.metadata[0], objectId="SITE-CDU-1", objectName="CDU 1")
    pm.on_metadata("CDU/LiquidTemperature/x/site-cdu-1", json.dumps(meta).encode())
    assert pm.points["CDU/LiquidTemperature/x/site-cdu-1"].index == 0
    wrong = dict(g.metadata[1], servesId=[*g.metadata[1]["servesId"][:-1], "hall-b-r01-01"])
    pm.on_metadata(g.points[1], json.dumps(wrong).encode())
    assert "hall-b-r01-01" in pm.topology["hall-a-cdu02"]
    pm.on_metadata("CDU/LiquidTemperature/x/odd", json.dumps(dict(g.metadata[2], engUnit="Rankine")).encode())
    assert pm.units["CDU/LiquidTemperature/x/odd"] == "Rankine"
    pm.on_metadata("CDU/LiquidTemperature/x/ghost", json.dumps(dict(g.metadata[3], objectId="nope")).encode())
    assert "not in the facility spec" in pm.unmapped["CDU/LiquidTemperature/x/ghost"]
    # withdrawn metadata: the point leaves the map and is reported missing
    pm.on_metadata(g.points[5], b"")
    assert ("hall-a-cdu06", "sec_supply_c") in pm.missing()


def test_point_map_override_file_errors(tmp_path):
    p = tmp_path / "map.toml"
    p.write_text('[points]\n"a/b/c" = "no-slash"\n')
    with pytest.raises(ValueError, match="ENTITY/SIGNAL"):
        Override.load(p)
    p.write_text("[racks]\n")
    with pytest.raises(ValueError, match="unknown table"):
        Override.load(p)
    with pytest.raises(FileNotFoundError, match="--point-map"):
        Override.load(tmp_path / "none.toml")


def test_history_round_trip_survives_reopen(tmp_path):
    h = History(tmp_path / "h.duckdb")
    a = h.point_id("Rack/RackPower/x/r1", "rack", "power_kw", "kW")
    b = h.point_id("Rack/RackPower/x/r2", "rack", "power_kw", "kW")
    for k in range(100):
        h.add(a, 1000 * k, 100.0 + k, 1, 1000 * k + 5)
        h.add(b, 1000 * k, None if k == 50 else 50.0, 0 if k == 50 else 1, 1000 * k + 5)
    h.close()
    h = History(tmp_path / "h.duckdb")
    assert h.count() == 200 and h.point_id("Rack/RackPower/x/r2") == b
    q = h.query("Rack/RackPower/x/r1", 10_000, 20_000)
    assert q.ts_ms.tolist() == list(range(10_000, 20_000, 1000)) and q.value.tolist() == [110.0 + i for i in range(10)]
    r2 = h.query("Rack/RackPower/x/r2", 50_000, 50_001)
    assert np.isnan(r2.value[0]) and r2.quality[0] == 0  # a null reading stays null, with its quality
    latest = h.latest().set_index("point")
    assert latest.loc["Rack/RackPower/x/r1", "value"] == 199.0
    c = h.point_id("Rack/RackPower/x/r3")
    assert c == 3
    h.close()


def test_a_withheld_request_is_shown_withheld_not_acknowledged(facility, tmp_path):
    """Issue 20 item 4: a request acknowledged, then withheld (health in doubt) was shown 'acknowledged' on the plant
    page while requests.jsonl said 'withheld: health in doubt' and status.json 'active: False'. The request keeps the
    state of its latest line, which the page shows."""
    from types import SimpleNamespace

    from factory_twin.dashboard.pages.plant import _request_table
    from factory_twin.links.dsx_exchange.outbound import Outbound, RequestGuard
    from factory_twin.links.dsx_exchange.points import Catalog
    from factory_twin.links.dsx_exchange.readings import Readings

    cat = Catalog(facility, "FactoryTwin")
    readings = Readings(cat)
    group = next(g for g in cat.groups if (g.signal.entity, g.signal.name) == ("cdu", "sp_request_c"))
    req = readings[("cdu", "sp_request_c")]
    req.mapped[0], req.points[0] = True, group.points[0]
    published = []
    client = SimpleNamespace(publish=lambda topic, payload, qos=0: published.append(topic), connected=True)
    out = Outbound(facility, cat, client, readings, None, RequestGuard(30.0, 40.0), tmp_path / "requests.jsonl")
    n = facility.n_cdus
    shadow = SimpleNamespace(p_gpu=np.full(facility.n_racks, 500.0))
    est = SimpleNamespace(rack_r=SimpleNamespace(theta=np.full(facility.n_racks, np.nan)))
    sp = np.full(n, 35.0)
    out.healthy_cdus = lambda *a: np.ones(n, bool)
    out.send_requests(1_000, {("cdu", "setpoint_c"): sp}, None, None, shadow, est)
    value = out.requests[0]["value"]
    readings[("cdu", "setpoint_c")].ts[0] = 2_000  # the BMS applies it
    out.send_requests(3_000, {("cdu", "setpoint_c"): np.full(n, value)}, None, None, shadow, est)
    assert out.requests[0]["acked_ms"] == 3_000 and out.requests[0]["state"] == "acknowledged"
    out.healthy_cdus = lambda *a: np.zeros(n, bool)  # health in doubt
    out.send_requests(4_000, {("cdu", "setpoint_c"): np.full(n, value)}, None, None, shadow, est)
    out.close()
    last = json.loads((tmp_path / "requests.jsonl").read_text().splitlines()[-1])
    assert last["state"] == "withheld: health in doubt" and last["cdu"] == cat.cdu_ids[0]
    r = out.requests[0]
    assert (r["state"], r["state_ms"], r["active"]) == ("withheld: health in doubt", 4_000, False)
    row = _request_table({cat.cdu_ids[0]: r}).children[1].children[0]
    cells = [c.children for c in row.children]
    assert cells[2] == "withheld: health in doubt" and "acknowledged" not in str(cells)
    assert cells[1].endswith("(last sent, not in force)") and cells[3] == "1970-01-01 00:00:04"


def test_mapped_points_are_counted_once_for_the_exit_line_and_the_plant_page(facility):
    """Issue 20 item 17: the plant page said 5,974 points mapped (the BMS's only) and connect's exit line 6,060 (the
    point map, the integration's request and heartbeat points included). One count, read by both."""
    from factory_twin.dashboard.pages.plant import kpi_cards
    from factory_twin.links.dsx_exchange.readings import Readings
    from factory_twin.links.dsx_exchange.status import points_line

    cat = Catalog(facility, "FactoryTwin")
    readings = Readings(cat)
    for g in cat.groups:  # every point the catalog has, mapped as its metadata arrives
        meas = readings[(g.signal.entity, g.signal.name)]
        meas.mapped[: len(g.ids)] = True
    counts = readings.mapped_counts()
    expected = cat.point_count()
    assert counts == {
        "mapped": expected["bms_values"] + expected["integration"],
        "bms": expected["bms_values"],
        "integration": expected["integration"],
    }
    assert counts["integration"] > 0
    st = {"points": counts, "values": 1, "active_alarms": [], "ua_ratio_min": 1.0, "max_die_c": 70.0}
    line = points_line(st)
    assert line == (
        f"{counts['mapped']:,} points mapped ({counts['bms']:,} from the BMS, {counts['integration']:,} written by "
        "this integration)"
    )
    card = kpi_cards(st, {"stale": 0, "bad_quality": 0, "unmapped": 0})[0]
    label, value, note = (c.children for c in card.children)
    assert (label, value) == ("points mapped", line.split(" points mapped")[0])
    assert note in line


def test_network_json_is_strict_and_timestamps_are_read_in_their_epoch_unit():
    from factory_twin.links.dsx_exchange.contract import parse_value, timestamp_ms
    from factory_twin.twin.runs.strict_json import NonFiniteError, loads

    for text in ('{"value":NaN,"timestamp":1,"quality":1}', '{"value":-Infinity,"timestamp":1,"quality":1}'):
        with pytest.raises(NonFiniteError):
            parse_value(text.encode())
    with pytest.raises(NonFiniteError):  # valid JSON, beyond float range
        parse_value(b'{"value":1e999,"timestamp":1,"quality":1}')
    with pytest.raises(NonFiniteError):
        loads(b'{"servesId":["a"],"x":Infinity}')
    t = 1_786_060_800_123  # 2026-08-07T00:00:00.123Z
    assert timestamp_ms(t) == (t, "ms")
    assert timestamp_ms(t // 1000) == (t - 123, "s")
    assert timestamp_ms(t * 1000 + 456) == (t, "us")
    assert timestamp_ms(t * 1_000_000) == (t, "ns")
    assert timestamp_ms(86_400) is None and timestamp_ms(-t) is None  # 1970-01-02 in s: no plausible time


def test_the_clock_follows_only_what_enough_points_confirm_and_bounds_its_catch_up():
    from factory_twin.links.dsx_exchange.clock import CATCH_UP_TICKS, TICK_MS, JumpVotes, PlantClock

    votes = JumpVotes()
    t = 1_786_060_800_000
    assert votes.add("a", t + 3_600_000) is None and votes.add("a", t + 3_600_500) is None  # one point: no
    assert votes.add("b", t + 3_601_000, required="hb") is None  # the heartbeat is required while alive
    assert votes.add("hb", t + 3_630_000, required="hb") == (t + 3_630_000, ("a", "b", "hb"))
    clock = PlantClock()
    assert list(clock.advance(t)) == [] and clock.next_tick_ms == t + TICK_MS
    assert list(clock.advance(t + 35_000)) == [t + 10_000, t + 20_000, t + 30_000]
    # forward by 15 min: the ticks in between run (90 <= CATCH_UP_TICKS), with a grace for the data checks
    ticks = list(clock.jump(t + 935_000, ("a", "b", "hb")))
    assert len(ticks) == 90 <= CATCH_UP_TICKS and clock.in_grace(t + 935_000 + 100_000)
    # forward by a day: none run (skipped and counted); back by an hour: none either, the clock follows
    assert list(clock.jump(t + 86_400_000, ("a", "b", "hb"))) == [] and clock.jumps[-1].ticks_skipped == 8546
    assert list(clock.jump(t + 82_800_000, ("a", "b", "hb"))) == [] and clock.now_ms == t + 82_800_000
    assert clock.next_tick_ms == t + 82_810_000 and clock.jumps[-1].as_dict()["offset_s"] == -3600


def test_plausible_ranges_refuse_the_usual_unit_mix_ups(facility):
    from factory_twin.links.dsx_exchange.contract import to_internal
    from factory_twin.links.dsx_exchange.design import Design
    from factory_twin.links.dsx_exchange.plausibility import Plausibility

    lim = Plausibility(facility, Catalog(facility, "FactoryTwin"), Design.of(facility))

    def ok(entity, signal, i, value, unit):
        lo, hi, _ = lim.of(entity, signal, i)
        return lo <= (value if unit is None else to_internal(value, unit)) <= hi

    assert ok("rack", "return_c", 0, 45.0, "C") and not ok("rack", "return_c", 0, 45.0 * 9 / 5 + 32, "C")
    assert not ok("cdu", "sec_supply_c", 3, 35.0 + 273.15, "C") and ok("cdu", "sec_supply_c", 3, 308.15, "K")
    assert lim.of("rack", "return_c", 0)[2] == 20.0 and np.isnan(lim.of("rack", "flow_lpm", 0)[2])
    # a rack's power against its PSU rating (264 kW here), a row meter against its 10 racks', W sent as kW
    assert ok("rack", "power_kw", 0, 130.0, "kW") and not ok("rack", "power_kw", 0, 130_000.0, "kW")
    row = list(Catalog(facility, "FactoryTwin").meters).index("M-hall-a-cdu01")
    assert ok("meter", "power_kw", row, 1300.0, "kW") and not ok("meter", "power_kw", row, 1.3e6, "kW")
    assert not ok("cdu", "valve_pct", 0, 106.0, "%") and not ok("rack", "leak", 0, 3.0, None)


def test_a_lone_spike_cannot_hold_a_residual_filter_out_but_a_step_of_the_same_size_alarms():
    from factory_twin.links.dsx_exchange.diagnosis import EWMA_ALPHA, PERSIST_TICKS, Z_ALARM, Z_CLIP, Check

    ch = Check("rack_return", "rack", "return_c", 0.08, 2)
    hits = []
    for k in range(40):  # rack 0: one reading 68 K off (degF) for two ticks; rack 1: a 0.6 K bias from tick 5 on
        r = np.array([68.0 if k in (10, 11) else 0.0, 0.6 if k >= 5 else 0.0])
        hits.append(ch.update(r, r))
    hits = np.array(hits)
    assert not hits[:, 0].any()  # two clipped ticks: 1 - (1 - alpha)^2 of Z_CLIP = 8.75 > 5 for 3 ticks only
    assert Z_CLIP * (1 - (1 - EWMA_ALPHA) ** 2) > Z_ALARM
    first = int(np.argmax(hits[:, 1]))  # 7.5 sigma: over Z_ALARM from the 4th tick, alarmed PERSIST_TICKS later
    assert hits[:, 1].any() and first == 5 + 3 + PERSIST_TICKS - 1
