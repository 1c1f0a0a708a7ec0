"""Reference facilities, rack catalog, climate normals, grid profiles and fitted curves.

Every file here states its sources. Use :func:`path` to find a file whatever the working directory.
"""

from importlib.resources import files
from pathlib import Path


def path(*parts: str) -> Path:
    """Absolute path of a file shipped in the ``data`` package, e.g. ``path("facilities", "campus-100mw.toml")``."""
    p = Path(str(files(__name__).joinpath(*parts)))
    if not p.exists():
        raise FileNotFoundError(f"no packaged data file {'/'.join(parts)!r} (looked in {p.parent})")
    return p
