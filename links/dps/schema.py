"""A DPS topology import file, checked the way DPS documents it (pydantic), and DPS's semantic checks.

NVIDIA's ``topology.schema.json`` (draft-07, ``$id`` "dcpower_0.1") could not be read past its first
definitions and carries no licence statement, so it is not shipped. This is an equivalent check written
from the documented field names (DPS documentation, docs.nvidia.com/datacenter/dps: concepts "Topologies"
and "Entities", tasks "Managing topologies" and "Import topology", the schema reference page, the power
policies page); ``data/dps/topology.schema.json`` is the same check as a JSON Schema for other tools
(e.g. ``ajv``). The file holds at most one ``Topology``, any ``Entities`` and ``Policies``:

* entity: ``Name`` (unique), ``Type`` (``ComputerSystem``, ``PowerDomain``, ``PowerDistribution``,
  ``PowerSupply``), ``Model`` (a device-registry model), ``Redfish`` (``URL``, ``SecretName``, ...),
  ``Policy`` (legacy), ``Constraints`` (<= 0.8) or ``OperatingLimit`` (0.9+) ``{PowerValue {Value, Type
  "W"}, PowerFactor}``, ``StaticLoad {Value, Type "W"}``, ``TelemetryID``/``TelemetryId``;
* topology: ``Name`` (required), ``Entities`` of ``{Name, Children[], FeedTag}`` (a child listed under two
  parents is fed by both; DPS splits its power evenly);
* policy: ``Name`` and ``Limits`` of ``{ElementType (Node, GPU, CPU, Memory), PowerLimit {Watts} or
  {Percentage}}``.

Keys the documentation does not list are kept and reported (:func:`unknown_keys`), not refused: the
published schema's ``additionalProperties`` could not be read. :func:`check` adds DPS's server-side
checks (``referenced_entity_not_found``, ``circular_dependency``, duplicate names).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENTITY_TYPES = ("ComputerSystem", "PowerDomain", "PowerDistribution", "PowerSupply")
ELEMENT_TYPES = ("Node", "GPU", "CPU", "Memory")
MAX_FILE_BYTES = 64 * 1024 * 1024  # a 1 GW campus with every node is ~30 MB of JSON


class DpsError(ValueError):
    """A DPS file broke the documented format or a semantic check; ``errors`` lists ``(path, message)``."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source, self.errors = source, errors
        lines = "\n".join(f"  {p}: {m}" for p, m in errors)
        super().__init__(f"{source}: {len(errors)} error(s)\n{lines}")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


NonNegWatts = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PowerValueSpec(_Open):
    Value: NonNegWatts
    Type: Literal["W"]


class LimitSpec(_Open):
    """``Constraints`` / ``OperatingLimit``: a power limit and the power factor it applies at."""

    PowerValue: PowerValueSpec
    PowerFactor: Annotated[float, Field(gt=0, le=1)] | None = None


class StaticLoadSpec(_Open):
    Value: NonNegWatts
    Type: Literal["W"]


class RedfishSpec(_Open):
    URL: str | None = None
    SecretName: str | None = None


class Entity(_Open):
    Name: str = Field(min_length=1)
    Type: Literal[ENTITY_TYPES]  # type: ignore[valid-type]
    Model: str | None = None
    Redfish: RedfishSpec | None = None
    Policy: str | None = None
    Constraints: LimitSpec | None = None
    OperatingLimit: LimitSpec | None = None
    StaticLoad: StaticLoadSpec | None = None
    TelemetryID: str | None = None
    TelemetryId: str | None = None

    @property
    def limit(self) -> LimitSpec | None:
        """The entity's operating limit (``OperatingLimit``, else the older ``Constraints``)."""
        return self.OperatingLimit or self.Constraints


class TopologyEntitySpec(_Open):
    Name: str = Field(min_length=1)
    Children: list[str] = Field(default_factory=list)
    FeedTag: str | None = None


class TopologySpec(_Open):
    Name: str = Field(min_length=1)
    Entities: list[TopologyEntitySpec] = Field(default_factory=list)


class PowerLimitSpec(_Open):
    Watts: NonNegWatts | None = None
    Percentage: Annotated[float, Field(ge=0, le=100)] | None = None

    @model_validator(mode="after")
    def _one(self) -> PowerLimitSpec:
        if (self.Watts is None) == (self.Percentage is None):
            raise ValueError("PowerLimit holds either Watts or Percentage")
        return self


class PolicyLimitSpec(_Open):
    ElementType: Literal[ELEMENT_TYPES]  # type: ignore[valid-type]
    PowerLimit: PowerLimitSpec


class Policy(_Open):
    Name: str = Field(min_length=1)
    Limits: list[PolicyLimitSpec] = Field(min_length=1)


class DpsFile(_Open):
    """One DPS import file."""

    Entities: list[Entity] = Field(default_factory=list)
    Topology: TopologySpec | None = None
    Policies: list[Policy] = Field(default_factory=list)


def check(doc: DpsFile) -> list[tuple[str, str]]:
    """DPS's semantic checks: unique entity and policy names, topology entries that name known entities
    (``referenced_entity_not_found``), no entry twice, no cycle (``circular_dependency``), one limit per
    element type in a policy."""
    errors = []
    names = [e.Name for e in doc.Entities]
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            errors.append((f"Entities.{i}.Name", f"duplicate entity name {n!r}"))
        seen.add(n)
    for i, p in enumerate(doc.Policies):
        types = [lim.ElementType for lim in p.Limits]
        if len(set(types)) != len(types):
            errors.append((f"Policies.{i}.Limits", f"one limit per element type, got {types}"))
    if doc.Topology is None:
        return errors
    known = set(names)
    entries = doc.Topology.Entities
    listed: set[str] = set()
    for i, te in enumerate(entries):
        if te.Name not in known:
            errors.append((f"Topology.Entities.{i}.Name", f"referenced_entity_not_found: {te.Name!r}"))
        if te.Name in listed:
            errors.append((f"Topology.Entities.{i}.Name", f"{te.Name!r} listed twice"))
        listed.add(te.Name)
        for j, c in enumerate(te.Children):
            if c not in known:
                errors.append((f"Topology.Entities.{i}.Children.{j}", f"referenced_entity_not_found: {c!r}"))
        if len(set(te.Children)) != len(te.Children):
            errors.append((f"Topology.Entities.{i}.Children", f"{te.Name!r} lists a child twice"))
    cycle = _cycle({te.Name: te.Children for te in entries})
    if cycle:
        errors.append(("Topology.Entities", f"circular_dependency: {' -> '.join(cycle)}"))
    return errors


def _cycle(children: dict[str, list[str]]) -> list[str]:
    state: dict[str, int] = {}
    for root in children:
        if state.get(root):
            continue
        stack = [(root, iter(children.get(root, ())))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(children.get(nxt, ()))))
    return []


def unknown_keys(raw: object, model: type[BaseModel] = DpsFile, path: str = "") -> list[str]:
    """Key paths of ``raw`` that the documented format does not define (kept, reported)."""
    out = []
    if isinstance(raw, dict):
        fields = model.model_fields
        for k, v in raw.items():
            here = f"{path}.{k}" if path else k
            if k not in fields:
                out.append(here)
                continue
            sub = _submodel(fields[k].annotation)
            if sub is not None:
                items = v if isinstance(v, list) else [v]
                for i, item in enumerate(items):
                    out += unknown_keys(item, sub, f"{here}.{i}" if isinstance(v, list) else here)
    return out


def _submodel(annotation) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def read(path: str | Path) -> tuple[DpsFile, list[str]]:
    """Read and check a DPS topology file: (the file, keys it holds that the format does not define).
    Raises :class:`DpsError` naming every problem (the path of the key and the rule)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"DPS topology file not found: {p}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise DpsError(str(p), [("<file>", f"{p.stat().st_size:,} bytes is more than {MAX_FILE_BYTES:,}")])
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DpsError(str(p), [("<json>", str(e))]) from None
    return parse(raw, str(p))


def parse(raw: object, source: str = "<dps>") -> tuple[DpsFile, list[str]]:
    """:func:`read` for an already decoded JSON document."""
    if not isinstance(raw, dict):
        raise DpsError(source, [("<root>", f"must be a JSON object, got {type(raw).__name__}")])
    try:
        doc = DpsFile.model_validate(raw)
    except ValidationError as e:
        errs = [(".".join(str(x) for x in err["loc"]) or "<root>", err["msg"]) for err in e.errors()]
        raise DpsError(source, errs) from None
    errors = check(doc)
    if errors:
        raise DpsError(source, errors)
    return doc, unknown_keys(raw)
