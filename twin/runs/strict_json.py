"""Strict JSON in and out: the one reader of JSON that comes from outside (MQTT payloads, signed event data, request
bodies, command and state files) and the one way JSON is written for others.

JSON (RFC 8259) has no NaN or infinity, but Python's ``json`` reads the tokens ``NaN``, ``Infinity`` and
``-Infinity``, turns a number too large for a double (``1e309``) into ``inf`` and writes non-finite floats back as
those tokens, which no other parser accepts. :func:`loads` refuses all of them (and integers beyond a double's
range, and nesting too deep to parse) with a ``ValueError`` naming the number (:class:`NonFiniteError` for a
number), so every number that reaches a check is finite; :func:`dumps` writes with ``allow_nan=False``, so a NaN
that slipped through raises instead of being published.
"""

from __future__ import annotations

import json
import math
from typing import Any


class NonFiniteError(ValueError):
    """A number that is not finite: a ``NaN``/``Infinity`` token or a number beyond a double's range."""


def _refuse_constant(token: str) -> float:
    raise NonFiniteError(f"non-finite number {token} (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise NonFiniteError(f"number {text[:40]} is beyond the range of a double")
    return x


def _finite_int(text: str) -> int:
    n = int(text)
    try:
        float(n)
    except OverflowError:
        raise NonFiniteError(f"integer of {len(text)} digits is beyond the range of a double") from None
    return n


def loads(data: bytes | bytearray | str, **kwargs: Any) -> Any:
    """``json.loads`` refusing non-finite numbers and over-deep nesting (``ValueError``, message naming them);
    ``kwargs`` go to ``json.loads`` (e.g. ``object_pairs_hook``)."""
    try:
        return json.loads(
            data, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_finite_int, **kwargs
        )
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` with ``allow_nan=False``: a NaN or infinity raises ``ValueError`` rather than being written."""
    return json.dumps(obj, allow_nan=False, **kwargs)


__all__ = ["NonFiniteError", "dumps", "loads"]
