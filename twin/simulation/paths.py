"""The one-line diagram in a running twin: which elements are open, the protective devices' memory, who feeds
whom, and the event log (trips, paths opened on purpose, racks going dark and coming back).

Every plant step the engine asks :meth:`PowerPaths.apply_faults` to open (or close) the elements of the
scenario's faults that are due, computes the flows through the diagram with the present routing, and hands
them to :meth:`PowerPaths.protect`: each protective device integrates its element's load multiple over
the step (:mod:`models.protection`) and an element whose device trips opens. The routing then changes
from the next plant step on: a partner on another path picks up the children (A/B shares become all on
the survivor), which may push it over its own curve in a later step (cascades are modelled step by step;
trip times are resolved inside the step and logged exactly, power follows at the plant-step resolution).
Racks with no energized parent are dark: no GPU, non-GPU or cooling load, no tokens; their busy GPUs are
logged as jobs lost. Tripped elements stay open (no automatic reclosing); a fault with an end closes its
element again at that time. A mechanical load without power keeps the cooling running in the model (the
plant is not simulated as lost) and is logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from factory_twin.models.protection import NONE, THERMAL, TripState
from factory_twin.twin.facility.topology import Flow, Routing, Topology
from factory_twin.twin.scenario.faults import Fault
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class PathEvent:
    """One change of the diagram's state: ``kind`` is ``trip``, ``opened``, ``closed``, ``racks dark``,
    ``racks restored`` or ``mechanical load lost``; ``racks``/``gpus``/``busy_gpus`` count what lost (or got
    back) power."""

    time: np.datetime64
    kind: str
    element: str
    detail: str
    racks: int = 0
    gpus: float = 0.0
    busy_gpus: float = 0.0

    def __str__(self) -> str:
        return f"{self.time} {self.kind} {self.element}: {self.detail}"


class PowerPaths:
    """State of the one-line diagram of a running twin (module docstring)."""

    def __init__(self, topology: Topology, faults: tuple[Fault, ...] = ()):
        unknown = sorted({f.element for f in faults} - set(topology.names))
        if unknown:
            raise ValueError(f"faults: no element {unknown} in the facility's one-line diagram")
        self.topology = topology
        self.closed = np.ones(topology.n, bool)
        self.trip_state = TripState.cold(topology.n)
        self.routing: Routing = topology.routing()
        self.events: list[PathEvent] = []
        self._faults = list(faults)
        self._done: set[tuple[int, str]] = set()

    def _quiet_setup(self) -> None:
        """The thermal devices and the point where every other device starts timing (pickup, short-time,
        instantaneous): below it, and with no overload remembered, a step changes nothing but the thermal images
        (the usual case, :func:`twin.simulation.loop_kernels.quiet_protection`)."""
        if not hasattr(self, "_thermal"):
            trip = self.topology.trip
            self._thermal = np.flatnonzero(trip.characteristic == THERMAL)
            integ = (trip.characteristic != NONE) & (trip.characteristic != THERMAL)
            self._start = np.minimum(np.minimum(np.where(integ, trip.pickup, np.inf), trip.isd), trip.ii)
            self._integrating = integ
            self._decay = (np.nan, np.zeros(0))

    @property
    def rack_on(self) -> NDArray[np.bool_]:
        return self.routing.rack_on

    @property
    def all_on(self) -> bool:
        return bool(self.routing.rack_on.all())

    def set_faults(self, faults: tuple[Fault, ...]) -> None:
        """Replace the scheduled faults (a what-if of a running twin); those already applied stay applied."""
        unknown = sorted({f.element for f in faults} - set(self.topology.names))
        if unknown:
            raise ValueError(f"faults: no element {unknown} in the facility's one-line diagram")
        self._faults = list(faults)

    def open(self, name: str, time: np.datetime64, why: str, gpus: Array, busy: Array) -> None:
        """Open element ``name`` now (an operator's what-if: "lose feed A"); ``ValueError`` naming an unknown one."""
        self._set(name, False, time, why, gpus, busy)

    def close(self, name: str, time: np.datetime64, why: str, gpus: Array, busy: Array) -> None:
        """Close element ``name`` now (a tripped breaker reset or a feed back); its device's memory starts cold."""
        self._set(name, True, time, why, gpus, busy)

    def _set(self, name: str, closed: bool, time: np.datetime64, why: str, gpus: Array, busy: Array) -> None:
        e = self.topology.index.get(name)
        if e is None:
            raise ValueError(f"element: no element {name!r} in the facility's one-line diagram")
        if self.closed[e] == closed:
            return
        self.closed[e] = closed
        if closed:
            self.trip_state.heat[e] = 0.0
            self.trip_state.short_s[e] = 0.0
        self.events.append(PathEvent(time, "closed" if closed else "opened", name, why))
        self._reroute(time, gpus, busy)

    def apply_faults(self, time: np.datetime64, gpus: Array, busy: Array) -> bool:
        """Open the elements whose fault starts by ``time`` and close those whose fault ended; True when the
        routing changed. ``gpus``/``busy`` per rack count what a dark rack loses."""
        before = self.closed.copy()
        for i, f in enumerate(self._faults):
            e = self.topology.index[f.element]
            if f.at <= time and (i, "open") not in self._done:
                self._done.add((i, "open"))
                self.closed[e] = False
                self.events.append(PathEvent(f.at, "opened", f.element, f"{f.kind} (scenario fault)"))
            if f.until is not None and f.until <= time and (i, "close") not in self._done:
                self._done.add((i, "close"))
                self.closed[e] = True
                self.trip_state.heat[e] = 0.0
                self.events.append(PathEvent(f.until, "closed", f.element, f"{f.kind} ended"))
        if np.array_equal(before, self.closed):
            return False
        self._reroute(time, gpus, busy)
        return True

    def protect(self, flow: Flow, start: np.datetime64, dt_s: float, gpus: Array, busy: Array) -> bool:
        """Advance every protective device over the step ``[start, start + dt_s)`` with the loads of ``flow``; open
        the elements whose device trips. True when the routing changed."""
        from factory_twin.twin.simulation.loop_kernels import quiet_protection  # numba: loaded at the first step

        topo = self.topology
        self._quiet_setup()
        if self._decay[0] != dt_s:  # the thermal images' decay over a step, kept while the step is the same
            self._decay = (dt_s, np.exp(-dt_s / topo.trip.tr_s[self._thermal]))
        st = self.trip_state
        in_w = np.asarray(flow.in_w, float)
        state = (st.heat, st.short_s, self._thermal, self._decay[1])
        devices = (topo.rating_w, topo.setting, self.routing.energized, self._start, self._integrating)
        if in_w.ndim == 1 and quiet_protection(in_w, *devices, *state):
            return False  # nothing times and no memory to cool: only the thermal images moved
        m = np.where(self.routing.energized, topo.trip_multiple(flow.in_w), 0.0)
        self.trip_state, after = topo.trip.step(self.trip_state, m, dt_s)
        tripped = np.flatnonzero(np.isfinite(after) & self.routing.energized)
        if not tripped.size:
            return False
        load = topo.loading(flow.in_w)
        for e in tripped:
            when = start + np.timedelta64(int(round(after[e] * 1e3)), "ms")
            dev = topo.device_names[e] if topo.device_names else None
            self.events.append(
                PathEvent(
                    when.astype("datetime64[s]"),
                    "trip",
                    topo.names[e],
                    f"{load[e]:.0%} of rating ({m[e]:.2f} x its setting) for {after[e]:.0f} s into the step"
                    + (f"; device {dev}" if dev else ""),
                )
            )
        self.closed[tripped] = False
        self._reroute(start + np.timedelta64(int(round(dt_s)), "s"), gpus, busy)
        return True

    def _reroute(self, time: np.datetime64, gpus: Array, busy: Array) -> None:
        was_on, mech_was = self.routing.rack_on, self.routing.mech_on
        self.routing = self.topology.routing(self.closed)
        now_on = self.routing.rack_on
        for kind, sel in (("racks dark", was_on & ~now_on), ("racks restored", ~was_on & now_on)):
            if sel.any():
                what = "jobs on them lost" if kind == "racks dark" else "power back (jobs restart from their queue)"
                n = int(sel.sum())
                detail = f"{n} racks, {what}"
                self.events.append(
                    PathEvent(time, kind, self._cause(sel), detail, n, float(gpus[sel].sum()), float(busy[sel].sum()))
                )
        for j in np.flatnonzero(mech_was & ~self.routing.mech_on):
            self.events.append(PathEvent(time, "mechanical load lost", self.topology.mech_names[j],
                                         "no energized parent (cooling is still simulated as running)"))  # fmt: skip

    def _cause(self, racks: NDArray[np.bool_]) -> str:
        """The open elements the newly dark (or restored) racks hang from (a summary name)."""
        topo = self.topology
        parents = np.unique(topo.rack_edge_parent[np.isin(topo.rack_edge_rack, np.flatnonzero(racks))])
        names = [topo.names[p] for p in parents]
        return ", ".join(names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else "")
