"""A tiny time-based throttle shared by progress bars and dashboards (no I/O)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """``ready()`` is true at most once per ``interval`` seconds (and always the first time)."""

    __slots__ = ("_clock", "_last", "interval")

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if interval < 0:
            raise ValueError(f"interval must be >= 0, got {interval!r}")
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self._clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False
