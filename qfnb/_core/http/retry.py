"""Retry policy and the pure retry decision (no I/O, no sleeping here).

Retried: body error codes in the policy's set, HTTP 408/409/425/429/5xx, connection
errors and timeouts. Waits grow exponentially with jitter, capped, and a server's
``Retry-After`` (seconds or HTTP date) is honoured when it is longer, within the policy's
budget: its attempts, and at most ``max_retry_after`` seconds (a longer ask gives up at once
rather than holding the caller).
"""

from __future__ import annotations

import functools
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from qfnb._core.config import Config
from qfnb._core.errors import APIError, ConnectionError, RequestError, StreamError
from qfnb.protocol.errors import RETRYABLE_HTTP_STATUSES, RETRYABLE_INFERENCE_CODES, THROTTLE_CODES

__all__ = ["AdaptiveLimit", "BatchHealth", "BatchVerdict", "RecentFailures", "RetryPolicy", "batch_verdict",
           "parse_retry_after", "retry_after_of", "retry_delay"]

#: a batch whose recent answers fail less often than this re-queues a failed item at once...
SICK_SHARE = 0.5
#: ...for this many failures in a row of that item; then (a "poison" input) it backs off
FREE_RETRIES = 4


#: :class:`Config`'s defaults: the one home of the retry defaults
_DEFAULTS = Config()


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` counts every try (3 = the first call and up to two retries); the defaults are
    :class:`Config`'s inference retry settings."""

    attempts: int = _DEFAULTS.llm_api_retry_count
    timeout: float = _DEFAULTS.llm_api_retry_timeout
    backoff_factor: float = _DEFAULTS.llm_api_retry_backoff_factor
    jitter: float = _DEFAULTS.llm_api_retry_jitter
    max_wait: float = _DEFAULTS.llm_api_retry_max_wait_interval
    error_codes: frozenset[int] = RETRYABLE_INFERENCE_CODES
    http_statuses: frozenset[int] = RETRYABLE_HTTP_STATUSES
    #: longest Retry-After we accept before giving up instead of waiting
    max_retry_after: float = 300.0

    @classmethod
    def inference(cls, config: Config) -> RetryPolicy:
        return cls(*_inference_settings(config))

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


def _inference_settings(config: Config) -> tuple[Any, ...]:
    """The config's ``llm_api_retry_*`` settings, in :class:`RetryPolicy`'s field order."""
    return (config.llm_api_retry_count, config.llm_api_retry_timeout, config.llm_api_retry_backoff_factor,
            config.llm_api_retry_jitter, config.llm_api_retry_max_wait_interval, config.llm_api_retry_err_codes)


@functools.lru_cache(maxsize=64)
def _made(settings: tuple[Any, ...], options: tuple[tuple[str, Any], ...]) -> RetryPolicy:
    return RetryPolicy(*settings).with_options(**dict(options))


def inference_policy(config: Config, options: Mapping[str, Any]) -> RetryPolicy:
    """``RetryPolicy.inference(config).with_options(**options)``, made once for each distinct set of
    settings (a batch's calls all ask for the same one; the config is read each time, so a change shows)."""
    settings = _inference_settings(config)
    try:
        return _made(settings, tuple(sorted(options.items())))
    except TypeError:  # an unhashable setting (a set of codes): made for this call
        return RetryPolicy(*settings).with_options(**options)


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


def retry_after_of(exc: BaseException) -> str | None:
    """The ``Retry-After`` header of the answer an error stands for (its headers are lower-cased), or None."""
    return exc.headers.get("retry-after") if isinstance(exc, RequestError) else None


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether ``exc`` is transient under ``policy``."""
    if isinstance(exc, StreamError):
        return False
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, APIError) and isinstance(exc.error_code, int) and exc.error_code in policy.error_codes:
        return True
    return isinstance(exc, RequestError) and exc.status_code in policy.http_statuses


def retry_delay(exc: BaseException, attempt: int, policy: RetryPolicy, *,
                retry_after: str | None = None, rand: Callable[[], float] = random.random) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up.

    ``attempt`` is the 1-based number of the attempt that just failed. The wait is
    ``min(backoff * 2**(attempt-1) + U(0, jitter), max_wait)``, raised to ``Retry-After``
    if the server asked for longer (a Retry-After beyond ``max_retry_after`` gives up).
    """
    if attempt >= policy.attempts or not is_retryable(exc, policy):
        return None
    wait = min(policy.backoff_factor * (2.0 ** (attempt - 1)) + rand() * policy.jitter, policy.max_wait)
    asked = parse_retry_after(retry_after)
    if asked is not None:
        if asked > policy.max_retry_after:
            return None
        wait = max(wait, asked)
    return max(0.0, wait)


@dataclass(frozen=True)
class BatchVerdict:
    """What a batch does with a failed item: give up, or queue it again after ``wait`` s."""

    retry: bool
    throttled: bool = False
    wait: float = 0.0


@dataclass(frozen=True)
class BatchHealth:
    """How a batch is going when one of its items fails: the share of its recent answers that
    were transient failures, and whether throttling is the rule (its concurrency was cut)."""

    failing: float = 0.0
    throttling: bool = False


def batch_verdict(exc: BaseException, policy: RetryPolicy, attempt: int, health: BatchHealth | None = None, *,
                  rand: Callable[[], float] = random.random) -> BatchVerdict:
    """The batch's decision for an item whose ``attempt``-th call failed with ``exc``.

    Transient failures (as :func:`is_retryable` says) are retried — how often is bounded by
    the batch's time budget, not a count. ``throttled`` (HTTP 429 or a QPS/RPM/TPM code)
    tells the batch to lower its concurrency. The wait is the server's ``Retry-After`` when it
    sent one. Otherwise it depends on ``health``: a throttled call comes back in about a second
    once the concurrency was cut (quotas count per second); while most calls succeed, a failure
    is a passing fault and the item goes back at once for its first :data:`FREE_RETRIES`
    failures (a wait would only lengthen the batch's tail); while most calls fail (or
    ``health`` is unknown), and for an item that keeps failing, the wait grows from 50 ms to
    5 s with its attempts, jittered, so neither a sick server nor one input hammers.
    """
    if not is_retryable(exc, policy):
        return BatchVerdict(False)
    code = getattr(exc, "error_code", None)
    status = getattr(exc, "status_code", None)
    throttled = status == 429 or (isinstance(code, int) and code in THROTTLE_CODES)
    asked = parse_retry_after(retry_after_of(exc))
    if asked is not None:
        wait = max(asked, 0.0) if asked <= policy.max_retry_after else policy.max_retry_after
    elif throttled and (health is None or health.throttling):
        wait = 1.0 * (0.5 + rand())
    elif health is not None and health.failing < SICK_SHARE:  # a passing fault
        wait = _backoff(attempt - FREE_RETRIES, policy, rand)
    else:
        wait = _backoff(attempt, policy, rand)
    return BatchVerdict(True, throttled, wait)


def _backoff(step: int, policy: RetryPolicy, rand: Callable[[], float]) -> float:
    """None before step 1, then 50 ms doubling, at most 5 s, jittered: other inputs go on
    meanwhile, so short waits cost little."""
    if step <= 0:
        return 0.0
    return float(min(0.05 * 2.0 ** min(step - 1, 10), 5.0, policy.max_wait)) * (0.5 + rand())


class RecentFailures:
    """The share of a batch's last ``window`` answers that were transient failures (no I/O).

    Fewer than ``minimum`` answers count as that many (the first failure of a batch is not
    "all of them")."""

    def __init__(self, window: int = 50, minimum: int = 10) -> None:
        self.window, self.minimum = max(1, window), max(1, minimum)
        self._recent: deque[bool] = deque(maxlen=self.window)

    @property
    def share(self) -> float:
        return sum(self._recent) / max(len(self._recent), self.minimum)

    def note(self, failed: bool) -> None:
        self._recent.append(failed)


class AdaptiveLimit:
    """Additive-increase / multiplicative-decrease concurrency (no I/O, no clock).

    A quota shows as many throttled answers at once, a passing fault as a few: the limit is
    halved only when at least ``threshold`` of the recent answers (the last
    ``max(window, limit)`` of calls started since the last cut) were throttled. Answers to calls
    started before the last cut do not cut again. Each success adds ``1/limit`` (about one
    slot per round of calls in flight).
    """

    def __init__(self, maximum: int, minimum: int = 1, threshold: float = 0.3, window: int = 20) -> None:
        self.maximum, self.minimum = max(1, maximum), max(1, min(minimum, maximum))
        self.threshold, self.window = threshold, window
        self.value = float(self.maximum)
        self.epoch = 0  # bumped on every cut
        self._recent: deque[bool] = deque()

    @property
    def current(self) -> int:
        return max(self.minimum, int(self.value))

    @property
    def throttling(self) -> bool:
        """Whether throttling is the rule: the limit was cut and has not grown back yet."""
        return self.value < self.maximum

    def on_success(self, started_epoch: int | None = None) -> None:
        self.value = min(float(self.maximum), self.value + 1.0 / self.value)
        self._note(False, self.epoch if started_epoch is None else started_epoch)

    def on_throttle(self, started_epoch: int) -> bool:
        """Record a throttled answer; cut (and return True) when throttling is the rule."""
        if not self._note(True, started_epoch):
            return False
        hits = sum(self._recent)
        if hits < 2 or hits < self.threshold * max(len(self._recent), self.window):
            return False
        self.value = max(float(self.minimum), self.value / 2.0)
        self.epoch += 1
        self._recent.clear()
        return True

    def _note(self, throttled: bool, started_epoch: int) -> bool:
        if started_epoch < self.epoch:
            return False  # an answer to a call from before the last cut
        self._recent.append(throttled)
        while len(self._recent) > max(self.window, self.current):
            self._recent.popleft()
        return True
