"""The engine link's own HTTP/1.1 (loopback.py): answers whole and streamed as the engine writes
them, and every way an engine fails as the httpx error the callers already tell apart."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from qfnb.local.engines.llama.loopback import OWN_ENGINE, LoopbackTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def engine(handler: Handler) -> AsyncIterator[str]:
    """A raw HTTP server on the loopback (``handler`` writes its answer byte by byte): its base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head, await reader.readexactly(length)


class _Own(LoopbackTransport):
    """The link as our own engines' streams use it (every request carries the extension)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions[OWN_ENGINE] = True
        return await super().handle_async_request(request)


def link(fallback: httpx.AsyncBaseTransport | None = None, **timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=_Own(fallback or httpx.AsyncHTTPTransport()),
                             timeout=httpx.Timeout(5.0, **timeout))


async def test_a_streamed_answer_arrives_piece_by_piece_as_the_engine_writes_it() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(4):
            event = b'data: {"n": %d}\n\n' % i
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with engine(stream) as base, link() as client:
        arrived: list[tuple[float, bytes]] = []
        async with client.stream("POST", base + "/v1/completions?x=1", json={"prompt": "hi"}) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"] == "text/event-stream"
            async for piece in resp.aiter_raw():
                arrived.append((time.monotonic(), piece))
    assert b"".join(p for _, p in arrived) == b"".join(b'data: {"n": %d}\n\n' % i for i in range(4))
    assert len(arrived) >= 3 and arrived[-1][0] - arrived[0][0] > 0.1  # as written, not at the end
    head, body = seen[0]
    assert head.startswith(b"POST /v1/completions?x=1 HTTP/1.1\r\n") and body == b'{"prompt":"hi"}'
    assert b"Connection: close" in head and b"keep-alive" not in head.lower()


async def test_a_whole_answer_reads_as_json() -> None:
    async def whole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b'{"tokens": [1]}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body[:5]))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(body[5:])  # the rest in a later packet
        await writer.drain()
        writer.close()

    async with engine(whole) as base, link() as client:
        resp = await client.post(base + "/tokenize", json={"content": "a"})
    assert resp.status_code == 200 and resp.json() == {"tokens": [1]}


async def test_an_engine_that_hangs_up_unanswered_or_refuses_is_told_apart() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with engine(hang_up) as base, link() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(base + "/v1/completions", json={})
    async with engine(hang_up) as base:
        pass  # closed: nothing listens there now
    async with link() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(base + "/v1/completions", json={})


async def test_an_engine_that_dies_before_reading_resets_and_is_not_a_clean_hang_up() -> None:
    """A reset says the request was dropped unread (the transport's callers pay a clean hang-up's
    request as the engine's, not a reset one's)."""
    async def die_unread(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)  # the request waits unread in the socket
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with engine(die_unread) as base, link() as client:
        with pytest.raises(httpx.ReadError):
            await client.post(base + "/v1/completions", json={"prompt": "x" * 1000})


async def test_an_answer_cut_short_is_a_read_error_after_what_arrived() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    got: list[bytes] = []
    async with engine(cut) as base, link() as client:
        with pytest.raises(httpx.ReadError):
            async with client.stream("POST", base + "/v1/completions", json={}) as resp:
                async for piece in resp.aiter_raw():
                    got.append(piece)
    assert got == [b"hello"]


async def test_an_engine_that_goes_quiet_times_out_and_one_left_early_is_closed() -> None:
    closed = asyncio.Event()

    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await reader.read()  # until the client closes its side
        closed.set()

    async with engine(quiet) as base, link(read=0.3) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            async with client.stream("POST", base + "/v1/completions", json={}) as resp:
                async for _ in resp.aiter_raw():
                    pass
        assert 0.25 < time.monotonic() - started < 3
        await asyncio.wait_for(closed.wait(), 2)
        closed.clear()
        async with client.stream("POST", base + "/v1/completions", json={}) as resp:
            async for piece in resp.aiter_raw():
                assert piece == b"hi"
                break  # the reader leaves: the connection is closed under the engine
        await asyncio.wait_for(closed.wait(), 2)


async def test_a_request_without_the_extension_goes_through_httpx_even_on_the_loopback() -> None:
    async def whole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        connection = b"close" if b"connection: close" in head.lower() else b"kept"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(connection), connection))
        await writer.drain()
        writer.close()

    async with engine(whole) as base:
        async with httpx.AsyncClient(transport=LoopbackTransport(httpx.AsyncHTTPTransport())) as plain:
            assert (await plain.post(base + "/tokenize", json={})).content == b"kept"  # httpx's keep-alive
        async with link() as own:
            assert (await own.post(base + "/tokenize", json={})).content == b"close"


async def test_an_engine_elsewhere_goes_through_the_fallback() -> None:
    asked: list[str] = []

    def remote(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    async with link(httpx.MockTransport(remote)) as client:
        resp = await client.post("https://engine.example/v1/completions", json={})
    assert resp.json() == {"ok": True} and asked == ["https://engine.example/v1/completions"]


async def test_a_reader_slower_than_the_read_timeout_is_not_the_engine_timing_out() -> None:
    read = asyncio.Event()

    async def patient(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await read.wait()  # the engine answers on once the reader has taken what it sent
        writer.write(b"2\r\nyo\r\n0\r\n\r\n")
        await writer.drain()

    async with engine(patient) as base, link(read=0.3) as client:
        async with client.stream("POST", base + "/v1/completions", json={}) as resp:
            await asyncio.sleep(0.8)  # the reader is busy elsewhere for more than the read timeout
            pieces = []
            async for piece in resp.aiter_raw():
                pieces.append(piece)
                read.set()
        assert b"".join(pieces) == b"hiyo"
