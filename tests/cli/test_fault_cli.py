"""``simulate --fault``: a path opened on purpose from the command line, checked against the one-line diagram."""

from pathlib import Path

import xarray as xr

from factory_twin.cli import main

SMALL = str(Path(__file__).parents[1] / "data" / "tiers-small.toml")


def test_fault_opens_the_element_and_the_output_says_so(tmp_path, capsys):
    out = tmp_path / "run.nc"
    args = ["simulate", SMALL, "--duration", "10min", "--controller", "uncapped", "--out", str(out)]
    assert main([*args, "--fault", "feed-loss:utility-A@2026-08-07T00:02:00+5min"]) == 0
    ds = xr.load_dataset(out)
    assert list(ds.event_kind.values) == ["opened", "closed"] and list(ds.event_element.values) == ["utility-A"] * 2
    assert str(ds.event_time.values[1])[:19] == "2026-08-07T00:07:00"
    closed = ds.tier_closed.values[:, list(ds.element.values).index("utility-A")]
    assert closed.tolist() == [1, 1, 0, 0, 0, 0, 0, 1, 1, 1]  # state at the end of each minute 00:01 ... 00:10
    assert "breaker trips                  0" in capsys.readouterr().out


def test_an_unknown_element_or_a_bad_fault_is_refused_before_the_run(tmp_path, capsys):
    args = ["simulate", SMALL, "--duration", "10min", "--controller", "uncapped"]
    assert main([*args, "--fault", "feed-loss:utility-C@2026-08-07T00:02:00"]) == 1
    err = capsys.readouterr().err
    assert "--fault: no element ['utility-C'] in the one-line diagram of tiers-small" in err and "utility-A" in err
    assert main([*args, "--fault", "feed-loss:utility-A"]) == 1
    assert "expected KIND:NAME@TIME[+DURATION]" in capsys.readouterr().err
