"""Dask clients: a scheduler that cannot be reached or is not an address fails naming the option."""

from __future__ import annotations

import dask
import distributed  # noqa: F401  (loads its config before dask.config.set below touches it)
import pytest
from factory_twin.twin.runs.cluster import dask_client
from support import free_port


def test_an_unreachable_scheduler_is_named_without_a_traceback():
    port = free_port()  # nothing listens there
    message = rf"scheduler: cannot connect to 'tcp://127.0.0.1:{port}' \(Timed out"
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(ValueError, match=message),
        dask_client(f"tcp://127.0.0.1:{port}"),
    ):
        pass


def test_a_scheduler_that_is_not_an_address_is_named():
    message = r"scheduler: cannot connect to 'nonsense' \(missing port"
    with pytest.raises(ValueError, match=message), dask_client("nonsense"):
        pass


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers: must be >= 1, got 0"), dask_client(workers=0):
        pass


def test_a_failed_connection_leaves_no_default_client(tmp_path):
    # distributed's Client made itself the process-wide default in its constructor, before failing to connect;
    # later xarray writes then looked for a scheduler called 'nonsense' (the suite failed in test_netcdf)
    import numpy as np
    import xarray as xr
    from distributed import default_client
    from factory_twin.twin.runs.netcdf import write_netcdf

    scheduler_before = dask.config.get("scheduler", None)
    with pytest.raises(ValueError, match="scheduler: cannot connect"), dask_client("nonsense"):
        pass
    assert dask.config.get("scheduler", None) == scheduler_before
    with pytest.raises(ValueError, match="No clients found"):
        default_client()
    ds = xr.Dataset({"p": ("time", np.arange(3.0))})
    xr.testing.assert_identical(xr.load_dataset(write_netcdf(ds, tmp_path / "x.nc"), engine="h5netcdf"), ds)
