"""The latest reading of every point, by signal, in internal units: what the shadow twin reads at a tick.

One :class:`Meas` per signal holds arrays over the spec's entities (value, timestamp, quality, whether the
point is mapped, since when it is expected, its point name); :meth:`Readings.views` gives the usable values
at a tick (good quality, mapped, fresh; NaN elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from factory_twin.links.dsx_exchange.clock import STALE_S
from factory_twin.links.dsx_exchange.contract import GOOD
from factory_twin.links.dsx_exchange.ingest import latest_per_index
from factory_twin.links.dsx_exchange.pointmap import Mapped
from factory_twin.links.dsx_exchange.points import SIGNALS, Catalog

Key = tuple[str, str]  # (entity kind, signal name)


@dataclass
class Meas:
    """Latest value of every point of one signal, over the spec's entities."""

    n: int
    value: np.ndarray = field(init=False)
    ts: np.ndarray = field(init=False)
    quality: np.ndarray = field(init=False)
    mapped: np.ndarray = field(init=False)
    since: np.ndarray = field(init=False)
    points: list = field(init=False)

    def __post_init__(self) -> None:
        self.value = np.full(self.n, np.nan)
        self.ts = np.zeros(self.n, np.int64)
        self.quality = np.full(self.n, GOOD)
        self.mapped = np.zeros(self.n, bool)
        self.since = np.zeros(self.n, np.int64)
        self.points = [None] * self.n


class Readings:
    """Every signal's :class:`Meas`; ``code`` numbers the signals for the batch path."""

    def __init__(self, catalog: Catalog) -> None:
        self.meas: dict[Key, Meas] = {(s.entity, s.name): Meas(len(catalog.entity_ids(s.entity))) for s in SIGNALS}
        self.written_by_us = {(s.entity, s.name): s.integration for s in SIGNALS}
        self.by_code = list(self.meas.values())
        self.code = {k: i for i, k in enumerate(self.meas)}

    def __getitem__(self, key: Key) -> Meas:
        return self.meas[key]

    def store(self, m: Mapped, value: float | None, ts: int, quality: int) -> None:
        """One value (engineering unit) unless an older one than stored."""
        g = self.meas[(m.entity, m.signal)]
        i = m.index
        if ts < g.ts[i]:
            return
        g.ts[i] = ts
        g.quality[i] = quality
        g.value[i] = np.nan if value is None else value * m.scale + m.offset

    def store_many(self, code, idx, ts, quality, value) -> None:
        """Values already in internal units, by signal code and entity index: the latest of each point wins."""
        keep = latest_per_index(code.astype(np.int64) << 32 | idx, ts)
        for c in np.unique(code[keep]):
            k = keep[code[keep] == c]
            g, i = self.by_code[c], idx[k]
            newer = ts[k] >= g.ts[i]
            k, i = k[newer], i[newer]
            g.ts[i], g.quality[i], g.value[i] = ts[k], quality[k], value[k]

    def map(self, point: str, m: Mapped, now_ms: int) -> None:
        """A point mapped by its metadata: expected from now on."""
        g = self.meas[(m.entity, m.signal)]
        g.mapped[m.index] = True
        g.points[m.index] = point
        if g.since[m.index] == 0:
            g.since[m.index] = now_ms

    def unmap(self, m: Mapped) -> None:
        self.meas[(m.entity, m.signal)].mapped[m.index] = False

    def start(self, ts: int) -> None:
        """The plant clock's first value: points mapped before it are expected from it on."""
        for g in self.meas.values():
            g.since[g.mapped & (g.since == 0)] = ts

    def shift(self, d_ms: int) -> None:
        """The plant clock jumped back by ``-d_ms``: every timestamp moves with it (ages stay as they were)."""
        for g in self.meas.values():
            for a in (g.ts, g.since):
                a[a > 0] = np.maximum(a[a > 0] + d_ms, 1)

    def views(self, t_ms: int) -> dict[Key, np.ndarray]:
        """Usable values: good quality, mapped and fresh; NaN elsewhere."""
        out = {}
        for k, g in self.meas.items():
            ok = g.mapped & (g.quality == GOOD) & (t_ms - g.ts <= STALE_S * 1000) & (g.ts > 0)
            out[k] = np.where(ok, g.value, np.nan)
        return out

    def mapped_counts(self) -> dict[str, int]:
        """Points mapped onto the twin, the one count status.json, connect's exit line and the plant page show:
        ``bms`` (values the BMS publishes), ``integration`` (points this integration writes: requests, heartbeats)
        and ``mapped``, both."""
        ours = sum(int(g.mapped.sum()) for key, g in self.meas.items() if self.written_by_us[key])
        bms = sum(int(g.mapped.sum()) for key, g in self.meas.items() if not self.written_by_us[key])
        return {"mapped": bms + ours, "bms": bms, "integration": ours}

    def health(self, now_ms: int) -> dict[str, int]:
        """Points the BMS publishes: stale, of bad quality."""
        health = {"stale": 0, "bad_quality": 0}
        for key, g in self.meas.items():
            if self.written_by_us[key]:
                continue
            last = np.where(g.ts > 0, g.ts, g.since)
            health["stale"] += int((g.mapped & (now_ms - last > STALE_S * 1000) & (last > 0)).sum())
            health["bad_quality"] += int((g.mapped & (g.ts > 0) & (g.quality != GOOD)).sum())
        return health


__all__ = ["Key", "Meas", "Readings"]
