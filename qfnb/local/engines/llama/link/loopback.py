"""HTTP/1.1 to an engine on this machine, spoken on the event loop's own sockets and parsed in C.

httpx's own transport reads each chunk of a streamed answer through httpcore, h11 and anyio's
cancel scopes: with llama-server on two cores that cost about 350 µs of CPU a token, taken from the
engine's threads (``bench/serving.py --relay-floor``: a 30-line httpx and Starlette proxy kept
98 % of bare llama-server at 547 µs a token, the same proxy reading with httptools 99.5 % at
195 µs). :func:`open_answer` writes the request itself and parses the answer with httptools
(llhttp): a chunk costs a callback and, when a reader waits, a future; no httpx client step runs
(cookies, auth, redirects) and no wrapper stream is read through. Each request has a connection of
its own, closed after the answer (a connect on the loopback costs about 0.1 ms, and no request meets a
kept-alive connection the engine has just closed). Streams to our own llama-server engines take it
(:func:`~.transport.stream`); everything else (external engines, prompt preparation) goes through
httpx's pool. Failures are httpx's errors, which the callers already tell apart.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

import httptools
import httpx

#: read from the socket no further while this much of an answer waits unread
_HIGH_WATER = 1 << 20
#: a paced stream's pieces aim at this many tokens each (:meth:`EngineReply.pace`)
TOKENS_A_PIECE = 3
#: each event loop's paced streams (their number sets each one's piece: :func:`low_water`)
_paced: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[EngineReply]] = weakref.WeakKeyDictionary()


class _Options(Protocol):
    """What the pace needs of a transport's socket (asyncio's and uvloop's stand-ins both have it)."""

    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...


def low_water(received: int, tokens: int, streams: int = 1) -> int:
    """The bytes a paced reader waits for after handing text on: about :data:`TOKENS_A_PIECE` of the
    stream's tokens for each of the ``streams`` paced at once, from the ``received`` bytes of its first
    ``tokens`` (a little under, so that the last of them is enough)."""
    return max(1, int(received * (TOKENS_A_PIECE * streams - 0.5) / max(1, tokens)))


def paced_streams(loop: asyncio.AbstractEventLoop) -> weakref.WeakSet[EngineReply]:
    """The streams read at a pace on ``loop`` now."""
    streams = _paced.get(loop)
    if streams is None:
        streams = _paced[loop] = weakref.WeakSet()
    return streams


def on_tick(now: float, interval: float) -> float:
    """When a hold that starts ``now`` ends: the first tick of the loop's clock (every half ``interval``)
    at least half an ``interval`` on, so streams held together are released in one wake."""
    half = interval / 2
    return (now // half + 2) * half


class EngineReply(asyncio.Protocol):
    """One request's connection: the answer's head and body as the parser finds them."""

    def __init__(self, request: httpx.Request, read_timeout: float | None, interval: float = 0.0) -> None:
        self.request = request
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[int] = self.loop.create_future()  # the status, once the head is read
        self.body: deque[bytes] = deque()
        self.unread = 0
        self.paused = False  # reading paused: the reader is _HIGH_WATER behind
        self.complete = False
        self.error: httpx.TransportError | None = None
        self.waiter: asyncio.Future[None] | None = None
        #: the reader's pace (:meth:`pace`): the socket, where its kernel can hold reads; the bytes the
        #: kernel waits for before it reports the socket readable; the body's bytes so far; when the hold
        #: ends at the latest (the loop's time), and the timer that ends it
        self.interval = interval
        self.sock: _Options | None = None
        self.lowat = 1
        self.received = 0
        self.hold_until = 0.0
        self.alarm: asyncio.TimerHandle | None = None
        self.read_timeout = read_timeout
        self.last = self.loop.time()
        self.timer: asyncio.TimerHandle | None = (self.loop.call_at(self.last + read_timeout, self._check)
                                                   if read_timeout else None)

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.head.done():
            self.head.set_result(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.unread += len(body)
        self.received += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self._stop_timer()

    # the connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a socket transport (uvloop's is not a subclass)
        if self.interval:
            self.sock = transport.get_extra_info("socket")
            if self.sock is not None:
                paced_streams(self.loop).add(self)

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"the engine's answer could not be parsed ({exc})",
                                                 request=self.request))
        if self.unread > _HIGH_WATER and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete and self.error is None:
            if not self.head.done() and exc is None:  # a clean close: the engine may have read the request
                self._fail(httpx.RemoteProtocolError("the engine closed the connection without answering",
                                                     request=self.request))
            elif not self.head.done():  # reset: what the engine had not read was dropped unread
                self._fail(httpx.ReadError(f"the engine reset the connection without answering ({exc})",
                                           request=self.request))
            elif exc is None and not self._delimited():  # an answer that ends where the connection does
                self.complete = True
            else:
                self._fail(httpx.ReadError("the engine closed the connection before its answer's end",
                                           request=self.request))
        self._stop_timer()
        paced_streams(self.loop).discard(self)
        self._wake()

    def send(self, request: bytes) -> None:
        """The request, whole, to the socket (the engine has it from here on)."""
        assert self.transport is not None
        self.transport.write(request)

    def _delimited(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" in names or b"transfer-encoding" in names

    def _fail(self, error: httpx.TransportError) -> None:
        if self.error is None:
            self.error = error
        if not self.head.done():
            self.head.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _check(self) -> None:
        """The read timeout: nothing arrived for ``read_timeout`` seconds while the reader waited (a
        reader behind, with what arrived still unread, is not kept waiting by the engine: its time is
        not counted)."""
        assert self.read_timeout is not None
        now = self.loop.time()
        if self.body:  # (reading is paused only while what arrived waits unread)
            self.last = now
        idle = now - self.last
        if idle >= self.read_timeout:
            self._fail(httpx.ReadTimeout(f"the engine sent nothing for {idle:.0f} s", request=self.request))
            self._wake()
        else:
            self.timer = self.loop.call_at(self.last + self.read_timeout, self._check)

    def pace(self, tokens: int) -> None:
        """The reader has handed text on, ``tokens`` in all so far: it is not woken again before about
        :data:`TOKENS_A_PIECE` more tokens' bytes for each stream paced on this loop have arrived (the
        kernel holds them: ``SO_RCVLOWAT``), the answer ends (the engine closes the connection), or the
        hold ends, on a tick of the loop's clock between half an ``interval`` and an ``interval`` on
        (:func:`on_tick`). So the tokens of a few token times are read, parsed and handed on together,
        in one wake of everything that hands them on; with several streams, the loop wakes about as
        often as with one, the streams whose holds end on a tick all read in that wake. No pace where
        the kernel cannot hold reads.
        """
        if self.sock is None or tokens < 1:
            return
        lowat = low_water(self.received, tokens, len(paced_streams(self.loop)))
        if self.lowat == 1 or abs(lowat - self.lowat) * 8 > self.lowat:  # (not a system call a piece)
            self._set_lowat(lowat)
            if self.sock is None:
                return
        self.hold_until = on_tick(self.loop.time(), self.interval)
        if self.alarm is None or self.alarm.when() != self.hold_until:  # (moved with the hold: no wake for nothing)
            self._stop_alarm()
            self.alarm = self.loop.call_at(self.hold_until, self._release)

    def _release(self) -> None:
        """The pace's interval is over: what waits in the kernel is read now, or the next byte when it comes
        (lowering the mark makes the kernel report the socket readable if something waits)."""
        self.alarm = None
        self._set_lowat(1)

    def _set_lowat(self, lowat: int) -> None:
        if lowat == self.lowat or self.sock is None or self.transport is None or self.transport.is_closing():
            return
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
        except OSError:  # the system cannot hold this socket's reads (or it is gone: the loop reports that)
            self.sock = None  # so it is read unpaced
            paced_streams(self.loop).discard(self)
            return
        self.lowat = lowat

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._stop_alarm()

    def _stop_alarm(self) -> None:
        if self.alarm is not None:
            self.alarm.cancel()
            self.alarm = None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (httptools took the chunked framing off), or at the reader's pace
        (:meth:`pace`): all that arrived while it was held, in one piece."""
        while True:
            if self.body:
                piece = self.body.popleft() if len(self.body) == 1 else b"".join(self.body)
                self.body.clear()
                self.unread = 0
                if self.paused and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                yield piece
            elif self.complete:
                return
            elif self.error is not None:
                raise self.error
            else:
                self.waiter = self.loop.create_future()
                await self.waiter

    @property
    def status(self) -> int:
        """The answer's HTTP status (its head has been read)."""
        return self.head.result()

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        return b"".join([piece async for piece in self.chunks()])

    def close(self) -> None:
        self._stop_timer()
        paced_streams(self.loop).discard(self)
        if self.transport is not None:
            self.transport.close()
        if self.head.done() and not self.head.cancelled():
            self.head.exception()  # retrieved: a failure nobody awaited is not logged as lost


async def open_answer(request: httpx.Request, interval: float = 0.0) -> EngineReply:
    """``request`` (its body already read) sent on a connection of its own to an engine on this machine,
    and its answer once the head is read (:attr:`EngineReply.status`); the caller closes it. The request's
    ``timeout`` and ``trace`` extensions are httpx's: a connect and read timeout, and the body's
    ``http11.send_request_body.started``/``complete`` events; ``interval``: the reader's pace
    (:meth:`EngineReply.pace`)."""
    url = request.url
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    trace = request.extensions.get("trace")
    head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), url.raw_path)]
    head += [b"%s: %s\r\n" % (k, v) for k, v in request.headers.raw if k.lower() != b"connection"]
    head.append(b"Connection: close\r\n\r\n")
    loop = asyncio.get_running_loop()
    answer = EngineReply(request, timeouts.get("read"), interval)
    try:
        await asyncio.wait_for(loop.create_connection(lambda: answer, url.host, url.port or 80),
                               timeouts.get("connect"))
    except TimeoutError as exc:
        answer.close()
        raise httpx.ConnectTimeout(f"no connection to {url.host}:{url.port} in time", request=request) from exc
    except OSError as exc:
        answer.close()
        raise httpx.ConnectError(str(exc), request=request) from exc
    try:
        if trace is not None:
            await trace("http11.send_request_body.started", {"request": request})
        answer.send(b"".join(head) + request.content)
        if trace is not None:
            await trace("http11.send_request_body.complete", {"request": request})
        await answer.head
    except BaseException:
        answer.close()
        raise
    return answer


__all__ = ["EngineReply", "open_answer"]
