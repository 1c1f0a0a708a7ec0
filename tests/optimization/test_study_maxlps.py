"""The MaxLPS sizing study on the DPS SDK facility (GB300 NVL72 racks, fast): provisions from the design point and the
rack catalog, whole racks per shell, NVIDIA's "without" column reproduced by shelf-nameplate provisioning, the CLI."""

import numpy as np
import pytest
import xarray as xr
from factory_twin.dashboard.pages import studies
from factory_twin.optimization.studies.maxlps import (
    ambient_provision,
    finding_lines,
    maxlps_study,
    provision,
    summary_lines,
    window_starts,
)
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


def _table_rows(tbl) -> list[list[str]]:
    return [[td.children for td in tr.children] for tr in tbl.children[1].children]


def test_the_studies_page_lists_the_study_and_shows_its_table(study):
    """Issue 22 item 5: the MaxLPS results are a study the Studies page opens, with the GPUs per shell and policy and
    NVIDIA's published counts beside them, the hot-day table and the findings, as written in the file."""
    ds, out = study
    assert studies.list_studies(out) == ["results.nc"]
    with xr.open_dataset(out / "results.nc") as saved:
        shown = studies.study_summary(saved)
    tables = {c.id: _table_rows(c) for c in shown if getattr(c, "id", None)}
    rows = tables["st-maxlps-table"]
    assert [r[0] for r in rows] == ["96", "250", "1,000"]
    for i, r in enumerate(rows):
        assert [int(c.replace(",", "")) for c in r[1:5]] == [int(g) for g in ds.gpus.values[i]]
    assert rows[2][5:] == ["399,096", "274,968"]  # NVIDIA's with / without at 1 GW
    hot = tables["st-maxlps-ambient"]
    assert [r[0] for r in hot] == ["50 %", "90 %", "99 %", "99.6 %", "100 %"]
    assert [int(r[2].replace(",", "")) for r in hot] == [int(g) for g in ds.maxlps_gpus_at.values[2]]
    paragraphs = [c.children for c in shown if type(c).__name__ == "P"]
    assert paragraphs == finding_lines(ds) and any("satisfaction" in p for p in paragraphs)
    assert studies.study_summary(ds.drop_attrs()) == []


def test_hot_days_the_provision_over_the_sites_year(study):
    """The MaxLPS provision at every hour of the year equals the steady site model at that hour's ambient (rack by
    rack, an independent path from the per-type sums); quantiles, hours and energy over it follow from the hours."""
    ds, _ = study
    f = load_facility("dps-sdk")
    x_s = ds.attrs["sustained_share_of_tdp"]
    q = [0.5, 0.9, 0.99, 0.996, 1.0]
    a = ambient_provision(f, x_s, q)
    assert a.hourly_w.shape == (8760,)
    for h in (0, int(np.argmin(a.hourly_w)), int(np.argmax(a.hourly_w)), 4000):
        sp = steady_point(f, x_s * f.tdp_w, a.dry_bulb_c[h], a.wet_bulb_c[h])
        assert a.hourly_w[h] == pytest.approx(float(sp.grid_w) / f.n_racks, rel=1e-9)
    assert np.allclose(a.per_rack_w, np.quantile(a.hourly_w, q))
    for k, level in enumerate(a.per_rack_w):
        assert a.hours_over[k] == np.count_nonzero(a.hourly_w > level)
        assert a.energy_over_j[k] == pytest.approx(np.maximum(a.hourly_w - level, 0).sum() * 3600.0)
    assert a.hours_over[-1] == 0 and a.hours_over[0] == 4380  # the hottest hour; half the year
    kw = ds.maxlps_per_rack_kw_at.values
    assert np.allclose(kw, a.per_rack_w / 1e3)
    assert np.array_equal(ds.maxlps_gpus_at.values, 72 * np.floor(ds.shell.values[:, None] * 1e3 / kw[None, :]))
    design = ds.per_rack_kw.sel(policy="MaxLPS").item() * 1e3
    assert ds.attrs["design_hours_over_shell"] == np.count_nonzero(a.hourly_w > design)
    assert ds.attrs["worst_hour_per_rack_kw"] == pytest.approx(a.hourly_w.max() / 1e3)
    assert "hot days" in " ".join(summary_lines(ds))


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


def test_a_folder_named_maxlps_does_not_shadow_the_study(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "maxlps").mkdir()
    assert main(["study", "maxlps", "--shells", "-5", "--out", "o"]) == 1
    assert "--shells" in capsys.readouterr().err  # the MaxLPS options were read: the study, not a study file


def test_a_study_without_out_leaves_no_folder(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ds = maxlps_study("dps-sdk", (96.0,), windows=1, window_s=60.0, serial=True)
    assert ds.sizes["shell"] == 1 and list(tmp_path.iterdir()) == []
