"""The DSX Exchange points of a facility: identifiers, topics and metadata for racks, CDUs, power meters,
heat rejection, BESS and the BMS/integration heartbeats.

Points come in :class:`Signal` groups (one signal over all entities of a kind, e.g. every rack's return
temperature) so the emulator and the connector work on numpy arrays per group. Identifiers:
racks ``{hall}-r{row:02d}-{slot:02d}`` (``rackLocationId``; row = the CDU's place in its hall), CDUs
``{hall}-cdu{row:02d}``, meters ``M-UTIL``, ``M-{hall}``, ``M-{cdu}``, ``M-MECH``, ``M-HR``, ``M-BESS``, heat
rejection ``HR-1``, battery ``BESS-1``, the BMS ``BMS``. A point's ``tagPath`` is ``{facility}/{entity}/{signal}``.

Topology (``servesId``): ``M-UTIL`` serves the hall meters, ``M-MECH`` and ``M-BESS``; a hall meter serves
its CDU-row meters; a row meter serves the racks of that CDU; ``M-MECH`` serves ``M-HR``; ``M-HR`` serves
``HR-1``; ``M-BESS`` serves ``BESS-1``; each CDU serves its racks (liquid path toward the rack).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from factory_twin.links.dsx_exchange.contract import metadata_topic, value_topic
from factory_twin.twin.facility.assembly import Facility
from factory_twin.twin.facility.nodes import cdu_names, rack_names

NORMAL_LEAK = ((0, "Normal"), (1, "Leak"))
ISOLATION = ((0, "NotIsolated"), (1, "Isolated"))
RUN_STATUS = ((0, "Off"), (1, "Running"), (2, "Fault"))
BESS_STATUS = ((0, "Idle"), (1, "Charging"), (2, "Discharging"))


@dataclass(frozen=True)
class Signal:
    """One kind of point over all entities of a kind. ``resolution``/``noise`` (1 sigma) in ``unit``."""

    name: str
    entity: str
    object_type: str
    point_type: str
    unit: str | None = None
    states: tuple[tuple[int, str], ...] | None = None
    process_area: tuple[str, ...] = ()
    is_setpoint: bool = False
    integration: bool = False  # value written by the integration (BMS publishes only the metadata)
    resolution: float = 0.0
    noise: float = 0.0

    @property
    def key(self) -> tuple:
        """What identifies the signal in metadata, independent of tag paths."""
        return (self.object_type, self.point_type, frozenset(self.process_area), self.is_setpoint)


_CDU_T = {"unit": "C", "resolution": 0.05, "noise": 0.01}

# Sensor noise and resolution: RTD class-A temperature chains ~0.05 K with 0.01-0.1 K BMS resolution,
# magnetic/ultrasonic flow meters ~0.5 % of reading, revenue-grade power meters 0.2-0.5 % of reading.
SIGNALS: tuple[Signal, ...] = (
    Signal("power_kw", "rack", "Rack", "RackPower", "kW", resolution=0.5, noise=0.1),
    Signal("supply_c", "rack", "Rack", "RackLiquidSupplyTemperature", "C", resolution=0.1, noise=0.02),
    Signal("return_c", "rack", "Rack", "RackLiquidReturnTemperature", "C", resolution=0.1, noise=0.02),
    Signal("flow_lpm", "rack", "Rack", "RackLiquidFlow", "LPM", resolution=1.0, noise=0.2),
    Signal("leak", "rack", "Rack", "RackLeakDetect", states=NORMAL_LEAK, resolution=1),
    Signal("isolation", "rack", "Rack", "RackLiquidIsolationStatus", states=ISOLATION, resolution=1),
    Signal("sec_supply_c", "cdu", "CDU", "LiquidTemperature", process_area=("Secondary", "Supply"), **_CDU_T),
    Signal("sec_return_c", "cdu", "CDU", "LiquidTemperature", process_area=("Secondary", "Return"), **_CDU_T),
    Signal("pri_supply_c", "cdu", "CDU", "LiquidTemperature", process_area=("Primary", "Supply"), **_CDU_T),
    Signal("pri_return_c", "cdu", "CDU", "LiquidTemperature", process_area=("Primary", "Return"), **_CDU_T),
    Signal("sec_flow_lpm", "cdu", "CDU", "LiquidFlow", "LPM", None, ("Secondary",), resolution=5.0, noise=1.0),
    Signal("pri_flow_lpm", "cdu", "CDU", "LiquidFlow", "LPM", None, ("Primary",), resolution=5.0, noise=1.0),
    Signal("pump_pct", "cdu", "CDU", "PumpSpeed", "%", None, ("Secondary",), resolution=0.5),
    Signal("valve_pct", "cdu", "CDU", "ValvePosition", "%", None, ("Primary",), resolution=0.5),
    Signal("setpoint_c", "cdu", "CDU", "LiquidTemperature", "C", None, ("Secondary", "Supply"), True, resolution=0.1),
    Signal("status", "cdu", "CDU", "Status", states=RUN_STATUS, resolution=1),
    Signal("sp_request_c", "cdu", "CDU", "LiquidTemperatureSpRequest", "C", integration=True, resolution=0.1),
    Signal("power_kw", "meter", "PowerMeter", "ActivePower", "kW", resolution=1.0, noise=0.3),
    Signal("fan_pct", "hr", "CoolingTower", "FanSpeed", "%", resolution=0.5),
    Signal("supply_c", "hr", "CoolingTower", "LiquidTemperature", "C", None, ("Supply",), resolution=0.05, noise=0.01),
    Signal("return_c", "hr", "CoolingTower", "LiquidTemperature", "C", None, ("Return",), resolution=0.05, noise=0.01),
    Signal("soc_pct", "bess", "BESS", "GenericPoint", "%", resolution=0.1),
    Signal("status", "bess", "BESS", "Status", states=BESS_STATUS, resolution=1),
    Signal("heartbeat_ms", "bms", "System", "HeartbeatTimestampBms", resolution=1),
    Signal("echo_ms", "bms", "System", "HeartbeatEchoBms", resolution=1),
    Signal("heartbeat_ms", "integration", "System", "HeartbeatTimestampIntegration", integration=True, resolution=1),
    Signal("echo_ms", "integration", "System", "HeartbeatEchoIntegration", integration=True, resolution=1),
)  # fmt: skip

SIGNAL_BY_KEY = {s.key: s for s in SIGNALS}
ENTITY_OBJECT = {"rack": "Rack", "cdu": "CDU", "meter": "PowerMeter", "hr": "CoolingTower", "bess": "BESS"}


def classify(meta: dict) -> Signal | None:
    """The signal a metadata payload describes (objectType, pointType, processArea, isSetpoint), or None."""
    area = frozenset(meta.get("processArea") or ())
    return SIGNAL_BY_KEY.get((meta.get("objectType"), meta.get("pointType"), area, bool(meta.get("isSetpoint"))))


def entity_id_of(meta: dict) -> str | None:
    """The entity a metadata payload belongs to: ``rackLocationId`` for racks, else ``objectId``."""
    return meta.get("rackLocationId") if meta.get("objectType") == "Rack" else meta.get("objectId")


@dataclass
class Group:
    """The points of one signal: entity ids, point names (``objectType/pointType/tagPath``), metadata."""

    signal: Signal
    ids: list[str]
    points: list[str]
    metadata: list[dict]

    @cached_property
    def value_topics(self) -> list[str]:
        return [value_topic(p) for p in self.points]

    @cached_property
    def metadata_topics(self) -> list[str]:
        return [metadata_topic(p) for p in self.points]


@dataclass
class Catalog:
    """Every point of a facility as the BMS publishes it; ``integration`` names the twin's integration."""

    facility: Facility
    integration: str
    rack_ids: list[str] = field(init=False)
    cdu_ids: list[str] = field(init=False)
    meters: dict[str, list[str]] = field(init=False)  # meter id -> servesId
    groups: list[Group] = field(init=False)

    def __post_init__(self) -> None:
        f = self.facility
        halls = f.hall_names
        self.rack_ids = rack_names(f)  # one naming for every link (twin.facility.nodes)
        self.cdu_ids = cdu_names(f)
        self.cdu_index = {c: i for i, c in enumerate(self.cdu_ids)}
        self.cdu_racks = [[self.rack_ids[i] for i in np.flatnonzero(f.rack_cdu == c)] for c in range(f.n_cdus)]
        self.has_bess = f.spec.grid.bess is not None
        meters: dict[str, list[str]] = {"M-UTIL": [f"M-{h}" for h in halls] + ["M-MECH"]}
        if self.has_bess:
            meters["M-UTIL"].append("M-BESS")
        for h, name in enumerate(halls):
            meters[f"M-{name}"] = [f"M-{self.cdu_ids[c]}" for c in np.flatnonzero(f.cdu_hall == h)]
        for c, cid in enumerate(self.cdu_ids):
            meters[f"M-{cid}"] = self.cdu_racks[c]
        meters["M-MECH"] = ["M-HR"]
        meters["M-HR"] = ["HR-1"]
        if self.has_bess:
            meters["M-BESS"] = ["BESS-1"]
        self.meters = meters
        self._entity_ids = {
            "rack": self.rack_ids,
            "cdu": self.cdu_ids,
            "meter": list(self.meters),
            "hr": ["HR-1"],
            "bess": ["BESS-1"] if self.has_bess else [],
            "bms": ["BMS"],
            "integration": [self.integration],
        }
        self.groups = [g for s in SIGNALS if (g := self._group(s)) is not None]

    def entity_ids(self, entity: str) -> list[str]:
        return self._entity_ids[entity]

    def _group(self, s: Signal) -> Group | None:
        ids = self.entity_ids(s.entity)
        if not ids:
            return None
        name = self.facility.spec.name
        points = [f"{s.object_type}/{s.point_type}/{name}/{i}/{s.name}" for i in ids]
        return Group(s, ids, points, [self._metadata(s, i) for i in ids])

    def _metadata(self, s: Signal, entity_id: str) -> dict:
        """The metadata payload of one point, with exactly the fields its bms.yaml schema allows."""
        m: dict = {"objectType": s.object_type, "pointType": s.point_type}
        if s.entity == "rack":
            m |= {"rackLocationName": entity_id, "rackLocationId": entity_id}
        elif s.entity == "meter":
            m |= {"objectName": entity_id, "objectId": entity_id, "servesId": self.meters[entity_id]}
        elif s.entity == "bms":
            oid = "BMS" if s.point_type == "HeartbeatTimestampBms" else self.integration
            m |= {"objectName": oid, "objectId": oid}
        elif s.entity == "integration":
            oid = self.integration if s.point_type == "HeartbeatTimestampIntegration" else "BMS"
            m |= {"objectName": oid, "objectId": oid}
        else:
            m |= {"objectName": entity_id, "objectId": entity_id}
            if s.entity == "cdu":
                m["servesId"] = self.cdu_racks[self.cdu_index[entity_id]]
            if s.process_area:
                m["processArea"] = list(s.process_area)
        if s.unit is not None and s.entity not in ("bms", "integration"):
            m["engUnit"] = s.unit
        if s.states is not None:
            m["stateText"] = [{"value": v, "text": t} for v, t in s.states]
        if s.is_setpoint:
            m["isSetpoint"] = True
        if s.integration:
            m["integration"] = self.integration
        return m

    def group(self, entity: str, name: str) -> Group:
        for g in self.groups:
            if g.signal.entity == entity and g.signal.name == name:
                return g
        raise KeyError(f"no signal {entity}/{name}")

    def point_count(self) -> dict[str, int]:
        """Points the BMS publishes values for, and integration points (metadata only from the BMS)."""
        bms = sum(len(g.ids) for g in self.groups if not g.signal.integration)
        return {"bms_values": bms, "integration": sum(len(g.ids) for g in self.groups if g.signal.integration)}


__all__ = ["SIGNALS", "Catalog", "Group", "Signal", "classify", "entity_id_of"]
