"""Engine-agnostic batch runner: one function over many cases, checkpointed per case, resumable.

``run_batch(fn, cases, out_dir)`` calls ``fn(**case)`` for each case (serially or on a dask cluster)
and writes each finished case atomically (temporary file, then ``os.replace``) to
``out_dir/cases/<id>.npz`` (the returned values) and ``<id>.json`` (case, status, error, elapsed
time); the ``.json`` is written last and marks the case as finished. ``<id>`` is a hash of the case,
so the same case always lands in the same files and ``resume=True`` skips the cases already finished
with status ``ok`` (failed ones run again). ``collect(out_dir, dims)`` stacks the checkpoints into
one ``xarray.Dataset`` and writes ``out_dir/results.nc``.

``fn`` must be a picklable top-level function returning ``dict[str, float | int | bool | str |
ndarray]`` (plain values only: build solver models inside ``fn``, return numbers). With
``timeout_s`` each case runs in its own Python subprocess (``fn`` sent with cloudpickle) that is
killed at the deadline; this also keeps a crashing solver from taking the batch down.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import numpy as np
from factory_twin.twin.runs.atomic import write_atomic
from factory_twin.twin.runs.progress import ProgressBar

if TYPE_CHECKING:
    import xarray as xr

STATUS = ("ok", "error", "timeout", "missing")  # integer codes 0..3 in the collected Dataset
_RESERVED = {"case", "status", "error", "elapsed_s"}


def case_id(case: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit id of a case: SHA-256 of its canonical JSON (sorted keys)."""
    text = json.dumps(case, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_batch(
    fn: Callable[..., Mapping[str, Any]],
    cases: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    engine: str = "serial",
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    timeout_s: float | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """Run ``fn(**case)`` for every case and checkpoint each result; return ``{case_id: status}``.

    Parameters
    ----------
    fn : top-level function of the case's keywords returning plain values or numpy arrays
    cases : JSON-serializable keyword dicts, all distinct
    out_dir : study directory; checkpoints go to ``out_dir/cases``
    engine : ``"serial"`` (in this process) or ``"dask"``
    scheduler : address of an existing dask scheduler; default starts a ``LocalCluster`` with
        ``workers`` processes of one thread each
    workers : number of local dask worker processes [-] (default: CPU count)
    resume : skip cases already finished ``ok`` in ``out_dir``; without it ``out_dir`` must hold
    none
    timeout_s : wall-clock limit per case [s]; a late case is killed and recorded as ``"timeout"``
    progress : print ``done / failed / remaining / ETA`` on stderr
    """
    if engine not in ("serial", "dask"):
        raise ValueError(f"engine: must be 'serial' or 'dask', got {engine!r}")
    if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s: must be a positive number of seconds or None, got {timeout_s!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers!r}")
    ids = []
    for k, case in enumerate(cases):
        if not isinstance(case, Mapping) or _RESERVED & set(case):
            raise ValueError(f"cases[{k}]: must be a dict whose keys avoid {sorted(_RESERVED)}, got {case!r}")
        try:
            ids.append(case_id(case))
        except TypeError as e:
            raise ValueError(f"cases[{k}]: not JSON-serializable ({e})") from None
    if len(set(ids)) != len(ids):
        raise ValueError("cases: contains duplicate cases")
    cdir = Path(out_dir) / "cases"
    cdir.mkdir(parents=True, exist_ok=True)
    status = {i: _read_json(cdir / f"{i}.json")["status"] for i in ids if (cdir / f"{i}.json").exists()}
    if not resume and any(cdir.glob("*.json")):
        raise ValueError(f"out_dir: {cdir} already holds checkpoints; pass resume=True or use a new directory")
    todo = [(i, dict(c)) for i, c in zip(ids, cases, strict=True) if status.get(i) != "ok"]
    meter = _Progress(len(todo), len(ids) - len(todo), progress)

    def finish(cid: str, case: dict[str, Any], rec: dict[str, Any]) -> None:
        _save(cdir, cid, case, rec)
        status[cid] = rec["status"]
        meter.tick(rec["status"], cid, rec["error"])

    if engine == "serial":
        for cid, case in todo:
            finish(cid, case, _execute(fn, case, timeout_s))
    elif todo:
        _run_dask(fn, todo, timeout_s, scheduler, workers, finish)
    return {i: status[i] for i in ids}


def collect(
    out_dir: str | os.PathLike[str],
    dims: Mapping[str, Sequence[Any]] | None = None,
    units: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Stack every checkpoint in ``out_dir/cases`` into one Dataset and write
    ``out_dir/results.nc``.

    Parameters
    ----------
    out_dir : study directory written by :func:`run_batch`
    dims : product sweep ``{parameter: values}``: results get these dimensions (cells never run get
    status
        ``missing``); parameters outside ``dims`` must be the same in every case. Without ``dims``
        the results lie along a ``case`` dimension (sorted by case id) with each parameter as a
        coordinate.
    units : ``{variable: units}`` stored as ``attrs["units"]``

    Returns
    -------
    Dataset with ``status`` (int8 codes, CF ``flag_values``/``flag_meanings``), ``error`` (message,
    empty when ok), ``elapsed_s`` and one variable per returned key (array results get
    ``<key>_dim<i>`` dims).
    """
    import xarray as xr  # lazily: case subprocesses load this module without xarray

    out = Path(out_dir)
    recs = [_read_json(p) for p in sorted((out / "cases").glob("*.json"))]
    if not recs:
        raise ValueError(f"out_dir: no checkpoints in {out / 'cases'}")
    if dims is None:
        lead: tuple[str, ...] = ("case",)
        shape: tuple[int, ...] = (len(recs),)
        slot = list(range(len(recs)))
        coords = {"case": ("case", np.array([r["case_id"] for r in recs]))}
        keys = set.intersection(*(set(r["case"]) for r in recs))
        coords |= {k: ("case", _column([r["case"][k] for r in recs])) for k in sorted(keys)}
        attrs: dict[str, Any] = {}
    else:
        lead, shape = tuple(dims), tuple(len(v) for v in dims.values())
        slot, fixed = [], {}
        for r in recs:
            try:
                idx = tuple(list(dims[k]).index(r["case"][k]) for k in lead)
            except (KeyError, ValueError):
                raise ValueError(f"dims: case {r['case_id']} {r['case']} is not on the grid") from None
            slot.append(int(np.ravel_multi_index(idx, shape)))
            for k, v in r["case"].items():
                if k not in dims and fixed.setdefault(k, v) != v:
                    raise ValueError(f"dims: parameter {k!r} varies between cases but is not in dims")
        if len(set(slot)) != len(slot):
            raise ValueError("dims: two cases fall on the same grid cell")
        coords = {k: (k, _column(list(v))) for k, v in dims.items()}
        attrs = {"fixed_parameters": json.dumps(fixed, sort_keys=True)} if fixed else {}
    n = math.prod(shape)
    status = np.full(n, STATUS.index("missing"), dtype=np.int8)
    error = np.full(n, "", dtype=object)
    elapsed = np.full(n, np.nan)
    values: dict[str, dict[int, np.ndarray]] = {}
    for s, r in zip(slot, recs, strict=True):
        status[s], error[s], elapsed[s] = STATUS.index(r["status"]), r["error"], r["elapsed_s"]
        if r["status"] == "ok":
            with np.load(out / "cases" / f"{r['case_id']}.npz", allow_pickle=False) as z:
                for k in z.files:
                    values.setdefault(k, {})[s] = z[k]
    data = {
        "status": (
            lead,
            status.reshape(shape),
            {"flag_values": np.arange(4, dtype=np.int8), "flag_meanings": " ".join(STATUS)},
        ),
        "error": (lead, error.reshape(shape).astype(str)),
        "elapsed_s": (lead, elapsed.reshape(shape), {"units": "s"}),
    }
    for k in sorted(values):
        data[k] = _stack(k, values[k], n, shape, lead)
    for k, u in (units or {}).items():
        if k not in data:
            raise ValueError(f"units: no variable {k!r} in the results")
        data[k][2]["units"] = u
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    from factory_twin.twin.runs.netcdf import (
        write_netcdf,  # here: the timeout subprocess loads this module alone, keep it light
    )

    write_netcdf(ds, out / "results.nc")
    return ds


def _stack(key: str, by_slot: dict[int, np.ndarray], n: int, shape: tuple[int, ...], lead: tuple[str, ...]):
    """One result variable over all slots; gaps (failed or missing cases) are NaN or ''."""
    arrays = list(by_slot.values())
    vshape = arrays[0].shape
    if any(a.shape != vshape for a in arrays):
        raise ValueError(f"results: {key!r} has different shapes across cases")
    kind = np.result_type(*arrays)
    full = len(by_slot) == n
    if full:
        out = np.empty((n, *vshape), dtype=kind)  # every slot is filled below
    elif kind.kind == "U":
        out = np.full((n, *vshape), "", dtype=kind)
    else:
        out = np.full((n, *vshape), np.nan, dtype=np.result_type(kind, np.float64))
    for s, a in by_slot.items():
        out[s] = a
    names = lead + tuple(f"{key}_dim{i}" for i in range(len(vshape)))
    return names, out.reshape(shape + vshape), {}


def _column(values: list[Any]) -> np.ndarray:
    """Coordinate values as a numpy array; mixed or nested values become their JSON text."""
    a = np.asarray(values)
    if a.dtype == object or a.ndim != 1:
        return np.array([json.dumps(v, sort_keys=True, default=_json_default) for v in values])
    return a


def _execute(fn: Callable[..., Mapping[str, Any]], case: dict[str, Any], timeout_s: float | None) -> dict:
    """Run one case; never raises for failures of ``fn`` (returns a record with status and
    error)."""
    t0 = time.perf_counter()
    if timeout_s is not None:
        return _execute_subprocess(fn, case, timeout_s, t0)
    try:
        result = _plain(fn(**case))
    except (Exception, SystemExit) as e:
        tb = traceback.extract_tb(e.__traceback__)[-1]
        msg = f"{type(e).__name__}: {e} (at {Path(tb.filename).name}:{tb.lineno})"
        return _record("error", msg, t0)
    return _record("ok", "", t0, result)


def _record(status: str, error: str, t0: float, result: dict | None = None) -> dict:
    """One case's outcome as checkpointed: status, error text, wall seconds since ``t0``, values."""
    return {"status": status, "error": error, "elapsed_s": time.perf_counter() - t0, "result": result or {}}


def _execute_subprocess(fn: Callable, case: dict[str, Any], timeout_s: float, t0: float) -> dict:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, "-c", _CHILD, __file__]
    try:
        done = subprocess.run(
            cmd,
            input=cloudpickle.dumps((fn, case)),
            capture_output=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired:
        msg = f"exceeded timeout_s={timeout_s:g} s; case process killed"
        return _record("timeout", msg, t0)
    if done.returncode != 0 or not done.stdout:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        msg = f"case process exited with code {done.returncode}: {tail[0]}"
        return _record("error", msg, t0)
    rec = pickle.loads(done.stdout)
    rec["elapsed_s"] = time.perf_counter() - t0
    return rec


# Load this file alone (not the ``optimization`` package, whose imports are heavy) and run
# ``_child``.
_CHILD = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('_batch_child', sys.argv[1]); "
    "m = u.module_from_spec(s); s.loader.exec_module(m); m._child()"
)


def _child() -> None:
    """Subprocess entry: read a pickled ``(fn, case)`` on stdin, write the pickled record on
    stdout."""
    fn, case = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(_execute(fn, case, None)))


def _plain(result: Any) -> dict[str, np.ndarray]:
    """Check that ``fn`` returned ``{name: number | str | array}`` and convert the values to
    arrays."""
    if not isinstance(result, Mapping):
        raise TypeError(f"fn must return a dict, got {type(result).__name__}")
    out = {}
    for k, v in result.items():
        a = np.asarray(v)
        if not (isinstance(k, str) and k.isidentifier()) or k in _RESERVED or a.dtype.kind not in "biufU":
            raise TypeError(
                f"fn result {k!r}: need an identifier key (not {sorted(_RESERVED)}) and a "
                f"number, string or numeric array value, got {type(v).__name__}"
            )
        out[k] = a
    return out


def _run_dask(fn, todo, timeout_s, scheduler, workers, finish) -> None:
    from distributed import as_completed
    from factory_twin.twin.runs.cluster import dask_client  # here: case subprocesses load this module alone

    with dask_client(scheduler, workers) as client:
        futures = {client.submit(_execute, fn, case, timeout_s, pure=False): (cid, case) for cid, case in todo}
        try:
            _collect_dask(futures, as_completed, finish)
        except KeyboardInterrupt:  # Ctrl-C: finished cases are checkpointed; stop the rest without noise
            quiet_dask()
            with contextlib.suppress(Exception):
                client.run(quiet_dask, wait=True)  # the workers too: their running tasks get cancelled
            raise


def quiet_dask() -> None:
    """Silence distributed's shutdown chatter (cancelled tasks, closing comms) after an interrupt."""
    import logging

    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _collect_dask(futures, as_completed, finish) -> None:
    """Record cases as they finish. Ctrl-C only sets a flag that this loop checks between polls, so that it
    never interrupts distributed's event loop half-way (which logs tracebacks); then KeyboardInterrupt."""
    interrupted = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, lambda *_: interrupted.set()) if main else None
    try:
        done = as_completed(futures)
        while not done.is_empty():
            if interrupted.is_set():
                raise KeyboardInterrupt
            batch = done.next_batch(block=False)
            if not batch:
                time.sleep(0.1)
            for fut in batch:
                _finish_future(fut, futures, finish)
        if interrupted.is_set():  # Ctrl-C as the last cases finished: still a stop the user asked for
            raise KeyboardInterrupt
    finally:
        if main:
            signal.signal(signal.SIGINT, old)


def _finish_future(fut, futures, finish) -> None:
    cid, case = futures[fut]
    try:
        rec = fut.result()
    except Exception as e:  # the worker died (e.g. KilledWorker): record and go on
        rec = {"status": "error", "error": f"{type(e).__name__}: {e}", "elapsed_s": math.nan, "result": {}}
    finish(cid, case, rec)
    fut.release()


def _save(cdir: Path, cid: str, case: dict[str, Any], rec: dict[str, Any]) -> None:
    """Checkpoint one case: values first (``.npz``), then the ``.json`` record that marks it
    finished."""
    if rec["status"] == "ok":
        write_atomic(cdir / f"{cid}.npz", lambda f: np.savez(f, **rec["result"]), fsync=True)
    meta = {k: rec[k] for k in ("status", "error", "elapsed_s")} | {"case_id": cid, "case": case}
    text = json.dumps(meta, sort_keys=True, default=_json_default)
    write_atomic(cdir / f"{cid}.json", lambda f: f.write(text.encode()), fsync=True)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON-serializable")


class _Progress:
    """Counts done / failed cases and shows them on the project's progress bar."""

    def __init__(self, total: int, skipped: int, enabled: bool) -> None:
        self.total, self.skipped = total, skipped
        self.bar = ProgressBar("batch") if enabled else None
        self.done = self.failed = 0

    def tick(self, status: str, cid: str = "", error: str = "") -> None:
        self.done += 1
        self.failed += status != "ok"
        if status != "ok" and self.bar is not None:  # the reason now, in the console, not only in the report
            print(f"\ncase {cid} {status}: {error}", file=sys.stderr, flush=True)
        if self.bar is not None:
            skip = f", {self.skipped} skipped (resume)" if self.skipped else ""
            self.bar(self.done / self.total, f"{self.done}/{self.total} done, {self.failed} failed{skip}")
