"""An in-process transport: requests go straight to an ASGI app, no socket, no server thread.

For tests (the cloud fakes, the local platform's app) and for embedding. It behaves like a
server in front of the app would: the body streams as the app sends it; an app that fails
before answering raises (``raise_app_exceptions=True``, httpx's default) or answers 500; an
app that fails after it began answering looks to the client like a dropped connection
(:class:`qfnb.errors.ConnectionError`); ``Request.timeout`` bounds the wait for each message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote, urlsplit

from qfnb._core import errors
from qfnb._core.transport import Reply, Request, StreamReply, Transport

__all__ = ["ASGIApp", "ASGITransport"]

logger = logging.getLogger("qfnb.client")

Message = MutableMapping[str, Any]
ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]

_DONE = object()  # the app returned


class _Headers(dict[str, str]):
    """Response headers, looked up case-insensitively (names are stored lower-case)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class _Exchange:
    """One request's exchange with the app, run in a task: the app's messages (or what it raised,
    or :data:`_DONE`) queue up for the reader."""

    def __init__(self, app: ASGIApp, request: Request, scope: Callable[[Request], dict[str, Any]]) -> None:
        self.request = request
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.gone = asyncio.Event()  # the answer is complete, or the client stopped reading
        self.received = False
        self.task = asyncio.create_task(self._run(app, scope))

    async def _run(self, app: ASGIApp, scope: Callable[[Request], dict[str, Any]]) -> None:
        try:
            await app(scope(self.request), self.receive, self.send)
        except Exception as exc:
            self.queue.put_nowait(exc)
        else:
            self.queue.put_nowait(_DONE)

    async def receive(self) -> Message:
        if not self.received:
            self.received = True
            return {"type": "http.request", "body": self.request.content, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.gone.is_set():
            if message.get("more_body") or message.get("body"):
                raise OSError("the client closed the connection")
            return
        self.queue.put_nowait(message)
        if message.get("type") == "http.response.body" and not message.get("more_body", False):
            self.gone.set()  # like a server: the app's receive() now says the exchange is over

    async def close(self) -> None:
        self.gone.set()
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class ASGITransport(Transport):
    """Send requests to ``app`` in the calling event loop."""

    def __init__(self, app: ASGIApp, *, raise_app_exceptions: bool = True,
                 client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.raise_app_exceptions = raise_app_exceptions
        self.client = client

    def __repr__(self) -> str:
        return f"ASGITransport({type(self.app).__name__})"

    def _scope(self, request: Request) -> dict[str, Any]:
        url = urlsplit(request.url)
        headers = [(b"host", url.netloc.encode("ascii"))]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()
                    if k.lower() != "host"]
        if request.content:
            headers.append((b"content-length", str(len(request.content)).encode()))
        port = url.port or (443 if url.scheme == "https" else 80)
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
                "scheme": url.scheme or "http", "path": unquote(url.path) or "/",
                "raw_path": (url.path or "/").encode(), "query_string": url.query.encode(), "root_path": "",
                "headers": headers, "client": self.client, "server": (url.hostname or "", port)}

    async def send(self, request: Request) -> Reply:
        reply = await self.stream(request)
        try:
            content = await reply.aread()
        finally:
            await reply.aclose()
        return Reply(reply.status_code, reply.headers, content)

    async def stream(self, request: Request) -> StreamReply:
        exchange = _Exchange(self.app, request, self._scope)
        try:
            start = await self._next(exchange.queue, request)
        except BaseException:
            await exchange.close()
            raise
        if isinstance(start, BaseException) or start is _DONE or start.get("type") != "http.response.start":
            await exchange.close()
            return self._no_answer(start, request, exchange.close)
        headers = _Headers((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start.get("headers", ()))
        return StreamReply(int(start["status"]), headers, self._body(exchange.queue, exchange.task, request),
                           exchange.close)

    def _no_answer(self, failure: Any, request: Request, close: Callable[[], Awaitable[None]]) -> StreamReply:
        """The app failed before it began answering: raise what it raised (``raise_app_exceptions``)
        or answer 500, as a server would; an app that returned without answering dropped the connection."""
        if isinstance(failure, BaseException) and self.raise_app_exceptions:
            raise failure
        if failure is _DONE:
            raise errors.ConnectionError(f"{request.method} {request.path} failed: the app returned no answer")
        logger.debug("ASGI app failed before answering %s %s: %r", request.method, request.path, failure)
        return StreamReply(500, _Headers({"content-type": "text/plain"}), _once(b"Internal Server Error"), close)

    async def _body(self, queue: asyncio.Queue[Any], task: asyncio.Task[None],
                    request: Request) -> AsyncIterator[bytes]:
        while True:
            message = await self._next(queue, request)
            if isinstance(message, BaseException) or message is _DONE:
                raise errors.ConnectionError(f"{request.method} {request.path} failed: connection error "
                                             f"(the app stopped mid-answer: {type(message).__name__})")
            if message.get("type") != "http.response.body":
                continue
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                break
        # the answer is complete; let the app finish (what it raises now, a server would only log)
        await task
        while not queue.empty():
            left = queue.get_nowait()
            if isinstance(left, BaseException):
                logger.debug("ASGI app raised after answering %s %s: %r", request.method, request.path, left)

    @staticmethod
    async def _next(queue: asyncio.Queue[Any], request: Request) -> Any:
        try:
            async with asyncio.timeout(request.timeout):
                return await queue.get()
        except TimeoutError:  # the built-in (qfnb's is errors.TimeoutError)
            raise errors.TimeoutError(f"{request.method} {request.path} timed out (no answer from the app "
                                      f"within {request.timeout} s)") from None

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the app's startup before the block and its shutdown after it (ASGI lifespan)."""
        queue: asyncio.Queue[Message] = asyncio.Queue()
        replies: asyncio.Queue[Message] = asyncio.Queue()
        await queue.put({"type": "lifespan.startup"})
        task = asyncio.ensure_future(self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                              queue.get, replies.put))
        started = await replies.get()
        if started["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the ASGI app did not start: {started.get('message', started['type'])}")
        try:
            yield
        finally:
            await queue.put({"type": "lifespan.shutdown"})
            await replies.get()
            await task


async def _once(chunk: bytes) -> AsyncIterator[bytes]:
    yield chunk
