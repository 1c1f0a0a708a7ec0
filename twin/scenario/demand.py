r"""Per-second GPU power demand of a facility's workloads: synchronous training swings, inference with diurnal and
bursty load, idle and checkpoint phases, a job mix per hall (parameters and sources: ``data/workload_power.toml``).

Demand is what a GPU would draw over one second with no power limit. Per rack (all GPUs of a rack run one job or one
replica), scaled per GPU by a static board-to-board spread ``(1 + s z_i)``, ``z_i`` standard normal clipped at 3:

* **training** (a workload class whose curve is not an inference curve): the class's racks of each hall split into
  jobs of contiguous racks (log-uniform sizes). A job runs while the class's utilization (the scenario's workload
  profile: the share of its GPUs busy) covers its rank among the class's jobs; a running job's GPUs draw the
  iteration wave of :func:`models.training_power.iteration_wave` (compute at the class's uncapped draw,
  communication at idle, period and duty per job) averaged over the second, the wave's exact 1 s box mean:
  ``iteration_wave(t + 1/2, ..., edge_s=1)``; every ``checkpoint_every_s`` they sit at the communication draw for
  ``checkpoint_s``; interruptions arrive as a Poisson process of rate ``interruptions_per_gpu_h x GPUs`` and idle
  the job for ``restart_s``. Jobs that do not run draw idle.
* **inference**: one replica per rack; its load is the class's utilization times ``(1 + x)``, ``x`` an
  Ornstein-Uhlenbeck process (relative std ``burst_sigma``, correlation time ``burst_tau_s``), plus long-prompt
  bursts (Poisson, ``prompt_rate_per_h``, adding ``prompt_boost`` of full load for ``prompt_s``), clipped to
  [0, 1]; power = idle + load x (uncapped draw - idle).

Each step returns the per-rack mean demand, the draw a rack's GPUs reach while computing (the training wave's
top; what a limit must clear not to slow them) and the tokens per second the work demands, which a limit slows along
the class's throughput-vs-cap curve (:meth:`Demand.tokens_delivered`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from factory_twin.models.gpu import ClassCurves
from factory_twin.models.training_power import iteration_wave, wave_level
from factory_twin.models.units import S_PER_H
from factory_twin.twin.facility.resource_groups import units_per_rack
from numpy.typing import NDArray

from factory_twin import data

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
UTILIZATION_EVERY_S = 60.0  # the scenario's utilization is read once a minute


@lru_cache(maxsize=1)
def workload_power() -> dict:
    """``data/workload_power.toml`` (sources there)."""
    with data.path("workload_power.toml").open("rb") as fh:
        return tomllib.load(fh)


def is_inference(curve: str) -> bool:
    """Whether a workload class with throughput curve ``curve`` is served as inference replicas."""
    return "inference" in curve


@dataclass(frozen=True)
class DemandStep:
    """One second of demand: per rack the mean demand per GPU [W], the compute-phase draw per GPU [W] and the tokens
    per second the work demands (at no limit); per GPU the demand [W] (float32, rack by rack; per steering unit of
    ``gpus_per_unit`` GPUs, the mean of its GPUs' demands, with the same random draws as per GPU)."""

    rack_w: Array
    rack_peak_w: Array
    rack_tokens_per_s: Array
    gpu_w: NDArray[np.float32]


class Demand:
    """The per-second demand of facility ``f`` under ``scenario`` from ``start`` (module docstring); seeded."""

    def __init__(self, f, scenario, start: np.datetime64 | str, seed: int = 0, params: dict | None = None,
                 gpus_per_unit: int = 1):  # fmt: skip
        p = params or workload_power()
        self.f, self.scenario = f, scenario
        self.t0 = np.datetime64(start, "s")
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        tr, inf = p["training"], p["inference"]
        self.kind_inf = np.array([is_inference(w.curve) for w in f.spec.workloads])[f.rack_class]
        self.tokens_per_gpu = np.array([w.tokens_per_s_per_gpu for w in f.spec.workloads])[f.rack_class]
        # jobs: contiguous training racks of each hall and class, log-uniform sizes
        job_of_rack = np.full(f.n_racks, -1, np.int64)
        job_class, job_size = [], []
        lo, hi = np.log(tr["job_racks"][0]), np.log(tr["job_racks"][1])
        for h in range(len(f.hall_names)):
            for c in range(len(f.class_names)):
                racks = np.flatnonzero((f.rack_hall == h) & (f.rack_class == c) & ~self.kind_inf)
                i = 0
                while i < racks.size:
                    size = max(1, min(racks.size - i, int(round(np.exp(rng.uniform(lo, hi))))))
                    job_of_rack[racks[i : i + size]] = len(job_class)
                    job_class.append(c)
                    job_size.append(size)
                    i += size
        self.job_of_rack = job_of_rack
        self.job_class = np.array(job_class, np.int64)
        n_jobs = self.job_class.size
        self.job_gpus = np.bincount(job_of_rack[job_of_rack >= 0], f.gpus[job_of_rack >= 0], n_jobs)
        # a job runs while the class utilization covers its rank among the class's jobs (ranks random)
        rank = np.zeros(n_jobs)
        for c in range(len(f.class_names)):
            idx = np.flatnonzero(self.job_class == c)
            w = self.job_gpus[idx]
            order = rng.permutation(idx.size)
            cum = np.cumsum(w[order]) / max(w.sum(), 1.0)
            rank[idx[order]] = cum - w[order] / max(w.sum(), 1.0) / 2  # the job's middle GPU
        self.job_rank = rank
        self.period = rng.uniform(tr["period_s"][0], tr["period_s"][1], n_jobs)
        self.phase = rng.uniform(0.0, 1.0, n_jobs) * self.period
        self.duty = float(tr["duty"])
        iteration_wave(0.0, 1.0, 0.0, self.period, self.duty, 1.0, self.phase)  # the wave's parameters, checked once
        self.ckpt_every, self.ckpt_s = float(tr["checkpoint_every_s"]), float(tr["checkpoint_s"])
        self.ckpt_phase = rng.uniform(0.0, self.ckpt_every, n_jobs)
        self.fail_rate_s = float(tr["interruptions_per_gpu_h"]) / S_PER_H * self.job_gpus
        self.restart_s = float(tr["restart_s"])
        self.outage_until = np.full(n_jobs, -np.inf)
        self.interruptions = 0
        # inference replicas (one per rack)
        self.inf_racks = np.flatnonzero(self.kind_inf)
        self.sigma, self.tau = float(inf["burst_sigma"]), float(inf["burst_tau_s"])
        self.x = rng.normal(0.0, self.sigma, self.inf_racks.size)
        self.prompt_rate_s = float(inf["prompt_rate_per_h"]) / S_PER_H
        self.prompt_s, self.prompt_boost = float(inf["prompt_s"]), float(inf["prompt_boost"])
        self.prompt_until = np.full(self.inf_racks.size, -np.inf)
        # per-GPU static spread
        spread = np.where(self.kind_inf, inf["gpu_spread"], tr["gpu_spread"])
        n_gpu = f.gpus.astype(np.int64)
        z = np.clip(rng.standard_normal(int(n_gpu.sum())), -3.0, 3.0)
        factor = 1.0 + np.repeat(spread, n_gpu) * z
        n_unit = units_per_rack(f, gpus_per_unit)  # a unit's demand: the mean of its GPUs' (the same draws)
        self.gpu_factor = factor.reshape(-1, int(gpus_per_unit)).mean(axis=1).astype(np.float32)
        self.uniform = bool(np.all(n_unit == n_unit[0]))
        self.n_unit = n_unit  # entries per rack: GPUs, or steering units
        self._u: tuple[float, Array] | None = None
        tr = np.flatnonzero(job_of_rack >= 0)
        self._training = (tr, job_of_rack[tr])  # training racks and their jobs
        self._inf_class = f.rack_class[self.inf_racks]
        self._u_inf: tuple[Array | None, Array] = (None, np.zeros(0))
        self._span = f.demand_w - f.idle_w
        self._tokens_per_rack = self.tokens_per_gpu * f.gpus
        self._curves = ClassCurves(tuple(f.curves), f.rack_class)
        self._inv_tdp = 1.0 / f.tdp_w

    # ------------------------------------------------------------------ pieces
    def utilization(self, t_s: float) -> Array:
        """Busy share per workload class at ``t_s`` s after the start (read once a minute)."""
        key = np.floor(t_s / UTILIZATION_EVERY_S)
        if self._u is None or self._u[0] != key:
            when = np.array([self.t0 + np.timedelta64(int(key * UTILIZATION_EVERY_S), "s")])
            self._u = (key, np.array([self.scenario.utilization(c, when)[0] for c in self.f.class_names]))
        return self._u[1]

    def _inf_utilization(self, u: Array) -> Array:
        """Each inference rack's class utilization (kept while ``u``, read once a minute, is the same array)."""
        if self._u_inf[0] is not u:
            self._u_inf = (u, u[self._inf_class])
        return self._u_inf[1]

    def step(self, t_s: float, dt_s: float = 1.0) -> DemandStep:
        """The demand over ``[t_s, t_s + dt_s)`` (seconds after the start); advances the random processes."""
        f = self.f
        u = self.utilization(t_s)
        frac = np.zeros(f.n_racks)  # share of the way from idle to the uncapped draw (mean over the second)
        peak = np.zeros(f.n_racks)
        n_jobs = self.job_class.size
        if n_jobs:
            hit = self.rng.random(n_jobs) < self.fail_rate_s * dt_s
            if hit.any():
                self.interruptions += int(hit.sum())
                self.outage_until = np.where(hit, t_s + self.restart_s, self.outage_until)
            wave = wave_level(t_s + dt_s / 2 - self.phase, self.period, self.duty, min(dt_s, 1.0))
            ckpt = np.mod(t_s - self.ckpt_phase, self.ckpt_every) < self.ckpt_s
            on = (self.job_rank < u[self.job_class]) & (self.outage_until <= t_s) & ~ckpt  # computing
            tr, j = self._training
            frac[tr] = (wave * on)[j]
            peak[tr] = on[j]
        tokens = peak.copy()
        if self.inf_racks.size:
            a = np.exp(-dt_s / self.tau)
            noise = self.rng.standard_normal(self.x.size)
            noise *= self.sigma * np.sqrt(1 - a * a)
            self.x *= a
            self.x += noise
            start = self.rng.random(self.x.size) < self.prompt_rate_s * dt_s
            self.prompt_until[start] = t_s + self.prompt_s
            load = self._inf_utilization(u) * (1.0 + self.x)
            load += (self.prompt_until > t_s) * self.prompt_boost
            np.minimum(np.maximum(load, 0.0, out=load), 1.0, out=load)  # clipped to [0, 1]
            frac[self.inf_racks] = load
            peak[self.inf_racks] = load
            tokens[self.inf_racks] = load
        rack_w = f.idle_w + frac * self._span
        rack_peak = f.idle_w + peak * self._span
        return DemandStep(rack_w, rack_peak, tokens * self._tokens_per_rack, self._per_gpu(rack_w))

    def _per_gpu(self, rack_w: Array) -> NDArray[np.float32]:
        r = rack_w.astype(np.float32)
        if self.uniform:
            return (r[:, None] * self.gpu_factor.reshape(r.size, -1)).ravel()
        return np.repeat(r, self.n_unit) * self.gpu_factor

    def tokens_delivered(self, step: DemandStep, rack_limit_w: Array) -> Array:
        """Tokens per second per rack under mean per-GPU limits ``rack_limit_w`` [W]: the demanded tokens times
        ``thr(min(limit, peak) / TDP) / thr(peak / TDP)`` on the class's throughput-vs-cap curve (``peak`` the
        compute-phase draw), 1 where the limit clears the peak."""
        out = step.rack_tokens_per_s.copy()
        if np.any(rack_limit_w < step.rack_peak_w - 1e-9):  # thr is non-decreasing: the ratio is 1 where not cut
            out *= self._curves.ratio(rack_limit_w * self._inv_tdp, step.rack_peak_w * self._inv_tdp)
        return out
