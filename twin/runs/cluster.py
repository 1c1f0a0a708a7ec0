"""A Dask client for parallel runs: a local cluster of single-threaded worker processes, or an existing
scheduler (``dask scheduler`` / ``dask worker`` started by the user, address ``tcp://HOST:PORT``)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """Connect to ``scheduler``, or start a ``LocalCluster`` of ``workers`` processes (default: CPU count)
    with one thread each, bound to 127.0.0.1 and without the web dashboard; closed on exit."""
    import dask
    from distributed import Client, LocalCluster

    if workers is not None and workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers!r}")
    cluster = None
    if scheduler is None:
        with _workers_ignore_ctrl_c():
            cluster = _local_cluster(LocalCluster, workers)
    try:
        # not set as the process-wide default while connecting: a Client that fails in its constructor has already
        # made itself the default (dask's scheduler setting included) and cannot be closed, so every later
        # xarray write looked for that scheduler; the client is made current below, once it is connected
        client = Client(cluster if cluster is not None else scheduler, set_as_default=False)
    except (OSError, ValueError) as e:  # unreachable or not an address: say which, without distributed's traceback
        if cluster is not None:
            cluster.close()
            raise
        raise ValueError(f"scheduler: cannot connect to {scheduler!r} ({e})") from None
    try:
        with client.as_current(), dask.config.set(scheduler=client):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _local_cluster(LocalCluster, workers: int | None):
    return LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        env=ONE_THREAD_ENV,  # the work owns the parallelism: no BLAS/OpenMP threads per worker
    )


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT ignored (inherited through exec): Ctrl-C reaches only this
    process, which keeps the finished work and closes the cluster, instead of every worker printing a
    traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
