"""The rate-limit stage: the client's own limits (QPS/RPM, TPM) and those a service's answers
advertise (``X-Ratelimit-Limit-*``, paced to 90 %): a call waits for its turn and its estimated
``tokens``, and the estimate is settled against the answer's ``usage``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from qfnb._core.errors import APIError
from qfnb._core.http.call import Call
from qfnb._core.http.ratelimit import RateLimiter
from qfnb._core.http.response import QfResponse
from qfnb._core.http.stages import Answer, Next

__all__ = ["RateLimit"]

#: the platform's "tokens per minute exceeded" code: it slows the token limits too
_TPM_EXCEEDED = 336502


@dataclass(slots=True, eq=False)
class RateLimit:
    """``limiter`` is the client's; ``servers`` maps a service URL to the limiter its first
    answer advertised (None: it advertised none)."""

    limiter: RateLimiter
    servers: dict[str, RateLimiter | None]
    sleep: Callable[[float], Awaitable[object]]
    clock: Callable[[], float]

    async def __call__(self, call: Call, next: Next) -> Answer:
        tokens, limiter = call.tokens, self.limiter
        if limiter.enabled:
            await limiter.acquire(tokens, self.sleep)
        server = self.servers.get(call.url)
        if server is not None:
            await server.acquire(tokens if server.limits_tokens else 0, self.sleep)
        try:
            result = await next(call)
        except APIError as exc:
            if exc.error_code == _TPM_EXCEEDED:
                limiter.on_tpm_exceeded()
                if server is not None:
                    server.on_tpm_exceeded()
            raise
        if call.url not in self.servers and call.reply_headers is not None and call.api in ("infer", "v2"):
            self.servers[call.url] = RateLimiter.from_headers(call.reply_headers, self.clock)
        if tokens and isinstance(result, QfResponse):  # give back what the estimate over-charged
            actual = (result.body.get("usage") or {}).get("total_tokens")
            limiter.settle(tokens, actual)
            if server is not None:
                server.settle(tokens, actual)
        return result
