"""``factory-twin dashboard --policy/--group``: the resource groups the live twin's steering starts with, parsed by
``cli.options.steering_commands`` (the option, the group and the key named, in W per GPU) and checked against the
facility before anything starts (``dashboard.server.check_setup``)."""

from __future__ import annotations

import pytest
from factory_twin.dashboard.server import check_setup
from factory_twin.twin.facility.steering_spec import POLICIES

from factory_twin.cli import main
from factory_twin.cli.options import POLICY_METAVAR, steering_commands


def test_good_options_become_runner_commands():
    cmds = steering_commands("MaxQ", ["research:priority=2,guarantee=300,max=900", " production : max = 1100 "])
    assert cmds == [
        {"kind": "power_policy", "id": "--policy", "policy": "MaxQ"},
        {"kind": "resource_group", "id": "--group research", "group": "research", "priority": 2,
         "guarantee_w": 300.0, "max_w": 900.0},
        {"kind": "resource_group", "id": "--group production", "group": "production", "max_w": 1100.0},
    ]  # fmt: skip
    assert steering_commands(None, []) == []
    assert "{" + ",".join(POLICIES) + "}" == POLICY_METAVAR  # the help's choices are the spec's


@pytest.mark.parametrize(
    ("policy", "groups", "message"),
    [
        ("maxq", [], "--policy: policy: one of MaxP, MaxQ, MaxLPS, got 'maxq'"),
        (None, ["research"], "--group 'research': give NAME:key=value[,key=value] with keys priority, guarantee, max"),
        (None, [":guarantee=300"], "--group ':guarantee=300': give NAME:key=value"),
        (None, ["research:cap=300"], "--group research: unknown key 'cap' (keys priority, guarantee, max"),
        (None, ["research:guarantee"], "--group research: guarantee: give a value"),
        (None, ["research:priority=1,priority=2"], "--group research: priority given twice"),
        (None, ["research:guarantee=lots"], "--group research: guarantee [W per GPU]: must be a number, got 'lots'"),
        (None, ["research:guarantee=-5"], "--group research: guarantee [W per GPU]: must be within [0, 10000]"),
        (None, ["research:max=0"], "--group research: max [W per GPU]: must be > 0"),
        (None, ["research:max=nan"], "--group research: max [W per GPU]: must be finite"),
        (None, ["research:priority=0.5"], "--group research: priority: must be a whole number"),
        (None, ["research:guarantee=900,max=500"], "--group research: guarantee: 900 W per GPU is above max 500 W"),
    ],
)
def test_bad_options_are_refused_naming_the_option_group_and_key(policy, groups, message):
    with pytest.raises(ValueError) as e:
        steering_commands(policy, groups)
    assert str(e.value).startswith(message)


def test_the_facilitys_groups_are_checked_before_anything_starts(capsys):
    """A group the facility lacks, or a maximum under its guarantee in the file: refused at setup, naming the option;
    the CLI exits 1 with the message before binding a port or starting the twin."""
    ok = steering_commands("MaxP", ["research:guarantee=300"])
    assert check_setup("dps-sdk", None, "uncapped", ok).spec.name == "dps-sdk"
    with pytest.raises(ValueError, match=r"^--group production: guarantee_w: 900 W is above max_w 800 W"):
        check_setup("dps-sdk", None, "uncapped", steering_commands(None, ["production:max=800"]))
    assert main(["dashboard", "dps-sdk", "--controller", "uncapped", "--group", "batch:priority=1"]) == 1
    err = capsys.readouterr().err
    assert "--group batch: group: no resource group named 'batch'; groups: production, research" in err


def test_the_options_are_refused_where_no_twin_of_this_dashboard_runs(capsys):
    assert main(["dashboard", "--connect", "mqtt://127.0.0.1:1", "--group", "training:priority=1"]) == 1
    assert "--group: not with --connect" in capsys.readouterr().err
    assert main(["dashboard", "--flex-state", "state", "--policy", "MaxQ"]) == 1
    assert "--policy: not with --flex-state" in capsys.readouterr().err
