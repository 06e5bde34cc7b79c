"""Backing off from a server that refuses connections, shared by every call to it.

After a refused connection (nothing listens: a daemon that died, a server restarting) the calls
to that origin do not each hammer it: they wait out a window shared by all of them, which grows
from 0.25 s to 8 s while the refusals go on, and one success closes it. When a window ends,
one call goes first and the others wait for its outcome (pure state; callers do the sleeping).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

FIRST_WAIT = 0.25
MAX_WAIT = 8.0


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Outages:
    """Per origin: until when calls hold back, and how long the next window is."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._down: dict[str, tuple[float, float]] = {}  # origin -> (until, last window)
        self._lock = threading.Lock()

    def delay(self, url: str) -> float:
        """Seconds a call to ``url`` should still wait (0: go). The first call after a window
        ends goes, and opens the next window for the others until its outcome is known."""
        if not self._down:  # no origin is down (the rule): nothing to look up
            return 0.0
        key = origin(url)
        with self._lock:
            state = self._down.get(key)
            if state is None:
                return 0.0
            until, window = state
            now = self._clock()
            if now < until:
                return until - now
            self._down[key] = (now + window, window)  # this call probes; the rest wait for it
            return 0.0

    def refused(self, url: str) -> None:
        """A connection to ``url`` was refused: open (or widen) the window."""
        key = origin(url)
        with self._lock:
            _, window = self._down.get(key, (0.0, FIRST_WAIT / 2))
            window = min(MAX_WAIT, window * 2)
            self._down[key] = (self._clock() + window, window)

    def answered(self, url: str) -> None:
        """``url`` answered: calls to it go at once again."""
        if not self._down:
            return
        with self._lock:
            self._down.pop(origin(url), None)

    def down(self, url: str) -> bool:
        return origin(url) in self._down
