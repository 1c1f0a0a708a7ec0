"""Resource groups and the power policy at run time (issue 22, item 1): the runner's ``resource_group`` and
``power_policy`` commands (parsed, applied through ``ResourceGroups.updated``, published in ``meta["steering"]``; a
refused one leaves the groups as they were), and the Power page's steering panel following them. On the DPS SDK
facility: production on racks 1-4 (priority 0, 900 W guaranteed), research on racks 5-8 (priority 1, 250 W), 72 GPUs
a rack, MaxLPS."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factory_twin.dashboard import steering_panel as sp
from factory_twin.dashboard.pages.power import group_in_force, steering_commands, steering_reply, steering_view
from factory_twin.optimization.steering_control import SteeringController
from factory_twin.twin import Twin, load_facility, load_scenario
from factory_twin.twin.facility.steering_spec import PRIORITY_MAX
from factory_twin.twin.live.runner import LiveRunner, Snapshot, parse_command, start_groups
from support import site_limit_for
from support import steering_snapshot as snapshot

GPUS = 72
GROUPS = ("production", "research")
SDK_STEERING = {
    "policy": "MaxLPS",
    "groups": [
        {"name": "production", "priority": 0, "guarantee_w": 900.0, "max_w": None},
        {"name": "research", "priority": 1, "guarantee_w": 250.0, "max_w": None},
    ],
}


@pytest.fixture(scope="module")
def sdk():
    return load_facility("dps-sdk")


@pytest.fixture
def runner(sdk, tmp_path):
    return LiveRunner(Twin(sdk, load_scenario(None, sdk)), tmp_path)


# ------------------------------------------------------------------ parse_command


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ({"group": "research", "guarantee_w": "400"}, {"group": "research", "guarantee_w": 400.0}),
        ({"group": "research", "priority": "3", "max_w": 1000}, {"group": "research", "priority": 3, "max_w": 1000.0}),
        (
            {"group": "production", "priority": 2.0, "guarantee_w": 0},
            {"group": "production", "priority": 2, "guarantee_w": 0.0},
        ),
        ({"group": "research", "priority": PRIORITY_MAX}, {"group": "research", "priority": PRIORITY_MAX}),
    ],
)
def test_parse_resource_group_accepts(raw, parsed):
    c = parse_command({"kind": "resource_group", "id": "x", **raw}, group_names=GROUPS)
    assert c == {"kind": "resource_group", "id": "x", **parsed}
    assert type(c.get("priority", 0)) is int


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"group": "research"}, "resource_group: give at least one of priority, guarantee_w, max_w"),
        ({"group": "research", "guarantee_w": ""}, "resource_group: give at least one of"),
        ({"group": "batch", "priority": 1}, "group: no resource group named 'batch'; groups: production, research"),
        ({"priority": 1}, "group: no resource group named None"),
        ({"group": "research", "priority": 1.5}, "priority: must be a whole number"),
        ({"group": "research", "priority": True}, "priority: must be a whole number"),
        ({"group": "research", "priority": -1}, f"priority: must be within [0, {PRIORITY_MAX}]"),
        ({"group": "research", "priority": PRIORITY_MAX + 1}, "priority: must be within"),
        ({"group": "research", "guarantee_w": "lots"}, "guarantee_w [W per GPU]: must be a number, got 'lots'"),
        ({"group": "research", "guarantee_w": float("nan")}, "guarantee_w [W per GPU]: must be finite"),
        ({"group": "research", "guarantee_w": -5}, "guarantee_w [W per GPU]: must be within [0, 10000], got -5"),
        ({"group": "research", "guarantee_w": False}, "guarantee_w [W per GPU]: must be a number, got False"),
        ({"group": "research", "max_w": 0}, "max_w [W per GPU]: must be > 0"),
        ({"group": "research", "max_w": float("inf")}, "max_w [W per GPU]: must be finite"),
        ({"group": "research", "guarantee_w": 900, "max_w": 500}, "guarantee_w: 900 W per GPU is above max_w 500 W"),
        ({"group": "research", "cap_w": 500}, "unknown field(s) ['cap_w']"),
    ],
)
def test_parse_resource_group_refuses_naming_the_field(raw, message):
    with pytest.raises(ValueError) as e:
        parse_command({"kind": "resource_group", **raw}, group_names=GROUPS)
    assert message in str(e.value)


def test_parse_power_policy():
    assert parse_command({"kind": "power_policy", "policy": "MaxQ", "id": "p"}) == {
        "kind": "power_policy",
        "id": "p",
        "policy": "MaxQ",
    }
    for bad in ("maxq", "", None, 1):
        with pytest.raises(ValueError, match=r"policy: one of MaxP, MaxQ, MaxLPS, got"):
            parse_command({"kind": "power_policy", "policy": bad})


# ------------------------------------------------------------------ the runner


def test_the_runner_starts_with_the_facilitys_groups_and_publishes_them_as_strict_json(runner):
    meta = runner.snapshot().meta
    assert meta["steering"] == SDK_STEERING
    json.dumps(meta["steering"], allow_nan=False)  # the default maximum is null, not NaN


def test_a_group_change_reaches_the_snapshot_and_a_refused_one_changes_nothing(runner):
    assert runner.apply({"kind": "resource_group", "group": "research", "guarantee_w": "400", "priority": 2})
    meta = runner.snapshot().meta
    assert meta["steering"]["groups"][1] == {"name": "research", "priority": 2, "guarantee_w": 400.0, "max_w": None}
    assert meta["steering"]["groups"][0] == SDK_STEERING["groups"][0]
    last = meta["messages"][-1]
    assert last["ok"] and last["kind"] == "resource_group"
    assert last["text"] == "resource group research: priority 2 (was 1), guarantee 400 W/GPU (was 250)"
    before = runner.snapshot().meta["steering"]
    # refused by ResourceGroups.updated: the new maximum under the guarantee in force
    runner.apply({"kind": "resource_group", "group": "research", "max_w": 300})
    # refused by parse_command: no such group
    runner.apply({"kind": "resource_group", "group": "batch", "max_w": 300})
    meta = runner.snapshot().meta
    assert meta["steering"] == before
    refused = meta["messages"][-2:]
    assert [m["ok"] for m in refused] == [False, False]
    assert refused[0]["text"] == "guarantee_w: 400 W is above max_w 300 W for group 'research'"
    assert refused[1]["text"].startswith("group: no resource group named 'batch'")
    assert runner.apply({"kind": "power_policy", "policy": "MaxQ"})
    assert runner.snapshot().meta["steering"]["policy"] == "MaxQ"
    assert runner.messages[-1]["text"] == "power policy MaxQ (was MaxLPS)"


def test_start_groups_applies_the_commands_and_names_the_refused_one(sdk):
    policy = {"kind": "power_policy", "policy": "MaxP", "id": "--policy"}
    g = start_groups(sdk, [policy, {"kind": "resource_group", "group": "research", "max_w": 800, "id": "--group r"}])
    assert g.policy == "MaxP" and g.max_w[1] == 800.0 and g.guarantee_w[1] == 250.0
    with pytest.raises(ValueError, match=r"^--group batch: group: no resource group named 'batch'"):
        start_groups(sdk, [{"kind": "resource_group", "group": "batch", "priority": 1, "id": "--group batch"}])
    with pytest.raises(ValueError, match=r"^--group production: guarantee_w: 900 W is above max_w 800 W"):
        start_groups(sdk, [{"kind": "resource_group", "group": "production", "max_w": 800, "id": "--group production"}])


# ------------------------------------------------------------------ the steering panel


def with_steering(snap: Snapshot, steering: dict) -> Snapshot:
    return Snapshot({**snap.meta, "steering": steering}, snap.arrays)


def test_the_panel_follows_a_guarantee_change_as_the_controller_api_does(sdk):
    """GPUs that would draw 1,000 W each under an import limit leaving 380 kW of GPU power: production (priority 0)
    gets its 1,000 W, research (priority 1) the rest, 92 kW / 288 GPUs = 319 W; after the runner raised research's
    guarantee to 400 W (production's 900 W still fits: 288 x 1,300 W = 374.4 kW), every research GPU gets at least
    400 W, the limits equal those of a SteeringController changed through its API (set_group), and the group table
    shows the new guarantee. The controller's groups are rebuilt once."""
    steer = sp.SnapshotSteering(sdk)
    demand = np.full(8, 1000.0)
    limit_mw = site_limit_for(steer, snapshot(sdk, demand, demand, 10.0), 380e3)
    base = snapshot(sdk, demand, demand, limit_mw)
    before = steer(with_steering(base, SDK_STEERING))
    research = np.repeat(np.arange(8) >= 4, GPUS)
    assert np.asarray(before.allocation.limit_w)[research] == pytest.approx((380e3 - 4 * GPUS * 1000.0) / (4 * GPUS))
    assert steer.rebuilds == 0  # the facility's own groups: nothing rebuilt

    raised = json.loads(json.dumps(SDK_STEERING))
    raised["groups"][1]["guarantee_w"] = 400.0
    s = steer(with_steering(base, raised))
    limit = np.asarray(s.allocation.limit_w, float)
    assert limit[research].min() >= 400.0 * (1 - 1e-6)
    assert limit.sum() == pytest.approx(380e3, abs=1.0)

    api = SteeringController(sdk, budgets=sp.InForceBudgets(sdk))
    api.budgets.site_w = limit_mw * 1e6
    api.set_group("research", guarantee_w=400.0)
    assert np.array_equal(np.asarray(api(s.m)), limit)

    rows = {g.name: g for g in sp.group_table(steer.ctl, s)}
    assert (rows["research"].guarantee_w, rows["research"].max_w) == (400.0, float(sdk.tdp_w[0]))
    steer(with_steering(base, json.loads(json.dumps(raised))))  # the same groups again: not rebuilt
    assert steer.rebuilds == 1
    summary = steering_view(steer, with_steering(base, raised), 3)[0].children
    assert summary.startswith("policy MaxLPS · allocation at")


def test_maxq_caps_the_allocation_at_the_efficiency_cap_and_says_the_gpus_would_hold_static_limits(sdk):
    """Every GPU asking for its TDP: under MaxLPS production (priority 0) gets more than its efficiency cap; with
    MaxQ in force no GPU is allocated above that cap (MaxLPS within MaxQ's bounds) and production gets exactly it
    (its 900 W guarantee is above the cap: cut to it); the summary says the policy and that the GPUs would hold
    static limits."""
    from factory_twin.twin.facility.resource_groups import efficiency_cap_w

    steer = sp.SnapshotSteering(sdk)
    demand = np.asarray(sdk.tdp_w, float)
    cap = np.repeat(efficiency_cap_w(sdk), GPUS)
    production = np.repeat(np.arange(8) < 4, GPUS)
    snap = snapshot(sdk, demand, demand, 10.0)
    assert np.all(np.asarray(steer(with_steering(snap, SDK_STEERING)).allocation.limit_w)[production] > cap[0] + 1)
    maxq = with_steering(snap, {**SDK_STEERING, "policy": "MaxQ"})
    limit = np.asarray(steer(maxq).allocation.limit_w, float)
    assert np.all(cap < sdk.tdp_w[0]) and np.all(limit <= cap * (1 + 1e-6))
    assert limit[production] == pytest.approx(cap[production], rel=1e-6)
    assert "policy MaxQ (its GPUs would hold static limits" in steering_view(steer, maxq, 3)[0].children


def test_the_pages_form_reads_what_is_in_force_and_builds_checked_commands(runner):
    snap = runner.snapshot()
    assert group_in_force(snap, "research") == {
        "power-group-priority": ("1", ""),
        "power-group-guarantee": ("250", "min cap"),
        "power-group-max": ("", "TDP"),
    }
    assert group_in_force(snap, "batch") is None
    boxes = {"power-group-priority": "1", "power-group-guarantee": " 400 ", "power-group-max": ""}
    cmds = steering_commands(snap, "research", boxes, "MaxLPS")  # what is in force (priority, policy): not sent
    assert [{k: v for k, v in c.items() if k != "id"} for c in cmds] == [
        {"kind": "resource_group", "group": "research", "guarantee_w": 400.0}
    ]
    cmds = steering_commands(snap, "research", boxes, "MaxQ")
    assert [c["kind"] for c in cmds] == ["resource_group", "power_policy"]
    with pytest.raises(ValueError, match=r"^guarantee \[W per GPU\]: must be a number, got 'x'"):
        steering_commands(snap, "research", {**boxes, "power-group-guarantee": "x"}, "MaxLPS")
    with pytest.raises(ValueError, match=r"^nothing to change: research and the policy are as in force"):
        steering_commands(snap, "research", {**boxes, "power-group-guarantee": "250"}, "MaxLPS")
    for c in cmds:  # the runner's reply to what the page sent
        runner.apply(c)
    reply = steering_reply(runner.snapshot(), {"ids": [c["id"] for c in cmds]})
    assert reply.className == "ok"
    assert (
        reply.children
        == "accepted: resource group research: guarantee 400 W/GPU (was 250); power policy MaxQ (was MaxLPS)"
    )
    assert steering_reply(runner.snapshot(), {"ids": ["not-yet"]}).children.startswith("sent, waiting")
    bad = steering_commands(runner.snapshot(), "research", {"power-group-max": "300"}, "MaxQ")
    runner.apply(bad[0])  # a maximum under the 400 W guarantee now in force: refused by the runner
    reply = steering_reply(runner.snapshot(), {"ids": [bad[0]["id"]]})
    assert reply.className == "error"
    assert reply.children == "refused: guarantee_w: 400 W is above max_w 300 W for group 'research'"
    assert group_in_force(runner.snapshot(), "research")["power-group-max"] == ("", "TDP")  # unchanged
