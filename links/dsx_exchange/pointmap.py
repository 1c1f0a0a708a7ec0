"""The point map: metadata received from the BMS matched to the facility spec's entities and signals.

A point maps when its metadata classifies as a known signal (objectType, pointType, processArea,
isSetpoint), its entity id (``rackLocationId`` or ``objectId``, renamed through the override file) is an
entity of the spec, and its ``engUnit`` is understood. Everything else is reported, never fatal:
``unmapped`` (signal or entity not recognised), ``units`` (unknown engUnit), ``topology`` (``servesId``
that disagrees with the spec), ``missing`` (points the spec expects that have no metadata).

Override file (TOML), for sites whose identifiers differ from the twin's::

    [entities]            # site id -> twin id
    "DH1-R0307" = "hall-a-r03-07"
    [points]              # objectType/pointType/tagPath -> "ENTITY/SIGNAL" (beats classification)
    "CDU/LiquidTemperature/site/cdu5/TT-201" = "hall-a-cdu05/sec_supply_c"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from factory_twin.links.dsx_exchange.contract import UNITS
from factory_twin.links.dsx_exchange.points import SIGNALS, Catalog, classify, entity_id_of
from factory_twin.twin.runs import strict_json

# the signals a facility is expected to publish (the rest are optional)
EXPECTED = {
    ("rack", "power_kw"),
    ("rack", "supply_c"),
    ("rack", "return_c"),
    ("rack", "flow_lpm"),
    ("cdu", "sec_supply_c"),
    ("cdu", "sec_return_c"),
    ("cdu", "pri_supply_c"),
    ("cdu", "pri_return_c"),
    ("cdu", "sec_flow_lpm"),
    ("cdu", "pri_flow_lpm"),
}


@dataclass(frozen=True)
class Mapped:
    """Where a point's values go: group ``(entity, signal)``, entity index, unit factors to internal."""

    entity: str
    signal: str
    index: int
    unit: str | None
    scale: float
    offset: float
    integration: str | None
    meta: dict


@dataclass(frozen=True)
class Override:
    entities: dict[str, str]
    points: dict[str, str]

    @classmethod
    def load(cls, path: Path | None) -> Override:
        if path is None:
            return cls({}, {})
        if not Path(path).is_file():
            raise FileNotFoundError(f"--point-map: no such file {path}")
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"--point-map {path}: {e}") from None
        unknown = set(raw) - {"entities", "points"}
        if unknown:
            raise ValueError(f"--point-map {path}: unknown table(s) {sorted(unknown)}; expected [entities], [points]")
        ent, pts = raw.get("entities", {}), raw.get("points", {})
        for key, table in (("entities", ent), ("points", pts)):
            bad = [k for k, v in table.items() if not isinstance(v, str)]
            if bad:
                raise ValueError(f"--point-map {path}: [{key}] values must be strings, see {bad[:3]}")
        for k, v in pts.items():
            if "/" not in v:
                raise ValueError(f"--point-map {path}: [points] {k!r} = {v!r} must be 'ENTITY/SIGNAL'")
        return cls(dict(ent), dict(pts))


class PointMap:
    """Metadata in, mapping out; keeps the reports current as metadata arrives, changes or is withdrawn."""

    def __init__(self, catalog: Catalog, override: Override | None = None) -> None:
        self.cat = catalog
        self.override = override or Override({}, {})
        self.index = {
            kind: {eid: i for i, eid in enumerate(catalog.entity_ids(kind))}
            for kind in ("rack", "cdu", "meter", "hr", "bess", "bms", "integration")
        }
        self.by_name = {(s.entity, s.name): s for s in SIGNALS}
        self.points: dict[str, Mapped] = {}
        self.raw: dict[str, bytes] = {}
        self.unmapped: dict[str, str] = {}
        self.units: dict[str, str] = {}
        self.topology: dict[str, str] = {}
        self.withdrawn: dict[str, Mapped] = {}
        self._changes = 0  # metadata messages that changed something (keys the cache of :meth:`missing`)
        self._missing: tuple | None = None

    def on_metadata(self, point: str, payload: bytes) -> Mapped | None:
        """Apply one metadata message (empty payload = withdrawn); returns the mapping when it changed."""
        if self.raw.get(point) == payload:
            return None
        self.raw[point] = payload
        self._changes += 1
        if not payload:
            old = self.points.pop(point, None)
            if old is not None:
                self.withdrawn[point] = old
            self.unmapped.pop(point, None)
            return None
        try:
            meta = strict_json.loads(payload)
            if not isinstance(meta, dict):
                raise ValueError("not an object")
        except ValueError:
            self._unmap(point, "metadata is not a JSON object")
            return None
        m = self._map(point, meta)
        if m is not None:
            self.points[point] = m
            self.withdrawn.pop(point, None)
            self.unmapped.pop(point, None)
        return m

    def _unmap(self, point: str, why: str) -> None:
        self.points.pop(point, None)
        self.unmapped[point] = why

    def _map(self, point: str, meta: dict) -> Mapped | None:
        forced = self.override.points.get(point.split("/", 2)[-1]) or self.override.points.get(point)
        if forced:
            entity_id, _, name = forced.rpartition("/")
            sig = next((s for s in SIGNALS if s.name == name and entity_id in self.index[s.entity]), None)
        else:
            sig = classify(meta)
            entity_id = entity_id_of(meta)
            entity_id = self.override.entities.get(entity_id, entity_id)
        if sig is None:
            area = meta.get("processArea")
            self._unmap(point, f"no twin signal for {meta.get('objectType')}/{meta.get('pointType')} {area or ''}")
            return None
        if sig.object_type == "System":
            entity_id = "BMS" if sig.entity == "bms" else self.cat.integration
            if sig.entity == "integration" and meta.get("integration") != self.cat.integration:
                self._unmap(point, f"integration point of {meta.get('integration')!r}, not ours")
                return None
        idx = self.index[sig.entity].get(entity_id)
        if idx is None:
            self._unmap(point, f"{sig.entity} {entity_id!r} is not in the facility spec")
            return None
        unit = meta.get("engUnit")
        scale, offset = 1.0, 0.0
        if unit is not None:
            if unit not in UNITS:
                self.units[point] = unit
                self._unmap(point, f"engUnit {unit!r} not understood")
                return None
            scale, offset = UNITS[unit]
        self.units.pop(point, None)
        self._check_topology(point, sig.entity, entity_id, meta)
        return Mapped(sig.entity, sig.name, idx, unit, scale, offset, meta.get("integration"), meta)

    def _check_topology(self, point: str, entity: str, entity_id: str, meta: dict) -> None:
        serves = meta.get("servesId")
        if serves is None:
            return
        rename = self.override.entities
        got = sorted(rename.get(s, s) for s in serves)
        if entity == "meter":
            want = sorted(self.cat.meters[entity_id])
        elif entity == "cdu":
            want = sorted(self.cat.cdu_racks[self.cat.cdu_index[entity_id]])
        else:
            return
        if got != want:
            extra, lack = sorted(set(got) - set(want)), sorted(set(want) - set(got))
            self.topology[entity_id] = f"servesId differs from the spec: extra {extra[:5]}, missing {lack[:5]}"
        else:
            self.topology.pop(entity_id, None)

    def missing(self) -> list[tuple[str, str]]:
        """``(entity id, signal)`` the spec expects that have no metadata (mapped points only count)."""
        key = (len(self.points), self._changes)
        if self._missing is None or self._missing[0] != key:
            self._missing = (key, self._find_missing())
        return self._missing[1]

    def _find_missing(self) -> list[tuple[str, str]]:
        have = {(m.entity, m.signal, m.index) for m in self.points.values()}
        out = []
        for entity, name in sorted(EXPECTED):
            for i, eid in enumerate(self.cat.entity_ids(entity)):
                if (entity, name, i) not in have:
                    out.append((eid, name))
        return out

    def report(self) -> dict:
        return {
            "mapped": len(self.points),
            "unmapped": dict(sorted(self.unmapped.items())[:200]),
            "unmapped_count": len(self.unmapped),
            "unknown_units": self.units,
            "topology": self.topology,
            "missing_count": len(self.missing()),
        }


__all__ = ["EXPECTED", "Mapped", "Override", "PointMap"]
