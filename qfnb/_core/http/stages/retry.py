"""The retry stage: a transient failure is tried again after the call's policy's backoff
(:func:`~qfnb._core.http.retry.retry_delay`), honouring the server's ``Retry-After``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from qfnb._core.errors import ConnectionError, QfnbError, TimeoutError
from qfnb._core.http.call import Call
from qfnb._core.http.retry import RetryPolicy, retry_after_of, retry_delay
from qfnb._core.http.stages import Answer, Next
from qfnb.protocol.routes import IDEMPOTENCY_HEADER

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
                return await next(call)
            except QfnbError as exc:
                delay = retry_delay(exc, call.attempt, policy, retry_after=retry_after_of(exc))
                if delay is None:
                    if call.attempt > 1 and type(exc) in (ConnectionError, TimeoutError):
                        raise type(exc)(spent(call, time.monotonic() - started, exc)) from exc
                    raise
                logger.debug("retrying %s %s in %.2fs (attempt %d/%d): %s", call.method, call.path, delay,
                             call.attempt + 1, policy.attempts, exc)
                await self.sleep(delay)
                call.attempt += 1


def spent(call: Call, elapsed: float, exc: BaseException) -> str:
    """The error once a call's retries are spent: the last attempt's, what the tries came to and
    the settings that bound them."""
    kind = "CONSOLE" if call.api in ("console", "raw") else "LLM"
    kept = (f"; each retry carried the call's {IDEMPOTENCY_HEADER}, so the local platform went on with the "
            "first attempt's work rather than start it again") if IDEMPOTENCY_HEADER in call.headers else ""
    return (f"{exc} -- gave up after {call.attempt} attempts in {elapsed:.1f} s{kept}. "
            f"QIANFAN_{kind}_API_RETRY_COUNT sets the attempts, QIANFAN_{kind}_API_RETRY_TIMEOUT the silence "
            "each one waits")
