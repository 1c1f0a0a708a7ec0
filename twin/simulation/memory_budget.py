"""Memory budget: estimate what a run or a problem will allocate and refuse it up front, with the
estimate, rather than end in a numpy allocation error half-way."""

from __future__ import annotations

import os

SHARE = 0.8  # of the memory available now that one run may take


def available_bytes() -> int:
    """Memory available to a new allocation now (``MemAvailable``; physical memory where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Raise ``ValueError`` (what, the estimate, ``hint``) when ``nbytes`` exceeds the share of memory available."""
    avail = available_bytes()
    if nbytes > SHARE * avail:
        raise ValueError(
            f"{what} needs about {gib(nbytes)}, more than the {gib(SHARE * avail)} available"
            + (f"; {hint}" if hint else "")
        )


__all__ = ["available_bytes", "check_memory", "gib"]
