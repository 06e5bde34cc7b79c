"""httpx's own transport (httpcore's pool), one per event loop: used when a proxy is configured.

Requests go straight to ``AsyncHTTPTransport.handle_async_request``, skipping
``AsyncClient.send``'s per-request extras (cookies, auth flows, redirects, event hooks) that
qfnb does not use. httpcore drops a pooled connection the server closed while idle before reusing
it; a connection that drops before any answer anyway is sent again once, at once, only for an
idempotent request (:data:`~qfnb._core.transport.IDEMPOTENT_METHODS`), as the aiohttp
transport does. A POST never is: the server may have read it.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from qfnb._core.errors import ConnectionError, TimeoutError
from qfnb._core.transport import PerLoop, Reply, Request, StreamReply, Transport, mapped

__all__ = ["HttpxTransport", "map_error"]

logger = logging.getLogger("qfnb.client")

#: what httpx raises while connecting, sending or reading
ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, httpx.StreamError, OSError, asyncio.TimeoutError)
#: the connection dropped after the request went out and before any answer
_DROPPED: tuple[type[BaseException], ...] = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def map_error(exc: BaseException, request: Request) -> ConnectionError:
    """qfnb's error for an httpx failure; names the path, never the query (it may hold a token)."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
        return TimeoutError(f"{request.method} {request.path} timed out: no byte for {request.timeout} s ({name})")
    if isinstance(exc, _DROPPED) and not request.idempotent:
        return ConnectionError(f"{request.method} {request.path} failed: the server closed the connection before "
                               f"answering ({name}); not sent again, as the server may have received it")
    return ConnectionError(f"{request.method} {request.path} failed: connection error ({name})")


class HttpxTransport(Transport):
    """httpx's ``AsyncHTTPTransport`` with ``max_connections`` keep-alive connections per event loop."""

    def __init__(self, *, max_connections: int = 1000, verify: bool = True, proxy: str | None = None,
                 keepalive_expiry: float = 30.0) -> None:
        self.max_connections = max_connections
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                                    keepalive_expiry=keepalive_expiry)
        self._verify = verify
        self._proxy = proxy
        self._pools: PerLoop[httpx.AsyncHTTPTransport] = PerLoop(self._open, httpx.AsyncHTTPTransport.aclose)
        self._timeouts: dict[float | None, dict[str, float | None]] = {}

    def __repr__(self) -> str:
        return f"HttpxTransport(max_connections={self.max_connections}, proxy={bool(self._proxy)})"

    def _open(self) -> httpx.AsyncHTTPTransport:
        logger.debug("HTTP transport: httpx, pool of %d", self.max_connections)
        return httpx.AsyncHTTPTransport(verify=self._verify, limits=self._limits, proxy=self._proxy,
                                        trust_env=False)

    async def _start(self, request: Request) -> httpx.Response:
        pool = await self._pools.get()
        timeout = self._timeouts.get(request.timeout)
        if timeout is None:  # ``timeout`` for connecting, the pool and each read
            timeout = self._timeouts[request.timeout] = httpx.Timeout(request.timeout).as_dict()
        req = httpx.Request(request.method, request.url, headers=request.headers, content=request.content,
                            extensions={"timeout": timeout})
        try:
            return await pool.handle_async_request(req)
        except ERRORS as exc:
            if not (isinstance(exc, _DROPPED) and request.idempotent):
                raise map_error(exc, request) from None
        logger.debug("%s %s: the connection dropped before an answer; sending it again once",
                     request.method, request.path)
        try:
            return await pool.handle_async_request(req)
        except ERRORS as exc:
            raise map_error(exc, request) from None

    async def send(self, request: Request) -> Reply:
        resp = await self._start(request)
        try:
            body = await resp.aread()
        except ERRORS as exc:
            raise map_error(exc, request) from None
        finally:
            await resp.aclose()
        return Reply(resp.status_code, resp.headers, body)

    async def stream(self, request: Request) -> StreamReply:
        resp = await self._start(request)
        return StreamReply(resp.status_code, resp.headers, mapped(resp.aiter_bytes(), ERRORS, map_error, request),
                           resp.aclose)

    async def aclose(self) -> None:
        await self._pools.aclose()
