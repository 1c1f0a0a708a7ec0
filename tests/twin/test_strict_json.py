"""Strict JSON (issue 20 item 10): what Python's json module reads or writes beyond RFC 8259 is refused both ways."""

from __future__ import annotations

import json
import math

import pytest
from factory_twin.twin.runs import strict_json
from factory_twin.twin.runs.atomic import write_json_atomic


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("NaN", "non-finite number NaN"),
        ('{"a": [1, Infinity]}', "non-finite number Infinity"),
        ("-Infinity", "non-finite number -Infinity"),
        ('{"v": 1e309}', "1e309 is beyond the range of a double"),
        ("-2.5e400", "beyond the range of a double"),
        ("1" + "0" * 309, "integer of 310 digits"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_loads_refuses_what_json_cannot_hold(text, why):
    with pytest.raises(ValueError, match=why):
        strict_json.loads(text)


def test_loads_keeps_every_finite_number_exactly():
    text = '{"a": 1.7976931348623157e308, "b": -5e-324, "c": 12345678901234567890, "d": [0, -0.0, null, true]}'
    assert strict_json.loads(text) == json.loads(text)
    assert strict_json.loads(text.encode()) == json.loads(text)


def test_dumps_and_the_atomic_writer_refuse_non_finite_and_keep_the_old_file(tmp_path):
    with pytest.raises(ValueError):
        strict_json.dumps({"x": math.inf})
    p = tmp_path / "status.json"
    write_json_atomic(p, {"x": 1.5})
    with pytest.raises(ValueError):
        write_json_atomic(p, {"x": math.nan})
    assert strict_json.loads(p.read_text()) == {"x": 1.5} and [q.name for q in tmp_path.iterdir()] == ["status.json"]
