"""Atomic NetCDF writes: round trip, and a failed write leaves the previous file and no temp files."""

import numpy as np
import pytest
import xarray as xr
from factory_twin.twin.runs.netcdf import write_netcdf


def test_round_trip_and_failed_write_keeps_previous(tmp_path):
    ds = xr.Dataset({"p": ("time", np.arange(3.0), {"units": "MW"})})
    with pytest.raises(FileNotFoundError):  # a missing folder is not created (a typo never builds folders)
        write_netcdf(ds, tmp_path / "sub" / "run.nc")
    assert not (tmp_path / "sub").exists()
    (tmp_path / "sub").mkdir()
    path = write_netcdf(ds, tmp_path / "sub" / "run.nc")
    back = xr.load_dataset(path, engine="h5netcdf")
    xr.testing.assert_identical(back, ds)
    bad = xr.Dataset({"p": ("time", np.array([object(), object()], dtype=object))})
    with pytest.raises(Exception):  # noqa: B017  (h5py and xarray raise different types here)
        write_netcdf(bad, path)
    xr.testing.assert_identical(xr.load_dataset(path, engine="h5netcdf"), ds)
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.nc"]
