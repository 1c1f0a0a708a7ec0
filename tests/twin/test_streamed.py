"""The streamed runner on a synthetic run: a failed piece does not sink the others and runs again on resume,
a resume with other inputs is refused, the file holds every piece's records."""

import numpy as np
import pytest
from factory_twin.twin.runs.provenance import fingerprint
from factory_twin.twin.runs.streamed import Layout, Summary, run_streamed

from factory_twin import twin

T0 = np.datetime64("2026-01-01T00:00:00", "s").astype(np.int64)
LAYOUT = Layout(5, 2, T0 + np.array([0, 120, 240]), {"x": (("time",), {"units": "MW"})})
CALLS: list[int] = []  # the segments computed (serial runs: in this process)


def piece(offset: float, broken: int, k: int) -> dict:
    """Segment ``k``: records ``k*2 .. k*2+1`` with ``x = offset + record index``."""
    CALLS.append(k)
    if k == broken:
        raise ArithmeticError(f"segment {k} cannot be computed")
    i0, i1 = LAYOUT.bounds(k)
    return {"time": T0 + 60 * np.arange(i0, i1), "series/x": offset + np.arange(i0, i1), "head/n": float(i1 - i0)}


def summarize(parts: list[dict]) -> Summary:
    n = np.array([float(p["head/n"]) for p in parts])
    return Summary({"records": n.sum()}, {"segment_records": (n, "1", "records in the segment")})


def test_a_failed_piece_is_named_kept_apart_and_retried_on_resume(tmp_path, capsys):
    out, parts = tmp_path / "run.nc", tmp_path / ".run.nc.parts"
    CALLS.clear()
    with pytest.raises(RuntimeError, match=r"1 segment\(s\) failed") as err:
        run_streamed(out, {"offset": 10}, LAYOUT, piece, (10.0, 1), summarize, serial=True)
    assert "segment 1 (2026-01-01T00:02:00): ArithmeticError: segment 1 cannot be computed (at test_streamed.py:" in (
        str(err.value)
    )
    assert not out.exists() and sorted(p.name for p in parts.glob("seg-*.npz")) == ["seg-00000.npz", "seg-00002.npz"]
    assert CALLS == [0, 1, 2]
    with pytest.raises(ValueError, match="other settings"):  # another run's inputs never mix in
        run_streamed(out, {"offset": 11}, LAYOUT, piece, (11.0, -1), summarize, serial=True, resume=True)
    assert CALLS == [0, 1, 2]  # refused before any work
    ds = run_streamed(out, {"offset": 10}, LAYOUT, piece, (10.0, -1), summarize, serial=True, resume=True)
    np.testing.assert_array_equal(ds.x, 10.0 + np.arange(5))
    np.testing.assert_array_equal(ds.time.values.astype("datetime64[s]").astype(np.int64), T0 + 60 * np.arange(5))
    np.testing.assert_array_equal(ds.segment_records, [2, 2, 1])
    assert ds.attrs["records"] == 5 and ds.x.attrs["units"] == "MW" and not parts.exists()
    assert CALLS == [0, 1, 2, 1]  # only the failed segment ran again


def test_the_fingerprint_follows_the_scenario_content():
    f = twin.load_facility("campus-100mw")
    sc = twin.load_scenario("hot-day-dr", f)
    a, b = fingerprint(f, sc), fingerprint(f, sc.with_changes(offset_k=1.0))
    assert a["scenario"] == b["scenario"] and a["scenario_sha256"] != b["scenario_sha256"]
    assert fingerprint(f, twin.load_scenario("hot-day-dr", f)) == a
