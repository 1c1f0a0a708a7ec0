"""Output paths checked before any computation: never overwrite without ``--force``, never fail after the
work is done because a folder is read-only or the path is a directory."""

from __future__ import annotations

import os
from pathlib import Path


def check_output_file(path: Path | None, force: bool, option: str = "--out") -> None:
    """Raise ``ValueError`` naming ``option`` when ``path`` cannot be written as a new file now."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"{option}: {path} is a directory; give a file name such as {path / 'run.nc'}")
    if path.exists() and not force:
        raise ValueError(f"{option}: {path} exists; pass --force to overwrite it")
    _check_writable_parent(path, option)


def check_output_dir(path: Path, files: tuple[str, ...], force: bool, resume: bool, option: str = "--out") -> None:
    """A folder for ``files``: it may exist (its other content is kept); existing ``files`` need ``--force``
    unless ``resume`` continues an earlier run there."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option}: {path} exists and is not a directory")
    existing = [name for name in files if (path / name).exists()]
    if existing and not (force or resume):
        raise ValueError(
            f"{option}: {path} already holds {', '.join(existing)}; pass --resume to continue that run "
            "or --force to overwrite it"
        )
    _check_writable_parent(path / files[0], option)


def check_state_dir(path: Path, option: str = "--state-dir") -> None:
    """Create (or keep) the folder a long-running command keeps its state in and resumes from; refuse,
    naming ``option``, a path that is not a directory or cannot be written."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option}: {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{option}: cannot create {path} ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot write to {path}")


def _check_writable_parent(path: Path, option: str) -> None:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: cannot write to {parent} (not a writable directory)")


__all__ = ["check_output_dir", "check_output_file", "check_state_dir"]
