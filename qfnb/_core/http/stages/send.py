"""The pipeline's end: one try through the transport, the answer decoded (or the stream
opened, its first event read) by :mod:`qfnb._core.http.decode`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from qfnb._core.http.call import Call
from qfnb._core.http.decode import decode_reply, open_stream
from qfnb._core.http.retry import RetryPolicy
from qfnb._core.http.stages import Answer
from qfnb._core.transport import Request, Transport

__all__ = ["Send"]


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
        if call.stream:
            reply = await self.transport().stream(request)
            if reply.status_code == 200:
                call.reply_headers = reply.headers
            return await open_stream(call, reply, start)
        whole = await self.transport().send(request)
        call.reply_headers = whole.headers
        return decode_reply(call, whole, time.perf_counter() - start)
