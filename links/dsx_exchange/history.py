"""History of every value received: an embedded DuckDB file, ``DIR/history.duckdb``.

Why DuckDB: one file, transactional (a batch is either in or not, also after a crash), appends whole numpy
batches at millions of rows per second, and answers "this point between t0 and t1" with SQL over a
columnar table whose min/max zone maps skip the rest; it reopens where it stopped. (Parquet parts would
need their own compaction and an index of parts; DuckDB gives both.) One writer at a time: the connector
owns the file while it runs; other processes read it when it is stopped, or through the connector.

Tables: ``points(id, point, entity, signal, unit)`` (``point`` = ``objectType/pointType/tagPath``) and
``samples(point_id, ts_ms, value, quality, received_ms)`` with ``value`` in the point's engineering unit
as received (null when the BMS sent null); ``rejected(point, ts_ms, value, quality, received_ms, reason,
detail)``: what was received but not taken (malformed, not finite, out of range, an outlier, stamped outside
the plant clock's window), kept apart so that it never reads as a sample (nor seeds a resume).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (id INTEGER PRIMARY KEY, point VARCHAR UNIQUE, entity VARCHAR, signal VARCHAR,
                                   unit VARCHAR);
CREATE TABLE IF NOT EXISTS samples (point_id INTEGER, ts_ms BIGINT, value DOUBLE, quality INTEGER,
                                    received_ms BIGINT);
CREATE TABLE IF NOT EXISTS rejected (point VARCHAR, ts_ms BIGINT, value DOUBLE, quality INTEGER, received_ms BIGINT,
                                     reason VARCHAR, detail VARCHAR);
"""
REJECTED_COLUMNS = ("point", "ts_ms", "value", "quality", "received_ms", "reason", "detail")


class History:
    """Append-only sample store; :meth:`add` buffers, :meth:`flush` commits one batch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.con = duckdb.connect(str(self.path))
        self.con.execute(SCHEMA)
        self.ids: dict[str, int] = dict(self.con.execute("SELECT point, id FROM points").fetchall())
        self._next_id = max(self.ids.values(), default=0)
        self._new_points: list[tuple] = []
        self._cols: tuple[list, list, list, list, list] = ([], [], [], [], [])
        self._chunks: list[tuple[np.ndarray, ...]] = []  # batches added as arrays
        self._chunk_rows = 0
        self._rejected: list[tuple] = []
        self._lock = threading.Lock()
        self.flush_s = 0.0  # CPU time of the flushing thread
        self.rows_written = int(self.con.execute("SELECT count(*) FROM samples").fetchone()[0])

    def point_id(
        self, point: str, entity: str | None = None, signal: str | None = None, unit: str | None = None
    ) -> int:
        pid = self.ids.get(point)
        if pid is None:
            self._next_id += 1
            pid = self._next_id
            self.ids[point] = pid
            self._new_points.append((pid, point, entity, signal, unit))
        return pid

    def add(self, point_id: int, ts_ms: int, value: float | None, quality: int, received_ms: int) -> None:
        c = self._cols
        c[0].append(point_id)
        c[1].append(ts_ms)
        c[2].append(np.nan if value is None else value)
        c[3].append(quality)
        c[4].append(received_ms)

    def add_rejected(
        self,
        point: str,
        ts_ms: int | None,
        value: float | None,
        quality: int | None,
        received_ms: int,
        reason: str,
        detail: str = "",
    ) -> None:
        """Buffer one value that was received but not taken, with why."""
        self._rejected.append((point, ts_ms, value, quality, received_ms, reason, detail[:500]))

    def add_batch(
        self, point_id: np.ndarray, ts_ms: np.ndarray, value: np.ndarray, quality: np.ndarray, received_ms: np.ndarray
    ) -> None:
        """Buffer a batch of samples given as arrays (``value`` NaN = null from the BMS)."""
        with self._lock:
            self._chunks.append((point_id, ts_ms, value, quality, received_ms))
            self._chunk_rows += len(point_id)

    @property
    def pending(self) -> int:
        return len(self._cols[0]) + self._chunk_rows + len(self._rejected)

    def flush(self) -> int:
        """Commit buffered rows (and new points) in one transaction; returns rows written."""
        with self._lock:
            t0 = time.thread_time()
            try:
                return self._flush()
            finally:
                self.flush_s += time.thread_time() - t0

    def _flush(self) -> int:
        cols, self._cols = self._cols, ([], [], [], [], [])
        chunks, self._chunks, self._chunk_rows = self._chunks, [], 0
        new, self._new_points = self._new_points, []
        rejected, self._rejected = self._rejected, []
        types = (np.int32, np.int64, float, np.int32, np.int64)
        if cols[0]:  # row order in the table does not matter: queries sort by time
            chunks.insert(0, tuple(np.asarray(c, t) for c, t in zip(cols, types, strict=True)))
        n = sum(len(c[0]) for c in chunks)
        if not n and not new and not rejected:
            return 0
        self.con.execute("BEGIN")
        try:
            if new:
                pts = pd.DataFrame(new, columns=["id", "point", "entity", "signal", "unit"])
                self.con.register("new_points", pts)
                self.con.execute("INSERT INTO points SELECT * FROM new_points")
                self.con.unregister("new_points")
            if n:
                names = ("point_id", "ts_ms", "value", "quality", "received_ms")
                batch = pd.DataFrame(
                    {
                        k: np.concatenate([c[j] for c in chunks]).astype(t, copy=False)
                        for j, (k, t) in enumerate(zip(names, types, strict=True))
                    }
                )
                self.con.register("batch", batch)
                # NaN marks "null from the BMS" in the buffer; stored as SQL NULL
                self.con.execute(
                    "INSERT INTO samples SELECT point_id, ts_ms, CASE WHEN isnan(value) THEN NULL ELSE value END,"
                    " quality, received_ms FROM batch"
                )
                self.con.unregister("batch")
            if rejected:
                rej = pd.DataFrame(rejected, columns=list(REJECTED_COLUMNS))
                rej = rej.astype({"ts_ms": "Int64", "value": float, "quality": "Int32", "received_ms": "int64"})
                self.con.register("new_rejected", rej)
                self.con.execute("INSERT INTO rejected SELECT * FROM new_rejected")
                self.con.unregister("new_rejected")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        self.rows_written += n
        return n

    def query(self, point: str, t0_ms: int | None = None, t1_ms: int | None = None) -> pd.DataFrame:
        """Samples of one point (``objectType/pointType/tagPath``) with ``t0 <= ts < t1``, in time order."""
        self.flush()
        sql = (
            "SELECT s.ts_ms, s.value, s.quality, s.received_ms FROM samples s JOIN points p ON p.id = s.point_id"
            " WHERE p.point = ?"
        )
        args: list = [point]
        if t0_ms is not None:
            sql += " AND s.ts_ms >= ?"
            args.append(int(t0_ms))
        if t1_ms is not None:
            sql += " AND s.ts_ms < ?"
            args.append(int(t1_ms))
        return self.con.execute(sql + " ORDER BY s.ts_ms, s.received_ms", args).df()

    def latest(self) -> pd.DataFrame:
        """The last sample of every point (to resume the shadow twin after a restart)."""
        self.flush()
        return self.con.execute(
            "SELECT p.point, s.ts_ms, s.value, s.quality FROM samples s JOIN points p ON p.id = s.point_id"
            " QUALIFY row_number() OVER (PARTITION BY s.point_id ORDER BY s.ts_ms DESC, s.received_ms DESC) = 1"
        ).df()

    def rejected(self) -> pd.DataFrame:
        """Every value received but not taken, in arrival order."""
        self.flush()
        cols = ", ".join(REJECTED_COLUMNS)
        return self.con.execute(f"SELECT {cols} FROM rejected ORDER BY received_ms").df()

    def count(self) -> int:
        self.flush()
        return int(self.con.execute("SELECT count(*) FROM samples").fetchone()[0])

    def close(self) -> None:
        self.flush()
        self.con.close()


__all__ = ["History"]
