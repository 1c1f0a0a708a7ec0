"""Atomic file output: write a temporary file beside the target, then rename it into place.

A reader sees the previous file or the next one, whole; an interrupted write leaves the previous file
intact and no temporary file behind. Every file the project writes for others to read goes through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from factory_twin.twin.runs import strict_json


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success give it the user's umask (mkstemp makes
    0600) and rename it onto ``path``; on failure remove it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any], fsync: bool = False) -> Path:
    """Create ``path`` with ``write(binary file)`` atomically; ``fsync`` also flushes it to disk first."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    return path


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON (no NaN or infinity: :func:`strict_json.dumps`) through :func:`write_atomic`
    (fsynced), creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = strict_json.dumps(obj, indent=1).encode()  # before the file is opened: a NaN leaves the old file
    write_atomic(path, lambda fh: fh.write(text), fsync=True)
