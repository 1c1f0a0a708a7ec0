"""Atomic NetCDF output (h5netcdf) through :func:`twin.runs.atomic.atomic_path`.

Writing to a real path (not an in-memory buffer) also works while a dask.distributed client is active,
where xarray takes a distributed lock named after the target.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr
from factory_twin.twin.runs.atomic import atomic_path
from factory_twin.twin.runs.metadata import describe


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to ``path`` (h5netcdf engine) atomically, every variable described (units, long_name, money
    in the currency: :func:`~factory_twin.twin.runs.metadata.describe`); return the path. Its folder must exist."""
    path = Path(path)
    ds = describe(ds)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path
