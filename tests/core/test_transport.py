"""The client over its HTTP transports, against a raw asyncio server: framing, keep-alive, stale
connections, cut bodies, timeouts, refused connections, split UTF-8 in SSE. Each test runs on
the aiohttp transport (the default) and on httpx's (used with a proxy)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import ConnectionError, StreamError, TimeoutError
from qfnb._core.http.client import AsyncQianfanClient
from qfnb._core.http.retry import RetryPolicy, is_retryable
from qfnb._core.transport.aiohttp import AiohttpTransport
from qfnb._core.transport.httpx import HttpxTransport
from qfnb.protocol.wires.qianfan.routes import Target
from tests.fakes.clock import VirtualTime

Responder = Callable[[bytes], bytes | None]
ONCE = RetryPolicy(attempts=1, timeout=5.0)
JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


@pytest.fixture(params=["AiohttpTransport", "HttpxTransport"])
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def _client(kind: str, url: str, vt: VirtualTime | None = None, **config: object) -> AsyncQianfanClient:
    transport = AiohttpTransport() if kind == "AiohttpTransport" else HttpxTransport()
    timing: dict[str, Any] = {} if vt is None else {"clock": vt, "sleep": vt.sleep}
    return AsyncQianfanClient(Config.from_env({}, base_url=url, **config), transport=transport, **timing)


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
                if b"Connection: close" in out or b"X-Close: 1" in out:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, OSError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", connections


@pytest.fixture
async def closing() -> AsyncIterator[list[AsyncQianfanClient]]:
    clients: list[AsyncQianfanClient] = []
    yield clients
    for c in clients:
        await c.aclose()


def _json(body: bytes, extra: bytes = b"") -> bytes:
    return JSON_HEAD + b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


def _chunked(*parts: bytes, ctype: bytes = b"application/json") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body


async def test_content_length_chunked_and_keep_alive(kind: str, closing: list[AsyncQianfanClient]) -> None:
    def respond(req: bytes) -> bytes:
        if b"/chunked" in req:
            return _chunked(b'{"result": "ch', b'unked"}')
        return _json(b'{"result": "plain"}', b"X-Thing: a\r\n")

    server, url, conns = await _server(respond)
    async with server:
        client = _client(kind, url, no_auth=True)
        closing.append(client)
        assert type(client.transport).__name__ == kind
        r1 = await client.infer(Target("chat", "plain"), {"messages": []}, retry=ONCE)
        assert (r1.result, r1.headers["x-thing"], r1.headers.get("X-THING")) == ("plain", "a", "a")
        r2 = await client.infer(Target("chat", "chunked"), {"messages": []}, retry=ONCE)
        assert r2.result == "chunked"
        r3 = await client.signed_request("GET", url + "/raw/plain", params={"q": "a b"}, retry=ONCE)
        assert r3["result"] == "plain"
        assert len(conns) == 1  # one keep-alive connection served all three


async def test_stale_keep_alive_connection_is_replaced(kind: str, closing: list[AsyncQianfanClient]) -> None:
    # the server drops each connection right after answering, without announcing it
    server, url, conns = await _server(lambda req: _json(b'{"result": "ok"}', b"X-Close: 1\r\n"))
    async with server:
        client = _client(kind, url, no_auth=True)
        closing.append(client)
        assert (await client.infer(Target("chat", "x"), {"messages": []}, retry=ONCE)).result == "ok"
        await asyncio.sleep(0.1)
        assert (await client.infer(Target("chat", "x"), {"messages": []}, retry=ONCE)).result == "ok"
        assert len(conns) == 2


async def test_a_post_the_server_read_is_never_sent_again(kind: str, closing: list[AsyncQianfanClient]) -> None:
    # the server reads each request whole, then hangs up without a word: had it acted on a
    # CreateFineTuningTask, a resend would create a second task
    received: list[bytes] = []

    def hang_up(req: bytes) -> None:
        received.append(req.split(b" ", 1)[0])

    server, url, _ = await _server(hang_up)
    async with server:
        client = _client(kind, url, no_auth=True, console_api_base_url=url)
        closing.append(client)
        with pytest.raises(ConnectionError) as post:
            await client.console("/v2/finetuning", {"name": "t"}, params={"Action": "CreateFineTuningTask"})
        assert received == [b"POST"]  # the default console policy tries once, and so does the transport
        assert "not sent again" in str(post.value) and is_retryable(post.value, ONCE)
        received.clear()
        with pytest.raises(ConnectionError) as get:
            await client.signed_request("GET", url + "/v2/finetuning", retry=ONCE)
        assert received == [b"GET", b"GET"]  # an idempotent request is sent again once, no more
        assert "not sent again" not in str(get.value)


async def test_cut_body_timeout_and_refused(kind: str, closing: list[AsyncQianfanClient]) -> None:
    def respond(req: bytes) -> bytes | None:
        if b"/slow" in req:
            return b""  # never answers
        return JSON_HEAD + b"Content-Length: 100\r\nConnection: close\r\n\r\n{\"res"  # 95 bytes short

    server, url, _ = await _server(respond)
    async with server:
        client = _client(kind, url, no_auth=True)
        closing.append(client)
        with pytest.raises(ConnectionError) as cut:
            await client.infer(Target("chat", "cut"), {"messages": []}, retry=ONCE)
        assert not isinstance(cut.value, TimeoutError)
        with pytest.raises(TimeoutError, match="timed out"):
            await client.infer(Target("chat", "slow"), {"messages": []}, retry=RetryPolicy(attempts=1, timeout=0.3))
    server.close()
    await server.wait_closed()
    client = _client(kind, url, no_auth=True)
    closing.append(client)
    with pytest.raises(ConnectionError) as refused:
        await client.infer(Target("chat", "x"), {"messages": []}, retry=ONCE)
    assert not isinstance(refused.value, TimeoutError)
    assert "/chat/x" in str(refused.value)


async def test_token_never_in_transport_errors(kind: str, closing: list[AsyncQianfanClient]) -> None:
    server, url, _ = await _server(lambda r: b"")
    server.close()
    await server.wait_closed()
    secret = "24.SECRET-token-value"
    client = _client(kind, url, access_token=secret)
    closing.append(client)
    with pytest.raises(ConnectionError) as info:
        await client.infer(Target("chat", "x"), {"messages": []}, retry=ONCE)
    assert secret not in str(info.value) and secret not in repr(info.value)


async def test_sse_split_inside_a_multibyte_character_and_cut(kind: str,
                                                              closing: list[AsyncQianfanClient]) -> None:
    event = '{"result": "你好", "is_end": true}'.encode()
    payload = b"data: " + event + b"\n\n"
    cut = payload.index("你".encode()) + 1  # split the 3-byte character across two chunks
    first = b'data: {"result": "a", "is_end": false}\n\n'

    def respond(req: bytes) -> bytes:
        if b"/broken" in req:
            return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 500\r\n"
                    b"Connection: close\r\n\r\n" + first)
        return _chunked(payload[:cut], payload[cut:], ctype=b"text/event-stream")

    server, url, _ = await _server(respond)
    async with server:
        client = _client(kind, url, no_auth=True)
        closing.append(client)
        chunks = [c async for c in await client.infer(Target("chat", "x"), {"messages": []}, stream=True)]
        assert [c.result for c in chunks] == ["你好"]
        got: list[str] = []
        with pytest.raises(StreamError, match="broke off after 1 chunk"):
            async for c in await client.infer(Target("chat", "broken"), {"messages": []}, stream=True, retry=ONCE):
                got.append(c.result)
        assert got == ["a"]


async def test_http_error_headers_are_case_insensitive_and_retry_after_honoured(
        kind: str, closing: list[AsyncQianfanClient]) -> None:
    calls: list[bytes] = []

    def respond(req: bytes) -> bytes:
        calls.append(req)
        if len(calls) == 1:
            return b"HTTP/1.1 503 Busy\r\nRETRY-AFTER: 1\r\nContent-Length: 4\r\n\r\nbusy"
        return _json(b'{"result": "ok"}')

    server, url, _ = await _server(respond)
    async with server:
        vt = VirtualTime()
        client = _client(kind, url, vt, no_auth=True)
        closing.append(client)
        r = await client.infer(Target("chat", "x"), {"messages": []}, retry=RetryPolicy(attempts=2, timeout=5.0,
                                                                                 backoff_factor=0.0, jitter=0.0))
        assert r.result == "ok" and len(calls) == 2
        assert vt.sleeps == [1.0]  # waited the server's Retry-After (virtually), not the zero backoff
        from qfnb._core.errors import RequestError

        with pytest.raises(RequestError) as info:
            calls.clear()
            await client.infer(Target("chat", "x"), {"messages": []}, retry=ONCE)
        assert info.value.status_code == 503 and info.value.headers["retry-after"] == "1"
