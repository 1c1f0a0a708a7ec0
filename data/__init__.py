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


def builtin(folder: str) -> list[str]:
    """Names of the built-in entries of one catalog folder (``facilities``, ``scenarios``, ``studies``,
    ``grid_codes``, ``grid_events``): the stems of its TOML files, sorted. What the loaders accept by name and
    what the command line's help lists."""
    return sorted(p.stem for p in path(folder).glob("*.toml"))
