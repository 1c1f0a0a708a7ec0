"""Independent pieces of a long run (segments of a year simulation, the days of a dispatch year) run on
:mod:`~factory_twin.twin.runs.pieces` and streamed into one NetCDF as they finish, resumable after a kill.

The file is written into ``.NAME.partial`` beside the target: every variable preallocated over the whole
run (NaN until written), chunked by segment. Each finished segment is written and flushed, then its
non-series results (books, seam states, timings) checkpointed in ``.NAME.parts/seg-KKKKK.npz``/``.json``.
A rerun with ``resume=True`` runs only the missing segments; the run's settings and inputs (``config``)
must match those saved in ``.NAME.parts/run.json``. When every segment is in, the run's attributes and
per-segment figures are added and the finished file replaces the target in one rename.

A segment's task returns a dict: ``time`` (int64 seconds of its records), ``series/NAME`` arrays of its
records for each variable of the :class:`Layout`, and anything else to checkpoint (numbers, arrays).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from factory_twin.twin.runs.atomic import write_atomic
from factory_twin.twin.runs.metadata import describe_attrs
from factory_twin.twin.runs.pieces import Checkpoints, run_pieces

TIME_ATTRS = {"units": "seconds since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian"}


@dataclass(frozen=True)
class Layout:
    """The streamed file: ``n_records`` records on ``time`` in segments of ``per_segment`` records (the last
    may be shorter) starting at ``segment_start`` [int64 seconds]; ``variables``: name -> (dims, attrs), the
    first dim ``time``; ``sizes`` of the other dims; ``time_name``: what a record's time stamp is."""

    n_records: int
    per_segment: int
    segment_start: np.ndarray
    variables: dict[str, tuple[tuple[str, ...], dict]]
    sizes: dict[str, int] = field(default_factory=dict)
    time_name: str = "end of record interval (local time)"

    @property
    def n_segments(self) -> int:
        return len(self.segment_start)

    def bounds(self, k: int) -> tuple[int, int]:
        """Record index range ``[i0, i1)`` of segment ``k`` in the whole run."""
        return k * self.per_segment, min((k + 1) * self.per_segment, self.n_records)


@dataclass(frozen=True)
class Summary:
    """What a run adds when every segment is in: file attributes and per-segment variables (name ->
    (values, units, long_name))."""

    attrs: dict
    per_segment: dict[str, tuple[np.ndarray, str, str]]


def run_streamed(
    out: str | os.PathLike[str],
    config: dict,
    layout: Layout,
    task: Callable[..., dict],
    shared: tuple,
    summarize: Callable[[list[dict]], Summary],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    resume: bool = False,
    force: bool = False,
    progress: Callable[[float, str], None] | None = None,
    after: Callable[[Path], dict] | None = None,
) -> xr.Dataset:
    """Run ``task(*shared, k)`` for every segment ``k`` of ``layout`` on :func:`~.pieces.run_pieces`
    (serially, or on Dask: a local cluster of ``workers`` processes or the scheduler at ``scheduler``;
    ``shared`` is sent to each worker once) and stream the results into ``out``; return the finished Dataset.

    ``summarize(checkpoints)`` gives the run's attributes from every segment's checkpoint; ``after(partial)``
    may add attributes read from the complete file before it is renamed. ``resume`` continues a killed run
    of the same ``config``; ``force`` overwrites ``out``. A segment that fails does not stop the others: the
    run then raises ``RuntimeError`` naming the failed segments and keeps what finished for ``resume``.
    """
    out = Path(out)
    partial, parts = out.with_name(f".{out.name}.partial"), out.with_name(f".{out.name}.parts")
    if out.exists() and not force:
        raise ValueError(f"out: {out} exists; pass --force to overwrite it")
    if parts.exists() and not resume and not force:
        raise ValueError(f"out: an unfinished run is in {parts}; pass --resume to continue it or --force to restart")
    fresh = not (parts.exists() and resume)
    if not fresh:
        saved = json.loads((parts / "run.json").read_text()) if (parts / "run.json").exists() else None
        if saved != config:
            raise ValueError(f"resume: the unfinished run in {parts} has other settings ({saved}); use --force")
    else:
        shutil.rmtree(parts, ignore_errors=True)
        partial.unlink(missing_ok=True)
        parts.mkdir()
        write_atomic(parts / "run.json", lambda fh: fh.write(json.dumps(config).encode()), fsync=True)
    store, cases = Checkpoints(parts), {f"seg-{k:05d}": k for k in range(layout.n_segments)}
    writer = _SeriesFile.open(partial, layout, bool(store.finished(cases)))
    if writer.rebuilt:  # the partial file was lost or unreadable: its segments run again
        for p in parts.glob("seg-*"):
            p.unlink()
    starts = layout.segment_start.astype("datetime64[s]")

    def keep(cid: str, result: dict) -> dict:  # the series into the file, the rest into the checkpoint
        writer.write(cases[cid], result)
        return {key.replace("/", "__"): v for key, v in result.items() if not key.startswith("series/")}

    def name(cid: str) -> str:
        return f"segment {cases[cid]} ({starts[cases[cid]]})"

    try:
        ran = run_pieces(task, cases, store, shared=shared, serial=serial, scheduler=scheduler,
                         workers=workers, progress=progress, name=name, keep=keep)  # fmt: skip
    except BaseException:  # e.g. the scheduler unreachable, Ctrl-C: a new run that finished nothing leaves nothing
        if fresh and not store.finished(cases):
            writer.close()
            shutil.rmtree(parts, ignore_errors=True)
            partial.unlink(missing_ok=True)
        raise
    finally:
        writer.close()
    failed = sorted((cid, r["error"]) for cid, r in ran.items() if r["status"] != "ok")
    if failed:
        listed = "; ".join(f"{name(cid)}: {msg}" for cid, msg in failed)
        raise RuntimeError(f"{len(failed)} segment(s) failed, the rest are kept for --resume: {listed}")
    decoded = [{key.replace("__", "/"): v for key, v in store.values(cid).items()} for cid in cases]
    writer.finish(summarize(decoded), after)
    os.replace(partial, out)
    shutil.rmtree(parts)
    return xr.load_dataset(out, engine="h5netcdf")


class _SeriesFile:
    """The partial NetCDF: every variable preallocated over the whole run (NaN until written), chunked by
    segment; :meth:`write` fills one segment and flushes."""

    def __init__(self, f, path: Path, layout: Layout, rebuilt: bool) -> None:
        self.f, self.path, self.layout, self.rebuilt = f, path, layout, rebuilt

    @classmethod
    def open(cls, path: Path, layout: Layout, done: bool) -> _SeriesFile:
        import h5netcdf
        import h5py

        if path.exists() and done:
            try:
                return cls(h5py.File(path, "r+"), path, layout, False)
            except OSError as e:
                warnings.warn(f"{path}: unreadable after the kill ({e}); its segments run again", stacklevel=3)
        path.unlink(missing_ok=True)
        with h5netcdf.File(path, "w") as f:  # the NetCDF structure; data goes in through h5py (see write)
            f.dimensions = {"time": layout.n_records, "segment": layout.n_segments, **layout.sizes}
            chunk = min(layout.per_segment, layout.n_records)
            t = f.create_variable("time", ("time",), "i8", chunks=(chunk,))
            t.attrs.update({**TIME_ATTRS, "long_name": layout.time_name})
            for name, (dims, attrs) in layout.variables.items():
                shape = (chunk, *(layout.sizes[d] for d in dims[1:]))
                v = f.create_variable(name, dims, "f8", chunks=shape, fillvalue=np.nan)
                v.attrs.update(attrs)
            s = f.create_variable("segment_start", ("segment",), "i8")
            s.attrs.update(TIME_ATTRS)
            s[:] = layout.segment_start
        return cls(h5py.File(path, "r+"), path, layout, done)

    def write(self, k: int, result: dict) -> None:
        """Fill segment ``k`` and flush to disk (a kill after this leaves a readable file)."""
        i0, i1 = self.layout.bounds(k)
        self.f["time"][i0:i1] = result["time"]
        for key, values in result.items():
            if key.startswith("series/"):
                self.f[key.removeprefix("series/")][i0:i1] = values
        self.f.flush()

    def finish(self, summary: Summary, after: Callable[[Path], dict] | None) -> None:
        """Per-segment figures and the run's attributes, once every segment is in, then ``after``'s."""
        import h5netcdf

        self.close()
        with h5netcdf.File(self.path, "a") as f:
            for name, (values, units, long_name) in summary.per_segment.items():
                v = f.create_variable(name, ("segment",), "f8")
                v[:] = values
                v.attrs.update({"units": units, "long_name": long_name})
            f.attrs.update(summary.attrs)
            for name, v in f.variables.items():  # the shared labels described, money in the run's currency
                attrs = dict(v.attrs)
                describe_attrs(name, attrs, summary.attrs.get("currency"), v.dtype.kind, summary.attrs.get("time_zone"))
                v.attrs.update({k: a for k, a in attrs.items() if v.attrs.get(k) != a})
        if after is not None:
            extra = after(self.path)
            with h5netcdf.File(self.path, "a") as f:
                f.attrs.update(extra)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
