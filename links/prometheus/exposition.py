"""Prometheus text exposition format 0.0.4, written by hand.

``prometheus-client`` renames every counter to ``<name>_total`` (its text and OpenMetrics writers both do), and
the DCGM exporter's energy counter has no such suffix; writing the format here keeps the exporter's exact names
and types. It is also fast at scale: label sets are rendered once, and the many series that share one value (the
GPUs of one rack) are written with one ``str.join``.

Format (https://prometheus.io/docs/instrumenting/exposition_formats/): per metric family ``# HELP name text``
(backslash and newline escaped), ``# TYPE name gauge|counter|untyped``, then one line per series
``name{label="value",...} number``; label values escape backslash, double quote and newline; numbers are Go
floats (``NaN``, ``+Inf``, ``-Inf``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TYPES = ("gauge", "counter", "untyped")


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(pairs: Mapping[str, object]) -> str:
    """``{a="x",b="y"}`` in the given order ("" for none)."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(str(v))}"' for k, v in pairs.items()) + "}"


def header(name: str, kind: str, help_text: str) -> str:
    """The ``# HELP`` and ``# TYPE`` lines of a family."""
    if kind not in TYPES:
        raise ValueError(f"metric type: must be one of {TYPES}, got {kind!r}")
    text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n"


def number(x: float) -> str:
    """A sample value: shortest round-trip decimal, Go's spellings of the non-finite values."""
    x = float(x)
    if math.isfinite(x):
        return repr(x)
    return "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")


def family(name: str, kind: str, help_text: str, series: Iterable[tuple[str, str]]) -> str:
    """One family: ``series`` yields (rendered label string, rendered value)."""
    return header(name, kind, help_text) + "".join(f"{name}{lab} {val}\n" for lab, val in series)


def shared_value_block(name: bytes, label_sets: Sequence[bytes], value: bytes) -> bytes:
    """Lines of ``name`` for every label set in ``label_sets``, all with the same rendered ``value`` (bytes)."""
    if not label_sets:
        return b""
    tail = b" " + value + b"\n"
    return name + (tail + name).join(label_sets) + tail


__all__ = ["CONTENT_TYPE", "escape_label", "family", "header", "labels", "number", "shared_value_block"]
