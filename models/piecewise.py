"""Piecewise-linear curves over many items in no particular order (racks), compiled with numba: ``np.interp``
searches from the previous point, which for such items branches unpredictably (50 us for 7,200 racks on a PSU
curve of 4 points, 160 us over 30 breakpoints). A concave curve per item is the lower envelope of its lines,
``max(0, min_k (a_k + b_k x))``, with no search at all; a shared curve of a few points is scanned forward."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def envelope_ratio_per_item(x, x_ref, curve, a, b):
    """``clip(thr(x[i]) / thr(x_ref[i]), 0, 1)`` per item, ``thr(x) = max(0, min_k (a[c, k] + b[c, k] x))`` with
    ``c = curve[i]`` (rows of ``a``/``b`` padded with lines that never bind: ``a = inf``); a reference throughput
    below 1e-12 counts as 1e-12."""
    out = np.empty(x.size)
    for i in range(x.size):
        c, v, r = curve[i], x[i], x_ref[i]
        low, low_ref = np.inf, np.inf
        for k in range(a.shape[1]):
            low = min(low, a[c, k] + b[c, k] * v)
            low_ref = min(low_ref, a[c, k] + b[c, k] * r)
        out[i] = min(max(max(low, 0.0) / max(low_ref, 1e-12), 0.0), 1.0)
    return out


@njit(cache=True, nogil=True)
def interp(x, xp, fp):
    """``np.interp(x, xp, fp)`` for a 1-D ``x`` and a few breakpoints, with a forward scan instead of numpy's
    search from the previous point (which costs most for points in no order); the same arithmetic as numpy's, so
    the same values bit for bit: ``slope (x - xp[j]) + fp[j]``, ``fp[j]`` at a breakpoint, the end values outside."""
    out = np.empty(x.size)
    last = xp.size - 1
    for i in range(x.size):
        v = x[i]
        if v != v:
            out[i] = v
        elif v < xp[0]:
            out[i] = fp[0]
        elif v >= xp[last]:
            out[i] = fp[last]
        else:
            j = 0
            while xp[j + 1] <= v:
                j += 1
            if xp[j] == v:
                out[i] = fp[j]
            else:
                slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
                out[i] = slope * (v - xp[j]) + fp[j]
    return out
