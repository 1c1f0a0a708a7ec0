"""Batch ingest of DSX Exchange value messages: the connector's fast path.

A value message on a point that is mapped and already has a history id costs, one by one, a JSON parse, a
dict look-up, a history append and three array writes. Here a run of such messages is applied at once: the
payloads are parsed by one ``json.loads`` of their concatenation, checked by type in bulk (the careful
per-message parser of :func:`contract.parse_value` runs only when the bulk check fails), and stored with
numpy fancy indexing per signal. (One regular expression over the concatenation was tried: turning its
matches into columns cost more than the JSON parse.) Within a run the value with the latest timestamp of
each point wins (on equal timestamps the later arrival), exactly as one-by-one storing does.

:class:`SlotTable` is the look-up: full value topic -> slot, with the slot's signal group, entity index,
unit scale/offset and history id in numpy columns.
"""

from __future__ import annotations

import json

import numpy as np

_NUMBER = {float, int, type(None)}


class SlotTable:
    """Value topics of mapped points -> slot number; per-slot columns ``group, index, scale, offset, pid`` and
    the point's plausible range and jump rule in internal units ``lo, hi, jump`` (NaN: none)."""

    def __init__(self) -> None:
        self.slot: dict[str, int] = {}
        self._cols: tuple[list, ...] = ([], [], [], [], [], [], [], [])
        self._arrays: tuple[np.ndarray, ...] | None = None

    def add(
        self,
        topic: str,
        group: int,
        index: int,
        scale: float,
        offset: float,
        pid: int,
        limits: tuple[float, float, float] = (np.nan, np.nan, np.nan),
    ) -> None:
        for col, x in zip(self._cols, (group, index, scale, offset, pid, *limits), strict=True):
            col.append(x)
        self.slot[topic] = len(self._cols[0]) - 1
        self._arrays = None

    def drop(self, topic: str) -> None:
        """Forget a topic (its metadata changed or was withdrawn): its next value takes the careful path."""
        self.slot.pop(topic, None)

    def columns(self) -> tuple[np.ndarray, ...]:
        """``group, index, scale, offset, pid, lo, hi, jump`` by slot."""
        if self._arrays is None:
            g, i, s, o, p, lo, hi, jump = self._cols
            self._arrays = (
                np.array(g, np.int32),
                np.array(i, np.int64),
                np.array(s),
                np.array(o),
                np.array(p, np.int32),
                np.array(lo, float),
                np.array(hi, float),
                np.array(jump, float),
            )
        return self._arrays


def _refuse_constant(token: str) -> None:
    raise ValueError(token)


def parse_batch(payloads: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(value, timestamp_ms, quality)`` arrays of well-formed value payloads (null value -> NaN), or None
    when any payload is not a ``{"value": number|null, "timestamp": int, "quality": int}`` object or holds a
    non-finite number (``NaN``/``Infinity`` tokens, ``1e309``: the strict loader's rule, checked here in bulk
    rather than per number)."""
    try:
        docs = json.loads(b"[" + b",".join(payloads) + b"]", parse_constant=_refuse_constant)
        values = [d["value"] for d in docs]
        ts = [d["timestamp"] for d in docs]
        quality = [d["quality"] for d in docs]
    except (ValueError, KeyError, TypeError):
        return None
    if set(map(type, ts)) != {int} or set(map(type, quality)) != {int} or not set(map(type, values)) <= _NUMBER:
        return None  # bool is its own type: true/false are refused here as in the careful parser
    try:
        out = np.array(values, float), np.array(ts, np.int64), np.array(quality, np.int64)
    except OverflowError:
        return None
    return None if np.isinf(out[0]).any() else out  # NaN only from null: the tokens were refused above


def latest_per_index(index: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Positions of the last message of each index by (timestamp, arrival): the one that stays stored."""
    order = np.lexsort((np.arange(index.size), ts, index))
    last = np.ones(order.size, bool)
    last[:-1] = index[order[1:]] != index[order[:-1]]
    return order[last]


__all__ = ["SlotTable", "latest_per_index", "parse_batch"]
