"""The revive stage: a refused connection to the embedded local platform finds or starts its
daemon again, once per call, and the call goes on (that replay is no retry attempt)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from qfnb._core.errors import ConnectionError, TimeoutError
from qfnb._core.http.call import Call
from qfnb._core.http.outage import Outages, origin
from qfnb._core.http.stages import Answer, Next

__all__ = ["Revive"]


@dataclass(slots=True, eq=False)
class Revive:
    """``revive(origin) -> bool`` (run in a thread) brings the daemon back; a success closes
    the origin's outage window in ``outages`` so the replay goes at once."""

    revive: Callable[[str], bool]
    outages: Outages

    async def __call__(self, call: Call, next: Next) -> Answer:
        try:
            return await next(call)
        except ConnectionError as exc:
            if isinstance(exc, TimeoutError) or call.revived:
                raise
            call.revived = True
            if not await asyncio.to_thread(self.revive, origin(call.url)):
                raise
            self.outages.answered(call.url)
        return await next(call)
