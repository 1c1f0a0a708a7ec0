"""Reading a request body and checking a PATCH of ``EnvironmentMetrics`` before anything is written.

Bodies are strict JSON (no ``NaN``/``Infinity`` tokens, no duplicate keys, an object at the top). The one
writable part of ``EnvironmentMetrics`` is ``PowerLimitWatts`` with its ``SetPoint`` (a finite number within
``[AllowableMin, AllowableMax]``) and ``ControlMode`` (one of the Control schema's modes). A wrongly typed,
out-of-range or non-finite value refuses the whole request (400, nothing written); read-only or unknown
properties beside a valid change are reported in ``@Message.ExtendedInfo`` of the 200 response and ignored
(DSP0266 "Modification success responses"); a body of only those is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from factory_twin.links.redfish.limits import CONTROL_MODES, ControlView
from factory_twin.links.redfish.messages import Message, value_arg

MAX_BODY_BYTES = 64 * 1024
READ_ONLY = frozenset({"@odata.id", "@odata.type", "Id", "Name", "PowerWatts", "TemperatureCelsius", "Description"})
CONTROL_READ_ONLY = frozenset({"AllowableMin", "AllowableMax", "DefaultSetPoint", "Reading", "DataSourceUri"})


class BodyError(Exception):
    """A request refused for its body: HTTP ``status`` and the Base messages saying why."""

    def __init__(self, status: int, *messages: Message) -> None:
        super().__init__(messages[0].id)
        self.status = status
        self.messages = messages


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise BodyError(400, Message("PropertyDuplicate", (k,), f"#/{k}"))
        out[k] = v
    return out


def _no_constants(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_json_object(raw: bytes) -> dict:
    """The body as a JSON object; :class:`BodyError` (400 MalformedJSON, PropertyDuplicate, 413) otherwise."""
    if len(raw) > MAX_BODY_BYTES:
        raise BodyError(413, Message("PayloadTooLarge"))
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError):
        raise BodyError(400, Message("MalformedJSON")) from None
    if not isinstance(body, dict):
        raise BodyError(400, Message("MalformedJSON"))
    return body


@dataclass
class LimitChange:
    """A checked change: the new SetPoint [W] and/or ControlMode, and the ignored properties' messages."""

    setpoint_w: float | None = None
    mode: str | None = None
    ignored: list[Message] = field(default_factory=list)


def limit_change(body: dict, view: ControlView) -> LimitChange:
    """Check a PATCH body of an ``EnvironmentMetrics`` resource against its current ``PowerLimitWatts``."""
    if not body:
        raise BodyError(400, Message("EmptyJSON"))
    out = LimitChange()
    for key in body:
        if key.startswith("@") or "@" in key:  # annotations (e.g. @odata.etag) carry nothing to write
            continue
        if key == "PowerLimitWatts":
            continue
        msg = "PropertyNotWritable" if key in READ_ONLY else "PropertyUnknown"
        out.ignored.append(Message(msg, (key,), f"#/{key}"))
    control = body.get("PowerLimitWatts")
    if "PowerLimitWatts" in body:
        if not isinstance(control, dict):
            raise BodyError(
                400, Message("PropertyValueTypeError", (value_arg(control), "PowerLimitWatts"), "#/PowerLimitWatts")
            )
        for key, value in control.items():
            where = f"PowerLimitWatts/{key}"
            if key == "SetPoint":
                out.setpoint_w = _setpoint(value, view)
            elif key == "ControlMode":
                out.mode = _mode(value)
            elif key.startswith("@") or "@" in key:
                continue
            else:
                msg = "PropertyNotWritable" if key in CONTROL_READ_ONLY else "PropertyUnknown"
                out.ignored.append(Message(msg, (where,), f"#/{where}"))
    if out.setpoint_w is None and out.mode is None:
        raise BodyError(400, *(out.ignored or [Message("NoOperation")]))
    return out


def _setpoint(value: object, view: ControlView) -> float:
    where = "PowerLimitWatts/SetPoint"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BodyError(400, Message("PropertyValueTypeError", (value_arg(value), where), f"#/{where}"))
    try:
        x = float(value)
    except OverflowError:  # an integer beyond any float
        x = math.inf
    if not math.isfinite(x) or not view.allowable_min_w <= x <= view.allowable_max_w:
        raise BodyError(400, Message("PropertyValueOutOfRange", (value_arg(value), where), f"#/{where}"))
    return x


def _mode(value: object) -> str:
    where = "PowerLimitWatts/ControlMode"
    if not isinstance(value, str):
        raise BodyError(400, Message("PropertyValueTypeError", (value_arg(value), where), f"#/{where}"))
    if value not in CONTROL_MODES:
        raise BodyError(400, Message("PropertyValueNotInList", (value, where), f"#/{where}"))
    return value


def parse_if_match(header: str | None) -> list[str] | None:
    """The entity tags of an ``If-Match`` header (``["*"]`` for any); ``None`` without the header."""
    if header is None:
        return None
    tags = [t.strip() for t in header.split(",") if t.strip()]
    return tags or None


__all__ = ["MAX_BODY_BYTES", "BodyError", "LimitChange", "limit_change", "parse_if_match", "parse_json_object"]
