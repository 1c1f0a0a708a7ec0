"""Grid page helpers on campus-100mw: start state from a snapshot, the what-if run, meters, the dip replay."""

from __future__ import annotations

import numpy as np
import pytest
from factory_twin.dashboard.pages import grid
from factory_twin.models.poi_metrics import compliance
from factory_twin.models.units import MW
from factory_twin.twin.grid_dynamics.fast_electrical import StartState
from factory_twin.twin.grid_dynamics.grid_codes import load_requirements
from factory_twin.twin.live.runner import Snapshot

from factory_twin import twin


@pytest.fixture(scope="module")
def snap_and_facility():
    f = twin.load_facility("campus-100mw")
    tw = twin.Twin(f, twin.load_scenario(None, f))
    r = tw.advance()
    meta = {"facility": f.spec.name, "now": {"cooling_power_mw": r.cooling_w / MW, "bess_soc_mwh": 0.0}}
    arrays = {"rack_gpu_power_w": tw.gpu_power_w.copy(), "rack_gpu_cap_w": tw.cap.copy()}
    return Snapshot(meta, arrays), f, tw


def test_start_state_from_a_snapshot_matches_the_twin(snap_and_facility):
    snap, _, tw = snap_and_facility
    st, ref = grid.start_state(snap), StartState.from_twin(tw)
    np.testing.assert_array_equal(st.gpu_power_w, ref.gpu_power_w)
    np.testing.assert_array_equal(st.gpu_cap_w, ref.gpu_cap_w)
    assert (st.mech_w, st.bess_energy_j) == (ref.mech_w, ref.bess_energy_j)


@pytest.mark.parametrize("action", ["start", "stop", "run"])
def test_what_if_moves_the_poi_as_asked(snap_and_facility, action):
    snap, f, _ = snap_and_facility
    ds = grid.what_if(f, grid.start_state(snap), 10_000, action, []).dataset
    poi = ds.poi_mw.values
    k = int(grid.EVENT_AT_S / grid.STEP_S)
    before, after = poi[: k - 10].mean(), poi[k + 500 :].mean()
    if action == "start":
        assert after > before + 5  # 10,000 GPUs x ~(1154 x 0.75 + 180 x 0.25 - 180) W ~ 7 MW more
    elif action == "stop":
        assert after < before - 5
    else:
        assert abs(after - before) < 1.0
    v = compliance(list(load_requirements("ercot-draft").rules), poi * MW, grid.STEP_S)
    cards = grid.meters(v)
    assert len(cards) == 1 and (cards[0].className == "kpi alarm") == (not v[0].ok)


def test_mitigation_lowers_the_swing(snap_and_facility):
    snap, f, _ = snap_and_facility
    rules = list(load_requirements("ercot-draft").rules)
    raw = grid.what_if(f, grid.start_state(snap), 10_000, "run", []).dataset
    bat = grid.what_if(f, grid.start_state(snap), 10_000, "run", ["battery"]).dataset
    pp = [compliance(rules, d.poi_mw.values * MW, grid.STEP_S)[0].value for d in (raw, bat)]
    assert pp[1] < 0.2 * pp[0]
    assert float(bat.rack_store_mj.max()) > 0


def test_dip_replay_message():
    _, text = grid.ride_figure(100.0, "counter-3-in-60s")
    assert "latched to backup at 15.86 s" in text and "counter-3-in-60s: 100 MW still off" in text
    _, text = grid.ride_figure(100.0, "perc1-default")
    assert "0 MW still off" in text and "latched" not in text
