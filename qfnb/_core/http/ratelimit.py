"""Client-side rate limits (QPS or RPM, and TPM), one set per client object.

No asyncio primitive is created here: a limiter only computes *when* a caller may go
(a reservation on a monotonic clock, guarded by a tiny ``threading.Lock``) and the caller
sleeps on whatever loop it runs in. So a limiter works across threads and event loops.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["RateLimiter", "estimate_body_tokens", "estimate_tokens"]

_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"[A-Za-z0-9_]+")


def estimate_tokens(text: str) -> int:
    """Rough local token estimate: 0.625 per CJK character + 1 per word (the SDK's rule)."""
    return int(len(_CJK.findall(text)) * 0.625 + len(_WORD.findall(text)))


def estimate_body_tokens(body: dict[str, Any]) -> int:
    """Local token estimate of an inference request's body (for the client-side TPM limit): its messages,
    prompt, query, system and input texts."""
    texts = [str(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m, dict)]
    for key in ("prompt", "query", "system"):
        if isinstance(body.get(key), str):
            texts.append(body[key])
    texts.extend(t for t in body.get("input") or [] if isinstance(t, str))
    return max(1, sum(estimate_tokens(t) for t in texts))


def _header_number(headers: Any, name: str) -> float | None:
    try:
        return float(headers.get(name) or 0) or None
    except (TypeError, ValueError):
        return None


class _Spacer:
    """Evenly spaced request starts: at most one per ``interval`` seconds (no initial burst)."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next slot; return how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now


class _TokenWindow:
    """TPM: a bucket of ``per_minute`` tokens refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._level = float(per_minute)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self._rate)
        self._stamp = now

    def reserve(self, tokens: int) -> float:
        if tokens > self.capacity:
            raise ValueError(f"request needs ~{tokens} tokens, more than the TPM limit {int(self.capacity)}")
        with self._lock:
            self._refill()
            self._level -= tokens  # may go negative: later callers wait for the debt
            return 0.0 if self._level >= 0 else -self._level / self._rate

    def credit(self, tokens: int) -> None:
        with self._lock:
            self._refill()
            self._level = min(self.capacity, self._level + tokens)

    def drain(self) -> None:
        with self._lock:
            self._refill()
            self._level = min(self._level, 0.0)


#: share of a server-advertised limit a client uses (headroom for other clients and clock skew)
SERVER_LIMIT_SHARE = 0.9


class RateLimiter:
    """QPS *or* RPM (mutually exclusive), plus optional TPM. Zero means off.

    The client holds one built from its configuration and, per service, one built from the
    limits the platform advertises (:meth:`from_server`); a call waits for both.
    """

    def __init__(self, qps: float = 0.0, rpm: float = 0.0, tpm: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if qps and rpm:
            raise ValueError("query_per_second (QIANFAN_QPS_LIMIT) and request_per_minute "
                             "(QIANFAN_RPM_LIMIT) are mutually exclusive")
        if qps < 0 or rpm < 0 or tpm < 0:
            raise ValueError("rate limits must not be negative")
        interval = 1.0 / qps if qps else (60.0 / rpm if rpm else 0.0)
        self._spacer = _Spacer(interval, clock) if interval else None
        self._tokens = _TokenWindow(tpm, clock) if tpm else None

    @classmethod
    def from_server(cls, rpm: float | None, tpm: float | None,
                    clock: Callable[[], float] = time.monotonic) -> RateLimiter | None:
        """A limiter for a service's advertised limits (``X-Ratelimit-Limit-Requests`` per
        minute, ``X-Ratelimit-Limit-Tokens``), at :data:`SERVER_LIMIT_SHARE`; None if none."""
        rpm_use = rpm * SERVER_LIMIT_SHARE if rpm and rpm > 0 else 0.0
        tpm_use = int(tpm * SERVER_LIMIT_SHARE) if tpm and tpm > 0 else 0
        return cls(rpm=rpm_use, tpm=tpm_use, clock=clock) if rpm_use or tpm_use else None

    @classmethod
    def from_headers(cls, headers: Any, clock: Callable[[], float] = time.monotonic) -> RateLimiter | None:
        """:meth:`from_server` for the limits an answer's headers advertise (``X-Ratelimit-Limit-*``)."""
        return cls.from_server(_header_number(headers, "x-ratelimit-limit-requests"),
                               _header_number(headers, "x-ratelimit-limit-tokens"), clock)

    @property
    def enabled(self) -> bool:
        return self._spacer is not None or self._tokens is not None

    @property
    def limits_tokens(self) -> bool:
        return self._tokens is not None

    def reserve(self, tokens: int = 0) -> float:
        """Seconds the caller must wait before sending (reserving its slot and tokens)."""
        wait = self._spacer.reserve() if self._spacer else 0.0
        if self._tokens is not None and tokens:
            wait = max(wait, self._tokens.reserve(tokens))
        return wait

    async def acquire(self, tokens: int = 0,
                      sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """Reserve, then wait with ``sleep`` (tests inject a recording one)."""
        wait = self.reserve(tokens)
        if wait > 0:
            await sleep(wait)

    def settle(self, estimated: int, actual: int | None) -> None:
        """After a response: give back what the estimate over-charged (TPM only)."""
        if self._tokens is not None and actual is not None and estimated > actual:
            self._tokens.credit(estimated - actual)

    def on_tpm_exceeded(self) -> None:
        """The platform said 336502: our budget is spent for now."""
        if self._tokens is not None:
            self._tokens.drain()
