"""qfnb's HTTP/1.1 pool against a raw asyncio server: framing, keep-alive, stale reuse, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from qfnb._core.http11 import HTTPError, HTTPPool

Responder = Callable[[bytes], bytes | None]


async def _server(respond: Responder) -> tuple[asyncio.AbstractServer, str, list[int]]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                out = respond(head + body)
                if out is None:
                    writer.close()
                    return
                writer.write(out)
                await writer.drain()
                if b"Connection: close" in out:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", connections


@pytest.fixture
async def pool() -> AsyncIterator[HTTPPool]:
    p = HTTPPool(max_connections=4)
    yield p
    await p.aclose()


async def test_content_length_chunked_and_keep_alive(pool: HTTPPool) -> None:
    def respond(req: bytes) -> bytes:
        if b"/chunked" in req:
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        if b"/empty" in req:
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing: a\r\n\r\nhello"

    server, url, conns = await _server(respond)
    async with server:
        r1 = await pool.request("POST", url + "/plain", params={"q": "a b"}, content=b"{}")
        assert (r1.status_code, r1.content, r1.headers["x-thing"], r1.headers.get("X-THING")) == (
            200, b"hello", "a", "a")
        r2 = await pool.request("GET", url + "/chunked")
        assert r2.content == b"abcde"
        r3 = await pool.request("DELETE", url + "/empty")
        assert r3.status_code == 204 and r3.content == b""
        stream = await pool.request("GET", url + "/chunked", stream=True)
        assert b"".join([p async for p in stream.aiter_bytes()]) == b"abcde"
        await stream.aclose()
        await pool.request("GET", url + "/plain")
        assert len(conns) == 1  # one keep-alive connection served all five


async def test_stale_keep_alive_connection_is_replaced(pool: HTTPPool) -> None:
    count = [0]

    def respond(req: bytes) -> bytes | None:
        count[0] += 1
        if count[0] == 2:
            return None  # server closes the idle connection instead of answering
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    server, url, conns = await _server(respond)
    async with server:
        assert (await pool.request("POST", url)).content == b"ok"
        assert (await pool.request("POST", url)).content == b"ok"
        assert len(conns) == 2


async def test_truncated_body_and_timeout(pool: HTTPPool) -> None:
    def respond(req: bytes) -> bytes | None:
        if b"/slow" in req:
            return b""  # never answers
        return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc"

    server, url, _ = await _server(respond)
    async with server:
        with pytest.raises(HTTPError, match="missing"):
            await pool.request("GET", url + "/cut")
        with pytest.raises(HTTPError) as info:
            await pool.request("GET", url + "/slow", timeout=0.2)
        assert info.value.timeout


async def test_connect_refused(pool: HTTPPool) -> None:
    server, url, _ = await _server(lambda r: b"")
    server.close()
    await server.wait_closed()
    with pytest.raises(HTTPError, match="cannot connect"):
        await pool.request("GET", url)


async def test_sse_split_inside_a_multibyte_character() -> None:
    from qfnb._core.client import AsyncQianfanClient
    from qfnb._core.config import Config

    event = '{"result": "你好", "is_end": true}'.encode()
    payload = b"data: " + event + b"\n\n"
    cut = payload.index("你".encode()) + 1  # split the 3-byte character
    parts = [payload[:cut], payload[cut:]]
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    server, url, _ = await _server(lambda r: head + body)
    async with server:
        client = AsyncQianfanClient(Config.from_env({}, base_url=url, no_auth=True))
        chunks = [c async for c in await client.infer("chat", "x", {"messages": []}, stream=True)]
        assert [c.result for c in chunks] == ["你好"]
        await client.aclose()
