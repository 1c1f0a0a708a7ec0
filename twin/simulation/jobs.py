"""Job stops executed by the twin: pauses (checkpoint, idle, restart) and resizing, as arrays over racks.

A :class:`twin.simulation.controllers.Command` may give each rack a paused share ``q`` (of the command's period: the
job does not compute for that share of the time) and a resized share ``r`` (of the rack's busy GPUs, idle at
idle draw while the job runs on the others). Each rack's job follows a queue of at most four phases, built
at every command from the phase it is in:

* running (or restarting): run for ``(1 - q) P`` (less what the restart still needs), then checkpoint for
  ``checkpoint_s`` and stay paused until the next command; ``q = 0`` runs on;
* checkpointing (or paused): ``q = 1`` stays paused; otherwise finish the checkpoint, idle for the rest of
  ``q P`` less ``restart_s``, restart, then run.

So a pause that starts at the end of one period continues at the start of the next (one pause, not two,
for two periods with a fractional share), and a checkpoint or restart always runs its full length: a
share shorter than they need pauses longer than commanded. While running, ``1 - r`` of the GPUs compute;
GPUs that rejoin (``r`` fell) spend ``rejoin_s`` at ``rejoin_gpu_w`` first. Throughput only while running
(and only on the computing GPUs), idle draw while paused or resized away.

Each plant step, :meth:`JobStops.step` turns the queue into time shares of the step and returns what the
engine needs: the share of a busy GPU's time spent computing (``u_run``, it scales the busy draw and the
throughput) and the mean draw of the rest. Energies per phase and counts of pauses and restarts accumulate
in ``energy_j``, ``pauses`` and ``restarts`` (per rack, x GPUs x utilization).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
RUN, CKPT, PAUSED, RESTART = 0, 1, 2, 3
PHASES = ("run", "checkpoint", "paused", "restart")
ENERGY = (*PHASES[1:], "resized_idle", "rejoin")


class JobStops:
    """Pause and resize state of every rack's job (module docstring); built by :meth:`of` from a facility."""

    def __init__(self, f, ckpt_s, ckpt_w, restart_s, restart_w, min_share, rejoin_s, rejoin_w, pausable):
        n = f.n_racks
        self.f = f
        self.ckpt_s, self.ckpt_w, self.restart_s, self.restart_w = ckpt_s, ckpt_w, restart_s, restart_w
        self.min_share, self.rejoin_s, self.rejoin_w, self.pausable = min_share, rejoin_s, rejoin_w, pausable
        self.phase = np.zeros((n, 4), np.int64)  # queue: phase and time left of each segment
        self.left = np.zeros((n, 4))
        self.left[:, 1] = np.inf
        self.fresh = np.zeros((n, 4), bool)  # a checkpoint or restart not yet begun (counted when reached)
        self.share = np.ones(n)  # share of the busy GPUs the job runs on
        self.rejoin_share = np.zeros(n)
        self.rejoin_left = np.zeros(n)
        self.energy_j = {k: 0.0 for k in ENERGY}
        self.pauses = np.zeros(n)
        self.restarts = np.zeros(n)
        self.computing = np.ones(n)  # computing share of a busy GPU's time in the last step

    @classmethod
    def of(cls, f) -> JobStops | None:
        """The stops of facility ``f`` (per-class ``pause``/``resize`` of its workloads), None when no job
        may stop."""
        wl = f.spec.workloads
        if not any(w.pause or w.resize for w in wl):
            return None
        c = f.rack_class

        def col(fn):
            return np.array([fn(w) for w in wl], float)[c]

        return cls(
            f,
            col(lambda w: w.pause.checkpoint_s if w.pause else 0.0),
            col(lambda w: w.pause.checkpoint_gpu_w if w.pause else 0.0),
            col(lambda w: w.pause.restart_s if w.pause else 0.0),
            col(lambda w: w.pause.restart_gpu_w if w.pause else 0.0),
            col(lambda w: w.resize.min_share if w.resize else 1.0),
            col(lambda w: w.resize.rejoin_s if w.resize else 0.0),
            col(lambda w: w.resize.rejoin_gpu_w if w.resize else 0.0),
            np.array([w.pause is not None for w in wl])[c],
        )

    def current(self) -> NDArray[np.int64]:
        """Phase each rack is in: the first segment of its queue with time left."""
        k = np.argmax(self.left > 0, axis=1)
        return self.phase[np.arange(self.phase.shape[0]), k]

    def stopped(self) -> tuple[Array, Array]:
        """(1 where the job is not computing (checkpoint, paused, restart), idle share of its GPUs)."""
        return (self.current() != RUN).astype(float), 1.0 - self.share

    def command(self, paused_share: Array | None, resized_share: Array | None, period_s: float) -> None:
        """New queues for paused shares ``q`` of the coming ``period_s`` and resized GPU shares ``r``."""
        n = self.phase.shape[0]
        q = np.zeros(n) if paused_share is None else np.where(self.pausable, np.clip(paused_share, 0.0, 1.0), 0.0)
        r = np.zeros(n) if resized_share is None else np.clip(resized_share, 0.0, 1.0 - self.min_share)
        now = self.current()
        head_left = self.left[np.arange(n), np.argmax(self.left > 0, axis=1)]
        running = (now == RUN) | (now == RESTART)
        head_phase = np.where(running, RESTART, CKPT)
        head = np.where(now == head_phase, head_left, 0.0)
        inf = np.full(n, np.inf)
        # running: [restart rest, run, checkpoint, paused]; stopped: [checkpoint rest, paused, restart, run]
        run_len = np.where(q > 0, np.maximum((1 - q) * period_s - head, 0.0), inf)
        pz_len = np.where(q < 1, np.maximum(q * period_s - head - self.restart_s, 0.0), inf)
        self.phase = np.where(
            running[:, None], np.array([RESTART, RUN, CKPT, PAUSED]), np.array([CKPT, PAUSED, RESTART, RUN])
        )
        self.left = np.where(
            running[:, None],
            np.stack([head, run_len, np.where(q > 0, self.ckpt_s, 0.0), np.where(q > 0, inf, 0.0)], axis=1),
            np.stack([head, pz_len, np.where(q < 1, self.restart_s, 0.0), np.where(q < 1, inf, 0.0)], axis=1),
        )
        self.fresh = np.zeros((n, 4), bool)
        self.fresh[:, 2] = np.where(running, q > 0, q < 1)
        new = 1.0 - r
        grow = np.maximum(new - self.share, 0.0)
        carried = np.where(self.rejoin_left > 0, self.rejoin_share, 0.0)
        shrunk = np.maximum(carried - (self.share - new), 0.0)
        self.rejoin_share = np.where(grow > 0, np.minimum(carried + grow, new), shrunk)
        self.rejoin_left = np.where(grow > 0, self.rejoin_s, self.rejoin_left)
        self.share = new

    def step(self, dt: float, u: Array, idle_w: Array) -> tuple[Array, Array]:
        """Advance ``dt`` s: (computing share of a busy GPU's time [-], mean draw of its other time [W per
        GPU, already weighted by the time]), per rack; ``u`` is the busy share, ``idle_w`` the idle draw."""
        n = self.phase.shape[0]
        t = np.zeros((n, 4))  # time in each phase
        rem = np.full(n, dt)
        rows = np.arange(n)
        for k in range(4):
            reached = self.fresh[:, k] & (rem > 0)
            is_ckpt = self.phase[:, k] == CKPT
            self.pauses += reached & is_ckpt
            self.restarts += reached & ~is_ckpt
            self.fresh[:, k] &= ~reached
            take = np.minimum(self.left[:, k], rem)
            t[rows, self.phase[:, k]] += take
            self.left[:, k] -= take
            rem -= take
        share = t / dt
        j = np.minimum(self.rejoin_left, dt) / dt * self.rejoin_share
        self.rejoin_left = np.maximum(self.rejoin_left - dt, 0.0)
        run = share[:, RUN]
        draws = {
            "checkpoint": share[:, CKPT] * self.ckpt_w,
            "paused": share[:, PAUSED] * idle_w,
            "restart": share[:, RESTART] * self.restart_w,
            "resized_idle": run * (1 - self.share) * idle_w,
            "rejoin": run * j * self.rejoin_w,
        }
        weight = self.f.gpus * u * dt
        for k, v in draws.items():
            self.energy_j[k] += float(weight @ v)
        self.computing = run * (self.share - j)
        return self.computing, sum(draws.values())
