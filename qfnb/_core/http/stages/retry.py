"""The retry stage: a transient failure is tried again after the call's policy's backoff
(:func:`~qfnb._core.http.retry.retry_delay`), honouring the server's ``Retry-After``."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from qfnb._core.errors import ConnectionError, QfnbError, StreamError, TimeoutError
from qfnb._core.http.call import Call
from qfnb._core.http.response import QfResponse
from qfnb._core.http.retry import RetryPolicy, retry_after_of, retry_delay
from qfnb._core.http.stages import Answer, Next
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, REUSED_HEADER

__all__ = ["Retry", "spent"]

logger = logging.getLogger("qfnb.client")


@dataclass(slots=True, eq=False)
class Retry:
    """Retries ``call`` under ``call.policy`` (else ``default``), waiting on ``sleep``."""

    default: RetryPolicy
    sleep: Callable[[float], Awaitable[object]]

    async def __call__(self, call: Call, next: Next) -> Answer:
        policy = call.policy or self.default
        started = time.monotonic()
        while True:
            try:
                answer = await next(call)
                if isinstance(answer, QfResponse) or IDEMPOTENCY_HEADER not in call.headers:
                    return answer
                return self._resumed(call, next, answer, policy)
            except QfnbError as exc:
                delay = retry_delay(exc, call.attempt, policy, retry_after=retry_after_of(exc))
                if delay is None:
                    if call.attempt > 1 and type(exc) in (ConnectionError, TimeoutError):
                        raise type(exc)(spent(call, time.monotonic() - started, exc)) from exc
                    if call.attempt > 1:  # the server's own error (its message says what happened)
                        exc.add_note(spent(call, time.monotonic() - started, None))
                    raise
                logger.debug("retrying %s %s in %.2fs (attempt %d/%d): %s", call.method, call.path, delay,
                             call.attempt + 1, policy.attempts, exc)
                await self.sleep(delay)
                call.attempt += 1

    async def _resumed(self, call: Call, next: Next, stream: AsyncIterator[QfResponse],
                       policy: RetryPolicy) -> AsyncIterator[QfResponse]:
        """``stream``, sent again when its connection drops mid-answer while attempts are left: the
        platform replays a keyed call's events from the start (its answer says so) and goes on; the
        events already given are skipped. Where the answer was not replayed, the cut is raised."""
        given = skip = 0
        while True:
            try:
                async for chunk in stream:
                    if skip:
                        skip -= 1
                        continue
                    given += 1
                    yield chunk
                return
            except StreamError as exc:
                if not exc.cut or call.attempt >= policy.attempts:
                    raise
                call.attempt += 1
                logger.info("%s %s: the stream broke off after %d chunk(s); sending it again to resume it "
                            "(attempt %d/%d)", call.method, call.path, given, call.attempt, policy.attempts)
                try:
                    again = await next(call)
                except QfnbError:
                    raise exc from None
                replayed = (call.reply_headers or {}).get(REUSED_HEADER.lower())
                if isinstance(again, QfResponse) or not replayed:
                    aclose = getattr(again, "aclose", None)
                    if aclose is not None:
                        await aclose()
                    raise exc from None  # a new answer (or an error), not the rest of this one
                stream, skip = again, given


def spent(call: Call, elapsed: float, exc: BaseException | None) -> str:
    """What a call's spent retries came to and the settings that bound them, after the last
    attempt's error ``exc`` when it was silence or a dropped connection (None: a server's error,
    whose own message says what happened)."""
    kind = "CONSOLE" if call.api in ("console", "raw") else "LLM"
    tries = f"gave up after {call.attempt} attempts in {elapsed:.1f} s"
    if exc is None:
        return f"{tries}; QIANFAN_{kind}_API_RETRY_COUNT sets the attempts"
    kept = (f"; each retry carried the call's {IDEMPOTENCY_HEADER} (the local platform goes on with the first "
            "attempt's work rather than start it again)") if IDEMPOTENCY_HEADER in call.headers else ""
    return (f"{exc} -- {tries}{kept}. QIANFAN_{kind}_API_RETRY_COUNT sets the attempts, "
            f"QIANFAN_{kind}_API_RETRY_TIMEOUT the silence each one waits")
