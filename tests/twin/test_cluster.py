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
