"""GPU metrics under the NVIDIA DCGM exporter's names, types, help texts and labels, derived from the twin's racks.

Families (name, type and help as dcgm-exporter's ``etc/default-counters.csv``; the enforced limit is DCGM field
164, which a site adds through a custom counters file)::

    DCGM_FI_DEV_POWER_USAGE               gauge    Power draw (in W).
    DCGM_FI_DEV_GPU_TEMP                  gauge    GPU temperature (in C).
    DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION  counter  Total energy consumption since boot (in mJ).
    DCGM_FI_DEV_ENFORCED_POWER_LIMIT      gauge    Effective power limit that the driver enforces after taking
                                                   into account all limiters (in W).

Labels, in the exporter's order: ``gpu`` (index on its node), ``UUID``, ``pci_bus_id``, ``device`` (``nvidia<gpu>``),
``modelName``, ``Hostname`` (the node, :mod:`twin.facility.nodes`). UUIDs are name-based (RFC 4122 version 5 of
facility, host and index) so they stay the same across restarts; PCI bus ids are synthetic, one per GPU of a node.
Values print as the exporter prints them: power and limits with six decimals, temperature and energy as integers.

From per-rack state to per-GPU series: the twin keeps one state per rack for its GPUs (the mean power per GPU
over the latest plant step, the representative die temperature, the cap, the energy drawn per GPU since the twin
started). Every GPU of a rack reports its rack's values: power = the rack's mean power per GPU, so the sum over a
rack's GPUs is the rack's GPU power and the sum over all GPUs is the campus GPU power meter; temperature = the
rack's die temperature (rounded to whole degC, as DCGM reports); energy = the rack's energy per GPU in whole mJ
(a counter since the twin started, the exporter's "since boot"); enforced limit = the rack's cap (between the GPU's
minimum cap and TDP). The twin does not model which of a rack's GPUs are idle and which busy.

``rack`` aggregation (for 1 GW campuses: ~518k GPUs make ~2 M series): one series per rack under the same names,
labels ``gpu="all"``, ``gpus="<count>"``, ``modelName``, ``Hostname="<rack>"``; power and energy are the rack's sums
over its GPUs (``sum()`` over the series still gives the campus totals), temperature and limit the per-GPU values
(the same for every GPU of the rack).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import numpy as np
from factory_twin.links.prometheus.exposition import header, labels, shared_value_block
from factory_twin.twin.facility.nodes import gpu_models, nodes, rack_names
from numpy.typing import NDArray

POWER, TEMP, ENERGY, LIMIT = (
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_ENFORCED_POWER_LIMIT",
)
FIELDS: dict[str, tuple[str, str]] = {
    POWER: ("gauge", "Power draw (in W)."),
    TEMP: ("gauge", "GPU temperature (in C)."),
    ENERGY: ("counter", "Total energy consumption since boot (in mJ)."),
    LIMIT: ("gauge", "Effective power limit that the driver enforces after taking into account all limiters (in W)."),
}
GpuSeries = Literal["gpu", "rack"]
_UUID_NS = uuid.UUID("6f1d4c2e-9b7a-5e3f-8a21-7c4d0b9e6a53")  # this project's namespace for GPU UUIDs


@dataclass(frozen=True)
class RackGpus:
    """Per-rack GPU state [per GPU of the rack]: mean power over the latest plant step [W], die temperature
    [degC], cap [W], energy drawn since the twin started [J]."""

    power_w: NDArray[np.float64]
    temp_c: NDArray[np.float64]
    cap_w: NDArray[np.float64]
    energy_j: NDArray[np.float64]


class DcgmSeries:
    """The label sets of a facility's GPUs (rendered once) and the DCGM families for a :class:`RackGpus`."""

    def __init__(self, f, mode: GpuSeries = "gpu"):
        if mode not in ("gpu", "rack"):
            raise ValueError(f"gpu series: must be 'gpu' or 'rack', got {mode!r}")
        self.mode = mode
        self.gpus = np.asarray(f.gpus, float)
        if mode == "rack":
            model = gpu_models(f)
            sets = [
                [labels({"gpu": "all", "gpus": int(n), "modelName": model[h], "Hostname": name})]
                for n, h, name in zip(self.gpus, f.rack_hall, rack_names(f), strict=True)
            ]
        else:
            sets = _gpu_label_sets(f)
        self.n_series = sum(len(x) for x in sets)
        self.label_sets = [[x.encode() for x in rack] for rack in sets]  # bytes: the body is written without a copy

    def render(self, g: RackGpus) -> bytes:
        """The four families for every GPU (or rack), as the body's bytes."""
        scale = self.gpus if self.mode == "rack" else 1.0
        columns = {
            POWER: [f"{x:f}" for x in (np.asarray(g.power_w, float) * scale).tolist()],
            TEMP: [str(round(x)) for x in np.asarray(g.temp_c, float).tolist()],
            ENERGY: [str(int(x)) for x in np.floor(np.asarray(g.energy_j, float) * scale * 1000.0).tolist()],
            LIMIT: [f"{x:f}" for x in np.asarray(g.cap_w, float).tolist()],
        }
        out = []
        for name, (kind, text) in FIELDS.items():
            out.append(header(name, kind, text).encode())
            rows = zip(self.label_sets, columns[name], strict=True)
            out.extend(shared_value_block(name.encode(), sets, v.encode()) for sets, v in rows)
        return b"".join(out)


def _gpu_label_sets(f) -> list[list[str]]:
    """Per rack, the label string of each of its GPUs (node by node)."""
    nd = nodes(f)
    out: list[list[str]] = [[] for _ in range(f.n_racks)]
    facility = f.spec.name
    for host, rack, n, h in zip(nd.names, nd.rack.tolist(), nd.gpus.tolist(), nd.hall.tolist(), strict=True):
        model = nd.gpu_model[h]
        for g in range(n):
            gpu_uuid = uuid.uuid5(_UUID_NS, f"{facility}/{host}/{g}")
            out[rack].append(
                labels(
                    {
                        "gpu": g,
                        "UUID": f"GPU-{gpu_uuid}",
                        "pci_bus_id": f"00000000:{g + 1:02X}:00.0",
                        "device": f"nvidia{g}",
                        "modelName": model,
                        "Hostname": host,
                    }
                )
            )
    return out


__all__ = ["ENERGY", "FIELDS", "LIMIT", "POWER", "TEMP", "DcgmSeries", "GpuSeries", "RackGpus"]
