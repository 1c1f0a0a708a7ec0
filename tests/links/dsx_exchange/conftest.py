"""The DSX Exchange contract as published (``bms.yaml`` beside the project in shared/data/dsx-exchange, or
``$FACTORY_TWIN_SHARED/dsx-exchange``): a validator for any topic + payload, read as JSON Schema 2020-12."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("FACTORY_TWIN_SHARED", Path(__file__).parents[4] / "shared" / "data"))
CANDIDATES = [SHARED / "dsx-exchange" / "bms.yaml", Path("/work/shared/data/dsx-exchange/bms.yaml")]


class BmsContract:
    """Validates a (topic, payload) pair against the channel its topic matches in bms.yaml."""

    def __init__(self, path: Path) -> None:
        import yaml
        from jsonschema import Draft202012Validator

        self.doc = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        self._validator = Draft202012Validator
        self._cache: dict[str, object] = {}
        self._passed: set = set()
        self.validated_shapes = 0
        self.channels = []
        for name, ch in self.doc["channels"].items():
            parts = ch["address"].split("/")
            params = ch.get("parameters") or {}
            self.channels.append((name, parts, params, ch["messages"]))

    def _schema_validator(self, ref: str):
        if ref not in self._cache:
            schema = {"$ref": ref, "components": self.doc["components"]}
            self._cache[ref] = self._validator(schema)
        return self._cache[ref]

    def channel_for(self, topic: str) -> tuple[str, dict, dict]:
        levels = topic.split("/")
        for name, parts, params, messages in self.channels:
            if len(levels) < len(parts):
                continue
            values, ok = {}, True
            for i, p in enumerate(parts):
                if p.startswith("{"):
                    key = p[1:-1]
                    values[key] = "/".join(levels[i:]) if key == "tagPath" else levels[i]
                    if key == "tagPath":
                        break
                elif levels[i] != p:
                    ok = False
                    break
            if not ok:
                continue
            enum_ok = all("enum" not in (params.get(k) or {}) or v in params[k]["enum"] for k, v in values.items())
            if enum_ok and values.get("tagPath"):
                return name, values, messages
        raise AssertionError(f"no bms.yaml channel matches topic {topic!r}")

    def validate(self, topic: str, payload: bytes | dict) -> None:
        """Raise AssertionError naming the topic and the schema error when the message breaks the contract."""
        name, values, messages = self.channel_for(topic)
        body = json.loads(payload) if isinstance(payload, bytes | str) else payload
        if "Metadata" in name:
            pt = values["pointType"]
            key = pt[0].lower() + pt[1:]
            ref = messages[key]["$ref"]
            payload_ref = self.doc["components"]["messages"][ref.rsplit("/", 1)[1]]["payload"]["$ref"]
            if body.get("pointType") != pt or body.get("objectType") != topic.split("/")[4]:
                raise AssertionError(f"{topic}: objectType/pointType in the payload differ from the topic")
        else:
            payload_ref = "#/components/messages/ValueMessage/payload"
        shape = (payload_ref, _shape(body))
        if shape in self._passed:
            return
        errors = sorted(self._schema_validator(payload_ref).iter_errors(body), key=str)
        if errors:
            raise AssertionError(f"{topic}: {errors[0].message} (schema {payload_ref})")
        self._passed.add(shape)
        self.validated_shapes += 1


ID_FIELDS = ("objectName", "objectId", "rackLocationName", "rackLocationId", "associateId")


def _shape(body):
    """The payload with identifier strings and value numbers abstracted: the schemas constrain these only by
    type, so two payloads of one shape validate alike (keeps validating every message fast)."""
    if not isinstance(body, dict):
        return repr(body)
    out = []
    for k, v in sorted(body.items()):
        if k in ID_FIELDS and isinstance(v, str):
            v = "<str>"
        elif k == "servesId" and isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            v = "<list[str]>"
        elif k in ("value", "timestamp") and type(v) in (int, float):
            v = f"<{type(v).__name__}>"
        out.append((k, json.dumps(v, sort_keys=True)))
    return tuple(out)


@pytest.fixture(scope="session")
def bms_contract() -> BmsContract:
    for path in CANDIDATES:
        if path.is_file():
            return BmsContract(path)
    pytest.skip(f"bms.yaml not found at {CANDIDATES[0]} (set FACTORY_TWIN_SHARED)")


@pytest.fixture
def bms_broker(mosquitto):
    """The shared Mosquitto fixture with no per-client queue limit: a subscriber slower than an emulator
    running flat out gets every message late instead of losing some (as a site broker should be set up for
    a full-facility subscriber; see docs/dsx-exchange.md)."""
    mosquitto.stop()
    text = mosquitto.conf.read_text()
    mosquitto.conf.write_text(text + "max_queued_messages 0\nmax_queued_bytes 0\n")
    mosquitto.start()
    return mosquitto
