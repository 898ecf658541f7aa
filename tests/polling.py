"""Waiting for a condition by polling it, never by sleeping out a timeout."""

from __future__ import annotations

import time
from typing import Callable, Optional


def wait_until(condition, timeout_s: float, what: str, every_s: float = 1,
               state: Optional[Callable[[], str]] = None) -> None:
    """Poll ``condition`` until it holds; after ``timeout_s`` fail naming ``what`` and,
    where given, what ``state()`` reports then."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            seen = f"; now: {state()}" if state else ""
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s{seen}")
        time.sleep(every_s)
