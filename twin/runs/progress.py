"""A one-line progress bar on stderr with an ETA (no dependency): the simulation's and the batch's."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Call with the completed fraction (and a note); redraws at most 10 times a second, and at the end."""

    def __init__(self, label: str, width: int = 30, stream=None):
        self.label, self.width, self.stream = label, width, stream or sys.stderr
        self.t0 = time.perf_counter()
        self._last = -1.0

    def __call__(self, fraction: float, note: str = "") -> None:
        now = time.perf_counter()
        if fraction < 1 and now - self._last < 0.1:  # redraw at most 10 times a second
            return
        self._last = now
        elapsed = now - self.t0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        filled = int(self.width * fraction)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {100 * fraction:5.1f}%  {elapsed:6.1f}s  ETA {eta:6.1f}s {note}")
        if fraction >= 1:
            self.stream.write("\n")
        self.stream.flush()
