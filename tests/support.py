"""Small helpers the test modules share (importable because ``tests/`` holds the root conftest)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.2) -> T:
    """``pred()``'s first truthy value, polling every ``poll_s``; ``AssertionError`` naming ``what`` after
    ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if value := pred():
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")
