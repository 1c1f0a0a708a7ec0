"""Write a ``[topology]`` back to facility TOML (for ``factory-twin topology import``).

The standard library reads TOML but does not write it; the topology's few value types (strings, numbers,
lists of strings, a device as an inline table) are written here. :func:`with_topology` replaces the
topology of a facility file's text (and drops the aggregate chain it replaces), keeping every other line
and comment as it was. The result is checked by parsing it again before anyone writes it to disk.
"""

from __future__ import annotations

import json
import re

from factory_twin.twin.facility.spec import AGGREGATE_CHAIN
from factory_twin.twin.facility.topology_spec import TopologySpec, TripDevice

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?\s*(#.*)?$")
_DROP = ("topology", *(f"grid.{k}" for k in AGGREGATE_CHAIN))


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string for these characters
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _fields(model, skip_defaults: bool = True) -> dict:
    """The model's fields that differ from their defaults (all when ``skip_defaults`` is False)."""
    out = {}
    for name, info in type(model).model_fields.items():
        v = getattr(model, name)
        if skip_defaults and not info.is_required() and v == info.get_default(call_default_factory=True):
            continue
        out[name] = _fields(v) if isinstance(v, TripDevice) else v
    return out


def topology_toml(spec: TopologySpec) -> str:
    """``spec`` as TOML tables (``[topology]``, ``[[topology.elements]]``, ...)."""
    lines = []
    if spec.name:
        lines += ["[topology]", f"name = {_value(spec.name)}", ""]
    for name, dev in spec.devices.items():
        lines += [f"[topology.devices.{json.dumps(name)}]", *(f"{k} = {_value(v)}" for k, v in _fields(dev).items())]
        lines.append("")
    for table, items in (("elements", spec.elements), ("mechanical", spec.mechanical), ("policies", spec.policies)):
        for item in items:
            lines += [f"[[topology.{table}]]", *(f"{k} = {_value(v)}" for k, v in _fields(item).items()), ""]
    return "\n".join(lines)


def with_topology(text: str, spec: TopologySpec) -> str:
    """Facility TOML ``text`` with its ``[topology]`` replaced by ``spec`` and the aggregate chain tables
    (``grid.transformer``, ``grid.ups``, ``grid.busway``) removed."""
    kept, dropping = [], False
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            key = m.group(1).replace('"', "")
            dropping = any(key == d or key.startswith(d + ".") for d in _DROP)
        if not dropping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n\n" + topology_toml(spec)
