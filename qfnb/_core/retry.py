"""Retry policy and the pure retry decision (no I/O, no sleeping here).

Retried: body error codes in the policy's set, HTTP 408/409/425/429/5xx, connection
errors and timeouts. Waits grow exponentially with jitter, capped, and a server's
``Retry-After`` (seconds or HTTP date) is honoured when it is longer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from qfnb.protocol.errors import RETRYABLE_HTTP_STATUSES

from .config import Config
from .errors import APIError, ConnectionError, RequestError, StreamError

__all__ = ["RetryPolicy", "parse_retry_after", "retry_delay"]


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` counts every try (3 = the first call and up to two retries)."""

    attempts: int = 3
    timeout: float = 300.0
    backoff_factor: float = 1.0
    jitter: float = 1.0
    max_wait: float = 120.0
    error_codes: frozenset[int] = frozenset({2, 15, 18, 336100, 336501, 336502})
    http_statuses: frozenset[int] = RETRYABLE_HTTP_STATUSES
    #: longest Retry-After we accept before giving up instead of waiting
    max_retry_after: float = 300.0

    @classmethod
    def inference(cls, config: Config) -> RetryPolicy:
        return cls(config.llm_api_retry_count, config.llm_api_retry_timeout, config.llm_api_retry_backoff_factor,
                   config.llm_api_retry_jitter, config.llm_api_retry_max_wait_interval,
                   config.llm_api_retry_err_codes)

    @classmethod
    def console(cls, config: Config) -> RetryPolicy:
        return cls(config.console_api_retry_count, config.console_api_retry_timeout,
                   config.console_api_retry_backoff_factor, config.console_api_retry_jitter,
                   config.console_api_retry_max_wait_interval, config.console_api_retry_err_codes)

    def with_options(self, *, retry_count: int | None = None, request_timeout: float | None = None,
                     backoff_factor: float | None = None, retry_jitter: float | None = None,
                     retry_max_wait_interval: float | None = None,
                     retry_err_codes: set[int] | frozenset[int] | None = None) -> RetryPolicy:
        """Per-call overrides, named like the official SDK's kwargs."""
        return RetryPolicy(
            self.attempts if retry_count is None else max(1, int(retry_count)),
            self.timeout if request_timeout is None else float(request_timeout),
            self.backoff_factor if backoff_factor is None else float(backoff_factor),
            self.jitter if retry_jitter is None else float(retry_jitter),
            self.max_wait if retry_max_wait_interval is None else float(retry_max_wait_interval),
            self.error_codes if retry_err_codes is None else frozenset(retry_err_codes),
            self.http_statuses, self.max_retry_after,
        )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether ``exc`` is transient under ``policy``."""
    if isinstance(exc, StreamError):
        return False
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, APIError):
        if isinstance(exc.error_code, int) and exc.error_code in policy.error_codes:
            return True
        return exc.status_code in policy.http_statuses
    if isinstance(exc, RequestError):
        return exc.status_code is not None and exc.status_code in policy.http_statuses
    return False


def retry_delay(exc: BaseException, attempt: int, policy: RetryPolicy, *,
                retry_after: str | None = None, rand: Callable[[], float] = random.random) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up.

    ``attempt`` is the 1-based number of the attempt that just failed. The wait is
    ``min(backoff * 2**(attempt-1) + U(0, jitter), max_wait)``, raised to ``Retry-After``
    if the server asked for longer (a Retry-After beyond ``max_retry_after`` gives up).
    """
    if attempt >= policy.attempts or not is_retryable(exc, policy):
        return None
    wait = min(policy.backoff_factor * (2 ** (attempt - 1)) + rand() * policy.jitter, policy.max_wait)
    asked = parse_retry_after(retry_after)
    if asked is not None:
        if asked > policy.max_retry_after:
            return None
        wait = max(wait, asked)
    return max(0.0, wait)
