"""The transport seam: the little the client needs from HTTP, and nothing more. A room of
``qfnb._core``: may import ``qfnb.protocol`` and ``qfnb._core.errors`` only.

A :class:`Transport` sends one :class:`Request` and answers with a whole :class:`Reply`
(:meth:`Transport.send`) or with a :class:`StreamReply` whose status and headers are in before
its body is read as byte chunks (:meth:`Transport.stream`). Each implementation maps its own
library's exceptions to qfnb's :class:`~qfnb.errors.ConnectionError` /
:class:`~qfnb.errors.TimeoutError`, so nothing above this seam sees aiohttp or httpx:

* :class:`qfnb._core.transport.aiohttp.AiohttpTransport`: the default (aiohttp's pool stays fast
  with hundreds of calls in flight);
* :class:`qfnb._core.transport.httpx.HttpxTransport`: used when a proxy is configured;
* :class:`qfnb._core.transport.asgi.ASGITransport`: calls an ASGI app in-process (tests, embedding).

Inject one with ``Config.from_env(transport=...)`` / ``ChatCompletion(transport=...)``, or
``AsyncQianfanClient(config, transport=...)`` (else :func:`qfnb._core.http.client.default_transport`
picks one). A transport is shared by every event loop that uses the client; implementations
bound to a loop keep one pool per loop (:class:`PerLoop`).
The local daemon's control calls (:mod:`qfnb._core.backend`) send through it too, so this room sits
below both the client (:mod:`qfnb._core.http`) and the backend. This module imports no HTTP library.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["IDEMPOTENT_METHODS", "PerLoop", "Reply", "Request", "StreamReply", "Transport", "json_or_none", "mapped",
           "safe_path"]

T = TypeVar("T")

logger = logging.getLogger("qfnb.client")

#: methods whose repetition has the effect of one call (RFC 9110 §9.2.2): the only ones a transport
#: may send again after a connection dropped before any answer. A POST never is: the server may
#: have read it (``CreateFineTuningTask`` twice is two tasks); whether to try it again is the
#: retry policy's call, counted and with backoff.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class Request:
    """One HTTP request: ``url`` is complete (query included); ``timeout`` bounds the connect
    and each read, in seconds (None: no limit)."""

    __slots__ = ("content", "headers", "method", "timeout", "url")

    def __init__(self, method: str, url: str, headers: Mapping[str, str] | None = None, content: bytes = b"",
                 timeout: float | None = None) -> None:
        self.method = method
        self.url = url
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.content = content
        self.timeout = timeout

    @property
    def idempotent(self) -> bool:
        """Whether sending this request twice does what sending it once does (see :data:`IDEMPOTENT_METHODS`)."""
        return self.method.upper() in IDEMPOTENT_METHODS

    @property
    def path(self) -> str:
        """The URL's path without host or query (a query may hold a token): safe for messages."""
        return safe_path(self.url)

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path})"


class Reply:
    """A complete response: ``status_code``, ``headers`` (a case-insensitive mapping) and
    ``content`` (bytes)."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content


class StreamReply:
    """A response whose headers are in and whose body is still coming: iterate it for byte
    chunks (a broken body raises qfnb's ConnectionError), then :meth:`aclose` it."""

    __slots__ = ("_chunks", "_close", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], chunks: AsyncIterator[bytes],
                 close: Callable[[], Awaitable[None]]) -> None:
        self.status_code = status_code
        self.headers = headers
        self._chunks = chunks
        self._close = close

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aread(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in self._chunks])

    async def aclose(self) -> None:
        """Stop reading: the connection goes back to the pool (body read) or is closed."""
        try:
            closer = getattr(self._chunks, "aclose", None)
            if closer is not None:
                await closer()
        finally:
            await self._close()


class Transport(ABC):
    """Sends requests. Implementations raise only qfnb errors (ConnectionError, TimeoutError)."""

    @abstractmethod
    async def send(self, request: Request) -> Reply:
        """Send ``request`` and read the whole answer."""

    @abstractmethod
    async def stream(self, request: Request) -> StreamReply:
        """Send ``request`` and return once the status and headers are in."""

    async def aclose(self) -> None:  # noqa: B027 - optional: transports without resources keep it
        """Release what this event loop's use of the transport holds (connections)."""


async def mapped(chunks: AsyncIterator[bytes], errors: tuple[type[BaseException], ...],
                 map_error: Callable[[BaseException, Request], BaseException],
                 request: Request) -> AsyncIterator[bytes]:
    """``chunks`` with what its library raises (``errors``) raised as qfnb's error (``map_error``)."""
    try:
        async for chunk in chunks:
            yield chunk
    except errors as exc:
        raise map_error(exc, request) from None


def safe_path(url: str) -> str:
    """``url``'s path: no scheme, host or query."""
    start = url.find("/", url.find("//") + 2) if "//" in url else 0
    path = url[start:] if start >= 0 else "/"
    return path.partition("?")[0] or "/"


def json_or_none(content: bytes | str) -> Any:
    """``content`` read as JSON; None when it is not JSON (an empty body is not)."""
    try:
        return json.loads(content)
    except ValueError:
        return None


class PerLoop(Generic[T]):
    """One resource (a connection pool) per event loop, closed when its loop shuts down.

    ``open()`` makes the resource inside the running loop and ``close(resource)`` releases it.
    The close runs from ``loop.shutdown_asyncgens()`` (``asyncio.run`` and qfnb's own loop call it
    on the way out), from :meth:`aclose`, or, for a loop that never shuts down (one a caller keeps
    and stops, as IPython does), when the transport is dropped or the interpreter exits.
    """

    def __init__(self, open: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._open = open
        self._closer = close
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                 tuple[T, AsyncGenerator[None, None]]] = weakref.WeakKeyDictionary()
        self._last: tuple[asyncio.AbstractEventLoop, T] | None = None
        weakref.finalize(self, _close_left_over, self._by_loop)

    def current(self) -> T | None:
        """The running loop's resource if it was the last one used (the fast path), else None."""
        last = self._last
        return last[1] if last is not None and last[0] is asyncio.get_running_loop() else None

    async def get(self) -> T:
        """This loop's resource (made on first use)."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]
        entry = self._by_loop.get(loop)
        if entry is None:
            resource = self._open()
            guard = self._close_on_shutdown(resource)
            await guard.__anext__()  # now the loop tracks it: shutdown_asyncgens() will close it
            entry = self._by_loop[loop] = (resource, guard)
        self._last = (loop, entry[0])
        return entry[0]

    async def _close_on_shutdown(self, resource: T) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            loop = asyncio.get_running_loop()
            entry = self._by_loop.get(loop)
            if entry is not None and entry[0] is resource:  # a loop that runs on gets a new one
                del self._by_loop[loop]
            if self._last is not None and self._last[1] is resource:
                self._last = None
            await self._closer(resource)

    async def aclose(self) -> None:
        """Close the running loop's resource, if it has one."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.pop(loop, None)
        if self._last is not None and self._last[0] is loop:
            self._last = None
        if entry is not None:
            await entry[1].aclose()


def _close_left_over(by_loop: Mapping[asyncio.AbstractEventLoop, tuple[object, AsyncGenerator[None, None]]]) -> None:
    """Finalizer of a :class:`PerLoop` (dropped, or at exit): close the pools of loops that were
    stopped without shutting down. A running loop closes its own (the generator's finalizer, or
    its shutdown); a closed one can run nothing more."""
    for loop, (_, guard) in list(by_loop.items()):
        if loop.is_closed() or loop.is_running():
            continue
        try:
            loop.run_until_complete(asyncio.wait_for(guard.aclose(), 2.0))
        except Exception:  # pragma: no cover - best effort at garbage collection / exit
            logger.debug("could not close a connection pool", exc_info=True)
