"""Requirement sets and voltage-event fixtures: built-ins load with their values, user files work,
errors name the key."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factory_twin.models.ride_through import envelope_allows, ride_through, voltage_series
from factory_twin.twin.facility.spec import SpecError
from factory_twin.twin.grid_dynamics.grid_codes import (
    builtin_events,
    builtin_requirements,
    load_event,
    load_requirements,
    recovery_time_s,
)


def test_builtin_sets_carry_the_published_limits():
    assert set(builtin_requirements()) >= {
        "ercot-draft",
        "ramp-20mw-min",
        "arxiv-2508-14318-example",
        "ercot-nogrr-282",
    }
    (pp,) = load_requirements("ercot-draft").rules
    assert (pp.kind, pp.limit, pp.window_s, pp.band_hz) == ("peak_to_peak", 10.0, 5.0, (0.1, 55.0))
    ramps = load_requirements("ramp-20mw-min").rules
    assert [(r.limit, r.window_s) for r in ramps] == [(20.0, 60.0), (20.0, 600.0)]
    rt = load_requirements("ercot-nogrr-282").ride_through
    assert rt is not None and not rt.counter_allowed and (rt.recovery_share, rt.recovery_s) == (0.9, 2.0)
    # field-guide V8 through the shipped table
    v = np.array([0.25, 0.85, 0.85, 0.70, 0.45, 0.10, 1.15])
    t = np.array([0.066, 1.5, 2.5, 0.6, 0.2, 0.2, 1.0])
    assert envelope_allows(v, t, rt.bands).tolist() == [True, True, False, False, True, False, True]
    assert all(r.source for s in builtin_requirements() for r in load_requirements(s).rules)


def test_user_file_and_errors_name_the_key(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\n[[rules]]\nname = "lipa_low"\nkind = "band_amplitude"\nlimit = 10.0\n'
                    "band_hz = [0.1, 5.0]\n")  # fmt: skip
    (r,) = load_requirements(good).rules
    assert (r.kind, r.band_hz, r.units) == ("band_amplitude", (0.1, 5.0), "MW")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[rules]]\nname = "x"\nkind = "peak_to_peak"\nlimit = -1\nwindw_s = 5\n')
    with pytest.raises(SpecError) as e:
        load_requirements(bad)
    msg = str(e.value)
    assert "rules.0.limit: must be > 0, got -1" in msg and "rules.0.windw_s: unknown key" in msg
    bad.write_text('name = "bad"\n[[rules]]\nname = "x"\nkind = "ramp"\nlimit = 20\n')
    with pytest.raises(SpecError, match="window_s: rule kind 'ramp' needs window_s > 0"):
        load_requirements(bad)
    with pytest.raises(FileNotFoundError, match="requirement set 'nope'"):
        load_requirements("nope")


def test_nerc_2024_replay_per_protection_setting():
    assert "nerc-2024-07-10" in builtin_events()
    ev = load_event("nerc-2024-07-10")
    assert len(ev.dips) == 6 and sum(d.duration_s for d in ev.dips) == pytest.approx(0.341, rel=1e-12)
    t = np.arange(0.0, ev.duration_s, 1e-3)
    v = voltage_series(t, ev.dips)
    res = {k: ride_through(t, v, p) for k, p in ev.protections.items()}
    lag = 0.02 * math.log(0.75 / 0.65)  # Tv = 20 ms filter crossing 0.9 pu
    assert res["counter-3-in-60s"].latch_s == pytest.approx(15.860 + lag, abs=1e-3)
    assert res["counter-3-in-60s-merge-1s"].latch_s == pytest.approx(21.279 + lag, abs=1e-3)
    assert res["perc1-default"].online[-1] == 1.0 and math.isnan(res["perc1-default"].latch_s)
    # PERC1 defaults: back to 90 % 0.05 s + 0.9 s of ramp after the filtered voltage passes 0.6 pu
    clear = 81.665 + 0.059
    v_end = 0.25 + 0.75 * math.exp(-0.059 / 0.02)  # filtered voltage when the last dip clears
    back = recovery_time_s(res["perc1-default"].online, t, clear, 0.9)
    assert back == pytest.approx(0.02 * math.log((1 - v_end) / 0.4) + 0.05 + 0.9, abs=3e-3)
    slow = recovery_time_s(res["oem-slow-return"].online, t, clear, 0.9)
    assert slow == pytest.approx(0.02 * math.log((1 - v_end) / 0.1) + 5.0 + 0.9 * 12.0, abs=3e-3)
