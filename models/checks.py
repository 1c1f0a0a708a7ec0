"""Argument validation shared by the models: clear ``ValueError`` messages that name the argument.

Each check has a fast path of one or two reductions (NaN and inf propagate through ``sum``/``min``/
``max``); the element-wise scan that builds the message runs only when the fast path fails, so the
checks cost little inside the engine's time loop.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray


def finite(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """Return ``value`` as a float array; raise if any element is NaN or infinite."""
    a = np.asarray(value, dtype=float)
    # scalars (the plant models' case, every plant step) skip the reduction; an overflowing sum of finite
    # values falls through to the exact scan
    if not math.isfinite(a.sum() if a.ndim else float(a)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{name}: must be finite, got {_first_bad(a, bad)}")
    return a


def nonnegative(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """Finite and >= 0."""
    a = finite(name, value)
    if a.size and not (a.min() if a.ndim else float(a)) >= 0:
        raise ValueError(f"{name}: must be >= 0, got {_first_bad(a, a < 0)}")
    return a


def positive(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """Finite and > 0."""
    a = finite(name, value)
    if a.size and not (a.min() if a.ndim else float(a)) > 0:
        raise ValueError(f"{name}: must be > 0, got {_first_bad(a, a <= 0)}")
    return a


def in_range(name: str, value: ArrayLike, lo: float, hi: float) -> NDArray[np.float64]:
    """Finite and within the closed interval [lo, hi]."""
    a = finite(name, value)
    if a.size and not ((a.min() >= lo and a.max() <= hi) if a.ndim else lo <= float(a) <= hi):
        raise ValueError(f"{name}: must be within [{lo:g}, {hi:g}], got {_first_bad(a, (a < lo) | (a > hi))}")
    return a


def _first_bad(a: NDArray[np.float64], mask: NDArray[np.bool_]) -> str:
    bad = a[mask] if a.ndim else a.reshape(1)
    n = int(np.count_nonzero(mask)) if a.ndim else 1
    more = f" (and {n - 1} more)" if n > 1 else ""
    return f"{float(bad.flat[0])!r}{more}"  # a plain number, not np.float64(...)
