"""Engine-agnostic batch runner: one function over many cases on the one runner (:mod:`.pieces`).

``run_batch(fn, cases, out_dir)`` calls ``fn(**case)`` for each case (serially or on a dask cluster) and
checkpoints each finished case in ``out_dir/cases/<id>.npz`` and ``.json``. ``<id>`` is a hash of the case
(the fingerprint of its inputs), so the same case always lands in the same files and ``resume=True`` skips
the cases already finished ``ok`` (failed ones run again). ``collect(out_dir, dims)`` stacks the
checkpoints into one ``xarray.Dataset`` and writes ``out_dir/results.nc``.

``fn`` must be a picklable top-level function returning ``dict[str, float | int | bool | str | ndarray]``
(plain values only: build solver models inside ``fn``, return numbers). With ``timeout_s`` each case runs
in its own Python subprocess, killed at the deadline.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from factory_twin.twin.runs.pieces import Checkpoints, json_default, run_pieces
from factory_twin.twin.runs.progress import ProgressBar

if TYPE_CHECKING:
    import xarray as xr

STATUS = ("ok", "error", "timeout", "missing")  # integer codes 0..3 in the collected Dataset
_RESERVED = {"case", "status", "error", "elapsed_s"}


def case_id(case: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit id of a case: SHA-256 of its canonical JSON (sorted keys)."""
    text = json.dumps(case, sort_keys=True, separators=(",", ":"), default=json_default)
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
    resume : skip cases already finished ``ok`` in ``out_dir``; without it ``out_dir`` must hold none
    timeout_s : wall-clock limit per case [s]; a late case is killed and recorded as ``"timeout"``
    progress : print ``done / failed / remaining / ETA`` on stderr
    """
    if engine not in ("serial", "dask"):
        raise ValueError(f"engine: must be 'serial' or 'dask', got {engine!r}")
    if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s: must be a positive number of seconds or None, got {timeout_s!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers!r}")
    todo = {}
    for k, case in enumerate(cases):
        if not isinstance(case, Mapping) or _RESERVED & set(case):
            raise ValueError(f"cases[{k}]: must be a dict whose keys avoid {sorted(_RESERVED)}, got {case!r}")
        try:
            todo[case_id(case)] = dict(case)
        except TypeError as e:
            raise ValueError(f"cases[{k}]: not JSON-serializable ({e})") from None
    if len(todo) != len(cases):
        raise ValueError("cases: contains duplicate cases")
    cdir = Path(out_dir) / "cases"
    Path(out_dir).mkdir(exist_ok=True)  # only out_dir itself: a missing parent is an error, not a tree to build
    cdir.mkdir(exist_ok=True)
    if not resume and any(cdir.glob("*.json")):
        raise ValueError(f"out_dir: {cdir} already holds checkpoints; pass resume=True or use a new directory")
    task, bar = functools.partial(_call, fn), ProgressBar("batch") if progress else None
    ran = run_pieces(task, todo, Checkpoints(cdir), serial=engine == "serial", scheduler=scheduler, workers=workers,
                     timeout_s=timeout_s, progress=bar)  # fmt: skip
    return {i: ran[i]["status"] if i in ran else "ok" for i in todo}


def collect(
    out_dir: str | os.PathLike[str],
    dims: Mapping[str, Sequence[Any]] | None = None,
    units: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Stack every checkpoint in ``out_dir/cases`` into one Dataset and write ``out_dir/results.nc``.

    Parameters
    ----------
    out_dir : study directory written by :func:`run_batch`
    dims : product sweep ``{parameter: values}``: results get these dimensions (cells never run get
        status ``missing``); parameters outside ``dims`` must be the same in every case. Without ``dims``
        the results lie along a ``case`` dimension (sorted by case id) with each parameter as a coordinate.
    units : ``{variable: units}`` stored as ``attrs["units"]``

    Returns
    -------
    Dataset with ``status`` (int8 codes, CF ``flag_values``/``flag_meanings``), ``error`` (message,
    empty when ok), ``elapsed_s`` and one variable per returned key (array results get
    ``<key>_dim<i>`` dims).
    """
    import xarray as xr  # here, like write_netcdf: case subprocesses load this module without xarray
    from factory_twin.twin.runs.metadata import describe
    from factory_twin.twin.runs.netcdf import write_netcdf

    out = Path(out_dir)
    store = Checkpoints(out / "cases")
    recs = [store.record(p.stem) for p in sorted(store.folder.glob("*.json"))]
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
            for k, v in store.values(r["case_id"]).items():
                values.setdefault(k, {})[s] = v
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
    ds = describe(xr.Dataset(data, coords=coords, attrs=attrs))  # as written: units and long names
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
        return np.array([json.dumps(v, sort_keys=True, default=json_default) for v in values])
    return a


def _call(fn: Callable[..., Mapping[str, Any]], case: dict[str, Any]) -> dict[str, np.ndarray]:
    """``fn(**case)``, checked to be ``{name: number | str | array}``, with the values as arrays."""
    result = fn(**case)
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
