"""The one runner of independent pieces of work (segments of a long run, days of a dispatch year, cases of a
study): serially or on Dask, each finished piece checkpointed atomically, resumable.

A piece that fails does not stop the others: it is recorded as ``Type: message (at file:line)`` and runs
again on resume. With ``timeout_s`` each piece runs in its own Python subprocess, killed at the deadline
(this also contains a crashing solver). Ctrl-C stops the run (on Dask without tracebacks) and keeps the
finished pieces. Front ends: :mod:`.batch` (cases collected into one Dataset; a case's id is the hash of its
inputs) and :mod:`.streamed` (pieces streamed into one NetCDF; the run's fingerprint in ``run.json``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
from factory_twin.twin.runs.atomic import write_atomic


class Checkpoints:
    """A folder of finished cases: ``<id>.npz`` (values, when ok) and ``<id>.json`` (``case_id``, ``case``,
    ``status``, ``error``, ``elapsed_s``), each written atomically and fsynced, the ``.json`` last."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def record(self, cid: str) -> dict[str, Any] | None:
        p = self.folder / f"{cid}.json"
        return json.loads(p.read_text()) if p.exists() else None

    def finished(self, cases: Mapping[str, Any]) -> set[str]:
        """Ids of ``cases`` finished ``ok``."""
        return {cid for cid in cases if (r := self.record(cid)) and r["status"] == "ok"}

    def save(self, cid: str, case: Any, rec: Mapping[str, Any]) -> None:
        if rec["status"] == "ok":
            write_atomic(self.folder / f"{cid}.npz", lambda f: np.savez(f, **rec["result"]), fsync=True)
        meta = {k: rec[k] for k in ("status", "error", "elapsed_s")} | {"case_id": cid, "case": case}
        text = json.dumps(meta, sort_keys=True, default=json_default)
        write_atomic(self.folder / f"{cid}.json", lambda f: f.write(text.encode()), fsync=True)

    def values(self, cid: str) -> dict[str, np.ndarray]:
        with np.load(self.folder / f"{cid}.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def run_pieces(
    task: Callable[..., Mapping[str, Any]],
    cases: Mapping[str, Any],
    store: Checkpoints,
    *,
    shared: tuple = (),
    serial: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    timeout_s: float | None = None,
    progress: Callable[[float, str], None] | None = None,
    name: Callable[[str], str] = lambda cid: f"case {cid}",
    keep: Callable[[str, Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``task(*shared, case)`` for every ``{id: case}`` not yet finished in ``store`` and checkpoint each
    outcome; return ``{id: {status, error, elapsed_s}}`` of the cases run.

    Serially in this process, or on Dask: the scheduler at ``scheduler`` or a local cluster of ``workers``
    processes. ``keep(id, values)`` (in this process, before the checkpoint) may store part of a case's
    values elsewhere and returns what to checkpoint. ``progress(fraction, note)`` (e.g.
    :class:`~factory_twin.twin.runs.progress.ProgressBar`) shows done / failed / skipped; with it, the
    reason of each failure is printed on stderr as it happens (``name(id)`` says which piece).
    """
    done = store.finished(cases)
    todo = {cid: case for cid, case in cases.items() if cid not in done}
    ran: dict[str, dict[str, Any]] = {}
    failed = 0

    def finish(cid: str, rec: dict[str, Any]) -> None:
        if keep is not None and rec["status"] == "ok":
            rec["result"] = keep(cid, rec["result"])
        store.save(cid, todo[cid], rec)
        ran[cid] = {k: rec[k] for k in ("status", "error", "elapsed_s")}
        nonlocal failed
        failed += rec["status"] != "ok"
        if progress is None:
            return
        if rec["status"] != "ok":  # the reason now, in the console, not only in the report
            print(f"\n{name(cid)} {rec['status']}: {rec['error']}", file=sys.stderr, flush=True)
        skip = f", {len(done)} skipped (resume)" if done else ""
        progress(len(ran) / len(todo), f"{len(ran)}/{len(todo)} done, {failed} failed{skip}")

    if serial:
        with interrupt_flag() as interrupted:
            for cid, case in todo.items():
                rec = attempt(task, timeout_s, case, *shared)
                if interrupted.is_set():  # a Ctrl-C a library swallowed: this piece is not finished, stop here
                    raise KeyboardInterrupt
                finish(cid, rec)
    elif todo:
        _run_dask(task, shared, todo, timeout_s, scheduler, workers, finish)
    return ran


@contextlib.contextmanager
def interrupt_flag():
    """An event that Ctrl-C sets, in the main thread, besides raising KeyboardInterrupt as usual: a library may
    swallow the KeyboardInterrupt (Pyomo's HiGHS interface registers a Python interrupt callback that runs inside the
    solve, where the exception is lost, and the solve goes on), the event still says the user asked to stop. Off
    the main thread, or where SIGINT is ignored (Dask workers), the event is never set."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield flag
        return

    def handler(signum, frame):
        flag.set()
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


def attempt(task: Callable[..., Mapping[str, Any]], timeout_s: float | None, case: Any, *shared) -> dict[str, Any]:
    """Run ``task(*shared, case)``, in a subprocess killed after ``timeout_s`` if given; never raises for its
    failures: returns ``{status, error, elapsed_s, result}``."""
    t0 = time.perf_counter()
    if timeout_s is not None:
        rec = _in_subprocess(task, timeout_s, case, shared)
    else:
        try:
            rec = {"status": "ok", "error": "", "result": task(*shared, case)}
        except (Exception, SystemExit) as e:
            tb = traceback.extract_tb(e.__traceback__)[-1]
            rec = {"status": "error", "error": f"{type(e).__name__}: {e} (at {Path(tb.filename).name}:{tb.lineno})"}
    return {"result": {}, **rec, "elapsed_s": time.perf_counter() - t0}


def _in_subprocess(task, timeout_s: float, case, shared: tuple) -> dict[str, Any]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, "-c", "from factory_twin.twin.runs.pieces import _child; _child()"]
    try:
        run = subprocess.run(cmd, input=cloudpickle.dumps((task, case, shared)), capture_output=True,
                             timeout=timeout_s, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"exceeded timeout_s={timeout_s:g} s; case process killed"}
    if run.returncode != 0 or not run.stdout:
        tail = run.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return {"status": "error", "error": f"case process exited with code {run.returncode}: {tail[0]}"}
    return pickle.loads(run.stdout)


def _child() -> None:
    """Subprocess entry: a pickled ``(task, case, shared)`` on stdin, the pickled outcome on stdout (what the
    task prints goes to stderr)."""
    task, case, shared = pickle.loads(sys.stdin.buffer.read())
    out, sys.stdout = sys.stdout.buffer, sys.stderr
    out.write(pickle.dumps(attempt(task, None, case, *shared)))


def _run_dask(task, shared: tuple, todo: dict, timeout_s, scheduler, workers, finish) -> None:
    """Checkpoint pieces as they finish on Dask. Ctrl-C only sets a flag that this loop checks between polls,
    so that it never interrupts distributed's event loop half-way (which logs tracebacks); then the workers
    and this process are silenced and KeyboardInterrupt is raised."""
    from distributed import as_completed
    from factory_twin.twin.runs.cluster import dask_client

    interrupted = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    with dask_client(scheduler, workers) as client:
        sent = client.scatter(list(shared), broadcast=True) if shared else []
        futures = {client.submit(attempt, task, timeout_s, case, *sent, pure=False): cid for cid, case in todo.items()}
        old = signal.signal(signal.SIGINT, lambda *_: interrupted.set()) if main else None
        try:
            pending = as_completed(futures)
            finished: set[str] = set()
            alone_since, checked = None, time.monotonic()  # since when the cluster has had no worker
            while not pending.is_empty() and not interrupted.is_set():
                batch = pending.next_batch(block=False)
                if not batch:
                    time.sleep(0.1)
                    if time.monotonic() - checked > 5.0:
                        alone_since, checked = _no_worker_since(client, alone_since), time.monotonic()
                    if alone_since is not None and time.monotonic() - alone_since > NO_WORKER_GRACE_S:
                        _record_lost(futures, finished, finish)
                        break
                for fut in batch:
                    try:
                        rec = fut.result()
                    except Exception as e:  # the worker died (e.g. KilledWorker): record and go on
                        rec = {"status": "error", "error": f"{type(e).__name__}: {e}", "elapsed_s": math.nan}
                    finish(futures[fut], {"result": {}, **rec})
                    finished.add(futures[fut])
                    fut.release()
        finally:
            if main:
                signal.signal(signal.SIGINT, old)
        if interrupted.is_set():  # also as the last pieces finished: still a stop the user asked for
            quiet_dask()
            with contextlib.suppress(Exception):
                client.run(quiet_dask, wait=True)  # the workers too: their running tasks get cancelled
            raise KeyboardInterrupt


NO_WORKER_GRACE_S = 60.0  # a cluster without any worker this long is lost (a nanny restarts a dead worker in seconds)


def _no_worker_since(client, since: float | None) -> float | None:
    """When the cluster was first seen without a worker (None while it has one)."""
    if client.scheduler_info(n_workers=1).get("workers"):
        return None
    return time.monotonic() if since is None else since


def _record_lost(futures: dict, finished: set, finish) -> None:
    """Every piece not yet finished is an error: the cluster lost all its workers (otherwise this waits for ever)."""
    why = f"no Dask worker left for {NO_WORKER_GRACE_S:g} s (all workers lost; see the workers' logs)"
    for fut, cid in futures.items():
        if cid not in finished:
            finish(cid, {"result": {}, "status": "error", "error": why, "elapsed_s": math.nan})
            fut.cancel()


def quiet_dask() -> None:
    """Silence distributed's shutdown chatter (cancelled tasks, closing comms) after an interrupt."""
    import logging

    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def json_default(v: Any) -> Any:
    """JSON for numpy values (scalars, arrays) in cases."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON-serializable")
