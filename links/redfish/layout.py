"""Nodes and GPUs of a facility as index arrays: the BMC's view of the racks.

A rack of the twin holds compute nodes of ``Facility.gpus_per_node`` GPUs each (an NVL72 rack: 18 compute
trays of 4 GPUs), named as :func:`twin.facility.nodes.nodes` names them (``<hall>-r<row>-<slot>-n<k>``, the
hosts the Prometheus link labels too); a node's GPUs are ``GPU_0`` ... on its BMC, as NVIDIA's GB200 BMCs name
them. Nodes are numbered rack by rack, GPUs node by node, so every per-node or per-rack quantity over GPUs is
one ``np.add.reduceat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from factory_twin.twin.facility.assembly import Facility
from factory_twin.twin.facility.nodes import nodes
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
Array = NDArray[np.float64]
URI_SAFE = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, eq=False)
class NodeLayout:
    """Index arrays over the facility's nodes and GPUs (``node_*`` per node, ``gpu_*`` per GPU)."""

    facility: Facility
    node_rack: IntArray
    node_slot: IntArray  # position in its rack
    node_gpus: IntArray  # GPUs on the node
    node_first_gpu: IntArray
    rack_first_node: IntArray
    rack_first_gpu: IntArray
    gpu_node: IntArray
    gpu_rack: IntArray
    gpu_slot: IntArray  # position on its node: GPU_<slot>

    node_ids: tuple[str, ...]
    gpu_model: tuple[str, ...]  # per node

    @classmethod
    def of(cls, facility: Facility) -> NodeLayout:
        f = facility
        ns = nodes(f)
        bad = next((n for n in ns.names if not URI_SAFE.fullmatch(n)), None)
        if bad is not None:
            raise ValueError(
                f"halls.name: node {bad!r} has characters a Redfish URI cannot carry (use A-Z a-z 0-9 . _ -)"
            )
        node_gpus = ns.gpus.astype(np.int64)
        node_first_gpu = np.concatenate(([0], np.cumsum(node_gpus)[:-1]))
        gpu_node = np.repeat(np.arange(ns.n), node_gpus)
        nodes_per_rack = np.bincount(ns.rack, minlength=f.n_racks)
        return cls(
            facility=f,
            node_rack=ns.rack,
            node_slot=ns.index,
            node_gpus=node_gpus,
            node_first_gpu=node_first_gpu,
            rack_first_node=np.concatenate(([0], np.cumsum(nodes_per_rack)[:-1])),
            rack_first_gpu=np.concatenate(([0], np.cumsum(f.gpus.astype(np.int64))[:-1])),
            gpu_node=gpu_node,
            gpu_rack=ns.rack[gpu_node],
            gpu_slot=np.arange(gpu_node.size) - node_first_gpu[gpu_node],
            node_ids=ns.names,
            gpu_model=tuple(ns.gpu_model[h] for h in ns.hall.tolist()),
        )

    @property
    def n_nodes(self) -> int:
        return self.node_rack.size

    @property
    def n_gpus(self) -> int:
        return self.gpu_node.size

    @cached_property
    def node_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.node_ids)}

    def gpu(self, node: int, slot: int) -> int:
        """Global index of GPU ``slot`` of ``node``; ``IndexError`` when the node has no such GPU."""
        if not 0 <= slot < self.node_gpus[node]:
            raise IndexError(slot)
        return int(self.node_first_gpu[node] + slot)

    def per_node_sum(self, gpu_values: Array) -> Array:
        """Sum over each node's GPUs."""
        return np.add.reduceat(gpu_values, self.node_first_gpu)

    def node_to_gpus(self, node_values: Array) -> Array:
        """Per-node totals (e.g. a node's power limit) as per-GPU values: an equal share on each of its GPUs."""
        return (np.asarray(node_values, float) / self.node_gpus)[self.gpu_node]

    def per_rack(self, rack_values: Array) -> Array:
        """A per-rack array repeated for every GPU."""
        return np.asarray(rack_values)[self.gpu_rack]


def rack_caps_w(facility: Facility, layout: NodeLayout, gpu_limit_w: Array) -> Array:
    """The per-rack cap [W per GPU] the engine applies for per-GPU limits ``gpu_limit_w`` [W].

    The engine holds one representative GPU per rack. Its cap is the one under which a busy GPU draws the
    mean of what the rack's busy GPUs draw under their own limits (``Facility.drawn_w`` per GPU, then
    ``cap_for_drawn_w`` of the rack mean), clipped to the rack's lowest and highest limit. So the rack's GPU
    power equals the sum over its GPUs at any utilization; equal limits give exactly that limit. What it does
    not carry: the hottest GPU of a rack with unequal limits runs hotter than the representative die.
    """
    f = facility
    drawn = f.drawn_w(gpu_limit_w, racks=layout.gpu_rack)
    mean = np.add.reduceat(drawn, layout.rack_first_gpu) / f.gpus
    lo = np.minimum.reduceat(gpu_limit_w, layout.rack_first_gpu)
    hi = np.maximum.reduceat(gpu_limit_w, layout.rack_first_gpu)
    return np.clip(f.cap_for_drawn_w(mean), lo, hi)


def gpu_power_w(facility: Facility, layout: NodeLayout, rack_gpu_power_w: Array, gpu_limit_w: Array) -> Array:
    """Each GPU's power [W] from its rack's mean GPU power ``rack_gpu_power_w`` (the twin's, per GPU) and the
    per-GPU limits: the rack mean scaled by the GPU's draw under its own limit over the rack's mean draw, so a
    rack's GPUs sum to the twin's rack GPU power and each stays within its limit."""
    drawn = facility.drawn_w(gpu_limit_w, racks=layout.gpu_rack)
    mean = np.add.reduceat(drawn, layout.rack_first_gpu) / facility.gpus
    return rack_gpu_power_w[layout.gpu_rack] * drawn / mean[layout.gpu_rack]


__all__ = ["NodeLayout", "gpu_power_w", "rack_caps_w"]
