"""Independent pieces of a long run (segments of a year simulation, the days of a dispatch year) run
serially or on Dask and streamed into one NetCDF as they finish, resumable after a kill.

The file is written into ``.NAME.partial`` beside the target: every variable preallocated over the whole
run (NaN until written), chunked by segment. Each finished segment is written and flushed, then
checkpointed in ``.NAME.parts/seg-KKKKK.npz`` (its non-series results: books, seam states, timings). A rerun
with ``resume=True`` runs only the missing segments; the settings of the run (``config``) must match those
saved in ``.NAME.parts/run.json``. When every segment is in, the run's attributes and per-segment figures
are added and the finished file replaces the target in one rename.

A segment's task returns a dict: ``time`` (int64 seconds of its records), ``series/NAME`` arrays of its
records for each variable of the :class:`Layout`, and anything else to checkpoint (numbers, arrays).
"""

from __future__ import annotations

import io
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
    (values, units))."""

    attrs: dict
    per_segment: dict[str, tuple[np.ndarray, str]]


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
    progress: Callable[[float], None] | None = None,
    after: Callable[[Path], dict] | None = None,
) -> xr.Dataset:
    """Run ``task(*shared, k)`` for every segment ``k`` of ``layout`` (serially, or on Dask: a local cluster
    of ``workers`` processes or the scheduler at ``scheduler``; ``shared`` is sent to each worker once) and
    stream the results into ``out``; return the finished Dataset.

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
        parts.mkdir(parents=True)
        write_atomic(parts / "run.json", lambda fh: fh.write(json.dumps(config).encode()), fsync=True)
    done = {int(p.stem.split("-")[1]): p for p in parts.glob("seg-*.npz")}
    writer = _SeriesFile.open(partial, layout, done)
    if writer.rebuilt:  # the partial file was lost or unreadable: its segments run again
        for p in done.values():
            p.unlink()
        done = {}
    todo = [k for k in range(layout.n_segments) if k not in done]
    failed: dict[int, str] = {}
    n_done = len(done)

    def finish(k: int, result: dict) -> None:
        nonlocal n_done
        writer.write(k, result)
        _save_part(parts / f"seg-{k:05d}.npz", {key: v for key, v in result.items() if not key.startswith("series/")})
        n_done += 1
        if progress:
            progress(n_done / layout.n_segments)

    try:
        if serial:
            for k in todo:
                try:
                    finish(k, task(*shared, k))
                except Exception as e:  # one bad segment does not sink the rest
                    failed[k] = f"{type(e).__name__}: {e}"
        elif todo:
            _run_dask(task, shared, todo, scheduler, workers, finish, failed)
    except BaseException:  # e.g. the scheduler unreachable, Ctrl-C: a new run that finished nothing leaves nothing
        if fresh and n_done == 0:
            writer.close()
            shutil.rmtree(parts, ignore_errors=True)
            partial.unlink(missing_ok=True)
        raise
    finally:
        writer.close()
    if failed:
        starts = layout.segment_start.astype("datetime64[s]")
        listed = "; ".join(f"segment {k} ({starts[k]}): {msg}" for k, msg in sorted(failed.items()))
        raise RuntimeError(f"{len(failed)} segment(s) failed, the rest are kept for --resume: {listed}")
    summary = summarize([_load_part(parts / f"seg-{k:05d}.npz") for k in range(layout.n_segments)])
    writer.finish(summary)
    if after is not None:
        writer.add_attrs(after(partial))
    os.replace(partial, out)
    shutil.rmtree(parts)
    return xr.load_dataset(out, engine="h5netcdf")


def _run_dask(task, shared, todo, scheduler, workers, finish, failed) -> None:
    from distributed import as_completed
    from factory_twin.twin.runs.cluster import dask_client

    with dask_client(scheduler, workers) as client:
        sent = client.scatter(list(shared), broadcast=True)
        futures = {client.submit(task, *sent, k, pure=False): k for k in todo}
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                finish(k, fut.result())
            except Exception as e:  # a failed segment or a dead worker: record it and go on
                failed[k] = f"{type(e).__name__}: {e}"
            fut.release()


class _SeriesFile:
    """The partial NetCDF: every variable preallocated over the whole run (NaN until written), chunked by
    segment; :meth:`write` fills one segment and flushes."""

    def __init__(self, f, path: Path, layout: Layout, rebuilt: bool) -> None:
        self.f, self.path, self.layout, self.rebuilt = f, path, layout, rebuilt

    @classmethod
    def open(cls, path: Path, layout: Layout, done: dict) -> _SeriesFile:
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
        return cls(h5py.File(path, "r+"), path, layout, bool(done))

    def write(self, k: int, result: dict) -> None:
        """Fill segment ``k`` and flush to disk (a kill after this leaves a readable file)."""
        i0, i1 = self.layout.bounds(k)
        self.f["time"][i0:i1] = result["time"]
        for key, values in result.items():
            if key.startswith("series/"):
                self.f[key.removeprefix("series/")][i0:i1] = values
        self.f.flush()

    def finish(self, summary: Summary) -> None:
        """Per-segment figures and the run's attributes, once every segment is in."""
        import h5netcdf

        self.close()
        with h5netcdf.File(self.path, "a") as f:
            for name, (values, units) in summary.per_segment.items():
                v = f.create_variable(name, ("segment",), "f8")
                v[:] = values
                v.attrs["units"] = units
            f.attrs.update(summary.attrs)

    def add_attrs(self, attrs: dict) -> None:
        import h5netcdf

        with h5netcdf.File(self.path, "a") as f:
            f.attrs.update(attrs)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def _save_part(path: Path, arrays: dict) -> None:
    """Checkpoint a finished segment (its non-series results) atomically."""
    buf = io.BytesIO()
    np.savez(buf, **{k.replace("/", "__"): np.asarray(v) for k, v in arrays.items()})
    write_atomic(path, lambda fh: fh.write(buf.getvalue()), fsync=True)


def _load_part(path: Path) -> dict:
    with np.load(path) as z:
        return {k.replace("__", "/"): z[k] for k in z.files}
