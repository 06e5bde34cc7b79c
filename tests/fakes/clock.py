"""Virtual time for tests that check pacing: nothing really sleeps, every wait is recorded."""

from __future__ import annotations

import asyncio

__all__ = ["VirtualTime"]


class VirtualTime:
    """A monotonic clock (call it) that moves only when a waiter's ``sleep`` ends.

    Inject it as ``clock=vt, sleep=vt.sleep``: ``sleeps`` lists every wait asked for, and
    ``vt()`` advances to the latest wake-up, so ``vt() - t0`` is the elapsed virtual time.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = self.now + seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is
        self.now = max(self.now, wake)
