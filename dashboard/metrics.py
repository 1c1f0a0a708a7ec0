"""``/metrics`` of the dashboard process: the live twin's latest snapshot through :mod:`links.prometheus`.

A scrape renders the snapshot once per published version (later scrapes of the same version get the same
bytes). Alarms are counted as the dashboard shows them: the cooling page's alarm lines and the missed grid
targets of the header's alarm banner.
"""

from __future__ import annotations

import threading

from factory_twin.dashboard.common import snapshot_misses
from factory_twin.dashboard.pages.cooling import alarms as cooling_alarms
from factory_twin.links.prometheus.dcgm import GpuSeries
from factory_twin.links.prometheus.exporter import Exporter
from factory_twin.links.prometheus.readings import Readings


def snapshot_alarms(snap) -> dict[str, int]:
    """Active alarms by source: cooling (CDUs at capacity, facility water above setpoint, plant over capacity)
    and grid targets (DR and import-limit misses in the history shown)."""
    return {"cooling": len(cooling_alarms(snap)), "grid_targets": len(snapshot_misses(snap))}


class SnapshotMetrics:
    """The exposition text of the latest snapshot of ``source`` (a :class:`dashboard.server.LatestSnapshot`);
    None before the twin's first plant step."""

    def __init__(self, facility, source, gpu_series: GpuSeries = "gpu"):
        self.exporter = Exporter(facility, gpu_series)
        self.source = source
        self._lock = threading.Lock()
        self._cached: tuple[object, bytes] | None = None

    def __call__(self) -> bytes | None:
        key = self.source.version()
        with self._lock:
            if key is not None and self._cached is not None and self._cached[0] == key:
                return self._cached[1]
        snap = self.source()
        if snap is None or snap.meta["now"] is None:
            return None
        body = self.exporter.render(Readings.from_snapshot(snap, snapshot_alarms(snap)))
        with self._lock:
            self._cached = (key, body)
        return body


__all__ = ["SnapshotMetrics", "snapshot_alarms"]
