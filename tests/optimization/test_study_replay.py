"""Event replay: the KPX-like calendar keeps its rules; a tiny replay's totals add up."""

import numpy as np
import pytest
from factory_twin.optimization.studies.replay import KPX_CAPACITY_KRW_PER_KW_YR, kpx_calendar
from factory_twin.optimization.studies.runner import load_study, run_study


def test_calendar_follows_the_kpx_rules():
    starts, durs = kpx_calendar("2026-08-10", seed=3, days=360)
    t = np.array(starts, dtype="datetime64[s]")
    d = np.array(durs)
    assert 50.0 < d.sum() <= 60.0 and np.all((d >= 1.0) & (d <= 4.0)) and np.all(d * 4 == np.round(d * 4))
    h = (t - t.astype("datetime64[D]")).astype(float) / 3600.0
    assert np.all(h >= 8.0) and np.all(h + d <= 21.0) and np.all((h + d <= 12.0) | (h >= 13.0))
    assert np.all((t.astype("datetime64[D]").astype(int) + 3) % 7 < 5)  # weekdays
    assert np.all(np.diff(t) > np.timedelta64(0)) and len(set(t.astype("datetime64[D]"))) == t.size
    assert kpx_calendar("2026-08-10", seed=3, days=360) == (starts, durs)  # seeded


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    study = load_study("data/studies/kpx-replay.toml")
    study["options"]["calendar"] = {"first_day": "2026-08-10", "seed": 1, "days": 20, "hours_per_year": 5.0}
    return run_study(study, tmp_path_factory.mktemp("replay"), serial=True, progress=False)


def test_replay_totals_are_consistent(replay):
    ds = replay
    assert ds.sizes["case"] >= 2 and (ds.status == 0).all() and (ds.optimal == 1).all()
    assert float(ds.event_hours) == pytest.approx(float(ds.dr_duration_h.sum()), rel=1e-12) and ds.event_hours <= 5
    for k in ("event_reduction_mwh", "energy_reduced_mwh", "tokens_lost", "value_lost", "energy_payment"):
        assert float(ds[f"total_{k}"]) == pytest.approx(float(ds[k].sum()), rel=1e-12)
    # the import is held at (1 - 0.2) x baseline after the 15-min ramp: at least depth x baseline x hold
    hold_h = ds.dr_duration_h - 0.25
    assert np.all(ds.event_reduction_mwh >= ds.committed_mw * hold_h * (1 - 1e-6))
    assert np.all(ds.tokens_lost > 0) and np.all(ds.throughput_kept_event < 1)
    cap = KPX_CAPACITY_KRW_PER_KW_YR * 1000 * float(ds.committed_mw.mean())
    assert float(ds.capacity_payment) == pytest.approx(cap, rel=1e-12)
    net = cap + float(ds.total_energy_payment) - float(ds.total_value_lost)
    assert float(ds.net_benefit) == pytest.approx(net, rel=1e-12)
