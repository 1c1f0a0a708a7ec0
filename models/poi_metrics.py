r"""Point-of-interconnection metrics of a power record: ramps, band-passed rolling peak-to-peak, amplitude
spectrum per band, and the verdict against a requirement set.

- Ramp over window ``w``: :math:`\max_t |\bar P(t) - \bar P(t - w)|/w`, ``P̄`` the moving mean over the
  averaging interval; before the record the load sat at its first value (the fast run starts at rest).
- Rolling peak-to-peak: :math:`\max_t [\max_{[t-w, t]} y - \min_{[t-w, t]} y]`, ``y`` the record after a
  causal Butterworth band-pass started at rest (edges above Nyquist are dropped).
- Spectrum: one-sided peak amplitude :math:`A_k = 2|X_k|/N` of the mean-removed record (rectangular
  window: exact at harmonics when the record holds whole periods); per band the largest amplitude and
  the share of AC variance :math:`\sum A_k^2/2` inside it.

Source: ERCOT LCL power-variation draft (10 MW p-p in any 5 s after 0.1-55 Hz), CAISO/IESO ramp rules
(20 MW/min), arXiv 2508.14318 section III-A (band and spectral cap); field guide grid-dynamics.md §2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models import checks
from factory_twin.models.units import MW, S_PER_MIN
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, signal

Array = NDArray[np.float64]


def moving_mean(x_w: ArrayLike, dt_s: float, window_s: float) -> Array:
    """Trailing moving mean over ``window_s`` (rounded to whole steps), the record held at its first
    value before it starts."""
    x = checks.finite("x_w", x_w)
    n = max(int(round(window_s / dt_s)), 1)
    c = np.concatenate([np.full(n, x[0]), x]).cumsum()
    return (c[n:] - c[:-n]) / n


def ramp_series_w_s(x_w: ArrayLike, dt_s: float, window_s: float, averaging_s: float | None = None) -> Array:
    r"""Change of the averaged power over the trailing window per second: :math:`(\bar P(t) - \bar P(t-w))/w` [W/s]."""
    checks.positive("window_s", window_s)
    avg = moving_mean(x_w, dt_s, averaging_s or dt_s)
    n = int(round(window_s / dt_s))
    lagged = np.concatenate([np.full(n, avg[0]), avg])[: avg.size]
    return (avg - lagged) / (n * dt_s)


def max_ramp_w_s(x_w: ArrayLike, dt_s: float, window_s: float, averaging_s: float | None = None) -> float:
    r"""Largest ramp over any window ``w``, up or down: :math:`\max|\Delta\bar P|/w` [W/s]."""
    return float(np.max(np.abs(ramp_series_w_s(x_w, dt_s, window_s, averaging_s))))


def band_pass(x_w: ArrayLike, dt_s: float, band_hz: tuple[float, float], order: int = 2) -> Array:
    """Causal Butterworth band-pass (``order`` per edge), started at rest at the first value; an upper
    edge at or above Nyquist leaves a high-pass, a lower edge of 0 a low-pass."""
    x = checks.finite("x_w", x_w)
    lo, hi = band_hz
    nyq = 0.5 / dt_s
    if lo > 0 and hi < nyq:
        sos = signal.butter(order, [lo, hi], btype="bandpass", fs=1 / dt_s, output="sos")
    elif lo > 0:
        sos = signal.butter(order, lo, btype="highpass", fs=1 / dt_s, output="sos")
    elif hi < nyq:
        sos = signal.butter(order, hi, btype="lowpass", fs=1 / dt_s, output="sos")
    else:
        return x - x.mean()
    y, _ = signal.sosfilt(sos, x, zi=signal.sosfilt_zi(sos) * x[0])
    if lo > 0:
        return y
    return y - x[0]


def rolling_peak_to_peak(y: ArrayLike, dt_s: float, window_s: float) -> Array:
    """Peak-to-peak over the trailing window at each sample (windows shorter at the start)."""
    y = checks.finite("y", y)
    n = max(int(round(window_s / dt_s)), 1) + 1  # a window of w seconds spans n samples
    origin = (n - 1) // 2  # trailing window: [k - n + 1, k]
    hi = ndimage.maximum_filter1d(y, n, origin=origin, mode="nearest")
    lo = ndimage.minimum_filter1d(y, n, origin=origin, mode="nearest")
    return hi - lo


def max_peak_to_peak_w(
    x_w: ArrayLike, dt_s: float, window_s: float, band_hz: tuple[float, float] | None = None
) -> float:
    """Largest rolling peak-to-peak over ``window_s`` [W], after the band-pass when one is given."""
    y = band_pass(x_w, dt_s, band_hz) if band_hz else checks.finite("x_w", x_w)
    return float(rolling_peak_to_peak(y, dt_s, window_s).max())


def amplitude_spectrum(x_w: ArrayLike, dt_s: float) -> tuple[Array, Array]:
    """Frequencies [Hz] and one-sided peak amplitudes [W] of the mean-removed record (no window)."""
    x = checks.finite("x_w", x_w)
    a = np.abs(np.fft.rfft(x - x.mean())) * 2 / x.size
    if x.size % 2 == 0:
        a[-1] /= 2  # the Nyquist bin is not doubled
    return np.fft.rfftfreq(x.size, dt_s), a


def line_share(freq_hz: ArrayLike, amp_w: ArrayLike, band_hz: tuple[float, float], mean_w: float) -> float:
    r"""Energy of the largest spectral line inside ``[lo, hi]`` Hz as a share of the record's total energy [-].

    .. math:: s = \max_{f_k \in [lo, hi]} \frac{A_k^2/2}{\bar P^2 + \sum_{f_j > 0} A_j^2/2}

    The denominator is the mean square of the record (Parseval: the DC line plus the AC variance), so a swing
    small against the mean load passes and smoothing or storage that shrinks the line lowers the share. Reading
    of the example specification of arXiv 2508.14318 v2 section III-A ("maximum allowed spectral magnitude" in
    the critical band, "20 % of total harmonic energy") as a cap per line; ``data/grid_codes`` says why.
    ``amp_w`` are one-sided peak amplitudes of the mean-removed record (:func:`amplitude_spectrum`).
    """
    f, a = np.asarray(freq_hz), np.asarray(amp_w)
    inside = (f >= band_hz[0]) & (f <= band_hz[1]) & (f > 0)
    total = float(mean_w) ** 2 + float(np.sum(a[f > 0] ** 2)) / 2
    return float(a[inside].max(initial=0.0) ** 2 / 2 / total) if total > 0 else 0.0


def band_metrics(freq_hz: ArrayLike, amp_w: ArrayLike, band_hz: tuple[float, float]) -> tuple[float, float]:
    """``(largest amplitude [W], share of AC variance [-])`` inside ``[lo, hi]`` Hz."""
    f, a = np.asarray(freq_hz), np.asarray(amp_w)
    inside = (f >= band_hz[0]) & (f <= band_hz[1]) & (f > 0)
    var = float(np.sum(a[f > 0] ** 2))
    return float(a[inside].max(initial=0.0)), float(np.sum(a[inside] ** 2) / var) if var > 0 else 0.0


# ----------------------------------------------------------------------------- requirement rules
SPECTRAL = ("band_amplitude", "band_share", "line_share")  # rule kinds measured on the amplitude spectrum


@dataclass(frozen=True)
class Rule:
    """One limit of a requirement set (engineering units at this edge).

    ``kind``: ``"ramp"`` (``limit`` MW/min over ``window_s``, mean over ``averaging_s``), ``"peak_to_peak"``
    (``limit`` MW over ``window_s`` after ``band_hz``), ``"band_amplitude"`` (``limit`` MW peak amplitude of
    any line in ``band_hz``), ``"band_share"`` (``limit`` share of AC variance in ``band_hz``), ``"line_share"``
    (``limit`` share of the record's total energy in any one line in ``band_hz``: :func:`line_share`).
    """

    name: str
    kind: str
    limit: float
    window_s: float = 0.0
    averaging_s: float = 0.0
    band_hz: tuple[float, float] | None = None
    source: str = ""

    @property
    def units(self) -> str:
        return {"ramp": "MW/min", "peak_to_peak": "MW", "band_amplitude": "MW"}.get(self.kind, "-")


@dataclass(frozen=True)
class Verdict:
    """A rule's measured value against its limit (same units as the rule)."""

    rule: Rule
    value: float

    @property
    def ok(self) -> bool:
        return self.value <= self.rule.limit

    @property
    def margin(self) -> float:
        """Limit over value: > 1 passes with room, < 1 fails [-]."""
        return self.rule.limit / self.value if self.value > 0 else np.inf


def evaluate(rule: Rule, x_w: ArrayLike, dt_s: float, spectrum: tuple[Array, Array] | None = None) -> Verdict:
    """Measure ``rule`` on the POI record ``x_w`` [W] sampled every ``dt_s`` [s]."""
    if rule.kind == "ramp":
        v = max_ramp_w_s(x_w, dt_s, rule.window_s, rule.averaging_s or None) * S_PER_MIN / MW
    elif rule.kind == "peak_to_peak":
        v = max_peak_to_peak_w(x_w, dt_s, rule.window_s, rule.band_hz) / MW
    elif rule.kind in ("band_amplitude", "band_share"):
        f, a = spectrum if spectrum is not None else amplitude_spectrum(x_w, dt_s)
        amp, share = band_metrics(f, a, rule.band_hz or (0.0, np.inf))
        v = amp / MW if rule.kind == "band_amplitude" else share
    elif rule.kind == "line_share":
        f, a = spectrum if spectrum is not None else amplitude_spectrum(x_w, dt_s)
        v = line_share(f, a, rule.band_hz or (0.0, np.inf), float(np.mean(x_w)))
    else:
        raise ValueError(f"kind: unknown rule kind {rule.kind!r} in rule {rule.name!r}")
    return Verdict(rule, float(v))


def compliance(rules: list[Rule], x_w: ArrayLike, dt_s: float) -> list[Verdict]:
    """Verdicts of every rule on one record (the spectrum computed once)."""
    spec = amplitude_spectrum(x_w, dt_s) if any(r.kind in SPECTRAL for r in rules) else None
    return [evaluate(r, x_w, dt_s, spec) for r in rules]
