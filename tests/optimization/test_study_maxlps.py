"""The MaxLPS sizing study on the DPS SDK facility (GB300 NVL72 racks, fast): provisions from the design point and the
rack catalog, whole racks per shell, NVIDIA's "without" column reproduced by shelf-nameplate provisioning, the CLI."""

import numpy as np
import pytest
import xarray as xr
from factory_twin.dashboard.pages import studies
from factory_twin.optimization.studies.maxlps import finding_lines, maxlps_study, provision, window_starts
from factory_twin.twin import load_facility
from factory_twin.twin.simulation.design import steady_point

from factory_twin.cli import main


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("maxlps")
    return maxlps_study("dps-sdk", (96.0, 250.0, 1000.0), out=out, windows=1, window_s=60.0, serial=True), out


def test_provisions_and_counts(study):
    ds, out = study
    f = load_facility("dps-sdk")
    p = provision(f, ds.attrs["sustained_share_of_tdp"])
    db, wb = p.design_c
    # MaxP: the steady campus with every GPU at TDP at the design ambient, per rack; the shelf: 48 x 5.5 kW
    assert p.per_rack_w["MaxP"] == pytest.approx(float(steady_point(f, f.tdp_w, db, wb).grid_w) / f.n_racks)
    assert p.per_rack_w["MaxP-shelf"] == pytest.approx(48 * 5500.0)
    # sustained power is a quantile of what the GPUs drew under TDP limits: at most TDP, so MaxLPS <= MaxP
    assert 0 < ds.attrs["sustained_share_of_tdp"] <= ds.attrs["gpu_power_share_max"] <= 1.0
    assert p.per_rack_w["MaxLPS"] <= p.per_rack_w["MaxP"]
    kw = dict(zip(ds.policy.values, ds.per_rack_kw.values, strict=True))
    for i, shell in enumerate(ds.shell.values):  # whole racks, 72 GPUs each
        for j, pol in enumerate(ds.policy.values):
            assert ds.racks.values[i, j] == np.floor(shell * 1e3 / kw[pol])
            assert ds.gpus.values[i, j] == 72 * ds.racks.values[i, j]
    assert ds.attrs["ratio_maxlps_maxp"] == pytest.approx(kw["MaxP"] / kw["MaxLPS"])
    # NVIDIA's "without" column (274,968 GPUs at 1 GW) is within 1 % of racks provisioned at their shelves' nameplate
    i = list(ds.shell.values).index(1000.0)
    assert ds.gpus.sel(policy="MaxP-shelf").values[i] == pytest.approx(274_968, rel=0.01)
    assert (out / "results.nc").exists() and len(list((out / "cases").glob("*.json"))) == 2  # 1 window x 2 passes
    assert ds.attrs["trips"] == 0


def test_the_studies_page_lists_the_study_and_shows_its_table(study):
    """Issue 22 item 5: the MaxLPS results are a study the Studies page opens, with the GPUs per shell and policy and
    NVIDIA's published counts beside them, as written in the file."""
    ds, out = study
    assert studies.list_studies(out) == ["results.nc"]
    with xr.open_dataset(out / "results.nc") as saved:
        _title, tbl, *lines = studies.study_summary(saved)
    rows = [[td.children for td in tr.children] for tr in tbl.children[1].children]
    assert [r[0] for r in rows] == ["96", "250", "1,000"]
    for i, r in enumerate(rows):
        assert [int(c.replace(",", "")) for c in r[1:5]] == [int(g) for g in ds.gpus.values[i]]
    assert rows[2][5:] == ["399,096", "274,968"]  # NVIDIA's with / without at 1 GW
    assert [p.children for p in lines] == finding_lines(ds)
    assert "satisfaction" in lines[-1].children and studies.study_summary(ds.drop_attrs()) == []


def test_windows_spread_over_the_year():
    starts = window_starts(2026, 12, 13.9)
    assert len(set(s[:7] for s in starts)) == 12 and all(s.endswith("T13:54:00") for s in starts)


def test_cli_names_bad_options_before_work(tmp_path, capsys):
    assert main(["study", "maxlps", "--shells", "-5", "--out", str(tmp_path / "o")]) == 1
    assert "--shells" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_runs_the_study_and_refuses_to_overwrite(tmp_path, capsys):
    args = ["study", "maxlps", "--template", "dps-sdk", "--shells", "1000", "--windows", "1", "--window", "60",
            "--serial", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1000 MW: MaxP " in out and "NVIDIA: with 399,096, without 274,968" in out and "GPU ratio" in out
    assert main(args) == 1  # results.nc exists: --force or --resume
    assert "--force" in capsys.readouterr().err
