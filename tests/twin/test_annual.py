"""Annual figures against hand-computed values on a synthetic two-month run; the offline year report."""

import numpy as np
import pytest
import xarray as xr
from factory_twin.optimization.studies.report import write_year_report
from factory_twin.twin.runs.annual import annual_dataset, annual_figures, rows

RECORD_S = 3600.0


def _run() -> xr.Dataset:
    """48 hourly records from 31 Jan 00:00: January's 24 at one level, February's 24 at another."""
    time = np.datetime64("2026-01-31T01:00:00") + np.arange(48) * np.timedelta64(3600, "s")
    jan = np.arange(48) < 24
    it = np.where(jan, 100.0, 80.0)
    imp = np.where(jan, 120.0, 90.0)
    imp[30] = 150.0  # the peak: the hour 2026-02-01T06 (record stamped 07:00)
    bess = np.where(jan, 0.0, 5.0)  # discharging in February: the meter saw import + BESS
    tokens = np.where(jan, 1e9, 5e8)
    throttled = np.zeros(48)
    throttled[40:43] = 72.0
    data = {
        "grid_import_mw": imp,
        "bess_power_mw": bess,
        "it_power_mw": it,
        "price_per_mwh": np.where(jan, 100.0, 200.0),
        "tokens_per_s": tokens,
        "water_use_kg_s": np.where(jan, 10.0, 0.0),
        "throttled_gpus": throttled,
        "import_limit_mw": np.full(48, 160.0),
        "flexible_mw": np.linspace(20.0, 40.0, 48),
    }
    attrs = {"record_s": RECORD_S, "currency": "KRW", "facility": "f", "scenario": "s", "start": str(time[0])}
    return xr.Dataset({k: ("time", v) for k, v in data.items()}, coords={"time": time}, attrs=attrs)


def test_annual_figures_by_hand():
    ds = _run()
    f = annual_figures(ds)
    grid = 24 * 120.0 + 23 * 90.0 + 150.0
    assert f["grid_energy_mwh"] == pytest.approx(grid, rel=1e-12)
    assert f["pue"] == pytest.approx((grid + 24 * 5.0) / (24 * 100.0 + 24 * 80.0), rel=1e-12)
    assert f["water_t"] == pytest.approx(24 * 10.0 * 3600 / 1000, rel=1e-12)
    assert f["hours_throttled"] == 3.0 and f["throttled_gpu_hours"] == pytest.approx(216.0)
    cost = 24 * 120.0 * 100.0 + (23 * 90.0 + 150.0) * 200.0
    tokens = (24 * 1e9 + 24 * 5e8) * 3600
    assert f["cost_per_mtok"] == pytest.approx(cost / tokens * 1e6, rel=1e-12)
    assert f["peak_import_mw"] == 150.0 and f["peak_import_hour"] == "2026-02-01T06"
    assert f["flexible_min_mw"] == 20.0 and f["flexible_mean_mw"] == pytest.approx(30.0)
    jan, feb = f["monthly"][1], f["monthly"][2]
    assert jan["pue"] == pytest.approx(1.2, rel=1e-12)
    assert feb["pue"] == pytest.approx((23 * 90.0 + 150.0 + 24 * 5.0) / (24 * 80.0), rel=1e-12)
    assert jan["grid_energy_mwh"] + feb["grid_energy_mwh"] == pytest.approx(grid, rel=1e-12)
    monthly = annual_dataset(ds)
    assert monthly.month.values.tolist() == [1, 2] and monthly.pue.attrs["units"] == "1"
    assert dict(rows(ds))["PUE by month"] == f"Jan 1.200 Feb {feb['pue']:.3f}"


def test_year_report_is_one_offline_page(tmp_path):
    path = write_year_report(_run(), tmp_path / "report.html")
    page = path.read_text()
    assert page.count("<script") >= 6 and 'src="http' not in page  # plotly.js inlined, no network
    for text in ("PUE (energy ratio) by month", "grid import by day", "Feb", "cost per million tokens [KRW]"):
        assert text in page
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_year_report_days_and_axes_as_a_person_reads_them():
    """Issue 20 item 22: 'grid import by day' had a third point made of the single record stamped 2 Feb 00:00 (it
    holds the last hour of 1 Feb); 'hours with throttling' drew a -1..1 axis for a month without throttling."""
    from factory_twin.optimization.studies.report import year_figures

    ds = _run()
    figs = {f.layout.title.text: f for f in year_figures(ds)}
    peak, mean, limit = figs["grid import by day"].data
    days = np.array(["2026-01-31", "2026-02-01"], "datetime64[ns]")
    for tr in (peak, mean, limit):
        np.testing.assert_array_equal(np.asarray(tr.x, "datetime64[ns]"), days)
    np.testing.assert_allclose(peak.y, [120.0, 150.0])
    np.testing.assert_allclose(mean.y, [120.0, (23 * 90.0 + 150.0) / 24], rtol=1e-12)
    thr = figs["hours with throttling by month"]
    assert list(thr.data[0].y) == [0.0, 3.0] and list(thr.layout.yaxis.range) == pytest.approx([0.0, 3.15])
    quiet = _run()
    quiet["throttled_gpus"][:] = 0.0
    thr = {f.layout.title.text: f for f in year_figures(quiet)}["hours with throttling by month"]
    assert list(thr.layout.yaxis.range) == [0.0, 1.0]  # was plotly's -1..1 around the zero bars
    for fig in figs.values():  # every monthly bar chart from zero
        if fig.data[0].type == "bar":
            assert fig.layout.yaxis.range[0] == 0.0
