"""Atomic NetCDF output: write a temporary file beside the target, then rename it into place.

A reader never sees a half-written file, and an interrupted write leaves the previous file intact.
Writing to a real path (not an in-memory buffer) also works while a dask.distributed client is active,
where xarray takes a distributed lock named after the target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to ``path`` (h5netcdf engine) atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs get the user's umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
