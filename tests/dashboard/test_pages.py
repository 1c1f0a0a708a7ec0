"""Page callbacks called directly on synthetic snapshots (the stub twin run by the real runner)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr
from dash import html
from factory_twin.dashboard.app import create_app
from factory_twin.dashboard.common import names
from factory_twin.dashboard.pages import cooling, dispatch, overview, racks, studies
from factory_twin.models.units import MW
from factory_twin.twin.live.runner import Snapshot
from plotly.utils import PlotlyJSONEncoder


def _text(component) -> str:
    return json.dumps(component.to_plotly_json(), cls=PlotlyJSONEncoder, ensure_ascii=False)


def _with(snap: Snapshot, meta=None, **arrays) -> Snapshot:
    return dataclasses.replace(snap, meta={**snap.meta, **(meta or {})}, arrays={**snap.arrays, **arrays})


# ------------------------------------------------------------------ overview


def test_now_meters_by_hand(snapshot):
    now = snapshot.meta["now"]
    # step 120: IT 8e6 + 1.2e5 W, grid = IT + 2e5 + 5e5; price at 00:20 = 100 KRW/MWh; 400 kg/MWh
    imp = (8.12e6 + 7e5) / MW
    assert now["grid_import_mw"] == pytest.approx(imp, rel=1e-12)
    assert now["import_limit_mw"] == 10.0
    assert now["pue"] == pytest.approx(8.82e6 / 8.12e6, rel=1e-12)
    assert now["ppue_cooling"] == pytest.approx(8.62e6 / 8.12e6, rel=1e-12)
    assert now["energy_per_token_j"] == pytest.approx(8.82e6 / 9e6, rel=1e-12)
    assert now["cost_per_mtok"] == pytest.approx(100.0 * imp / 3600.0 / 9e6 * 1e6, rel=1e-12)
    assert now["carbon_t_per_h"] == pytest.approx(400.0 * imp / 1000.0, rel=1e-12)
    assert now["carbon_kg_per_mtok"] == pytest.approx(400.0 * imp / 3600.0 / 9e6 * 1e6, rel=1e-12)
    assert now["throughput"] == pytest.approx(0.9, rel=1e-12)
    cards = overview.kpi_cards(snapshot)
    assert len(cards) == 8 and "8.8 / 10.0 MW" in _text(cards[0])


def test_over_limit_card_is_an_alarm(snapshot):
    snap = _with(snapshot, meta={"now": {**snapshot.meta["now"], "import_limit_mw": 5.0}})
    assert overview.kpi_cards(snap)[0].className == "kpi alarm"


def _label_mw(label: str) -> tuple[str, float]:
    name, value, unit = label.rsplit(" ", 2)
    assert unit == "MW"
    return name, float(value.replace(",", ""))


@pytest.mark.parametrize("bess_mw", [0.0, 0.3, -0.4])
def test_sankey_numbers_balance_and_equal_the_meters(snapshot, bess_mw):
    """The MW written on each node of the drawn Sankey: what enters a node leaves it, the leaves are the
    meters (losses explicit), and the links sum to the grid import."""
    now = {**snapshot.meta["now"], "bess_power_mw": bess_mw}
    now["grid_import_mw"] = now["it_power_mw"] + now["losses_mw"] + now["cooling_power_mw"] - bess_mw
    fig = overview.sankey_figure(_with(snapshot, meta={"now": now}))
    sk = fig.data[0]
    shown = dict(_label_mw(lb) for lb in sk.node.label)
    inflow, outflow = np.zeros(len(sk.node.label)), np.zeros(len(sk.node.label))
    for s, t, v in zip(sk.link.source, sk.link.target, sk.link.value, strict=True):
        outflow[s] += v
        inflow[t] += v
    names = list(sk.node.customdata)
    for name in ("Site bus", "IT (PSU input)"):
        i = names.index(name)
        assert inflow[i] == pytest.approx(outflow[i], rel=1e-12), name
    # the stub: IT 8.12, losses 0.2, cooling 0.5 (fans 0.1, chiller 0.02, pumps 0.03), GPUs 6, rack DC 7.6 MW
    expect = {
        "Grid meter": now["grid_import_mw"],
        "Distribution losses": now["losses_mw"],
        "IT (PSU input)": now["it_power_mw"],
        "PSU losses": now["psu_loss_mw"],
        "GPUs": 6.0,
        "Other rack loads": 1.6,
        "Cooling: heat-rejection fans": 0.1,
        "Cooling: chiller": 0.02,
        "Cooling: pumps": 0.03,
        "Cooling: air system": 0.35,
    }
    for name, mw in expect.items():
        assert shown[name] == pytest.approx(mw, abs=0.005), name  # written to 0.01 MW
    cooling = sum(v for n, v in shown.items() if n.startswith("Cooling: "))
    assert cooling == pytest.approx(now["cooling_power_mw"], abs=0.02)
    leaves = [n for n in names if n not in ("Grid meter", "BESS", "Site bus", "IT (PSU input)")]
    assert sum(shown[n] for n in leaves) == pytest.approx(now["grid_import_mw"] + bess_mw, abs=0.005 * len(leaves))
    assert (bess_mw != 0) == ("BESS" in shown) and shown.get("BESS", 0.0) == pytest.approx(abs(bess_mw), abs=0.005)
    assert sk.link.hovertemplate.endswith("MW<extra></extra>") and sk.node.hovertemplate.endswith("MW<extra></extra>")


def test_overview_update_and_placeholder(snapshot):
    _cards, sankey, trend = overview.update(snapshot)
    assert sankey.data[0].type == "sankey"
    assert [t.name for t in trend.data] == ["grid import", "import limit", "price"]  # no plan yet
    np.testing.assert_array_equal(trend.data[0].y, snapshot["hist_grid_import_mw"])
    placeholder = overview.update(None)
    assert "waiting" in _text(placeholder[0])


def test_price_has_its_own_panel_and_the_limit_is_drawn_on_top(snapshot):
    """At 1 GW the price on a second axis over the MW lines hid the import limit: the price is now in a panel
    of its own (y axes that do not overlap) and the limit is the last MW line drawn."""
    gw = _with(
        snapshot,
        hist_grid_import_mw=np.full(20, 1179.9),
        hist_import_limit_mw=np.full(20, 1180.0),
        hist_price_per_mwh=np.linspace(90_000.0, 114_167.0, 20),
    )
    for snap in (snapshot, gw):
        fig = overview.trend_figure(snap)
        mw = [t for t in fig.data if t.yaxis == "y"]
        price = [t for t in fig.data if t.name == "price"]
        assert [t.name for t in mw][-1] == "import limit" and price[0].yaxis == "y2"
        lay = fig.layout
        assert lay.yaxis2.overlaying is None and lay.yaxis.overlaying is None
        assert lay.yaxis2.domain[1] < lay.yaxis.domain[0]  # price panel wholly below the MW panel
        lo, hi = lay.yaxis.range
        assert lo < np.min(snap["hist_grid_import_mw"]) and hi > np.max(snap["hist_import_limit_mw"])  # both inside


# ------------------------------------------------------------------ cooling


def test_no_alarms_when_setpoints_hold(snapshot):
    assert cooling.alarms(snapshot) == []


def test_alarms_when_setpoints_cannot_be_held(snapshot):
    now = {**snapshot.meta["now"], "fws_supply_c": 31.0, "plant_load_mw": 16.0}
    snap = _with(
        snapshot,
        meta={"now": now, "plant_mode": 4},
        cdu_at_capacity=np.array([False, True, True]),
        cdu_tcs_supply_c=np.array([35.0, 35.4, 36.2]),
    )
    a = cooling.alarms(snap)
    assert a[0] == (
        "2 CDU(s) (hall-a-cdu02, hall-b-cdu01) cannot hold the TCS supply setpoint 35.0 °C (warmest supply 36.20 °C)"
    )
    # the stub's capacity at 25 / 20 degC: 9 MW x (30 - 25 + 1.5 MW / 1 MW/K) / 4 K = 14.625 MW
    assert a[1] == (
        "heat-rejection plant over capacity: 16.00 MW to reject to hold the facility water at 30.0 °C, "
        "capacity 14.62 MW at 25.0 / 20.0 °C db/wb"
    )
    assert a[2] == "facility water supply 31.00 °C above setpoint 30.0 °C (plant: over capacity)"
    alarms, blocks, _, _ = cooling.update(snap)
    assert len(alarms) == 3
    assert sum(b.className == "block alarm" for b in blocks if isinstance(b, html.Div)) == 4


def test_cooling_schematic_values(snapshot):
    text = _text(html.Div(cooling.schematic(snapshot)))
    # CDU duty 3 x 1e5 W/K x 8 K = 2.4 MW; TCS 24 L/s and FWS 0.25 m3/s in L/min; hottest die 71 °C
    for s in ("duty (TCS -> facility water) 2.40 MW", "flow 1,440 L/min", "flow 15,000 L/min", "hottest die 71.0 °C",
              "mode: dry", "make-up water 0 L/min"):  # fmt: skip
        assert s in text
    for unit in ("kg/s", "L/s", "m3/s"):  # flows in one unit, L/min
        assert unit not in text
    # the plant's share and the air system's add up to the total heat rejected, all three on the page
    assert "plant (facility water) 8.00 MW of 14.62 MW capacity" in text
    assert "+ air system 1.00 MW = total heat rejected 9.00 MW" in text


def test_make_up_water_in_l_per_min():
    from factory_twin.dashboard.common import water_l_per_min
    from factory_twin.models.heat_rejection import evaporative_cooler

    # 10 MW rejected at 1.8 L/kWh is 10,000 kWh/h x 1.8 L = 18,000 L/h = 300 L/min, back from the model's kg/s
    ev = evaporative_cooler(10e6, 30.0, 20.0, 20e6, 4.0, 0.0, water_l_per_kwh=1.8)
    assert water_l_per_min(float(ev.water_kg_s)) == pytest.approx(300.0, rel=1e-12)


def test_rejection_chart_compares_like_with_like(snapshot):
    """Capacity is the plant model's at each record's ambient; the stacked plant + air heat is the total heat
    rejected meter; runs where the load exceeds the capacity are shaded."""
    fig = cooling.rejection_figure(snapshot)
    by_name = {tr.name: tr for tr in fig.data}
    cap = by_name["plant capacity at ambient"]
    np.testing.assert_allclose(cap.y, np.full(20, 14.625), rtol=1e-12)
    plant, air = by_name["plant (facility water)"], by_name["+ air system = total heat rejected"]
    assert plant.stackgroup == air.stackgroup
    np.testing.assert_allclose(np.add(plant.y, air.y), snapshot["hist_heat_rejected_mw"], rtol=1e-12)
    assert fig.layout.shapes == ()  # below capacity: nothing shaded
    load = np.array(snapshot["hist_plant_load_mw"])
    load[5:9] = 20.0  # four records over the 14.625 MW
    over = cooling.rejection_figure(_with(snapshot, hist_plant_load_mw=load))
    t = snapshot["hist_time"]
    assert len(over.layout.shapes) == 1
    rect = over.layout.shapes[0]
    assert (np.datetime64(rect.x0, "s"), np.datetime64(rect.x1, "s")) == (
        np.datetime64(int(t[5]), "s"),
        np.datetime64(int(t[9]), "s"),
    )
    assert over.layout.annotations[-1].text == "over capacity"


def test_plant_capacity_meter_is_the_plant_model_at_the_snapshot_ambient(tmp_path):
    """A real campus-100mw twin, 8 K hotter: the snapshot's capacity is Plant.capacity_w at its ambient."""
    from factory_twin.twin.live.runner import LiveRunner

    from factory_twin import twin

    f = twin.load_facility("campus-100mw")
    tw = twin.Twin(f, twin.load_scenario(None, f).with_changes(offset_k=8.0))
    runner = LiveRunner(tw, tmp_path, record_s=tw.plant_dt)
    for _ in range(3):
        runner.step()
    snap = runner.snapshot()
    now = snap.meta["now"]
    db, wb = snap["hist_dry_bulb_c"], snap["hist_wet_bulb_c"]
    expect = tw.plant.capacity_w(db, wb, tw.c_fws_total, tw.fws_setpoint_c) / MW
    np.testing.assert_allclose(snap["hist_rejection_capacity_mw"], expect, rtol=1e-12)
    assert now["rejection_capacity_mw"] != pytest.approx(120.0, abs=1.0)  # not the rated 100 + 20 MW
    assert now["plant_heat_mw"] + now["air_heat_mw"] == pytest.approx(now["heat_rejected_mw"], rel=1e-12)


# ------------------------------------------------------------------ racks


def test_floor_grid_places_every_rack(snapshot):
    v = np.arange(12.0) * 10
    z, rack, labels, _yi, _slot = racks.floor_grid(snapshot, v)
    assert labels == ["hall-a row 0", "hall-a row 1", "hall-b row 0"]
    assert z.shape == (3, 4)
    np.testing.assert_array_equal(z, v.reshape(3, 4))
    np.testing.assert_array_equal(rack, np.arange(12).reshape(3, 4))


def test_floor_grid_leaves_gaps_empty(snapshot):
    snap = _with(snapshot, rack_slot=np.where(np.arange(12) == 11, 6, snapshot["rack_slot"]))
    z, rack, *_ = racks.floor_grid(snap, np.ones(12))
    assert z.shape == (3, 7)
    assert np.isnan(z[2, 3]) and rack[2, 3] == -1 and rack[2, 6] == 11


def test_metrics_and_throttle_markers(snapshot):
    cap = racks.metric_values(_with(snapshot, rack_gpu_cap_w=np.full(12, 900.0)), "cap_pct")
    np.testing.assert_allclose(cap, np.full(12, 75.0), rtol=1e-12)
    with pytest.raises(ValueError, match="metric"):
        racks.metric_values(snapshot, "colour")
    thr = np.zeros(12, bool)
    thr[[5, 9]] = True
    fig = racks.floor_figure(_with(snapshot, rack_throttled=thr), "die_temp_c")
    assert list(fig.data[1].customdata) == [5, 9]
    assert list(fig.data[1].y) == ["hall-a row 1", "hall-b row 0"]
    assert "2 racks throttled" in fig.layout.title.text


def test_floor_of_a_gigawatt_campus_stays_within_the_line_budget(snapshot):
    """7,200 racks in 720 rows of 10 slots over 8 halls: rows fold side by side, every rack placed once."""
    n_hall, rows, slots = 8, 90, 10
    hall = np.repeat(np.arange(n_hall), rows * slots)
    row = np.tile(np.repeat(np.arange(rows), slots), n_hall)
    slot = np.tile(np.arange(slots), n_hall * rows)
    n = hall.size
    big = Snapshot(
        {**snapshot.meta, "hall_names": [f"hall-{i}" for i in range(n_hall)]},
        {
            **snapshot.arrays,
            "rack_hall": hall,
            "rack_row": row,
            "rack_slot": slot,
            "rack_die_temp_c": np.linspace(50, 80, n),
            "rack_gpu_cap_w": np.full(n, 1200.0),
            "rack_tdp_w": np.full(n, 1200.0),
            "rack_gpu_power_w": np.full(n, 1000.0),
            "rack_throttled": np.arange(n) == 4321,
        },
    )
    z, rack, labels, line, col = racks.floor_grid(big, np.arange(n, dtype=float))
    assert len(labels) <= racks.MAX_LINES and labels[0] == "hall-0 rows 0-12"
    assert sorted(rack[rack >= 0]) == list(range(n))
    np.testing.assert_array_equal(z[line, col], np.arange(n))
    fig = racks.floor_figure(big, "die_temp_c")
    assert fig.layout.height <= racks.MAX_LINES * racks.LINE_PX + 120  # was 14 px x 720 rows + 120 = 10,200 px
    assert list(fig.data[1].customdata) == [4321]


def test_rack_click_and_number(snapshot):
    # plotly sends a heatmap cell's customdata row as an object keyed by position
    assert racks.rack_from_click({"points": [{"customdata": {"0": 253, "1": 78.0, "2": 100, "3": 1154.4}}]}) == 253
    assert racks.rack_from_click({"points": [{"customdata": [7, 60.0, 100.0, 1000.0]}]}) == 7
    assert racks.rack_from_click({"points": [{"customdata": 9}]}) == 9
    assert racks.rack_from_click({"points": [{"customdata": [-1, 0, 0, 0]}]}) is None
    assert racks.rack_from_click(None) is None
    ids = names(snapshot)[0]
    assert racks.parse_rack(" 11 ", ids) == 11
    with pytest.raises(ValueError, match=r"rack: no rack 'eleven': type its id \(e.g. hall-a-r01-01\) or its number"):
        racks.parse_rack("eleven", ids)
    with pytest.raises(ValueError, match=r"rack: must be within \[0, 11\] or an id like hall-a-r01-01, got 12"):
        racks.parse_rack(12, ids)


def test_racks_and_cdus_go_by_their_dsx_ids(snapshot, stub_twin):
    """Issue 20 item 20: the Racks page takes a rack's DSX id as well as its index and shows the CDU's id (it showed
    'CDU: 1'): the one naming of twin.facility.nodes, the BMS's and the BMCs'."""
    from factory_twin.twin.facility.nodes import cdu_names, rack_names

    rack_ids, cdu_ids = names(snapshot)
    assert (rack_ids, cdu_ids) == (rack_names(stub_twin.f), cdu_names(stub_twin.f))  # the snapshot's facility
    assert rack_ids[10] == "hall-b-r01-03" and cdu_ids == ["hall-a-cdu01", "hall-a-cdu02", "hall-b-cdu01"]
    assert racks.parse_rack("hall-b-r01-03", rack_ids) == 10
    assert racks.parse_rack(" HALL-A-R02-04 ", rack_ids) == 7  # as typed: spaces, any case
    with pytest.raises(ValueError, match="rack: no rack 'hall-c-r01-01'"):
        racks.parse_rack("hall-c-r01-01", rack_ids)
    text, _ = racks.rack_detail(snapshot, 10)
    facts = {t.children[0].children.rstrip(": "): t.children[1] for t in text}
    assert facts["rack"] == "hall-b-r01-03 (#10)" and facts["CDU"] == "hall-b-cdu01"
    floor = racks.floor_figure(snapshot, "die_temp_c").data[0]
    assert "hall-a-r01-01" in np.asarray(floor.text).ravel().tolist()  # the floor's hover names the rack
    assert list(cooling.cdu_figure(snapshot).data[0].text) == cdu_ids


def test_rack_detail_history(snapshot):
    text, fig = racks.rack_detail(snapshot, 10)
    t = _text(html.Div(text))
    assert "hall-b" in t and "inference" in t and "1200 W" in t
    # last 5 records of the stub: mean GPU power over steps 67..72, ..., 115..120
    np.testing.assert_allclose(fig.data[0].y, 1000.0 + np.array([69.5, 75.5, 81.5, 87.5, 93.5]) + 24, rtol=1e-6)


# ------------------------------------------------------------------ dispatch


def test_build_command_from_text():
    vals = dict(dispatch.DEFAULTS)
    assert dispatch.build_command("ctl-dr", vals) == {
        "kind": "dr_event",
        "depth": 0.25,
        "duration_min": 60.0,
        "ramp_min": 15.0,
        "notice_min": 0.0,
    }
    assert dispatch.build_command("ctl-workload", vals, "training") == {
        "kind": "workload",
        "level": 1.0,
        "workload_class": "training",
    }
    assert dispatch.build_command("ctl-pause", vals) == {"kind": "pause"}
    with pytest.raises(ValueError, match="import limit: required"):
        dispatch.build_command("ctl-limit", vals)
    with pytest.raises(ValueError, match="DR depth: must be a number, got 'a lot'"):
        dispatch.build_command("ctl-dr", {**vals, "ctl-dr-depth": "a lot"})


@pytest.mark.parametrize(
    ("box", "text", "message"),
    [
        ("ctl-dr-depth", "1e9", "DR depth: must be > 0 and <= 100 %, got 1e9 %"),
        ("ctl-workload-level", "150", "utilization: must be >= 0 and <= 100 %, got 150 %"),
        ("ctl-dr-ramp", "90", "ramp: 90 min is longer than duration 60 min"),
        ("ctl-limit-mw", "-5", "import limit: must be > 0 and <= 100000 MW, got -5 MW"),
    ],
)
def test_control_errors_speak_the_page_labels_and_units(box, text, message):
    button = {"ctl-dr-depth": "ctl-dr", "ctl-dr-ramp": "ctl-dr", "ctl-limit-mw": "ctl-limit"}.get(box, "ctl-workload")
    with pytest.raises(ValueError) as e:
        dispatch.build_command(button, {**dispatch.DEFAULTS, box: text}, "training")
    assert str(e.value) == message


def test_send_reports_bad_input_without_sending():
    sent = []

    def sink(cmd):
        from factory_twin.twin.live.runner import parse_command

        sent.append(parse_command(cmd))
        return "id1"

    msg = dispatch.send("ctl-limit", {**dispatch.DEFAULTS, "ctl-limit-mw": "-20"}, None, sink)
    assert msg.className == "message error" and "import limit: must be > 0 and <= 100000 MW, got -20 MW" in msg.children
    msg = dispatch.send("ctl-limit", {**dispatch.DEFAULTS, "ctl-limit-mw": "abc"}, None, sink)
    assert "must be a number" in msg.children
    assert sent == []
    msg = dispatch.send("ctl-limit", {**dispatch.DEFAULTS, "ctl-limit-mw": "95"}, None, sink)
    assert msg.className == "message ok" and sent[0]["import_limit_mw"] == 95.0


def test_overlapping_dr_events_share_one_baseline_and_the_tighter_binds(stub_twin, tmp_path):
    """Issue 20 item 1: DR 25 % now, then DR 20 % (ramp 10, notice 15) while the first holds. Both targets sit on
    the one DR baseline (the counterfactual uncapped import, the stub's 9 MW + 1 kW/min), not on the import metered
    when each was sent (the second was sent while curtailed); the tighter binds while they overlap, the second alone
    after the first ends; the table, the line ahead, the recorded target and the alarm all read that one target."""
    from factory_twin.dashboard.common import snapshot_misses
    from factory_twin.twin.live.runner import LiveRunner

    def base(t_s):  # the stub's DR baseline [MW], t_s seconds after its start
        return 9.0 + 1e-3 * t_s / 60

    runner = LiveRunner(stub_twin, tmp_path, record_s=60.0)
    runner.step()  # 00:00:10
    runner.apply({"kind": "dr_event", "depth": 0.25, "duration_min": 60, "ramp_min": 15, "notice_min": 0})
    for _ in range(89):  # to 00:15:00
        runner.step()
    runner.apply({"kind": "dr_event", "depth": 0.2, "duration_min": 60, "ramp_min": 10, "notice_min": 15})
    snap = runner.snapshot()
    one, two = snap.meta["dr_events"]
    # each event's own target at the end of its ramp: 00:15:10 and 00:40:00
    assert (one["at"], two["at"]) == ("2026-08-07T00:15:10", "2026-08-07T00:40:00")
    assert one["target_mw"] == pytest.approx(0.75 * base(910), rel=1e-12)
    assert two["target_mw"] == pytest.approx(0.8 * base(2400), rel=1e-12)  # was 0.8 x the curtailed import
    assert one["binding"] and not two["binding"]
    rows = [_text(r) for r in dispatch.events_table(snap).children[1].children]
    assert f"{0.75 * base(910):.1f} MW" in rows[0] and "active, binds" in rows[0]
    assert f"{0.8 * base(2400):.1f} MW" in rows[1] and "upcoming, looser" in rows[1]
    # the line ahead: the tighter target while both hold, the second's alone after 01:00:10, until 01:30:00
    fig = dispatch.plan_figure(snap)
    ahead = next(t for t in fig.data if t.name == "DR target ahead")
    t = (np.asarray(ahead.x, "datetime64[s]") - np.datetime64("2026-08-07T00:00:00", "s")).astype(float)
    both = (t >= 2400) & (t < 3610)
    np.testing.assert_allclose(np.asarray(ahead.y)[both], 0.75 * base(t[both]), rtol=1e-12)
    after = (t >= 3610) & (t < 5400)
    assert after.sum() == 29 and t[-1] == 5400 and np.isnan(ahead.y[-1])  # one point a minute, to the end
    np.testing.assert_allclose(np.asarray(ahead.y)[after], 0.8 * base(t[after]), rtol=1e-12)
    # past the end of the first: the recorded target is the second's on the same baseline
    for _ in range(6 * 50):  # to 01:05:00
        runner.step()
    assert runner.hist["dr_target_mw"][-1] == pytest.approx(0.8 * base(3900), rel=1e-12)
    snap = runner.snapshot()
    assert snap.meta["dr_events"][1]["binding"]
    # the alarm reads the recorded target (the stub does not curtail: it misses the first event, worst at its end)
    (miss,) = snapshot_misses(snap)
    assert miss.target == "DR" and miss.target_mw == pytest.approx(0.75 * base(3600), rel=1e-12)
    assert "no DR events" in _text(dispatch.events_table(_with(snap, {"dr_events": []})))


def test_dispatch_boxes_open_with_what_is_in_force(stub_twin, tmp_path):
    """Issue 20 item 19: back on the Dispatch page the boxes showed the defaults (ambient offset 0 while +8 K was
    applied, an empty import limit): they open with the running twin's values."""
    from factory_twin.twin.live.runner import LiveRunner

    runner = LiveRunner(stub_twin, tmp_path)
    runner.step()
    assert dispatch.in_force(runner.snapshot()) == {"ctl-limit-mw": "10", "ctl-offset-k": "0", "ctl-speed-x": "60"}
    for cmd in (
        {"kind": "ambient_offset", "offset_k": 8},
        {"kind": "import_limit", "import_limit_mw": 9.5},
        {"kind": "speed", "speed": 30},
        {"kind": "workload", "workload_class": "training", "level": 0.55},
    ):
        assert runner.apply(cmd)
    snap = runner.snapshot()
    assert dispatch.in_force(snap) == {"ctl-limit-mw": "9.5", "ctl-offset-k": "8", "ctl-speed-x": "30"}
    assert set(dispatch.IN_FORCE) <= set(dispatch.INPUTS)
    assert dispatch.workload_in_force(snap, "training") == ("55", "")
    assert dispatch.workload_in_force(snap, "inference") == ("", "profile")  # its scenario profile, no level


def test_dispatch_shows_the_import_limit_in_force(snapshot):
    assert dispatch.limit_in_force(snapshot) == "in force: 10.0 MW (contract)"  # the stub's contract
    snap = _with(snapshot, meta={"import_limit": {"mw": 95.0, "source": "what-if"}})
    assert dispatch.limit_in_force(snap) == "in force: 95.0 MW (what-if)"


# ------------------------------------------------------------------ studies


@pytest.fixture
def study_dir(tmp_path):
    ds = xr.Dataset(
        {
            "peak_import_mw": (("limit_mw",), [100.0, 90.0, 80.0], {"units": "MW"}),
            "reduction_mw": (("duration_h", "limit_mw"), np.arange(6.0).reshape(2, 3)),
            "cube": (("a", "b", "c"), np.arange(8.0).reshape(2, 2, 2)),
            "status": (("limit_mw",), np.array(["optimal", "optimal", "infeasible"])),
        },
        coords={"limit_mw": [110.0, 100.0, 90.0], "duration_h": [1.0, 3.0]},
        attrs={"study": "tiny", "analysis": "sweep"},
    )
    (tmp_path / "runs").mkdir()
    ds.to_netcdf(tmp_path / "runs" / "study.nc", engine="h5netcdf")
    # a simulation run and a broken file beside it are not study results
    xr.Dataset({"grid_import_mw": ("time", [1.0])}, attrs={"facility": "x"}).to_netcdf(
        tmp_path / "runs" / "run.nc", engine="h5netcdf"
    )
    (tmp_path / "runs" / "broken.nc").write_text("not NetCDF")
    (tmp_path / "notes.txt").write_text("not a study")
    return tmp_path


def test_only_files_inside_the_studies_folder(study_dir, tmp_path_factory):
    assert studies.list_studies(study_dir) == ["runs/study.nc"]
    assert studies.resolve_study(study_dir, "runs/study.nc") == (study_dir / "runs/study.nc").resolve()
    outside = tmp_path_factory.mktemp("elsewhere") / "x.nc"
    outside.write_bytes(b"")
    for bad, msg in [
        ("../" + outside.parent.name + "/x.nc", "outside the studies folder"),
        (str(outside), "relative to the studies folder"),
        ("notes.txt", "not a NetCDF file"),
        ("", "relative"),
        ("missing.nc", "not a NetCDF"),
    ]:
        with pytest.raises(ValueError, match=msg):
            studies.resolve_study(study_dir, bad)


def test_study_variables_plot_over_their_dims(study_dir):
    with xr.open_dataset(study_dir / "runs/study.nc") as ds:
        opts, info = studies.describe(ds)
    assert opts[0] == {"label": "peak_import_mw (limit_mw) [MW]", "value": "peak_import_mw"}
    assert info == "4 variables; dims: limit_mw=3, duration_h=2, a=2, b=2, c=2"
    line = studies.open_variable(study_dir, "runs/study.nc", "peak_import_mw")
    assert list(line.data[0].x) == [110.0, 100.0, 90.0] and list(line.data[0].y) == [
        100.0,
        90.0,
        80.0,
    ]
    heat = studies.open_variable(study_dir, "runs/study.nc", "reduction_mw")
    assert heat.data[0].type == "heatmap"
    np.testing.assert_array_equal(heat.data[0].z, np.arange(6.0).reshape(2, 3))
    cube = studies.open_variable(study_dir, "runs/study.nc", "cube")
    np.testing.assert_array_equal(cube.data[0].z, [[0.0, 1.0], [2.0, 3.0]])
    # issue 20 item 21: a 3-D variable has a slice control for its held dim; the plot follows it
    with xr.open_dataset(study_dir / "runs/study.nc") as ds:
        (control,) = studies.slice_controls(ds.cube)
        assert studies.slice_controls(ds.reduction_mw) == []
    label, dropdown = control.children
    assert label == "a" and dropdown.id == {"type": "st-slice", "dim": "a"} and dropdown.value == 0
    assert [o["label"] for o in dropdown.options] == ["a[0]", "a[1]"]
    cube = studies.open_variable(study_dir, "runs/study.nc", "cube", {"a": 1})
    np.testing.assert_array_equal(cube.data[0].z, [[4.0, 5.0], [6.0, 7.0]])
    assert cube.layout.title.text == "cube at a=a[1]"
    cube = studies.open_variable(study_dir, "runs/study.nc", "cube", {"a": 7, "zz": 1})  # stale picks: the first
    np.testing.assert_array_equal(cube.data[0].z, [[0.0, 1.0], [2.0, 3.0]])
    status = studies.open_variable(study_dir, "runs/study.nc", "status")
    assert list(status.data[0].x) == ["infeasible", "optimal"] and list(status.data[0].y) == [1, 2]
    with pytest.raises(ValueError, match="variable"):
        studies.open_variable(study_dir, "runs/study.nc", "nothing")


# ------------------------------------------------------------------ app


def test_create_app_routes_and_callbacks(snapshot, tmp_path):
    app = create_app(lambda rack_history=False: snapshot, lambda cmd: "id", tmp_path)
    assert app.config.serve_locally is True
    outputs = " ".join(app.callback_map)
    for ident in (
        "page.children",
        "status.children",
        "ov-sankey.figure",
        "cool-schematic.children",
        "racks-floor.figure",
        "disp-msg.children",
        "st-plot.figure",
    ):
        assert ident in outputs
    for page in (overview, cooling, racks, dispatch, studies):
        page.layout()  # builds without a snapshot


# ------------------------------------------------------------------ every chart: one scale per plot, round ticks


def _tick_labels(ax: dict) -> list[str]:
    """The labels plotly draws for a linear axis with ``range``, ``tick0`` 0, ``dtick`` and a d3 ``,.Nf``
    ``tickformat`` (the same numbers, formatted the same way)."""
    lo, hi = ax["range"]
    step = ax["dtick"]
    digits = int(ax["tickformat"].removeprefix(",.").removesuffix("f"))
    k = np.arange(np.ceil(lo / step - 1e-9), np.floor(hi / step + 1e-9) + 1)
    return [f"{v:,.{digits}f}" for v in k * step]


def assert_readable(fig) -> None:
    """No y axis overlays another (no dual axes); every linear y axis ticks on a round step (1, 2 or 5 x 10^k)
    with just the decimals the step needs, 2 to 12 distinct labels."""
    lay = fig.layout.to_plotly_json()
    axes = {k: v for k, v in lay.items() if k.startswith("yaxis")}
    assert axes, "no y axis"
    for name, ax in axes.items():
        assert not ax.get("overlaying"), f"{name} overlays {ax['overlaying']}"
        if ax.get("type") == "log":
            continue
        step = ax["dtick"]
        mantissa = step / 10 ** np.floor(np.log10(step))
        assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-9, (name, step)
        assert ax["tickformat"] == f",.{max(0, -int(np.floor(np.log10(step) + 1e-9)))}f", (name, ax["tickformat"])
        labels = _tick_labels(ax)
        assert 2 <= len(labels) <= 12 and len(set(labels)) == len(labels), (name, labels)


def test_axis_ticks_of_a_flat_ambient_are_round():
    """The reported case: an ambient within 21.42-21.49 degC got ticks 21.574, 21.944, ...; now a 2 K window
    ticked every 0.5 K."""
    from factory_twin.dashboard.common import axis_ticks

    ax = axis_ticks(np.linspace(21.42, 21.49, 30), 2.0)
    assert ax["dtick"] == 0.5 and ax["tickformat"] == ",.1f"
    assert _tick_labels(ax) == ["20.5", "21.0", "21.5", "22.0", "22.5"]  # 20.455-22.455 K, 5 % padding
    big = axis_ticks([1089.4, 1180.0], 1.0, min_frac=0.05)  # 1 GW import and limit: 20 MW steps, no decimals
    assert big["dtick"] == 20.0 and big["tickformat"] == ",.0f"
    assert axis_ticks([np.nan], 1.0) == {}  # nothing to scale: plotly's autorange


def test_every_dashboard_chart_has_one_scale_per_plot_and_round_ticks(snapshot):
    dry = np.linspace(22.56, 22.68, 20)  # the flat hour of the report
    snap = _with(snapshot, hist_dry_bulb_c=dry, hist_wet_bulb_c=dry - 1.1)
    figs = {
        "cooling rejection": cooling.rejection_figure(snap),
        "cooling CDUs": cooling.cdu_figure(snap),
        "overview trend": overview.trend_figure(snap),
        "dispatch plan": dispatch.plan_figure(snap),
        "rack detail": racks.rack_detail(snap, 3)[1],
    }
    for name, fig in figs.items():
        try:
            assert_readable(fig)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e


def test_grid_flex_plant_and_study_charts_have_round_ticks():
    from factory_twin.dashboard.pages import flex, grid, plant

    t = np.arange(0.0, 120.0, 0.01)
    ds = xr.Dataset(
        {
            "poi_mw": ("time", 100.0 + np.sin(t)),
            "site_mw": ("time", 100.0 + 1.2 * np.sin(t)),
            "bess_soc": ("time", 0.5 + 1e-4 * t),
            "rack_store_mj": ("time", 400.0 - 0.01 * t),
        },
        coords={"time": t},
    )
    st = {
        "feeds": {"F1": {"history": [["2026-08-07T00:00:00Z", 9.1e6, 9.5e6], ["2026-08-07T00:01:00Z", 9.2e6, 9.5e6]]}}
    }
    cdu = {"id": ["C1", "C2"], "supply_measured_c": [35.01, 35.02], "supply_predicted_c": [35.0, 35.03]}
    da = xr.DataArray([0.91, 0.9101, 0.9102], dims="case", name="throughput", attrs={"units": "1"})
    for fig in (grid.power_figure(ds), grid.soc_figure(ds), grid.ride_figure(100.0, "perc1-default")[0],
                flex.trend_figure(st), plant._cdu_figure(cdu), studies.variable_figure(da)):  # fmt: skip
        assert_readable(fig)
