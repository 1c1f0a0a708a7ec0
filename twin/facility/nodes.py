"""Racks, CDUs, compute nodes and GPUs by name: one naming for every link (the BMS points of DSX Exchange, the BMCs
of Redfish, the hosts of the DCGM metrics).

Each rack's GPUs split into compute nodes of ``gpus_per_node`` (``data/racks.toml`` [nodes]: 18 trays of 4 on an
NVL72 rack). Rack ``<hall>-r<row:02d>-<slot:02d>`` and CDU ``<hall>-cdu<row:02d>``, counted from 1 (row = the CDU
within its hall, slot = the rack's place on that CDU: the dashboard's rack map), node ``<rack>-n<k:02d>`` counted
from 0 within its rack as a BMC counts its trays, GPUs from 0 within their node (``GPU_0``, ``nvidia0``); racks and
nodes in the facility's order. Each node carries its rack type's GPU model name (``gpu_model``, the name nvidia-smi
and DCGM report).
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
    """``<hall>-r<row:02d>-<slot:02d>`` (from 1) for every rack of facility ``f``."""
    halls = f.hall_names
    rows = zip(f.rack_hall, f.rack_row + 1, f.rack_slot + 1, strict=True)
    return [f"{halls[h]}-r{r:02d}-{s:02d}" for h, r, s in rows]


def cdu_names(f) -> list[str]:
    """``<hall>-cdu<row:02d>`` (from 1) for every CDU of facility ``f``."""
    hall = np.asarray(f.cdu_hall)
    row = np.arange(hall.size) - np.searchsorted(hall, hall) + 1
    return [f"{f.hall_names[h]}-cdu{r:02d}" for h, r in zip(hall, row, strict=True)]


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


__all__ = ["Nodes", "cdu_names", "gpu_models", "nodes", "rack_names"]
