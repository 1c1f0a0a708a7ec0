r"""Training-job power waveforms: the compute/communication swing of bulk-synchronous training.

Every iteration of a synchronous job has a compute phase (GPUs near TDP) and a communication or
checkpoint phase (GPUs near idle), so each GPU draws a periodic square wave whose edges take a finite
time. All GPUs of one job share the phase; different jobs run with independent phases. On top of the
swing come the rare large steps: job start, stop, checkpoint pauses and failure-restart outages.

Source: Choukse et al., *Power Stabilization for AI Training Datacenters*, arXiv 2508.14318 (section II,
Fig. 3: energy mostly in 0.2-3 Hz); field guide grid-dynamics.md sections 1 and 5 (V1, V9).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from factory_twin.models import checks
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def _high_time(x: Array, period_s: Array, duty: Array) -> Array:
    """Integral of a unit square wave (1 on ``[0, d T)`` of each period) from 0 to ``x`` [s]."""
    k = np.floor(x / period_s)
    return k * duty * period_s + np.minimum(x - k * period_s, duty * period_s)


def iteration_wave(
    t_s: ArrayLike,
    p_high_w: ArrayLike,
    p_low_w: ArrayLike,
    period_s: ArrayLike,
    duty: ArrayLike,
    edge_s: ArrayLike = 0.0,
    phase_s: ArrayLike = 0.0,
) -> Array:
    r"""Power of one GPU over compute/communication iterations [W]; broadcasts (jobs x time).

    .. math::
        p(t) = P_{low} + \Delta P\,\frac{S(t - \phi + t_r/2) - S(t - \phi - t_r/2)}{t_r},\quad
        S(x) = \int_0^x \mathrm{sq}(u)\,du

    where ``sq`` is 1 on the first ``d T`` of each period and 0 after: the square wave convolved with
    a box of width ``t_r`` (linear edges of rise time ``t_r``, duty ``d`` measured at half height).
    Its Fourier amplitudes are those of the square wave times :math:`|\sin x / x|`,
    :math:`x = \pi n t_r / T` (:func:`harmonic_amplitudes`).

    Parameters
    ----------
    t_s : time [s]
    p_high_w, p_low_w : compute- and communication-phase power [W], ``p_high_w >= p_low_w``
    period_s : iteration period ``T`` [s], > 0
    duty : compute share of the period ``d`` [-], in (0, 1)
    edge_s : rise/fall time ``t_r`` [s], ``0 <= t_r <= T``
    phase_s : time of the first rising edge's midpoint ``phi`` [s]
    """
    t = checks.finite("t_s", t_s)
    hi = checks.nonnegative("p_high_w", p_high_w)
    lo = checks.nonnegative("p_low_w", p_low_w)
    if np.any(hi < lo):
        raise ValueError("p_high_w: must be >= p_low_w")
    T = checks.positive("period_s", period_s)
    d = checks.in_range("duty", duty, 0.0, 1.0)
    tr = checks.nonnegative("edge_s", edge_s)
    if np.any(tr > T):
        raise ValueError("edge_s: must be <= period_s")
    return lo + (hi - lo) * wave_level(t - checks.finite("phase_s", phase_s), T, d, tr)


def wave_level(x: Array, period_s: Array, duty: Array, edge_s: Array) -> Array:
    """The normalized level (0 communication, 1 compute) of :func:`iteration_wave` at ``x`` [s] after the first rising
    edge's midpoint, for checked parameters (the hot path of a per-second loop: no checks)."""
    if np.all(edge_s > 0):
        return (_high_time(x + edge_s / 2, period_s, duty) - _high_time(x - edge_s / 2, period_s, duty)) / edge_s
    square = (np.mod(x, period_s) < duty * period_s).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ramped = (_high_time(x + edge_s / 2, period_s, duty) - _high_time(x - edge_s / 2, period_s, duty)) / edge_s
    return np.where(edge_s > 0, ramped, square)


@dataclass(frozen=True)
class JobEvents:
    """Large steps of one job over the window [s from the window start].

    ``start_s``/``stop_s``: GPUs idle before the start and after the stop. ``checkpoint_every_s`` and
    ``checkpoint_s``: every interval (from the start) the GPUs sit at communication power for the
    checkpoint's duration. ``failures_s``: at each failure the job drops to idle for ``restart_s``
    and resumes with its iteration phase reset to the restart time.
    """

    start_s: float = -np.inf
    stop_s: float = np.inf
    checkpoint_every_s: float = np.inf
    checkpoint_s: float = 0.0
    failures_s: tuple[float, ...] = field(default_factory=tuple)
    restart_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.start_s < self.stop_s:
            raise ValueError(f"stop_s: must be after start_s, got {self.stop_s!r} <= {self.start_s!r}")
        if not self.checkpoint_every_s > 0:
            raise ValueError(f"checkpoint_every_s: must be > 0 (inf: none), got {self.checkpoint_every_s!r}")
        checks.nonnegative("checkpoint_s", self.checkpoint_s)
        checks.nonnegative("restart_s", self.restart_s)
        checks.finite("failures_s", list(self.failures_s))


def job_power_w(
    t_s: ArrayLike,
    p_high_w: float,
    p_low_w: float,
    p_idle_w: float,
    period_s: float,
    duty: float,
    edge_s: float = 0.0,
    phase_s: float = 0.0,
    events: JobEvents | None = None,
) -> Array:
    r"""Per-GPU power of one job with its start, stop, checkpoint and failure-restart steps [W].

    ``p = P_idle`` outside ``[start, stop)`` and during a restart outage, ``P_low`` during a
    checkpoint, else :func:`iteration_wave` with its phase counted from the last (re)start:
    :math:`\phi = \max(t_{start}, t_{restart}) + \phi_0`. Steps are instantaneous here; the GPU
    limiter (:mod:`models.gpu_smoothing`) shapes them.
    """
    t = checks.finite("t_s", t_s)
    ev = events or JobEvents()
    checks.nonnegative("p_idle_w", p_idle_w)
    anchor = np.full(t.shape, ev.start_s if np.isfinite(ev.start_s) else 0.0)
    for tf in sorted(ev.failures_s):
        anchor = np.where(t >= tf + ev.restart_s, tf + ev.restart_s, anchor)
    p = iteration_wave(t, p_high_w, p_low_w, period_s, duty, edge_s, anchor + phase_s)
    if np.isfinite(ev.checkpoint_every_s) and ev.checkpoint_s > 0:
        since = t - anchor
        in_ckpt = (since > 0) & (np.mod(since, ev.checkpoint_every_s) >= ev.checkpoint_every_s - ev.checkpoint_s)
        p = np.where(in_ckpt, p_low_w, p)
    return np.where(job_running(t, ev), p, p_idle_w)


def job_running(t_s: ArrayLike, events: JobEvents) -> NDArray[np.bool_]:
    """Whether the job does real work at ``t_s``: started, not stopped, not in a restart outage."""
    t = checks.finite("t_s", t_s)
    outage = np.zeros(t.shape, bool)
    for tf in events.failures_s:
        outage |= (t >= tf) & (t < tf + events.restart_s)
    return (t >= events.start_s) & (t < events.stop_s) & ~outage


def site_training_power_w(per_gpu_w: ArrayLike, gpus: ArrayLike) -> Array:
    r"""Site power of many jobs: :math:`P(t) = \sum_j N_j\,p_j(t)` [W], ``per_gpu_w`` (jobs x time)."""
    p = checks.nonnegative("per_gpu_w", per_gpu_w)
    n = checks.nonnegative("gpus", gpus)
    return np.tensordot(n, p, axes=(0, 0))


# ----------------------------------------------------------------------------- closed forms (V1, V9)
def wave_mean_w(p_high_w: ArrayLike, p_low_w: ArrayLike, duty: ArrayLike) -> Array:
    r"""Mean of the square wave (edges symmetric, so also of the ramped wave): :math:`P_{low} + d\,\Delta P` [W]."""
    lo = np.asarray(p_low_w, float)
    return lo + np.asarray(duty, float) * (np.asarray(p_high_w, float) - lo)


def harmonic_amplitudes(
    delta_w: ArrayLike, duty: ArrayLike, n: ArrayLike, period_s: ArrayLike = 1.0, edge_s: ArrayLike = 0.0
) -> Array:
    r"""Peak amplitude of harmonic ``n`` (at ``n / T`` Hz) of the ramped square wave [W].

    .. math:: A_n = \frac{2\Delta P}{n\pi}\,|\sin(n\pi d)|\,\left|\frac{\sin x}{x}\right|,\quad x = \pi n t_r/T
    """
    n = np.asarray(n, float)
    if np.any(n < 1):
        raise ValueError("n: harmonic numbers start at 1")
    x = np.pi * n * np.asarray(edge_s, float) / np.asarray(period_s, float)
    return 2 * np.asarray(delta_w, float) / (n * np.pi) * np.abs(np.sin(n * np.pi * duty)) * np.abs(np.sinc(x / np.pi))


def wave_ac_rms_w(delta_w: ArrayLike, duty: ArrayLike) -> Array:
    r"""AC RMS of the sharp-edged square wave: :math:`\Delta P\sqrt{d(1-d)}` [W]."""
    d = np.asarray(duty, float)
    return np.asarray(delta_w, float) * np.sqrt(d * (1 - d))


def harmonic_energy_share(duty: float, n_max: int) -> float:
    r"""Share of the sharp square wave's AC variance in harmonics ``1..n_max``:
    :math:`\sum_{n\le n_{max}} A_n^2/2 \,/\, \Delta P^2 d(1-d)`; the fundamental alone is
    :math:`2\sin^2(\pi d)/(\pi^2 d (1-d))`."""
    n = np.arange(1, int(n_max) + 1)
    return float(np.sum(harmonic_amplitudes(1.0, duty, n) ** 2 / 2) / (duty * (1 - duty)))


def aggregate_swing_std_w(n: ArrayLike, delta_w: ArrayLike, duty: ArrayLike, synchronized: bool) -> Array:
    r"""Standard deviation of the sum of ``n`` equal square waves [W]: :math:`N\Delta P\sqrt{d(1-d)}` in
    phase, :math:`\sqrt N\,\Delta P\sqrt{d(1-d)}` with independent uniformly random phases (V9)."""
    n = np.asarray(n, float)
    return (n if synchronized else np.sqrt(n)) * wave_ac_rms_w(delta_w, duty)


def random_phases_s(period_s: Sequence[float] | ArrayLike, seed: int = 0) -> Array:
    """Independent uniformly distributed phases, one per job, in ``[0, T)`` [s] (seeded)."""
    T = checks.positive("period_s", period_s)
    return np.random.default_rng(seed).uniform(0.0, 1.0, T.shape) * T
