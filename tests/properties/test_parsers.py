"""Property-based tests of every input parser: facility spec, scenario, grid-signal CSV, EPW weather and
study files. Any input either loads or raises the project's error (``ValueError``; ``SpecError`` for specs,
``FileNotFoundError`` for a missing file it names) with a message that names the field, row or file;
never another exception. Inputs are valid files with one value replaced, plus arbitrary text."""

from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path

import pytest
from factory_twin.twin.facility.assembly import assemble, rack_catalog
from factory_twin.twin.facility.spec import SpecError, parse_facility
from factory_twin.twin.scenario.grid_signals import read_signals_csv
from factory_twin.twin.scenario.scenario import load_scenario
from factory_twin.twin.scenario.weather import read_epw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factory_twin import data, twin

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "60"))  # more for a local hunt; 60 keeps CI quick
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
ONE_RACK = Path(__file__).resolve().parents[1] / "data" / "one-rack.toml"


# ------------------------------------------------------------------ TOML built from Python values
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_text(d: dict) -> str:
    return "\n".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in d.items()) + "\n"


def leaf_paths(d, prefix=()):
    """Every key path to a scalar or list in a nested dict/list."""
    items = d.items() if isinstance(d, dict) else enumerate(d)
    for k, v in items:
        if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict)):
            yield from leaf_paths(v, (*prefix, k))
        else:
            yield (*prefix, k)


def replaced(d, path, value):
    out = json.loads(json.dumps(d))  # deep copy of plain TOML data
    node = out
    for k in path[:-1]:
        node = node[k]
    if value is REMOVE:
        if isinstance(node, dict):
            del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


REMOVE = object()
LINE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")  # one line, writable
values = st.one_of(
    st.just(REMOVE),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.floats(-1e6, 1e6), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def mutations(raw: dict):
    paths = list(leaf_paths(raw))
    return st.tuples(st.sampled_from(paths), values)


def assert_names_a_field(err: Exception, source: str) -> None:
    text = str(err)
    assert text.strip(), "empty message"
    if isinstance(err, SpecError):
        assert err.errors and all(path for path, _ in err.errors), text
        assert source in text, text


# ------------------------------------------------------------------ facility spec
FACILITY_RAW = tomllib.loads(ONE_RACK.read_text())
CATALOG = rack_catalog()


@SETTINGS
@given(mutations(FACILITY_RAW))
def test_facility_spec_loads_or_names_the_key(change):
    path, value = change
    text = toml_text(replaced(FACILITY_RAW, path, value))
    try:
        assemble(parse_facility(text, "f.toml", set(CATALOG)), CATALOG, "f.toml")
    except (SpecError, ValueError) as e:
        assert_names_a_field(e, "f.toml")


@SETTINGS
@given(st.text(max_size=200))
def test_facility_spec_from_any_text(text):
    with pytest.raises(SpecError):
        parse_facility(text, "f.toml", set(CATALOG))


# ------------------------------------------------------------------ scenario
SCENARIO_RAW = tomllib.loads(data.path("scenarios", "hot-day-dr.toml").read_text())
FACILITY = twin.load_facility(ONE_RACK)


@SETTINGS
@given(mutations(SCENARIO_RAW))
def test_scenario_loads_or_names_the_key(tmp_path, change):
    path, value = change
    p = tmp_path / "s.toml"
    p.write_text(toml_text(replaced(SCENARIO_RAW, path, value)))
    try:
        load_scenario(p, FACILITY)
    except FileNotFoundError as e:
        assert "not found" in str(e)
    except (SpecError, ValueError) as e:
        assert_names_a_field(e, str(p))


# ------------------------------------------------------------------ grid-signal CSV
cells = st.one_of(
    st.sampled_from(["2026-08-08T00:00:00", "2026-08-08T01:00:00", "x", "", "1e400", "-5", "nan", "12.5"]),
    st.text(alphabet=LINE_CHARS, max_size=8),
)
headers = st.lists(
    st.sampled_from(["time", "price_per_mwh", "import_limit_mw", "carbon_g_per_kwh", "price", ""]),
    min_size=0,
    max_size=4,
)


@SETTINGS
@given(headers, st.lists(st.lists(cells, max_size=5), max_size=6))
def test_grid_csv_loads_or_names_the_row_or_column(tmp_path, header, rows):
    p = tmp_path / "g.csv"
    p.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    try:
        read_signals_csv(p)
    except ValueError as e:
        assert str(p) in str(e) or "grid.signals" in str(e), str(e)


@SETTINGS
@given(st.binary(max_size=300))
def test_grid_csv_from_any_bytes(tmp_path, blob):
    p = tmp_path / "g.csv"
    p.write_bytes(blob)
    try:
        read_signals_csv(p)
    except ValueError as e:
        assert str(p) in str(e), str(e)


# ------------------------------------------------------------------ EPW
EPW_ROW = "2026,1,1,1,0,src,10.0,5.0,60,101000,0,0,0"


@SETTINGS
@given(
    st.integers(0, 12),
    st.lists(st.text(alphabet=LINE_CHARS, max_size=40), max_size=5),
    st.integers(0, 8761),
)
def test_epw_loads_or_names_the_file(tmp_path, n_header, odd_rows, n_rows):
    p = tmp_path / "w.epw"
    p.write_text("\n".join(["HEADER"] * n_header + odd_rows + [EPW_ROW] * n_rows))
    try:
        read_epw(p)
    except ValueError as e:
        assert str(p) in str(e), str(e)


# ------------------------------------------------------------------ study files
STUDY_RAW = tomllib.loads(data.path("studies", "flex-envelope.toml").read_text())


@SETTINGS
@given(mutations(STUDY_RAW))
def test_study_file_loads_or_names_the_key(tmp_path, change):
    from factory_twin.optimization.studies.runner import load_study, study_cases

    path, value = change
    p = tmp_path / "study.toml"
    p.write_text(toml_text(replaced(STUDY_RAW, path, value)))
    try:
        study_cases(load_study(p))
    except FileNotFoundError as e:
        assert "not found" in str(e)
    except ValueError as e:
        assert str(e).split(":", 1)[0].strip(), str(e)
