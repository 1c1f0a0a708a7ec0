"""DSX Flex wire protocol: CloudEvents 1.0.2 (MQTT structured mode) with JWS-signed ``data``.

The contract is NVIDIA's DSX Flex 1.7.0 (AsyncAPI, ``dsx-ai-factory/dsx-exchange``, Apache-2.0); this module
implements it in its own code. An inbound ``grid.loadtarget.set.v1`` is accepted only when, in this order,

1. the payload is a JSON CloudEvent (strict JSON: no NaN or infinite numbers, :mod:`twin.runs.strict_json`) whose
   attributes satisfy the contract (``specversion`` exactly
   ``"1.0.2"``, UUID ``id``, ``//grid/v1/isv/<id>`` source matching the topic, ``traceparent``...),
2. its ``id`` was not accepted before (replay of the envelope),
3. its ``time`` is at most ``max_age_s`` old and not in the future beyond ``skew_s`` (expiry),
4. ``data`` is a JWS compact string (unsigned objects are refused although the schema admits them),
   signed ES256 or RS256 by a trusted key named by its ``kid`` (RFC 7638 thumbprint) and bound to the ISV of the
   topic and source (a key speaks only for its own ISV), verified by joserfc,
5. the signed ``data`` (its JWS, by SHA-256) was not accepted before: the signature covers ``data`` only, so a
   captured JWS wrapped in a fresh envelope (new ``id`` and ``time``) is a replay too; the digest is kept until
   the last of its intervals ends (for ever when one is open-ended), so it outlives the envelope's expiry,
6. the verified payload satisfies ``SetLoadTargetData`` and at least one interval has not ended.

Anything else raises :class:`RefusedError` with the reason. Schemas are pydantic models (the CloudEvents Python
SDK is not used: it rewrites ``specversion`` to ``"1.0"``, which the contract forbids on the wire).
Outbound events (:func:`build_event`) are signed with the agent's key. No crypto is written here.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from factory_twin.models.units import KW, MW
from factory_twin.twin.runs import strict_json
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SPECVERSION = "1.0.2"
LOADTARGET = "grid.loadtarget.set.v1"
STATUS = "grid.powerstate.status.v1"
BREACH = "grid.powerbreach.alert.v1"
ALGORITHMS = {"EC": "ES256", "RSA": "RS256"}
UNITS_W = {"watt": 1.0, "kilowatt": KW, "megawatt": MW}
JWS_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def loadtarget_topic(isv: str) -> str:
    return f"grid/v1/isv/{isv}/loadtarget/set"


def status_topic(agent: str) -> str:
    return f"grid/v1/dsx-flex-agent/{agent}/powerstate/status"


def breach_topic(agent: str) -> str:
    return f"grid/v1/dsx-flex-agent/{agent}/powerbreach"


class RefusedError(ValueError):
    """An inbound event that must change nothing; ``str(e)`` is the reason logged."""


# ---------------------------------------------------------------------------- keys and signatures
Key = ECKey | RSAKey


def load_key(path: str | Path, private: bool = False) -> Key:
    """A PEM key file: EC P-256 (ES256) or RSA >= 2048 bits (RS256); ``private`` demands the private part."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"key file not found: {p}")
    pem = p.read_bytes()
    for cls in (ECKey, RSAKey):
        try:
            key = cls.import_key(pem)
        except (JoseError, ValueError, TypeError):
            continue
        if isinstance(key, ECKey) and key.curve_name != "P-256":
            raise ValueError(f"{p}: EC key must be on P-256 for ES256, got {key.curve_name}")
        if isinstance(key, RSAKey) and key.raw_value.key_size < 2048:
            raise ValueError(f"{p}: RSA key must have >= 2048 bits, got {key.raw_value.key_size}")
        if private and not key.is_private:
            raise ValueError(f"{p}: a private key is needed to sign, got a public key")
        return key
    raise ValueError(f"{p}: not a PEM EC P-256 or RSA key")


def sign(payload: dict, key: Key) -> str:
    """JWS compact serialization of ``payload`` (JSON), ``kid`` = the key's RFC 7638 thumbprint."""
    header = {"alg": ALGORITHMS[key.key_type], "kid": key.thumbprint()}
    return jws.serialize_compact(header, strict_json.dumps(payload, separators=(",", ":")).encode(), key)


@dataclass
class TrustStore:
    """Public keys allowed to sign inbound events, by thumbprint, each bound to the ISVs it signs for (``isvs``:
    kid -> ISV identifiers). A load target is accepted only from a key bound to the ISV of its topic and source;
    a key without a binding verifies other parties' events (the agent's own, read by the grid side) but no target."""

    keys: dict[str, Key] = field(default_factory=dict)
    isvs: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def bound(cls, isv: str, *keys: Key) -> TrustStore:
        """``keys`` signing for ``isv``."""
        return cls({k.thumbprint(): k for k in keys}, {k.thumbprint(): frozenset({isv}) for k in keys})

    @classmethod
    def from_files(cls, entries: list[str]) -> TrustStore:
        """``ISV=FILE`` entries (the ``--trust-key`` option): a PEM public key and the ISV it signs for; a key may be
        given for several ISVs."""
        if not entries:
            raise ValueError("--trust-key: at least one trusted public key is required (ISV=FILE)")
        out = cls()
        for entry in entries:
            isv, sep, path = str(entry).partition("=")
            if not sep or not isv or not path:
                raise ValueError(
                    f"--trust-key: expected ISV=FILE (the ISV this key signs for, as in grid/v1/isv/ISV/loadtarget/set "
                    f"and //grid/v1/isv/ISV), got {str(entry)!r}"
                )
            check_identifier(isv, "--trust-key")
            key = load_key(path)
            kid = key.thumbprint()
            out.keys[kid] = key
            out.isvs[kid] = out.isvs.get(kid, frozenset()) | {isv}
        return out

    def verify(self, token: str, isv: str | None = None) -> dict:
        """The verified JSON payload of a JWS compact string, signed by a key bound to ``isv`` when given;
        :class:`RefusedError` otherwise."""
        try:
            header = jws.extract_compact(token.encode()).protected
        except (JoseError, ValueError) as e:
            raise RefusedError(f"data is not a JWS compact serialization ({e})") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS.values():
            raise RefusedError(f"JWS alg {alg!r} not allowed (ES256 or RS256)")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise RefusedError(f"JWS kid {kid!r} is not a trusted key")
        if isv is not None and isv not in self.isvs.get(kid, ()):
            speaks = sorted(self.isvs.get(kid, ()))
            raise RefusedError(f"JWS kid {kid} is trusted for ISV {speaks or 'none'}, not for {isv!r}")
        if ALGORITHMS[key.key_type] != alg:
            raise RefusedError(f"JWS alg {alg} does not match the {key.key_type} key {kid}")
        try:
            payload = jws.deserialize_compact(token, key, algorithms=[alg]).payload
        except (JoseError, ValueError) as e:
            raise RefusedError(f"bad signature ({type(e).__name__})") from None
        try:
            return strict_json.loads(payload)
        except ValueError as e:
            raise RefusedError(f"signed payload is not JSON ({e})") from None


def check_identifier(name: str, option: str) -> str:
    """An ISV or agent identifier is one topic level: not empty, no ``/``, ``+``, ``#``, no spaces or controls."""
    if not name or any(c in name for c in "/+#") or any(c.isspace() or not c.isprintable() for c in name):
        raise ValueError(f"{option}: an identifier is one MQTT topic level (no / + # or spaces), got {name!r}")
    return name


# ---------------------------------------------------------------------------- schemas (contract, own code)
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Power(_Open):
    value: Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]  # a JSON number, finite
    unit: Literal["watt", "kilowatt", "megawatt"]

    @property
    def watts(self) -> float:
        return self.value * UNITS_W[self.unit]


class Interval(_Open):
    start_time: datetime | None = None
    end_time: datetime | None = None


class Strategy(_Open):
    best_effort: bool = False


class TargetRequest(_Open):
    interval: Interval
    feed_tags: list[str] = []
    load_constraint: Power | None
    strategy: Strategy = Strategy()


class SetLoadTargetData(_Open):
    targets: list[TargetRequest] = Field(min_length=1)


class CloudEvent(_Open):
    specversion: Literal["1.0.2"]
    id: Annotated[str, Field(pattern=UUID_PATTERN)]
    source: Annotated[str, Field(pattern=r"^//grid/v1/(isv|dsx-flex-agent|infra)/[^/]+$")]
    type: str
    time: datetime
    datacontenttype: Literal["application/json"]
    subject: str
    traceparent: Annotated[str, Field(pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")]
    tracestate: str | None = None
    correlationid: Annotated[str, Field(pattern=UUID_PATTERN)] | None = None
    data: Any


def _errors(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}" for err in e.errors()[:5])


@dataclass(frozen=True)
class LoadTarget:
    """One accepted target: ``constraint_w`` None removes; ``feeds`` empty means every feed (UTC times)."""

    feeds: tuple[str, ...]
    constraint_w: float | None
    start: datetime
    end: datetime | None
    best_effort: bool
    correlation_id: str
    event_id: str


@dataclass(frozen=True)
class LoadTargetEvent:
    id: str
    source: str
    time: datetime
    traceparent: str
    correlation_id: str
    targets: tuple[LoadTarget, ...]
    data_digest: str = ""  # SHA-256 of the signed data's JWS, prefixed "jws:" (a key of FlexState.seen)


def parse_loadtarget(
    payload: bytes,
    topic_isv: str,
    trust: TrustStore,
    now: datetime,
    seen: set[str] | dict[str, Any],
    max_age_s: float = 300.0,
    skew_s: float = 60.0,
) -> LoadTargetEvent:
    """Verify an inbound ``grid.loadtarget.set.v1`` (checks in the module docstring) or raise :class:`RefusedError`."""
    try:
        raw = strict_json.loads(payload)
    except ValueError as e:
        raise RefusedError(f"payload is not JSON ({e})") from None
    try:
        ev = CloudEvent.model_validate(raw)
    except ValidationError as e:
        raise RefusedError(f"schema: {_errors(e)}") from None
    if ev.type != LOADTARGET:
        raise RefusedError(f"type {ev.type!r} is not {LOADTARGET}")
    if ev.source != f"//grid/v1/isv/{topic_isv}":
        raise RefusedError(f"source {ev.source!r} does not match the topic's ISV {topic_isv!r}")
    if ev.id in seen:
        raise RefusedError(f"replayed event id {ev.id}")
    t = _utc(ev.time)
    if now - t > timedelta(seconds=max_age_s):
        raise RefusedError(f"expired: event time {t.isoformat()} is older than {max_age_s:g} s")
    if t - now > timedelta(seconds=skew_s):
        raise RefusedError(f"event time {t.isoformat()} is in the future by more than {skew_s:g} s")
    if not isinstance(ev.data, str):
        raise RefusedError("unsigned: data must be a JWS compact string")
    signed = trust.verify(ev.data, topic_isv)
    digest = data_digest(ev.data)
    if digest in seen:
        raise RefusedError("replayed signed data: these signed targets were accepted before under another event id")
    try:
        data = SetLoadTargetData.model_validate(signed)
    except ValidationError as e:
        raise RefusedError(f"schema (data): {_errors(e)}") from None
    corr = ev.correlationid or ev.id
    targets = []
    for i, req in enumerate(data.targets):
        start = _utc(req.interval.start_time) if req.interval.start_time else t
        end = _utc(req.interval.end_time) if req.interval.end_time else None
        if end is not None and end <= start:
            raise RefusedError(f"targets.{i}.interval: end_time must be after start_time")
        c = req.load_constraint
        targets.append(
            LoadTarget(
                tuple(req.feed_tags), None if c is None else c.watts, start, end, req.strategy.best_effort, corr, ev.id
            )
        )
    if all(x.end is not None and x.end <= now for x in targets):
        raise RefusedError("expired: every interval has already ended")
    return LoadTargetEvent(ev.id, ev.source, t, ev.traceparent, corr, tuple(targets), digest)


def data_digest(jws: str) -> str:
    """The key under which an accepted event's signed data is remembered: ``jws:`` + SHA-256 of the JWS."""
    return "jws:" + hashlib.sha256(jws.encode()).hexdigest()


def _utc(t: datetime) -> datetime:
    """Aware UTC time; a naive time is taken as UTC (the contract's times are UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def iso(t: datetime) -> str:
    return _utc(t).isoformat().replace("+00:00", "Z")


def power(w: float, unit: str = "kilowatt") -> dict:
    """A contract ``PowerUnit`` from watts."""
    return {"value": max(float(w), 0.0) / UNITS_W[unit], "unit": unit}


def traceparent(trace_id: str | None = None) -> str:
    """W3C traceparent: a new span (random parent id) in ``trace_id`` (new trace if None), sampled."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def build_event(
    type_: str,
    source: str,
    subject: str,
    data: dict,
    key: Key,
    now: datetime,
    correlation_id: str | None = None,
    trace_id: str | None = None,
) -> dict:
    """A CloudEvent (structured mode) with ``data`` signed as JWS."""
    ev = {
        "specversion": SPECVERSION,
        "id": str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "time": iso(now),
        "datacontenttype": "application/json",
        "subject": subject,
        "traceparent": traceparent(trace_id),
        "data": sign(data, key),
    }
    if correlation_id:
        ev["correlationid"] = correlation_id
    return ev


def loadtarget_data(
    constraint_w: float | None,
    start: datetime | None = None,
    end: datetime | None = None,
    feeds: list[str] | None = None,
    best_effort: bool = False,
    unit: str = "kilowatt",
) -> dict:
    """One ``targets`` entry of ``SetLoadTargetData``."""
    interval = {}
    if start is not None:
        interval["start_time"] = iso(start)
    if end is not None:
        interval["end_time"] = iso(end)
    out: dict[str, Any] = {
        "interval": interval,
        "load_constraint": None if constraint_w is None else power(constraint_w, unit),
        "strategy": {"best_effort": best_effort},
    }
    if feeds:
        out["feed_tags"] = list(feeds)
    return out


def loadtarget_event(isv: str, targets: list[dict], key: Key, now: datetime, correlation_id: str | None = None) -> dict:
    """A signed ``grid.loadtarget.set.v1`` from ISV ``isv`` (``targets``: :func:`loadtarget_data` entries)."""
    corr = correlation_id or str(uuid.uuid4())
    return build_event(LOADTARGET, f"//grid/v1/isv/{isv}", "loadtarget", {"targets": targets}, key, now, corr)
