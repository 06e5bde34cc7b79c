"""The record stage: a model call answers from the response cache on a hit, reserves its
worst case against the budget before it is sent, and settles it (budget and ledger) when its
answer, or what arrived of a stream, is in (:class:`~qfnb._core.http.recording.recorded.Recording`).
The cache key includes what would answer: ``identify`` gives the served model's digest. Under a
budget, a Responses continuation also holds the stored conversation the platform prepends to it:
``history`` gives its tokens (the stored response's usage)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from qfnb._core.http.call import Call
from qfnb._core.http.recording.recorded import Recording
from qfnb._core.http.stages import Answer, Next
from qfnb._core.record.budget import active_budget
from qfnb._core.record.traces import origin_headers

__all__ = ["Identify", "Record"]

#: what answers a recorded call: a digest, "" where the platform names none, None when it can't be told
Identify = Callable[[Recording], Awaitable[str | None]]
#: the tokens of the stored conversation a recorded call continues (0: none)
History = Callable[[Recording], Awaitable[int]]


async def _named_by_the_platform(rec: Recording) -> str:
    return ""


async def _no_history(rec: Recording) -> int:
    return 0


@dataclass(slots=True, eq=False)
class Record:
    """Calls without a ``record`` (console, IAM, BOS) pass through."""

    identify: Identify = _named_by_the_platform
    history: History = _no_history

    async def __call__(self, call: Call, next: Next) -> Answer:
        rec = call.record
        if rec is None:
            return await next(call)
        if rec.config.embedded:  # the local platform's trace table keeps the session and cell
            call.headers.update(origin_headers())
        if rec.caching and rec.lookup(await self.identify(rec)):
            return rec.replay(call.path)
        if rec.continues is not None and active_budget() is not None:
            rec.stored = await self.history(rec)
        rec.reserve()
        try:
            result = await next(call)
        except BaseException:
            rec.release()
            raise
        rec.tries = call.attempt
        return rec.finish(result)
