"""The HTTP transport: one ``httpx.AsyncClient`` per event loop, on aiohttp's connection pool.

``httpx-aiohttp``'s :class:`AiohttpTransport` owns the connection pool (aiohttp's stays fast
with 50+ calls in flight, where httpcore's degrades); httpx's own transport is the fallback
when a proxy is configured or ``httpx-aiohttp`` is not installed.

Two request paths share that pool:

* a plain (non-streaming) call goes straight to aiohttp's session and comes back as a
  :class:`Reply` (status, case-insensitive headers, body bytes). Wrapping it in httpx's
  request/response objects and byte-stream iterators cost more CPU than the call itself
  (``bench/batch_throughput.py``: 0.35 → 0.2 ms per request);
* a streaming call builds an ``httpx.Request`` (URL objects cached, body ready) and hands it
  to the transport, skipping ``AsyncClient.send``'s per-request extras (cookies, auth flows,
  redirects, event hooks) that qfnb does not use.

This module imports httpx/aiohttp, so :mod:`qfnb._core.client` imports it on first use.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

__all__ = ["TRANSPORT_ERRORS", "Reply", "Transport", "is_timeout"]

logger = logging.getLogger("qfnb.client")

_URL_CACHE_SIZE = 512
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

try:
    import aiohttp
    from httpx_aiohttp import AiohttpTransport
except ImportError:  # pragma: no cover - httpx-aiohttp is a dependency; httpx alone still works
    aiohttp = None  # type: ignore[assignment]
    AiohttpTransport = None  # type: ignore[assignment,misc]

#: Exceptions a transport may raise while sending or reading (anything else is a bug, not mapped).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, httpx.StreamError, OSError,
                                                     asyncio.TimeoutError)
if aiohttp is not None:
    TRANSPORT_ERRORS += (aiohttp.ClientError,)


def is_timeout(exc: BaseException) -> bool:
    """Whether a transport failure was a timeout (looks through httpx-aiohttp's re-mapping,
    which reports some dropped connections as ``ConnectTimeout``)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if aiohttp is not None and isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, asyncio.TimeoutError)
    return isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError)


class Reply:
    """A complete (non-streaming) response: ``status_code``, ``headers`` (case-insensitive
    mapping), ``content`` (bytes) and ``text``."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Transport:
    """An ``httpx.AsyncClient`` bound to one event loop, with a cheap request path."""

    def __init__(self, *, max_connections: int, verify: bool, proxy: str | None = None) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                              keepalive_expiry=30.0)
        transport: httpx.AsyncBaseTransport
        if proxy or AiohttpTransport is None:
            transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, proxy=proxy, trust_env=False)
        else:
            transport = AiohttpTransport(verify=verify, limits=limits, trust_env=False)
        self.kind = type(transport).__name__
        self._transport = transport
        self._aiohttp = transport if AiohttpTransport is not None and isinstance(transport, AiohttpTransport) else None
        self._aio_timeouts: dict[float | None, Any] = {}
        self.client = httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)
        weakref.finalize(self, _drop_connections, transport)
        self._urls: dict[str, tuple[httpx.URL, str]] = {}
        self._timeouts: dict[float | None, dict[str, float | None]] = {}
        logger.debug("HTTP transport: %s, pool of %d", self.kind, max_connections)

    def _url(self, url: str, params: Mapping[str, Any] | str | None) -> tuple[httpx.URL, str]:
        """The parsed URL (cached: the same endpoint and token repeat) and its Host header."""
        url = _with_params(url, params)
        cached = self._urls.get(url)
        if cached is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            parsed = httpx.URL(url)
            cached = self._urls[url] = (parsed, parsed.netloc.decode("ascii"))
        return cached

    def _timeout(self, seconds: float | None) -> dict[str, float | None]:
        cached = self._timeouts.get(seconds)
        if cached is None:
            cached = self._timeouts[seconds] = httpx.Timeout(seconds).as_dict()
        return cached

    async def request(self, method: str, url: str, *, params: Mapping[str, Any] | str | None = None,
                      headers: Mapping[str, str] | None = None, content: bytes = b"",
                      timeout: float | None = None) -> Reply | httpx.Response:
        """Send one request and read the whole body."""
        if self._aiohttp is not None:
            return await self._direct(method, url, params, headers, content, timeout)
        response = await self.stream(method, url, params=params, headers=headers, content=content, timeout=timeout)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def stream(self, method: str, url: str, *, params: Mapping[str, Any] | str | None = None,
                     headers: Mapping[str, str] | None = None, content: bytes = b"",
                     timeout: float | None = None) -> httpx.Response:
        """Send one request and return once the headers are in; the caller reads the body
        (``aiter_bytes``) and must ``aclose`` the response."""
        parsed, host = self._url(url, params)
        # Host and Content-Length given here and the body as a ready stream: httpx then skips
        # its header-merging pass (the costliest part of building a Request).
        all_headers = {"Host": host, **headers} if headers else {"Host": host}
        if content or method in _BODY_METHODS:
            all_headers["Content-Length"] = str(len(content))
        request = httpx.Request(method, parsed, headers=all_headers, stream=httpx.ByteStream(content),
                                extensions={"timeout": self._timeout(timeout)})
        request.read()
        return await self._transport.handle_async_request(request)

    async def _direct(self, method: str, url: str, params: Mapping[str, Any] | str | None,
                      headers: Mapping[str, str] | None, content: bytes, timeout: float | None) -> Reply:
        assert self._aiohttp is not None
        session = self._aiohttp.client
        if not isinstance(session, aiohttp.ClientSession):
            session = self._aiohttp.client = self._aiohttp.get_client()
        url = _with_params(url, params)
        limits = self._aio_timeouts.get(timeout)
        if limits is None:  # httpx.Timeout(t) semantics: t for connect, pool and each read
            limits = self._aio_timeouts[timeout] = aiohttp.ClientTimeout(
                total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        async with session.request(method, url, headers=headers, data=content or None, allow_redirects=False,
                                   timeout=limits) as resp:
            body = await resp.read()
        return Reply(resp.status, resp.headers, body)

    async def aclose(self) -> None:
        await self.client.aclose()


def _with_params(url: str, params: Mapping[str, Any] | str | None) -> str:
    """``url`` with the query ``params`` (already encoded when a string) appended."""
    if not params:
        return url
    return url + ("&" if "?" in url else "?") + (params if isinstance(params, str) else urlencode(params))


def _drop_connections(transport: httpx.AsyncBaseTransport) -> None:
    """Finalizer for a client whose event loop is gone without ``aclose()`` (a finished
    ``asyncio.run``): drop aiohttp's pooled sockets synchronously so it does not warn."""
    session = getattr(transport, "client", None)
    connector = getattr(session, "connector", None) if aiohttp is not None else None
    if connector is not None and not connector.closed:
        try:
            connector._close()  # the synchronous half of close(); no loop is needed
        except Exception:  # pragma: no cover - best effort at garbage collection
            logger.debug("could not drop pooled connections", exc_info=True)
