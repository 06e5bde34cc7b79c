"""The default transport: aiohttp's connection pool, one session per event loop.

A plain call is one ``session.request`` read to the end (no wrapper objects: at 50+ calls in
flight the client's CPU per call is what bounds throughput, ``bench/batch_throughput.py``).
A connection that drops before any answer came (a pooled keep-alive socket the server closed
while idle, or a server that read the request and hung up) is sent again once, at once, only
for an idempotent request (:data:`~qfnb._core.transport.IDEMPOTENT_METHODS`): aiohttp does
that itself (RFC 9112 §9.3.1). A POST is never sent again here — the server may have read it —
and fails with a :class:`~qfnb.errors.ConnectionError` that the retry policy judges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import aiohttp

from qfnb._core.errors import ConnectionError, TimeoutError
from qfnb._core.transport import PerLoop, Reply, Request, StreamReply, Transport, mapped

__all__ = ["AiohttpTransport", "map_error"]

logger = logging.getLogger("qfnb.client")

#: what aiohttp raises while connecting, sending or reading (TimeoutError is an OSError)
ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


def map_error(exc: BaseException, request: Request) -> ConnectionError:
    """qfnb's error for an aiohttp failure; names the path, never the query (it may hold a token)."""
    name = type(exc).__name__
    if isinstance(exc, asyncio.TimeoutError):  # ServerTimeoutError / ConnectionTimeoutError too
        return TimeoutError(f"{request.method} {request.path} timed out: no byte for {request.timeout} s ({name})")
    if isinstance(exc, aiohttp.ServerDisconnectedError) and not request.idempotent:
        return ConnectionError(f"{request.method} {request.path} failed: the server closed the connection before "
                               f"answering ({name}); not sent again, as the server may have received it")
    return ConnectionError(f"{request.method} {request.path} failed: connection error ({name})")


class AiohttpTransport(Transport):
    """aiohttp with a pool of ``max_connections`` keep-alive connections per event loop."""

    def __init__(self, *, max_connections: int = 1000, verify: bool = True, keepalive_expiry: float = 30.0) -> None:
        self.max_connections = max_connections
        self._verify = verify
        self._keepalive = keepalive_expiry
        self._sessions: PerLoop[aiohttp.ClientSession] = PerLoop(self._open, _close)
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        return f"AiohttpTransport(max_connections={self.max_connections})"

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0,
                                         keepalive_timeout=self._keepalive, ssl=self._verify)
        logger.debug("HTTP transport: aiohttp, pool of %d", self.max_connections)
        return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        limits = self._timeouts.get(seconds)
        if limits is None:  # ``seconds`` for connecting and for each read, no overall limit
            limits = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)
        return limits

    def _request(self, session: aiohttp.ClientSession, request: Request) -> Awaitable[aiohttp.ClientResponse]:
        """The awaitable aiohttp request (a plain call, not a coroutine: one frame less per call)."""
        return session.request(request.method, request.url, headers=request.headers, data=request.content or None,
                               allow_redirects=False, timeout=self._timeout(request.timeout))

    async def _start(self, request: Request) -> aiohttp.ClientResponse:
        """Send ``request``; the response once its headers are in."""
        session = self._sessions.current() or await self._sessions.get()
        try:
            return await self._request(session, request)
        except ERRORS as exc:
            raise map_error(exc, request) from None

    async def send(self, request: Request) -> Reply:
        session = self._sessions.current() or await self._sessions.get()
        try:  # _start, inlined: the hot path of every batch
            resp = await self._request(session, request)
        except ERRORS as exc:
            raise map_error(exc, request) from None
        try:
            body = await resp.read()
        except ERRORS as exc:
            raise map_error(exc, request) from None
        finally:
            resp.release()
        return Reply(resp.status, resp.headers, body)

    async def stream(self, request: Request) -> StreamReply:
        resp = await self._start(request)

        async def close() -> None:
            resp.release()  # back to the pool when read to the end, else the connection is closed

        return StreamReply(resp.status, resp.headers, mapped(resp.content.iter_any(), ERRORS, map_error, request),
                           close)

    async def aclose(self) -> None:
        await self._sessions.aclose()


async def _close(session: aiohttp.ClientSession) -> None:
    if not session.closed:
        await session.close()

