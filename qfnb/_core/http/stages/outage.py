"""The outage stage: calls to a server that refuses connections wait out one shared, growing
window (:class:`~qfnb._core.http.outage.Outages`) instead of each hammering it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from qfnb._core.errors import ConnectionError, TimeoutError
from qfnb._core.http.call import Call
from qfnb._core.http.outage import Outages
from qfnb._core.http.stages import Answer, Next

__all__ = ["Outage"]


@dataclass(slots=True, eq=False)
class Outage:
    outages: Outages
    sleep: Callable[[float], Awaitable[object]]

    async def __call__(self, call: Call, next: Next) -> Answer:
        outages = self.outages
        while (hold := outages.delay(call.url)) > 0:
            await self.sleep(min(hold, 0.25))
        try:
            result = await next(call)
        except ConnectionError as exc:
            if not isinstance(exc, TimeoutError):
                outages.refused(call.url)
            raise
        outages.answered(call.url)
        return result
