"""The twin executes job stops (pause: checkpoint, idle, restart; resize: idle GPUs, rejoin) with their
costs: the timeline of a pause, the GPU energy book with checkpoint and restart energy, throughput only
while computing, and no change for facilities whose jobs cannot stop."""

from dataclasses import dataclass

import numpy as np
import pytest
from factory_twin.twin.simulation.controllers import Command
from factory_twin.twin.simulation.engine import Twin
from factory_twin.twin.simulation.jobs import ENERGY

from factory_twin import twin

PERIOD = 300.0


@pytest.fixture(scope="module")
def phoenix():
    f = twin.load_facility("emerald-phoenix")
    return f, twin.load_scenario("srp-2025-05-04", f)


@dataclass
class Stops:
    """Caps at TDP and fixed stop shares for every rack, re-sent every ``period_s``."""

    cap_w: np.ndarray
    paused: np.ndarray | None = None
    resized: np.ndarray | None = None
    period_s: float = PERIOD

    def __call__(self, state, time):
        return Command(self.cap_w, 0.0, self.paused, self.resized)


def run(f, sc, ctl, seconds):
    """Advance ``seconds``; return the twin and per-step (GPU W, computing share per rack, tokens/s)."""
    tw = Twin(f, sc, plant_step_s=20.0, controller=ctl)
    rows = []
    for _ in range(int(seconds // tw.plant_dt)):
        r = tw.advance()
        rows.append((r.gpu_w, tw.jobs.computing.copy(), r.tokens_per_s, r.tokens_uncapped_per_s))
    return tw, rows


def test_a_half_share_pause_spans_two_periods_and_its_energy_book_closes(phoenix):
    f, sc = phoenix
    cap = np.full(f.n_racks, 300.0)
    tw, rows = run(f, sc, Stops(cap, np.full(f.n_racks, 0.5)), 2 * PERIOD)
    j = tw.jobs
    # period 1: run 150 s, checkpoint, idle; period 2: idle, restart (restart_s), run the last 150 s:
    # one pause and one restart per job, computing exactly half the time
    np.testing.assert_array_equal(j.pauses, 1.0)
    np.testing.assert_array_equal(j.restarts, 1.0)
    share = np.mean([r[1] for r in rows], axis=0)
    np.testing.assert_allclose(share, 0.5, rtol=1e-12)
    # energy book: every joule the GPUs drew is computing at the cap's draw, a stop phase, or idle non-busy
    dt = tw.plant_dt
    eff = f.drawn_w(np.clip(cap, f.min_cap_w, f.tdp_w))  # every job busy all day in this scenario
    compute_j = sum(float(f.gpus @ (r[1] * eff)) for r in rows) * dt
    gpu_j = sum(r[0] for r in rows) * dt
    assert gpu_j == pytest.approx(compute_j + sum(j.energy_j.values()), rel=1e-12)
    ckpt = {"checkpoint": (j.ckpt_s, j.ckpt_w), "restart": (j.restart_s, j.restart_w)}
    for k, (t, w) in ckpt.items():  # each pause's checkpoint and restart at their published time and draw
        assert j.energy_j[k] == pytest.approx(float(f.gpus @ (t * w)), rel=1e-12)
    idle_s = 2 * PERIOD - 300.0 - j.ckpt_s - j.restart_s  # paused at idle draw the rest of the stop
    assert j.energy_j["paused"] == pytest.approx(float(f.gpus @ (idle_s * f.idle_w)), rel=1e-12)
    # throughput only while computing: half the tokens at the cap's throughput
    thr = np.empty(f.n_racks)
    for c, curve in enumerate(f.curves):
        idx = f.rack_class == c
        thr[idx] = curve.throughput(eff[idx] / f.tdp_w[idx])
    per_gpu = np.array([w.tokens_per_s_per_gpu for w in f.spec.workloads])[f.rack_class]
    tok = float(np.mean([r[2] for r in rows]))
    assert tok == pytest.approx(0.5 * float(f.gpus @ (per_gpu * thr)), rel=1e-12)


def test_a_full_pause_draws_idle_and_a_checkpoint_longer_than_the_share_runs_on(phoenix):
    f, sc = phoenix
    tdp = f.tdp_w.copy()
    tw, rows = run(f, sc, Stops(tdp, np.ones(f.n_racks)), PERIOD)
    j = tw.jobs
    # checkpoint from the start, then idle: no work at all, draw = checkpoint then idle
    assert max(r[2] for r in rows) == 0.0
    want = float(f.gpus @ (j.ckpt_s * j.ckpt_w + (PERIOD - j.ckpt_s) * f.idle_w))
    assert sum(r[0] for r in rows) * tw.plant_dt == pytest.approx(want, rel=1e-12)
    np.testing.assert_array_equal(j.restarts, 0.0)
    # a tiny share: the checkpoint still runs its whole length, spilling past the commanded pause
    tw, rows = run(f, sc, Stops(tdp, np.full(f.n_racks, 0.01)), 2 * PERIOD)
    assert tw.jobs.energy_j["checkpoint"] == pytest.approx(float(f.gpus @ (j.ckpt_s * j.ckpt_w)), rel=1e-12)
    assert tw.jobs.energy_j["restart"] == pytest.approx(float(f.gpus @ (j.restart_s * j.restart_w)), rel=1e-12)
    stopped_s = (1 - np.mean([r[1] for r in rows], axis=0)) * 2 * PERIOD  # 2 x 3 s commanded
    np.testing.assert_allclose(stopped_s, j.ckpt_s + j.restart_s, rtol=1e-12)


def test_resized_gpus_idle_and_rejoin_with_their_cost(phoenix):
    f, sc = phoenix
    tdp = f.tdp_w.copy()
    ctl = Stops(tdp, None, np.full(f.n_racks, 0.5))
    tw = Twin(f, sc, plant_step_s=20.0, controller=ctl)
    for _ in range(int(PERIOD // 20)):
        tw.advance()
    np.testing.assert_allclose(tw.jobs.computing, 0.5)
    assert tw.state().resized == pytest.approx(0.5)
    idle = tw.jobs.energy_j["resized_idle"]
    assert idle == pytest.approx(float(f.gpus @ (0.5 * f.idle_w)) * PERIOD, rel=1e-12)
    ctl.resized = np.zeros(f.n_racks)  # all GPUs rejoin: rejoin_s at rejoin_gpu_w before they compute
    for _ in range(int(PERIOD // 20)):
        tw.advance()
    j = tw.jobs
    assert j.energy_j["rejoin"] == pytest.approx(float(f.gpus @ (0.5 * j.rejoin_s * j.rejoin_w)), rel=1e-12)
    np.testing.assert_allclose(j.computing, 1.0)
    assert j.pauses.sum() == 0.0


def test_jobs_that_cannot_stop_keep_the_engine_as_it_was():
    f = twin.load_facility("campus-100mw")
    assert all(w.pause is None and w.resize is None for w in f.spec.workloads)
    tw = Twin(f, twin.load_scenario("hot-day-dr", f))
    assert tw.jobs is None and tw.state().paused is None
    assert set(ENERGY) == {"checkpoint", "paused", "restart", "resized_idle", "rejoin"}
