"""DSX Exchange BMS contract (BMS Event Bus 1.0.0, AsyncAPI ``bms.yaml`` of NVIDIA's open DSX Exchange,
``dsx-ai-factory/dsx-exchange``): topics, value payloads, units and the integration topic rule.

Topics: the BMS publishes ``BMS/v1/PUB/Value/{objectType}/{pointType}/{tagPath}`` (not retained, on change and
every :data:`REPUBLISH_S`) and ``BMS/v1/PUB/Metadata/...`` (retained). An integration publishes values only
on ``BMS/v1/{integration}/Value/...`` derived from a metadata topic whose ``integration`` field names it
(``PUB`` -> integration, ``Metadata`` -> ``Value``). Value payload: ``{"value": float | null, "timestamp":
Unix ms, "quality": int}``, quality 1 = good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from factory_twin.models.units import J_PER_KWH, J_PER_MWH, KW, M3_PER_L, M3_S_PER_L_MIN, MW, S_PER_H, T0_K
from factory_twin.twin.runs import strict_json

ROOT = "BMS/v1"
BMS_PUBLISHER = "PUB"
REPUBLISH_S = 100.0  # values and metadata are republished every 100 s (contract, "How to use this spec")
HEARTBEAT_S = 10.0  # heartbeat timestamps every 10 s (contract, System object type)
GOOD = 1  # quality: 1 = good, any other integer = not trustworthy
BAD = 0

#: engUnit -> (scale, offset) into the twin's internal units: W, m3/s, degC, fraction, Pa, Hz, V, A, J.
UNITS: dict[str, tuple[float, float]] = {
    "C": (1.0, 0.0),
    "degC": (1.0, 0.0),
    "K": (1.0, -T0_K),
    "F": (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "W": (1.0, 0.0),
    "kW": (KW, 0.0),
    "MW": (MW, 0.0),
    "LPM": (M3_S_PER_L_MIN, 0.0),
    "L/min": (M3_S_PER_L_MIN, 0.0),
    "L/s": (M3_PER_L, 0.0),
    "m3/h": (1.0 / S_PER_H, 0.0),
    "GPM": (3.785411784 * M3_S_PER_L_MIN, 0.0),  # US gallon = 3.785411784 L (exact, NIST HB 44)
    "%": (0.01, 0.0),
    "Pa": (1.0, 0.0),
    "kPa": (1e3, 0.0),
    "bar": (1e5, 0.0),
    "Hz": (1.0, 0.0),
    "V": (1.0, 0.0),
    "A": (1.0, 0.0),
    "kWh": (J_PER_KWH, 0.0),
    "MWh": (J_PER_MWH, 0.0),
    "ms": (1.0, 0.0),  # heartbeat timestamps are carried as-is
}


def to_internal(value: float, unit: str) -> float:
    """Engineering value in ``unit`` (an engUnit) -> internal unit; ``KeyError`` for unknown units."""
    scale, offset = UNITS[unit]
    return value * scale + offset


def from_internal(value: float, unit: str) -> float:
    scale, offset = UNITS[unit]
    return (value - offset) / scale


@dataclass(frozen=True)
class Topic:
    """A parsed BMS topic: publisher (``PUB`` or an integration), kind (``Value``/``Metadata``) and the rest."""

    publisher: str
    kind: str
    object_type: str
    point_type: str
    tag_path: str

    @property
    def point(self) -> str:
        """``{objectType}/{pointType}/{tagPath}``: the part shared by a point's metadata and value topics."""
        return f"{self.object_type}/{self.point_type}/{self.tag_path}"

    def __str__(self) -> str:
        return f"{ROOT}/{self.publisher}/{self.kind}/{self.point}"


def parse_topic(topic: str) -> Topic | None:
    """Split a ``BMS/v1/...`` topic; None when it is not one (too few levels or another root)."""
    parts = topic.split("/", 6)
    if len(parts) < 7 or f"{parts[0]}/{parts[1]}" != ROOT or parts[3] not in ("Value", "Metadata"):
        return None
    return Topic(parts[2], parts[3], parts[4], parts[5], parts[6])


def value_topic(point: str, publisher: str = BMS_PUBLISHER) -> str:
    return f"{ROOT}/{publisher}/Value/{point}"


def metadata_topic(point: str) -> str:
    return f"{ROOT}/{BMS_PUBLISHER}/Metadata/{point}"


def integration_value_topic(metadata_topic_: str, integration: str) -> str:
    """The contract's derivation: ``PUB`` -> ``integration``, ``Metadata`` -> ``Value``, rest unchanged."""
    t = parse_topic(metadata_topic_)
    if t is None or t.publisher != BMS_PUBLISHER or t.kind != "Metadata":
        raise ValueError(f"not a BMS metadata topic: {metadata_topic_!r}")
    check_integration_name(integration)
    return value_topic(t.point, integration)


def check_integration_name(name: str) -> str:
    """An integration identifier is one topic level: no ``/``, ``+``, ``#``, not ``PUB``, not empty."""
    if not name or any(c in name for c in "/+#") or name == BMS_PUBLISHER or name.strip() != name:
        raise ValueError(f"--integration: {name!r} must be one topic level (no / + #), not 'PUB'")
    return name


def value_payload(value: float | None, timestamp_ms: int, quality: int = GOOD) -> bytes:
    """The value envelope; NaN/None becomes ``null`` (contract: null when there is no valid reading)."""
    v = None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value
    return strict_json.dumps({"value": v, "timestamp": int(timestamp_ms), "quality": int(quality)}).encode()


#: a timestamp's magnitude names its epoch unit (Unix time 1973-5138 in each), with the factor to ms
EPOCH_UNITS = (("ms", 1e11, 1e14, 1.0), ("s", 1e8, 1e11, 1e3), ("us", 1e14, 1e17, 1e-3), ("ns", 1e17, 1e20, 1e-6))


def timestamp_ms(ts: int) -> tuple[int, str] | None:
    """A value's timestamp in Unix ms and the unit it was sent in (the contract's is ms; a timestamp in s, us
    or ns is told apart by its magnitude); None when it is no plausible Unix time in any of them."""
    for unit, lo, hi, to_ms in EPOCH_UNITS:
        if lo <= ts < hi:
            return (ts if to_ms == 1.0 else int(ts * to_ms)), unit
    return None


def parse_value(payload: bytes) -> tuple[float | None, int, int]:
    """``(value, timestamp_ms, quality)``; ValueError naming the field when the envelope is malformed
    (:class:`~twin.runs.strict_json.NonFiniteError` when it holds a non-finite number: strict JSON,
    :func:`twin.runs.strict_json.loads`)."""
    d = strict_json.loads(payload)
    if not isinstance(d, dict):
        raise ValueError("value payload: not a JSON object")
    v, ts, q = d.get("value"), d.get("timestamp"), d.get("quality")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
        raise ValueError(f"value payload: value must be a number or null, got {v!r}")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise ValueError(f"value payload: timestamp must be integer Unix ms, got {ts!r}")
    if isinstance(q, bool) or not isinstance(q, int):
        raise ValueError(f"value payload: quality must be an integer, got {q!r}")
    return (None if v is None else float(v)), ts, q


__all__ = [
    "BAD",
    "EPOCH_UNITS",
    "GOOD",
    "HEARTBEAT_S",
    "REPUBLISH_S",
    "UNITS",
    "Topic",
    "check_integration_name",
    "from_internal",
    "integration_value_topic",
    "metadata_topic",
    "parse_topic",
    "parse_value",
    "timestamp_ms",
    "to_internal",
    "value_payload",
    "value_topic",
]
