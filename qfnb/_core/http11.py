"""A small, fast HTTP/1.1 client on asyncio streams: keep-alive pool per event loop.

Why not only httpx: at batch rates (thousands of calls/s, 50+ in flight) httpx/httpcore
cost ~2 ms of CPU per call and their pool degrades under contention (measured in
``bench/batch_throughput.py``). This client does just what the platform needs — JSON
POST/GET/PUT, Content-Length or chunked bodies, streaming for SSE, TLS, keep-alive — in
tens of microseconds. A proxy configuration falls back to httpx (see ``client.py``).
"""

from __future__ import annotations

import asyncio
import collections
import ssl as _ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["HTTPError", "HTTPPool", "Response", "StreamResponse"]

_MAX_LINE = 64 * 1024


class HTTPError(Exception):
    """Transport failure: connect, reset, malformed answer, or timeout (``timeout=True``)."""

    def __init__(self, message: str, *, timeout: bool = False, sent: bool = True) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.sent = sent


class Headers(dict[str, str]):
    """Response headers, keys lower-cased (a plain dict with a case-insensitive ``get``)."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)


class Response:
    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status: int, headers: Headers, content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class StreamResponse:
    """A response whose body is read incrementally (``aiter_bytes``); call ``aclose``."""

    def __init__(self, pool: HTTPPool, key: tuple[str, str, int], conn: _Conn, status: int, headers: Headers) -> None:
        self._pool, self._key, self._conn = pool, key, conn
        self.status_code = status
        self.headers = headers
        self._done = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for part in _body_parts(self._conn.reader, self.headers):
            yield part
        self._done = True

    async def aread(self) -> bytes:
        return b"".join([part async for part in self.aiter_bytes()])

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        if self._done and _keep_alive(self.headers):
            self._pool._release(self._key, conn)
        else:
            self._pool._discard(conn)


def _keep_alive(headers: Headers) -> bool:
    return headers.get("connection", "").lower() != "close"


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, Headers]:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise HTTPError("connection closed before a complete response head"
                        + (" (partial answer)" if exc.partial else "")) from None
    except asyncio.LimitOverrunError:
        raise HTTPError("response head too large") from None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise HTTPError(f"malformed status line {lines[0][:100]!r}")
    headers = Headers()
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if parts[0] == "HTTP/1.0" and "connection" not in headers:
        headers["connection"] = "close"
    return int(parts[1]), headers


def _no_body(method: str, status: int) -> bool:
    return method == "HEAD" or status in (204, 304) or 100 <= status < 200


async def _body_parts(reader: asyncio.StreamReader, headers: Headers) -> AsyncIterator[bytes]:
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    return
                data = await reader.readexactly(size + 2)
                yield data[:-2]
        length = headers.get("content-length")
        if length is not None:
            remaining = int(length)
            while remaining > 0:
                data = await reader.read(min(remaining, 65536))
                if not data:
                    raise HTTPError(f"connection closed with {remaining} body bytes missing")
                remaining -= len(data)
                yield data
            return
        while True:  # read to EOF (Connection: close)
            data = await reader.read(65536)
            if not data:
                return
            yield data
    except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError) as exc:
        raise HTTPError(f"connection broke while reading the body ({type(exc).__name__})") from None


class HTTPPool:
    """Keep-alive connections per (scheme, host, port) for ONE event loop."""

    def __init__(self, *, max_connections: int = 1000, verify: bool = True, keepalive_expiry: float = 30.0) -> None:
        self._idle: dict[tuple[str, str, int], collections.deque[tuple[float, _Conn]]] = {}
        self._sem: asyncio.Semaphore | None = None
        self._max = max_connections
        self._verify = verify
        self._expiry = keepalive_expiry
        self._ssl: _ssl.SSLContext | None = None
        self._all: set[_Conn] = set()

    def _ssl_context(self) -> _ssl.SSLContext:
        if self._ssl is None:
            ctx = _ssl.create_default_context()
            if not self._verify:
                ctx.check_hostname = False
                ctx.verify_mode = _ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    async def _connect(self, key: tuple[str, str, int]) -> _Conn:
        scheme, host, port = key
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self._ssl_context() if scheme == "https" else None, limit=_MAX_LINE * 16)
        except (OSError, _ssl.SSLError) as exc:
            raise HTTPError(f"cannot connect to {host}:{port} ({type(exc).__name__})", sent=False) from None
        conn = _Conn(reader, writer)
        self._all.add(conn)
        return conn

    def _take_idle(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        loop = asyncio.get_running_loop()
        while idle:
            stamp, conn = idle.pop()
            if loop.time() - stamp < self._expiry and not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            self._discard_keep_sem(conn)  # idle connections hold no semaphore slot
        return None

    def _release(self, key: tuple[str, str, int], conn: _Conn) -> None:
        self._idle.setdefault(key, collections.deque()).append((asyncio.get_running_loop().time(), conn))
        if self._sem is not None:
            self._sem.release()

    def _discard(self, conn: _Conn) -> None:
        self._all.discard(conn)
        conn.close()
        if self._sem is not None:
            self._sem.release()

    async def request(self, method: str, url: str, *, params: Mapping[str, Any] | str | None = None,
                      headers: Mapping[str, str] | None = None, content: bytes = b"", timeout: float | None = None,
                      stream: bool = False) -> Any:
        """Send one request; a :class:`Response` (body read) or a :class:`StreamResponse`."""
        if timeout is None:
            return await self._request(method, url, params, headers, content, stream)
        try:
            async with asyncio.timeout(timeout):
                return await self._request(method, url, params, headers, content, stream)
        except TimeoutError:
            raise HTTPError(f"no complete response within {timeout:g} s", timeout=True) from None

    async def _request(self, method: str, url: str, params: Mapping[str, Any] | str | None,
                       headers: Mapping[str, str] | None, content: bytes, stream: bool) -> Any:
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        target = parts.path or "/"
        query = parts.query
        if params:
            encoded = params if isinstance(params, str) else urlencode(params)
            query = (query + "&" if query else "") + encoded
        if query:
            target += "?" + query
        lines = [f"{method} {target} HTTP/1.1"]
        has_host = False
        for name, value in (headers or {}).items():
            if name.lower() == "host":
                has_host = True
            lines.append(f"{name}: {value}")
        if not has_host:
            lines.append(f"Host: {parts.netloc.rpartition('@')[2]}")
        lines.append(f"Content-Length: {len(content)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

        if self._sem is None:
            self._sem = asyncio.Semaphore(self._max)
        await self._sem.acquire()
        for fresh in (False, True):
            conn = None if fresh else self._take_idle(key)
            reused = conn is not None
            if conn is None:
                try:
                    conn = await self._connect(key)
                except BaseException:
                    self._sem.release()
                    raise
            try:
                conn.writer.write(head + content if len(content) < 65536 else head)
                if len(content) >= 65536:
                    conn.writer.write(content)
                    await conn.writer.drain()
                status, rheaders = await _read_head(conn.reader)
            except (HTTPError, ConnectionError, OSError) as exc:
                self._discard_keep_sem(conn)
                if reused and not fresh:
                    continue  # a stale keep-alive connection: retry once on a fresh one
                self._sem.release()
                raise exc if isinstance(exc, HTTPError) else HTTPError(
                    f"connection failed ({type(exc).__name__})") from None
            except BaseException:
                self._discard(conn)
                raise
            if _no_body(method, status):
                rheaders["content-length"] = "0"
            if stream:
                return StreamResponse(self, key, conn, status, rheaders)
            try:
                body = b"".join([part async for part in _body_parts(conn.reader, rheaders)])
            except BaseException:
                self._discard(conn)
                raise
            if _keep_alive(rheaders):
                self._release(key, conn)
            else:
                self._discard(conn)
            return Response(status, rheaders, body)
        raise AssertionError("unreachable")

    def _discard_keep_sem(self, conn: _Conn) -> None:
        self._all.discard(conn)
        conn.close()

    async def aclose(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
