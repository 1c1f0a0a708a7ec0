"""What one scrape shows: the meters, the racks' GPU state and the CDUs at one moment of the twin.

Two sources fill it: a live runner's snapshot (the dashboard process, :meth:`Readings.from_snapshot`) and a twin
stepped in the exporting process itself (``steer``, ``openadr-ven``: :meth:`Readings.from_twin`). Both take the
meters of the latest plant step from :mod:`twin.simulation.meters`, so a scrape equals what the dashboard and
the twin's records show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from factory_twin.links.prometheus.dcgm import RackGpus
from factory_twin.links.prometheus.facility import Labelled
from factory_twin.twin.simulation import meters
from numpy.typing import NDArray


@dataclass(frozen=True)
class CduState:
    """Per CDU: TCS supply and return [degC], heat moved [W], at capacity."""

    supply_c: NDArray[np.float64]
    return_c: NDArray[np.float64]
    q_w: NDArray[np.float64]
    at_capacity: NDArray[np.bool_]


@dataclass(frozen=True)
class Readings:
    """One moment of the twin as the exporter shows it (meters in their ``METERS`` units)."""

    time: str  # the twin's local time, ISO seconds
    facility: str
    scenario: str
    controller: str
    currency: str
    meters: Mapping[str, float]
    gpus: RackGpus
    cdus: CduState
    alarms: Mapping[str, int] = field(default_factory=dict)  # source -> active alarm count
    elements: Sequence[Labelled] = ()  # further per-element families (e.g. tier loading)

    @classmethod
    def from_snapshot(cls, snap, alarms: Mapping[str, int] | None = None) -> Readings:
        """From a :class:`twin.live.runner.Snapshot` taken after at least one plant step."""
        m = snap.meta
        if m["now"] is None:
            raise ValueError("the snapshot has no plant step yet")
        gpus = RackGpus(snap["rack_gpu_power_w"], snap["rack_die_temp_c"], snap["rack_gpu_cap_w"],
                        snap["rack_gpu_energy_j"])  # fmt: skip
        cdus = CduState(snap["cdu_tcs_supply_c"], snap["cdu_tcs_return_c"], snap["cdu_q_w"], snap["cdu_at_capacity"])
        return cls(m["time"], m["facility"], m["scenario"], m["controller"], m["currency"], dict(m["now"]), gpus, cdus,
                   dict(alarms or {}))  # fmt: skip

    @classmethod
    def from_twin(cls, twin, controller: str = "", alarms: Mapping[str, int] | None = None) -> Readings:
        """From a :class:`twin.simulation.engine.Twin` after at least one plant step (arrays copied: the twin
        may step on while a scrape renders)."""
        if twin.last is None:
            raise ValueError("the twin has not stepped yet")
        values = meters.read(meters.Reading.of(twin.last, twin))
        gpus = RackGpus(*(np.array(a, float) for a in (twin.gpu_power_w, twin.t_die, twin.cap, twin.gpu_energy_j)))
        cdus = CduState(np.array(twin.tcs_supply_c, float), np.array(twin.tcs_return_c, float),
                        np.array(twin.cdu_q_w, float), np.array(twin.cdu_at_capacity, bool))  # fmt: skip
        sc = twin.scenario
        time = str(np.datetime64(twin.time, "s"))
        return cls(time, twin.f.spec.name, sc.name, controller, sc.signals.currency, values, gpus, cdus,
                   dict(alarms or {}))  # fmt: skip


__all__ = ["CduState", "Readings"]
