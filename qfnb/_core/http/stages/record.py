"""The record stage: a model call answers from the response cache on a hit, reserves its
worst case against the budget before it is sent, and settles it (budget and ledger) when its
answer, or what arrived of a stream, is in (:class:`~qfnb._core.http.recorded.Recording`)."""

from __future__ import annotations

from qfnb._core.http.call import Call
from qfnb._core.http.stages import Answer, Next

__all__ = ["record"]


async def record(call: Call, next: Next) -> Answer:
    """Calls without a ``record`` (console, IAM, BOS) pass through."""
    rec = call.record
    if rec is None:
        return await next(call)
    if rec.lookup():
        return rec.replay(call.path)
    rec.reserve()
    try:
        result = await next(call)
    except BaseException:
        rec.release()
        raise
    return rec.finish(result)
