"""Racks, compute nodes and GPUs by name: the hosts a site's BMCs (Redfish) and GPU exporters (DCGM) present.

Each rack's GPUs split into compute nodes of ``gpus_per_node`` (``data/racks.toml`` [nodes]: 18 trays of 4 on an
NVL72 rack). Names follow the dashboard's rack map: rack ``<hall>-<row:03d>-<slot:02d>`` (row = the rack's CDU in its
hall, slot = its place on that CDU), node ``<rack>-n<k:02d>``; nodes are numbered from 0 within their rack, GPUs from
0 within their node, racks in the facility's order. Each node carries its rack type's GPU model name (``gpu_model``,
the name nvidia-smi and DCGM report).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.twin.facility.assembly import rack_catalog
from numpy.typing import NDArray

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Nodes:
    """The compute nodes of a facility, in rack order (``[node]`` arrays)."""

    rack: IntArray  # the node's rack
    index: IntArray  # its place in the rack, from 0
    gpus: IntArray  # GPUs on it
    names: tuple[str, ...]
    gpu_model: tuple[str, ...]  # per hall (index with ``hall``)
    hall: IntArray  # the node's hall

    @property
    def n(self) -> int:
        return self.rack.size


def rack_names(f) -> list[str]:
    """``<hall>-<row:03d>-<slot:02d>`` for every rack of facility ``f``."""
    halls = f.hall_names
    return [f"{halls[h]}-{r:03d}-{s:02d}" for h, r, s in zip(f.rack_hall, f.rack_row, f.rack_slot, strict=True)]


def nodes(f) -> Nodes:
    """Every compute node of facility ``f`` (see the module docstring)."""
    per_node = f.gpus_per_node.astype(np.int64)
    count = f.gpus.astype(np.int64) // per_node
    rack = np.repeat(np.arange(f.n_racks), count)
    first = np.cumsum(count) - count
    index = np.arange(rack.size) - first[rack]
    racks = rack_names(f)
    names = tuple(f"{racks[r]}-n{k:02d}" for r, k in zip(rack.tolist(), index.tolist(), strict=True))
    return Nodes(rack, index, per_node[rack], names, gpu_models(f), f.rack_hall[rack])


def gpu_models(f) -> tuple[str, ...]:
    """The GPU model name of each hall's rack type (``data/racks.toml`` [model])."""
    catalog = rack_catalog()
    return tuple(catalog[h.rack_type]["gpu_model"] for h in f.spec.halls)


__all__ = ["Nodes", "gpu_models", "nodes", "rack_names"]
