"""Study runner end to end (serial): product sweep, a failing case recorded, resume identical,
NetCDF and an offline HTML report."""

import shutil

import numpy as np
import pytest
import xarray as xr
from factory_twin.optimization.studies.runner import load_study, run_study, study_cases, sweep_dims

# a spec override that re-validates and re-assembles the facility (same value as the file: same results)
SPEC = {"spec.grid.ramp_limit_mw_per_min": 10.0}
STUDY = {
    "name": "tiny",
    "analysis": "sweep",
    "facility": "campus-100mw",
    "scenario": "hot-day-dr",
    "options": {"start": "2026-08-08T14:00:00", "horizon": "6h", "step": "15min", "backend": "highspy"} | SPEC,
    "sweep": {"dr_depth": [0.0, 0.1, 1.5]},  # 1.5 is not a depth: that case raises (check_values=False)
}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "full"
    return out, run_study(STUDY, out, serial=True, progress=False, check_values=False)


def test_sweep_runs_records_the_failure_and_writes_files(full):
    out, ds = full
    assert list(ds.status.values) == [0, 0, 1]
    assert "dr_events.depth" in str(ds.error.sel(dr_depth=1.5).values)
    assert np.isnan(ds.objective.sel(dr_depth=1.5))
    ok = ds.sel(dr_depth=[0.0, 0.1])
    assert (ok.optimal == 1).all()
    dt_h = 0.25
    np.testing.assert_allclose(ok.energy_mwh, ok.grid_import_mw.sum("step") * dt_h, rtol=1e-9)
    np.testing.assert_allclose(ok.peak_import_mw, ok.grid_import_mw.max("step"), rtol=1e-9)
    # the event (16:00-19:00, 25 % -> here 10 %) curtails energy; no event curtails less
    assert ok.mwh_curtailed.sel(dr_depth=0.1) > ok.mwh_curtailed.sel(dr_depth=0.0) + 1.0
    assert ok.throughput_kept.sel(dr_depth=0.1) < ok.throughput_kept.sel(dr_depth=0.0) <= 1 + 1e-12
    assert ds.grid_import_mw.dims == ("dr_depth", "step") and ds.grid_import_mw.attrs["units"] == "MW"
    on_disk = xr.open_dataset(out / "results.nc", engine="h5netcdf").load()
    xr.testing.assert_identical(on_disk, ds)
    page = (out / "report.html").read_text()
    assert "Plotly.newPlot" in page and 'src="http' not in page and len(page) > 1_000_000  # plotly.js inlined


def test_resume_after_a_kill_gives_the_same_dataset(full, tmp_path):
    out, ds = full
    part = tmp_path / "part"
    shutil.copytree(out, part)
    (part / "results.nc").unlink()
    first = sorted((part / "cases").glob("*.json"))[0]  # as if killed before this case finished
    first.unlink()
    first.with_suffix(".npz").unlink(missing_ok=True)
    kept = {p.name: p.stat().st_mtime_ns for p in (part / "cases").iterdir()}
    again = run_study(STUDY, part, resume=True, serial=True, progress=False, check_values=False)
    for name, ns in kept.items():
        if name.endswith(".npz"):  # finished ok cases are skipped, not rewritten
            assert (part / "cases" / name).stat().st_mtime_ns == ns
    xr.testing.assert_identical(again.drop_vars("elapsed_s"), ds.drop_vars("elapsed_s"))


def test_sweep_grammar(tmp_path):
    study = {"facility": "x", "sweep": {"a": {"start": 0, "stop": 1, "num": 3}, "p": ["u", "v"]},
             "labels": {"p": {"u": {}, "v": {"offset_k": 2.0}}}}  # fmt: skip
    dims, combine = sweep_dims(study)
    assert dims == {"a": [0.0, 0.5, 1.0], "p": ["u", "v"]} and combine == "product"
    cases, grid = study_cases(study)
    assert len(cases) == 6 and grid == dims and cases[1]["p"] == "v"
    cases, grid = study_cases(study | {"sweep": {"combine": "zip", "a": [1, 2], "b": [3, 4]}})
    assert grid is None and [(c["a"], c["b"]) for c in cases] == [(1, 3), (2, 4)]
    for bad, match in (
        ({"combine": "zip", "a": [1], "b": [1, 2]}, "equal length"),
        ({"a": {"start": 0, "stop": 1}}, "sweep.a"),
        ({"a": []}, "sweep.a"),
        ({"p": ["w"]}, "sweep.p"),
        ({"combine": "all"}, "sweep.combine"),
    ):
        with pytest.raises(ValueError, match=match):
            sweep_dims(study | {"sweep": bad})
    f = tmp_path / "s.toml"
    f.write_text('facility = "campus-100mw"\nanalysis = "nope"\n')
    with pytest.raises(ValueError, match="analysis"):
        load_study(f)
    f.write_text('facility = "campus-100mw"\nbogus = 1\n')
    with pytest.raises(ValueError, match="bogus"):
        load_study(f)
