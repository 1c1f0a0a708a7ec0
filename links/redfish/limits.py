"""The power limits the emulated BMCs hold: one SetPoint and ControlMode per GPU, as numpy arrays.

A GPU's ``PowerLimitWatts`` (a Redfish Control excerpt) has its own SetPoint and ControlMode; a node's is the
sum of its GPUs' limits (the GPU power budget of the node, as DPS's node policies count it: GB300-High 5,600 W =
4 x 1,400 W) and writing it sets every GPU of the node to an equal share. ``Disabled`` lifts a GPU's limit (it
may draw up to ``AllowableMax``). Every change bumps the version of the GPU and of its node, from which the
resources' ETags are made; :meth:`LimitTable.write` checks ``If-Match`` and writes under one lock, so of two
writers holding the same ETag exactly one succeeds.

Bounds per GPU: ``AllowableMin`` is the rack's minimum cap (``Facility.min_cap_w``: the hardware minimum or the
workload's floor, whichever is higher), ``AllowableMax`` and ``DefaultSetPoint`` its TDP.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

import numpy as np
from factory_twin.links.redfish.layout import NodeLayout
from numpy.typing import NDArray

Array = NDArray[np.float64]
CONTROL_MODES = ("Automatic", "Override", "Manual", "Disabled")
DISABLED = CONTROL_MODES.index("Disabled")
FALLBACKS = ("min", "default")  # the safe idle policy on loss of control: AllowableMin, or DefaultSetPoint


class EtagMismatchError(Exception):
    """``If-Match`` named no current ETag of the resource."""


@dataclass(frozen=True)
class ControlView:
    """A resource's ``PowerLimitWatts`` as read (node: sums over its GPUs; mode ``None`` when they differ)."""

    setpoint_w: float
    mode: str | None
    allowable_min_w: float
    allowable_max_w: float
    default_w: float
    etag: str


class LimitTable:
    """Per-GPU SetPoints and ControlModes with node/GPU versions; thread-safe."""

    def __init__(self, layout: NodeLayout) -> None:
        f = layout.facility
        self.layout = layout
        self.gpu_min_w = layout.per_rack(f.min_cap_w).astype(float)
        self.gpu_max_w = layout.per_rack(f.tdp_w).astype(float)
        self.node_min_w = layout.per_node_sum(self.gpu_min_w)
        self.node_max_w = layout.per_node_sum(self.gpu_max_w)
        self.setpoint_w = self.gpu_max_w.copy()
        self.mode = np.zeros(layout.n_gpus, np.int8)
        self.gpu_version = np.zeros(layout.n_gpus, np.int64)
        self.node_version = np.zeros(layout.n_nodes, np.int64)
        self.epoch = secrets.token_hex(4)  # a restarted service never matches an ETag of the previous one
        self.lock = threading.Lock()
        self.changes = 0  # counts every write that changed something (readers recompute when it moves)

    # ------------------------------------------------------------------ reading
    def _etag(self, version: int) -> str:
        return f'"{self.epoch}-{version}"'

    def node_view(self, node: int) -> ControlView:
        with self.lock:
            return self._node_view(node)

    def _node_view(self, node: int) -> ControlView:
        a, b = self._span(node)
        modes = set(self.mode[a:b].tolist())
        return ControlView(
            sum(self.setpoint_w[a:b].tolist()),
            CONTROL_MODES[modes.pop()] if len(modes) == 1 else None,
            self.node_min_w.item(node),
            self.node_max_w.item(node),
            self.node_max_w.item(node),
            self._etag(self.node_version.item(node)),
        )

    def gpu_view(self, gpu: int) -> ControlView:
        with self.lock:
            return self._gpu_view(gpu)

    def _gpu_view(self, gpu: int) -> ControlView:
        return ControlView(
            self.setpoint_w.item(gpu),
            CONTROL_MODES[self.mode.item(gpu)],
            self.gpu_min_w.item(gpu),
            self.gpu_max_w.item(gpu),
            self.gpu_max_w.item(gpu),
            self._etag(self.gpu_version.item(gpu)),
        )

    def _span(self, node: int) -> tuple[int, int]:
        a = self.layout.node_first_gpu.item(node)
        return a, a + self.layout.node_gpus.item(node)

    def effective_w(self) -> Array:
        """Per-GPU limit in force [W]: the SetPoint, or AllowableMax where the control is ``Disabled``."""
        with self.lock:
            return np.where(self.mode == DISABLED, self.gpu_max_w, self.setpoint_w)

    # ------------------------------------------------------------------ writing
    def write(
        self, node: int, gpu: int | None, setpoint_w: float | None, mode: str | None, if_match: list[str] | None
    ) -> ControlView:
        """Write a node's limit (``gpu`` None: split equally over its GPUs) or one GPU's; ``if_match``: the
        ETags the client holds (``["*"]`` matches any), ``None`` for no precondition. Values must already be
        checked against :meth:`node_view`/:meth:`gpu_view` bounds. Returns the resource's view after the
        write; raises :class:`EtagMismatchError` (nothing written) when no ETag matches."""
        a, b = (gpu, gpu + 1) if gpu is not None else self._span(node)
        with self.lock:
            view = self._node_view(node) if gpu is None else self._gpu_view(gpu)
            if if_match is not None and "*" not in if_match and view.etag not in if_match:
                raise EtagMismatchError
            old = (self.setpoint_w[a:b].tolist(), self.mode[a:b].tolist())
            if setpoint_w is not None:
                self.setpoint_w[a:b] = setpoint_w / (b - a)
            if mode is not None:
                self.mode[a:b] = CONTROL_MODES.index(mode)
            if old == (self.setpoint_w[a:b].tolist(), self.mode[a:b].tolist()):
                return view
            self.gpu_version[a:b] += 1
            self.node_version[node] += 1
            self.changes += 1
            return self._node_view(node) if gpu is None else self._gpu_view(gpu)

    def fallback(self, policy: str) -> int:
        """Apply the safe idle policy to every GPU (``min``: AllowableMin, ``default``: DefaultSetPoint, mode
        Automatic); return the number of GPUs whose limit or mode changed."""
        if policy not in FALLBACKS:
            raise ValueError(f"fallback: expected one of {FALLBACKS}, got {policy!r}")
        target = self.gpu_min_w if policy == "min" else self.gpu_max_w
        with self.lock:
            moved = (self.setpoint_w != target) | (self.mode != 0)
            if moved.any():
                self.setpoint_w[moved] = target[moved]
                self.mode[moved] = 0
                self.gpu_version[moved] += 1
                self.node_version[np.unique(self.layout.gpu_node[moved])] += 1
                self.changes += 1
            return int(moved.sum())


__all__ = ["CONTROL_MODES", "FALLBACKS", "ControlView", "EtagMismatchError", "LimitTable"]
