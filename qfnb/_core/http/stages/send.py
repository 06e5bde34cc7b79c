"""The pipeline's end: one try through the transport, the answer decoded (or the stream
opened, its first event read) by :mod:`qfnb._core.http.decode`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from qfnb._core.errors import TimeoutError
from qfnb._core.http.call import Call
from qfnb._core.http.decode import decode_reply, open_stream
from qfnb._core.http.retry import RetryPolicy
from qfnb._core.http.stages import Answer
from qfnb._core.transport import Request, Transport

__all__ = ["Send", "silence", "timeout_setting"]


@dataclass(slots=True, eq=False)
class Send:
    """Sends through ``transport()`` (read per call: the client makes it on first use) with the
    timeout of ``call.policy`` (else ``default``)."""

    transport: Callable[[], Transport]
    default: RetryPolicy

    async def __call__(self, call: Call) -> Answer:
        query = call.query
        url = call.url if not query else call.url + ("&" if "?" in call.url else "?") + query
        request = Request(call.method, url, call.sent_headers, call.content, (call.policy or self.default).timeout)
        start = time.perf_counter()
        try:
            if call.stream:
                reply = await self.transport().stream(request)
                if reply.status_code == 200:
                    call.reply_headers = reply.headers
                return await open_stream(call, reply, start)
            whole = await self.transport().send(request)
        except TimeoutError as exc:
            raise TimeoutError(silence(call, request.timeout, time.perf_counter() - start, exc)) from None
        call.reply_headers = whole.headers
        return decode_reply(call, whole, time.perf_counter() - start)


def timeout_setting(call: Call) -> str:
    """The setting that bounds ``call``'s silence (and the per-call keyword that overrides it)."""
    kind = "CONSOLE" if call.api in ("console", "raw") else "LLM"
    return f"QIANFAN_{kind}_API_RETRY_TIMEOUT (request_timeout= on one call)"


def silence(call: Call, timeout: float | None, waited: float, exc: BaseException) -> str:
    """A timeout's message: what happened and the setting to change."""
    limit = f"{timeout:g} s" if timeout is not None else "too long"
    return (f"{call.method} {call.path} timed out: no byte from the platform for {limit} ({type(exc).__name__}; "
            f"{waited:.0f} s since it was sent). The timeout counts silence, not total time: the local platform "
            f"sends heartbeats while it queues or generates, so a platform that says nothing is stuck or "
            f"unreachable; {timeout_setting(call)} sets it")
