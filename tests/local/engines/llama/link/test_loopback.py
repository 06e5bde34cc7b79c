"""The engine link's own HTTP/1.1 (loopback.py): answers whole and streamed as the engine writes
them, and every way an engine fails as the httpx error the callers already tell apart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.loopback import EngineReply, low_water, on_tick, open_answer, paced_streams
from qfnb.local.engines.llama.link.transport import Endpoint, Watch
from qfnb.local.engines.options import EngineOptions

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


async def begin_chunked(writer: asyncio.StreamWriter, first: bytes) -> None:
    """An engine's streamed answer begun: its head and a ``first`` chunk, sent."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(first), first))
    await writer.drain()


@contextlib.asynccontextmanager
async def opened(url: str, body: dict[str, str] | None = None, interval: float = 0.0,
                 **timeout: float) -> AsyncIterator[EngineReply]:
    """``body`` POSTed to ``url`` over the link (read at the pace ``interval``): its answer, closed on leaving."""
    request = httpx.Request("POST", url, json=body or {},
                            extensions={"timeout": httpx.Timeout(5.0, **timeout).as_dict()})
    answer = await open_answer(request, interval)
    try:
        yield answer
    finally:
        answer.close()


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

    async with engine(stream) as base:
        arrived: list[tuple[float, bytes]] = []
        async with opened(base + "/v1/completions?x=1", {"prompt": "hi"}) as answer:
            assert answer.status == 200 and (b"Content-Type", b"text/event-stream") in answer.headers
            async for piece in answer.chunks():
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

    async with engine(whole) as base, opened(base + "/tokenize", {"content": "a"}) as answer:
        assert answer.status == 200 and json.loads(await answer.read()) == {"tokens": [1]}


async def test_an_engine_that_hangs_up_unanswered_or_refuses_is_told_apart() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with engine(hang_up) as base:
        with pytest.raises(httpx.RemoteProtocolError):
            async with opened(base + "/v1/completions"):
                pass
    async with engine(hang_up) as base:
        pass  # closed: nothing listens there now
    with pytest.raises(httpx.ConnectError):
        async with opened(base + "/v1/completions"):
            pass


async def test_an_engine_that_dies_before_reading_resets_and_is_not_a_clean_hang_up() -> None:
    """A reset says the request was dropped unread (the transport's callers pay a clean hang-up's
    request as the engine's, not a reset one's)."""
    async def die_unread(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)  # the request waits unread in the socket
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with engine(die_unread) as base:
        with pytest.raises(httpx.ReadError):
            async with opened(base + "/v1/completions", {"prompt": "x" * 1000}):
                pass


async def test_an_answer_cut_short_is_a_read_error_after_what_arrived() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await begin_chunked(writer, b"hello")
        await asyncio.sleep(0.05)
        writer.close()

    got: list[bytes] = []
    async with engine(cut) as base:
        with pytest.raises(httpx.ReadError):
            async with opened(base + "/v1/completions") as answer:
                async for piece in answer.chunks():
                    got.append(piece)
    assert got == [b"hello"]


async def test_an_engine_that_goes_quiet_times_out_and_one_left_early_is_closed() -> None:
    closed = asyncio.Event()

    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await begin_chunked(writer, b"hi")
        await reader.read()  # until the client closes its side
        closed.set()

    async with engine(quiet) as base:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            async with opened(base + "/v1/completions", read=0.3) as answer:
                async for _ in answer.chunks():
                    pass
        assert 0.25 < time.monotonic() - started < 3
        await asyncio.wait_for(closed.wait(), 2)
        closed.clear()
        async with opened(base + "/v1/completions", read=0.3) as answer:
            async for piece in answer.chunks():
                assert piece == b"hi"
                break  # the reader leaves: the connection is closed under the engine
        await asyncio.wait_for(closed.wait(), 2)


async def test_streams_to_our_own_engine_take_the_link_and_others_httpx_pool() -> None:
    """A stream to an engine with a watch (our own llama-server) goes over a connection of its own; one
    to an external engine, and every other request, keeps httpx's keep-alive pool."""
    heads: list[bytes] = []

    async def sse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        heads.append(head.lower())
        event = b'data: {"choices":[{"text":"ok","finish_reason":"stop"}]}\n\n'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(event), event))
        await writer.drain()
        writer.close()

    watch = Watch(600.0, 600.0, lambda slot, stretch: False, lambda: Endpoint("http://unused/v1"))
    async with engine(sse) as base:
        for target in (Endpoint(base + "/v1", watch=watch), Endpoint(base + "/v1")):
            texts = [d.text async for d in transport.stream("m", target, "/completions", {"prompt": "hi"})]
            assert "".join(texts) == "ok"
    assert b"connection: close" in heads[0] and b"connection: close" not in heads[1]


async def test_a_reader_slower_than_the_read_timeout_is_not_the_engine_timing_out() -> None:
    read = asyncio.Event()

    async def patient(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await begin_chunked(writer, b"hi")
        await read.wait()  # the engine answers on once the reader has taken what it sent
        writer.write(b"2\r\nyo\r\n0\r\n\r\n")
        await writer.drain()

    async with engine(patient) as base:
        async with opened(base + "/v1/completions", read=0.3) as answer:
            await asyncio.sleep(0.8)  # the reader is busy elsewhere for more than the read timeout
            pieces = []
            async for piece in answer.chunks():
                pieces.append(piece)
                read.set()
        assert b"".join(pieces) == b"hiyo"


def sse_event(i: int, finish: str | None = None, pad: int = 0) -> bytes:
    """One llama-server completion event (token ``t{i}``) as a chunk of a chunked body; ``pad`` bytes more
    make it the size llama-server's are (about 380 bytes with ``pad=300``)."""
    event = b'data: {"choices":[{"text":"t%d","finish_reason":%s}],"pad":"%s"}\n\n' % (
        i, json.dumps(finish).encode(), b"x" * pad)
    return b"%x\r\n%s\r\n" % (len(event), event)


def streaming(tokens: int, gap: float, *, hang_up: bool = True) -> Handler:
    """An engine that streams ``tokens`` token events ``gap`` seconds apart and then ends the answer,
    closing the connection as the request's ``Connection: close`` asks (or, not ``hang_up``, keeping it)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(tokens):
            writer.write(sse_event(i, "length" if i == tokens - 1 else None, pad=300))
            await writer.drain()
            await asyncio.sleep(gap)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        if hang_up:
            writer.close()
        else:
            await asyncio.sleep(3)

    return answer


async def paced_read(answer: EngineReply) -> list[tuple[float, bytes]]:
    """The pieces a paced reader reads (when, and what), pacing with the tokens so far as ``deltas`` does."""
    start = time.monotonic()
    pieces: list[tuple[float, bytes]] = []
    async for piece in answer.chunks():
        pieces.append((time.monotonic() - start, piece))
        answer.pace(sum(p.count(b"data: ") for _, p in pieces))
    return pieces


async def test_a_paced_reader_is_woken_once_a_few_tokens_and_at_the_answers_end_without_waiting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once text went on (``pace(n)``), the kernel holds what arrives until about three tokens' bytes wait:
    the reader is woken (its socket read) once for a few tokens, not once a token; the answer's end (the
    engine hangs up, as ``Connection: close`` asks) is read at once, not at the interval's end."""
    reads = 0
    data_received = EngineReply.data_received

    def counted(self: EngineReply, data: bytes) -> None:
        nonlocal reads
        reads += 1
        data_received(self, data)

    monkeypatch.setattr(EngineReply, "data_received", counted)
    async with engine(streaming(13, 0.02)) as base, opened(base + "/v1/completions", interval=5.0) as answer:
        start = time.monotonic()
        pieces = await paced_read(answer)
        took = time.monotonic() - start
    counts = [p.count(b"data: ") for _, p in pieces]
    assert sum(counts) == 13 and counts[0] == 1  # every token; the first at once, alone
    assert 3 <= len(pieces) <= 6, counts  # then a few at a time (about three)
    assert reads <= len(pieces) + 2  # one read a piece (and the head's, and the hang-up's)
    assert took < 2.0  # 13 tokens 20 ms apart: not held to the interval's end (5 s)


async def test_an_engine_that_keeps_the_connection_open_after_the_answer_is_read_by_the_interval() -> None:
    """An engine that does not hang up after its answer: the answer's last bytes (fewer than the reader
    waits for) are read when the interval ends, not when the connection does."""
    async with engine(streaming(4, 0.01, hang_up=False)) as base, \
            opened(base + "/v1/completions", interval=0.3) as answer:
        start = time.monotonic()
        pieces = await paced_read(answer)
        took = time.monotonic() - start
    assert sum(p.count(b"data: ") for _, p in pieces) == 4
    assert took < 1.5  # the interval (0.3 s), not the engine's three seconds


@pytest.mark.parametrize("busy", [0.0, 0.1])
async def test_text_held_by_the_pace_goes_on_when_the_interval_ends_not_with_the_next_token(busy: float) -> None:
    """An engine that goes quiet mid-answer (a long pause between two tokens) does not hold back the
    text that came before the pause past the reader's interval, whether it came in the interval or
    (``busy``: the reader hands each piece on for a while before it paces) just before it."""

    async def pausing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + sse_event(0))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(sse_event(1))
        await writer.drain()
        await asyncio.sleep(1.5)  # the pause
        writer.write(sse_event(2, "stop") + b"0\r\n\r\n")
        await writer.drain()

    async with engine(pausing) as base, opened(base + "/v1/completions", interval=0.4) as answer:
        start = time.monotonic()
        arrived = []
        async for piece in answer.chunks():
            arrived.append((time.monotonic() - start, piece))
            await asyncio.sleep(busy)
            answer.pace(len(arrived))
    assert [p.count(b"data: ") for _, p in arrived] == [1, 1, 1]
    assert arrived[1][0] < 1.0  # the second token went on by its interval's end, before the pause ended


async def test_deltas_hand_on_the_tokens_read_together_as_one_piece_and_tool_calls_alone() -> None:
    """What the reader read in one piece goes on as one Delta (its text joined, its tokens counted, the
    pace told once); a tool-call fragment goes on by itself, after the text before it."""
    paced: list[int] = []

    def event(body: dict[str, object]) -> bytes:
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    def text(piece: str) -> bytes:
        return event({"choices": [{"delta": {"content": piece}, "finish_reason": None}]})

    call = {"index": 0, "function": {"name": "f", "arguments": "{}"}}
    pieces = [text("a"), text("b") + text("c") + text("d"),
              text("e") + event({"choices": [{"delta": {"tool_calls": [call]}, "finish_reason": None}]}),
              event({"choices": [{"delta": {}, "finish_reason": "tool_calls"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 6}}) + b"data: [DONE]\n\n"]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    out = [d async for d in transport.deltas(body(), chat=True, pace=paced.append)]
    assert [(d.text, d.completion_tokens, bool(d.tool_calls)) for d in out[:-1]] == [
        ("a", 1, False), ("bcd", 4, False), ("e", 5, False), ("", 6, True)]
    assert out[-1].finish_reason == "tool_calls" and out[-1].completion_tokens == 6
    assert paced == [1, 4, 6]  # once for each piece of the body that handed text on, with the tokens so far


def test_a_paced_reader_waits_for_a_little_under_three_of_its_streams_tokens() -> None:
    assert low_water(380, 1) == 950  # 380 bytes a token: the third token's bytes complete it
    assert low_water(38_000, 100) == 950
    assert low_water(0, 0) == 1  # nothing known: every byte
    assert low_water(5, 10) == 1


def test_with_more_streams_paced_each_waits_for_more_of_its_tokens() -> None:
    """Three tokens for each stream paced at once: eight streams wake the loop about as often as one."""
    assert low_water(380, 1, streams=2) == 2090  # 5.5 tokens
    assert low_water(380, 1, streams=8) == 8930  # 23.5 tokens: in practice the hold's end comes first


def test_holds_end_on_a_shared_tick_between_half_an_interval_and_an_interval_on() -> None:
    for now in (0.0, 0.01, 0.099, 0.1, 12.345, 98765.4321):
        end = on_tick(now, 0.2)
        assert now + 0.1 < end <= now + 0.2 + 1e-9, now
    # holds that begin within the same tenth of a second end together, in one wake of the loop
    assert on_tick(5.001, 0.2) == on_tick(5.05, 0.2) == on_tick(5.099, 0.2)
    assert on_tick(5.101, 0.2) > on_tick(5.099, 0.2)


async def test_the_hold_s_timer_moves_with_the_hold_and_never_goes_off_for_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each piece moves the hold's end; its timer moves with it (cancelled and set again), so it goes
    off only when a hold really ends: a stream whose pieces all come by their bytes never fires it."""
    released = 0
    release = EngineReply._release

    def counted(self: EngineReply) -> None:
        nonlocal released
        released += 1
        release(self)

    monkeypatch.setattr(EngineReply, "_release", counted)
    async with engine(streaming(40, 0.02)) as base, opened(base + "/v1/completions", interval=0.3) as answer:
        pieces = await paced_read(answer)  # 0.8 s of tokens, a piece about every 60 ms
    assert sum(p.count(b"data: ") for _, p in pieces) == 40 and len(pieces) >= 8
    assert released == 0


async def test_streams_paced_together_are_counted_and_read_on_the_same_ticks() -> None:
    """Two streams at once, their tokens slower than a hold: each is read when its hold ends, and both
    holds end on the same ticks of the loop's clock (one wake reads both); a stream that ends leaves the
    count."""
    loop = asyncio.get_running_loop()
    async with engine(streaming(6, 0.15)) as base:
        async with opened(base + "/v1/completions", interval=0.4) as first, \
                opened(base + "/v1/completions", interval=0.4) as second:
            assert len(paced_streams(loop)) == 2
            reads = await asyncio.gather(paced_read(first), paced_read(second))
        assert len(paced_streams(loop)) == 0
    for pieces in reads:
        assert sum(p.count(b"data: ") for _, p in pieces) == 6
    assert first.hold_until == second.hold_until  # the last holds set ended on the same tick


async def test_an_unpaced_reader_leaves_the_socket_as_it_is() -> None:
    async with engine(streaming(3, 0.0)) as base, opened(base + "/v1/completions") as answer:
        pieces = [piece async for piece in answer.chunks()]
        answer.pace(3)
    assert b"".join(pieces).count(b"data: ") == 3
    assert answer.sock is None and answer.lowat == 1 and answer.alarm is None


async def test_a_socket_that_cannot_hold_reads_leaves_the_stream_unpaced() -> None:
    """Where the system refuses the receive low-water mark, the reader is woken by each read, as unpaced."""

    class Refusing:
        def setsockopt(self, *option: int) -> None:
            raise OSError(92, "Protocol not available")

    class Transport(asyncio.Transport):
        def get_extra_info(self, name: str, default: object = None) -> object:
            return Refusing() if name == "socket" else default

        def is_closing(self) -> bool:
            return False

    answer = EngineReply(httpx.Request("POST", "http://127.0.0.1:1/"), None, interval=0.2)
    answer.connection_made(Transport())
    answer.received = 3800
    answer.pace(10)
    assert answer.sock is None and answer.lowat == 1 and answer.alarm is None


def test_the_pace_is_a_setting_in_milliseconds() -> None:
    assert EngineOptions.from_env({}).stream_interval == 0.2
    assert EngineOptions.from_env({"QFNB_STREAM_INTERVAL_MS": "0"}).stream_interval == 0.0
    assert EngineOptions.from_env({"QFNB_STREAM_INTERVAL_MS": "120"}).stream_interval == 0.12
    for bad in ("-5", "soon", "5000"):
        with pytest.raises(ValueError, match="QFNB_STREAM_INTERVAL_MS must be a number"):
            EngineOptions.from_env({"QFNB_STREAM_INTERVAL_MS": bad})
