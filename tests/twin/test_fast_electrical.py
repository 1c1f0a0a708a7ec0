"""Fast electrical run: agreement with the main twin at rest, group aggregation against a per-rack
sum, energy books with every storage layer, hand-back, and errors naming the option."""

from __future__ import annotations

import numpy as np
import pytest
from factory_twin.models.gpu_smoothing import SmoothingProfile
from factory_twin.models.storage_split import SplitLaw
from factory_twin.models.training_power import JobEvents, job_power_w
from factory_twin.twin.facility.assembly import assemble, rack_catalog
from factory_twin.twin.facility.spec import Bess as BessSpec
from factory_twin.twin.grid_dynamics.fast_electrical import (
    Mitigation,
    RackLayer,
    StartState,
    TrainingJob,
    bess_ramp_law,
    place_jobs,
    run_fast,
)
from factory_twin.twin.simulation.plant import build_plant

from factory_twin import twin

REL = 1e-9


@pytest.fixture(scope="module")
def site():
    """campus-100mw with a 40 MW / 80 MWh BESS added, advanced one plant step."""
    base = twin.load_facility("campus-100mw")
    grid = base.spec.grid.model_copy(update={"bess": BessSpec(energy_mwh=80.0, power_mw=40.0)})
    f = assemble(base.spec.model_copy(update={"grid": grid}), rack_catalog(), base.source)
    tw = twin.Twin(f, twin.load_scenario(None, f))
    tw.advance()
    return f, tw, StartState.from_twin(tw)


def test_at_rest_the_fast_run_reproduces_the_twins_grid_import(site):
    f, tw, start = site
    run = run_fast(f, start, [], duration_s=1.0)
    assert run.poi_w == pytest.approx(np.full(100, tw.state().grid_import_w), rel=1e-12)
    assert run.dataset.attrs["energy_book_residual"] == pytest.approx(0.0, abs=REL)
    np.testing.assert_array_equal(run.rack_mean_gpu_w(), start.gpu_power_w)


def test_groups_equal_the_per_rack_sum(site):
    f, _, start = site
    job = TrainingJob("j", 20_000, period_s=1.5, duty=0.6, edge_s=0.1, phase_s=0.3, events=JobEvents(start_s=2.0))
    run = run_fast(f, start, [job], duration_s=10.0, dt_s=0.01)
    owner = place_jobs(f, [job])
    racks = np.flatnonzero(owner == 0)
    assert racks.size == 278 and f.gpus[racks].sum() >= 20_000  # whole 72-GPU racks
    t = np.arange(1000) * 0.01
    p_high = np.minimum(f.demand_w, start.gpu_cap_w)
    gpu = np.repeat(np.where(owner == 0, 0.0, start.gpu_power_w)[:, None], t.size, axis=1)
    for r in racks:
        gpu[r] = job_power_w(t, p_high[r], f.idle_w[r], f.idle_w[r], 1.5, 0.6, 0.1, 0.3, job.events)
    dc = f.gpus[:, None] * gpu + f.non_gpu_w[:, None]
    plant = build_plant(f)
    rack_in = plant.psu_input_w(dc, (f.psu_count * f.psu_rating_w)[:, None])
    want = f.topology.flow(f.topology.routing(), rack_in, start.mech_w).grid_w  # every rack through the diagram
    assert run.poi_w == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("with_bess", [False, True])
def test_energy_books_close_with_every_layer(site, with_bess):
    f, _, start = site
    job = TrainingJob("j", 30_000, events=JobEvents(start_s=5.0, checkpoint_every_s=20.0, checkpoint_s=3.0))
    mit = Mitigation(
        SmoothingProfile(0.6, 500.0, 300.0, 2.0, 1.1),
        (
            RackLayer("shelf", 65.0, 560.0, 0.99, SplitLaw(tau_s=0.02, soc_gain_per_s=1.0)),
            RackLayer("battery", 20_000.0, 1400.0, 0.922, SplitLaw(tau_s=5.0, soc_gain_per_s=0.01)),
        ),
        bess_ramp_law(10.0, 20.0, 0.001) if with_bess else None,
    )
    run = run_fast(f, start, [job], mit, duration_s=40.0)
    a = run.dataset.attrs
    book = a["dc_load_j"] + a["mech_j"] + a["conversion_loss_j"] + a["storage_loss_j"] + a["stored_change_j"]
    assert a["poi_energy_j"] == pytest.approx(book, rel=REL)
    assert abs(a["energy_book_residual"]) < REL
    assert a["storage_loss_j"] > 0 and a["floor_burn_j"] > 0 and 0 < a["throughput_kept"] < 1
    poi = run.poi_w
    if with_bess:  # the BESS setpoint (SOC term included) ramps at most 10 MW/min while the BESS has room
        assert np.max(np.abs(np.diff(poi))) / 0.01 * 60 / 1e6 <= 10.0 * (1 + 1e-9)
        assert a["bess_peak_mw"] > 1.0
    else:
        assert a["bess_peak_mw"] == 0.0


def test_jobs_that_do_not_fit_name_the_option(site):
    f, _, start = site
    with pytest.raises(ValueError, match="--jobs: job 'huge' needs 1,000,000 GPUs; 45,360 free"):
        run_fast(f, start, [TrainingJob("huge", 1_000_000)], duration_s=1.0)
    with pytest.raises(ValueError, match="gpus: job 'x'"):
        TrainingJob("x", 0)
