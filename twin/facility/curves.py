"""GPU power -> throughput curves shipped in ``data/gpu_curves.toml`` (fitted by bench/fit_gpu_curves.py).

The model (:class:`factory_twin.models.gpu.ThroughputCurve`) stays free of file access; this module
reads the table.
"""

from __future__ import annotations

import tomllib
from functools import cache
from typing import Any

import numpy as np
from factory_twin.models.gpu import DrawnPower, ThroughputCurve

from factory_twin import data


@cache
def _curves_file() -> dict[str, Any]:
    with data.path("gpu_curves.toml").open("rb") as f:
        return tomllib.load(f)


def available_curves() -> tuple[str, ...]:
    """Names of the curves shipped in ``data/gpu_curves.toml``."""
    return tuple(k for k, v in _curves_file().items() if isinstance(v, dict))


def load_curve(name: str) -> ThroughputCurve:
    """The curve ``name`` from ``data/gpu_curves.toml`` (which lists sources and fit residuals)."""
    entry = _curves_file().get(name)
    if not isinstance(entry, dict):
        raise ValueError(f"name: unknown GPU curve {name!r}; available: {', '.join(available_curves())}")
    return ThroughputCurve(np.array(entry["x"], float), np.array(entry["y"], float))


def load_drawn(name: str) -> DrawnPower | None:
    """The drawn-power fit (``[<name>.drawn]``) of curve ``name``, or None if it has none."""
    load_curve(name)  # unknown names raise with the list of curves
    d = _curves_file()[name].get("drawn")
    return None if d is None else DrawnPower(float(d["mu"]), float(d["sigma"]), float(d["eta"]))
