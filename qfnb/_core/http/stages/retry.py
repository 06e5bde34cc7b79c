"""The retry stage: a transient failure is tried again after the call's policy's backoff
(:func:`~qfnb._core.http.retry.retry_delay`), honouring the server's ``Retry-After``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from qfnb._core.errors import QfnbError
from qfnb._core.http.call import Call
from qfnb._core.http.retry import RetryPolicy, retry_after_of, retry_delay
from qfnb._core.http.stages import Answer, Next

__all__ = ["Retry"]

logger = logging.getLogger("qfnb.client")


@dataclass(slots=True, eq=False)
class Retry:
    """Retries ``call`` under ``call.policy`` (else ``default``), waiting on ``sleep``."""

    default: RetryPolicy
    sleep: Callable[[float], Awaitable[object]]

    async def __call__(self, call: Call, next: Next) -> Answer:
        policy = call.policy or self.default
        while True:
            try:
                return await next(call)
            except QfnbError as exc:
                delay = retry_delay(exc, call.attempt, policy, retry_after=retry_after_of(exc))
                if delay is None:
                    raise
                logger.debug("retrying %s %s in %.2fs (attempt %d/%d): %s", call.method, call.path, delay,
                             call.attempt + 1, policy.attempts, exc)
                await self.sleep(delay)
                call.attempt += 1
