"""One poll loop for every wait on a platform task (publish, deploy, train, evaluate, import).

:func:`apoll_until` is a coroutine on the caller's loop (a sync caller runs it on qfnb's loop with
:func:`qfnb._core.runtime.sync.run`), a thin shell over :class:`PollPlan`, which makes every
decision and does no I/O:

- ``fetch()`` reads the task's state; ``done(value)`` says whether it has ended (it may raise
  for a failed end state, which then propagates untouched);
- a failed fetch is retried up to ``retries`` times in a row (``None``: forever), waiting
  ``backoff`` seconds (default ``interval``) doubling up to ``max_backoff``; permanent
  errors (bad input, credentials, permissions) are never retried;
- ``tick(value)`` is called after each poll that did not end the wait (progress, events; it
  may raise to abort, e.g. on a user's stop);
- after ``timeout`` seconds the wait raises :class:`PollTimeoutError` (a
  :class:`qfnb.errors.TimeoutError`);
- when the wait is interrupted — cancelled, timed out, or aborted by ``tick``/``sleep`` —
  ``stop()`` asks the platform to stop the task (best effort) before the interruption
  propagates. A task that ended by itself, or that could not be read, is not stopped.

``clock`` and ``sleep`` are injectable, so tests drive the loop without waiting.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from qfnb._core.errors import (
    AuthError,
    InvalidArgumentError,
    PermissionDeniedError,
    QfnbError,
    TimeoutError,
    ValidationError,
)
from qfnb.protocol.errors import transient

__all__ = ["MAX_BACKOFF_S", "PollPlan", "PollTimeoutError", "apoll_until"]

log = logging.getLogger("qfnb.poll")

T = TypeVar("T")
#: the longest wait between retries of a failing poll
MAX_BACKOFF_S = 60.0
#: fetch failures that retrying cannot mend (unless their code is a transient one: CODE_RULES)
PERMANENT: tuple[type[BaseException], ...] = (ValidationError, AuthError, PermissionDeniedError,
                                              InvalidArgumentError)


class PollTimeoutError(TimeoutError):
    """A polled platform task had not ended when the wait's deadline passed."""


class PollPlan(Generic[T]):
    """The decisions of one wait: when to poll next, when to give up, whether to stop the task."""

    def __init__(self, *, what: str, interval: float, timeout: float | None, retries: int | None,
                 backoff: float | None, retry_on: tuple[type[BaseException], ...],
                 clock: Callable[[], float], max_backoff: float = MAX_BACKOFF_S) -> None:
        self.what, self.interval, self.timeout = what, max(0.0, interval), timeout
        self.retries, self.retry_on, self.clock = retries, retry_on, clock
        self.first_backoff = self.interval if backoff is None else max(0.0, backoff)
        self.max_backoff = max(max_backoff, self.first_backoff)
        self.deadline = None if timeout is None else clock() + timeout
        self.failures = 0
        #: set when the wait ended on the task's own account (its end state, or an unreadable
        #: state); an interruption otherwise stops the remote task
        self.ended = False

    def finished(self, value: T, done: Callable[[T], bool]) -> bool:
        """Whether ``value`` ends the wait (``done`` raising ends it too, with that error)."""
        self.failures = 0
        try:
            end = bool(done(value))
        except BaseException:
            self.ended = True
            raise
        self.ended = end
        return end

    def next_wait(self, value: object) -> float:
        """Seconds until the next poll, or :class:`PollTimeoutError` past the deadline."""
        if self.deadline is not None and self.clock() >= self.deadline:
            raise PollTimeoutError(f"{self.what} had not finished after {self.timeout:g} s "
                                   f"(last state: {_describe(value)})")
        return self._clip(self.interval)

    def failed(self, exc: BaseException) -> float:
        """Seconds until a retry of a failed poll; re-raises ``exc`` when it is not retried."""
        self.failures += 1
        permanent = ((isinstance(exc, PERMANENT) and not transient(getattr(exc, "error_code", None)))
                     or not isinstance(exc, self.retry_on))
        out_of_retries = self.retries is not None and self.failures > self.retries
        past_deadline = self.deadline is not None and self.clock() >= self.deadline
        if permanent or out_of_retries or past_deadline:
            self.ended = True
            raise exc
        wait = min(self.first_backoff * 2 ** (self.failures - 1), self.max_backoff)
        log.warning("polling %s failed (%s); retry %d in %.1f s", self.what, exc, self.failures, wait)
        return self._clip(wait)

    def _clip(self, wait: float) -> float:
        if self.deadline is None:
            return wait
        return max(0.0, min(wait, self.deadline - self.clock()))


def _describe(value: object) -> str:
    if isinstance(value, dict):
        for key in ("state", "runStatus", "status", "importStatus", "releaseStatus"):
            if key in value:
                return f"{key}={value[key]!r}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


async def apoll_until(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    interval: float,
    what: str = "the task",
    timeout: float | None = None,
    retries: int | None = 3,
    backoff: float | None = None,
    max_backoff: float = MAX_BACKOFF_S,
    retry_on: tuple[type[BaseException], ...] = (QfnbError,),
    tick: Callable[[T], Awaitable[None] | None] | None = None,
    stop: Callable[[], Awaitable[object]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Poll ``fetch`` until ``done``; the last value. See the module docstring."""
    plan: PollPlan[T] = PollPlan(what=what, interval=interval, timeout=timeout, retries=retries,
                                 backoff=backoff, retry_on=retry_on, clock=clock, max_backoff=max_backoff)
    try:
        while True:
            try:
                value = await fetch()
            except Exception as exc:
                wait = plan.failed(exc)
            else:
                if plan.finished(value, done):
                    return value
                if tick is not None:
                    ticked = tick(value)
                    if inspect.isawaitable(ticked):
                        await ticked
                wait = plan.next_wait(value)
            await sleep(wait)
    except BaseException as exc:
        if stop is not None and not plan.ended:  # interrupted: stop the task
            log.warning("stopping %s (%s)", what, type(exc).__name__)
            try:
                await asyncio.shield(stop())
            except Exception as err:  # best effort: the interruption is what the caller sees
                log.warning("could not stop %s: %s", what, err)
        raise
