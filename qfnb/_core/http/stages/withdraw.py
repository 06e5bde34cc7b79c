"""The withdraw stage (the local platform only): a keyed model call its caller stops on purpose
is cancelled on the platform at once. The platform keeps a keyed call's work going when the
connection drops, for the call's retry (:mod:`qfnb.local.server.middleware.idempotency`); a call stopped by
its caller has no retry coming, so the stage sends ``DELETE /qfnb/calls/{key}`` and the engine's
slot is free for the next prompt. A caller stops a call by cancelling the task awaiting it (the
sync shell's Ctrl-C does so) or by closing its stream before the end (the notebook's Interrupt).
A call that fails (a timeout, a cut connection, the platform's error) is left as it is.

A keyed call the client gives up on (its retries spent on silence or dropped connections, a stream
cut with no attempt left) is a call whose error should say what the platform was doing: the stage
asks ``GET /qfnb/calls/{key}`` once (at most :data:`WITHDRAW_WAIT_S`, never raising) and adds the
platform's answer to the error as one clause (:func:`qfnb.protocol.wires.local.call_progress.describe`: "the
platform had it generating: 212 tokens in 95 s after 40 s queued"). A normal call sends nothing more."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from qfnb._core.errors import ConnectionError, RequestError, StreamError
from qfnb._core.http.call import Call
from qfnb._core.http.decode import RESPONSE_END_EVENTS
from qfnb._core.http.outage import origin
from qfnb._core.http.response import QfResponse
from qfnb._core.http.retry import RetryPolicy
from qfnb._core.http.stages import Answer, Next
from qfnb.protocol.wires.local.call_progress import describe
from qfnb.protocol.wires.qianfan.routes import CALLS_ROUTE, IDEMPOTENCY_HEADER, runs_once_per_key

__all__ = ["WITHDRAW_WAIT_S", "Withdraw", "whereabouts"]

logger = logging.getLogger("qfnb.client")

#: the longest a stopped call waits for its withdrawal (it never raises: best effort)
WITHDRAW_WAIT_S = 1.0
_ONCE = RetryPolicy(attempts=1, timeout=WITHDRAW_WAIT_S)


@dataclass(slots=True, eq=False)
class Withdraw:
    """Withdraws a keyed call its caller stops, and says what the platform was doing in the error of
    one the client gave up on; calls without an ``Idempotency-Key`` pass through, and so do the keyed creates
    and imports (their keys are kept with what they made, not in the platform's table of model calls)."""

    async def __call__(self, call: Call, next: Next) -> Answer:
        key = call.headers.get(IDEMPOTENCY_HEADER)
        if key is None or runs_once_per_key(call.path, (call.params or {}).get("Action"), call.method):
            return await next(call)
        try:
            answer = await next(call)
        except asyncio.CancelledError:
            await _withdraw(call, key, next)
            raise
        except ConnectionError as exc:  # the retries were spent on silence or dropped connections
            await _explained(exc, call, key, next)
            raise
        return answer if isinstance(answer, QfResponse) else _watched(call, key, next, answer)


async def _watched(call: Call, key: str, next: Next, stream: AsyncIterator[QfResponse]) -> AsyncIterator[QfResponse]:
    """``stream``, withdrawn when its consumer closes it (or is cancelled) before its end (a
    consumer that stops after the answer's final chunk leaves the platform to finish its books)."""
    ended = False
    try:
        async for chunk in stream:
            ended = _final(chunk.body)
            yield chunk
    except (StreamError, ConnectionError) as exc:
        if isinstance(exc, ConnectionError) or exc.cut:  # given up on a cut: what was the platform doing?
            await _explained(exc, call, key, next)
        raise
    except (GeneratorExit, asyncio.CancelledError):
        await _close(stream)  # its connection first: the platform hears the client left
        if not ended:
            await _withdraw(call, key, next)
        raise
    finally:
        await _close(stream)


def _final(body: Mapping[str, Any]) -> bool:
    """Whether a chunk ends its answer (v1's ``is_end``, a finish reason, a Responses end event)."""
    choices = body.get("choices")
    return bool(body.get("is_end") or body.get("type") in RESPONSE_END_EVENTS
                or (isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason")
                                                      for c in choices)))


async def _close(stream: AsyncIterator[QfResponse]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def _to_call_route(method: str, call: Call, key: str, next: Next) -> Answer:
    """``method /qfnb/calls/{key}`` under ``call``'s own credential, through the rest of the pipeline:
    one try, no revival of a daemon that is gone, at most :data:`WITHDRAW_WAIT_S` (raises as the call would)."""
    about = Call(method, origin(call.url) + CALLS_ROUTE + "/" + quote(key, safe=""), None, {}, None, call.api,
                 policy=_ONCE)
    about.revived = True
    async with asyncio.timeout(WITHDRAW_WAIT_S):  # keeps a caller's cancellation (3.11's wait_for may drop it)
        return await next(about)


async def _withdraw(call: Call, key: str, next: Next) -> None:
    """``DELETE /qfnb/calls/{key}`` under the call's own credential, through the rest of the
    pipeline (one try, no revival of a daemon that is gone); never raises, waits at most
    :data:`WITHDRAW_WAIT_S`."""
    try:
        await _to_call_route("DELETE", call, key, next)
    except Exception as exc:  # best effort: the platform cancels it after its grace anyway
        logger.debug("could not withdraw the stopped call %s %s: %s", call.method, call.path, exc)
    else:
        logger.debug("withdrew the stopped call %s %s", call.method, call.path)


async def whereabouts(call: Call, key: str, next: Next) -> str | None:
    """What the platform says it was doing with ``call`` (``GET /qfnb/calls/{key}`` under the call's own
    credential, one try, at most :data:`WITHDRAW_WAIT_S`): a clause for its error, or None when the
    platform did not answer (it is gone, or slow: the error stands as it is)."""
    try:
        answer = await _to_call_route("GET", call, key, next)
    except RequestError as exc:
        if exc.status_code == 404:
            return "the platform holds no call under its key (it never arrived, failed or was cancelled)"
        logger.debug("could not ask what the platform did of %s %s: %s", call.method, call.path, exc)
        return None
    except Exception as exc:  # best effort: the error stands as it is
        logger.debug("could not ask what the platform did of %s %s: %s", call.method, call.path, exc)
        return None
    if not isinstance(answer, QfResponse):
        return None
    return f"the platform had it {describe(answer.body)}"


async def _explained(exc: BaseException, call: Call, key: str, next: Next) -> None:
    """``exc`` with the platform's account of the call added, as one more clause of its message
    (a note where the message is not its one argument)."""
    clause = await whereabouts(call, key, next)
    if clause is None:
        return
    if len(exc.args) == 1 and isinstance(exc.args[0], str) and str(exc) == exc.args[0]:
        exc.args = (f"{exc.args[0]} ({clause})",)
    else:
        exc.add_note(clause)
