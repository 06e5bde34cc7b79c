"""The HTTP link to an OpenAI-compatible engine (our own ``llama-server`` or an external one).

One pooled client per event loop; :class:`Endpoint`, where one request goes; one JSON POST
(:func:`post_json`) or SSE stream (:func:`stream`), each sent once more when a pooled connection
the engine had just closed fails before any answer; the engine's errors as the platform's
exceptions (:func:`engine_error`); and its stream's chunks as :class:`Delta` s (:func:`deltas`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from qfnb.local.engines.base import (
    FINISH_LENGTH,
    FINISH_NORMAL,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    CannotServe,
    Delta,
    PromptTooLong,
    reached,
)
from qfnb.local.engines.call_state import calls
from qfnb.local.engines.llama.link.loopback import TOKENS_A_PIECE, open_answer
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.protocol.wires.codec import fastjson
from qfnb.protocol.wires.codec.sse import DataEvents

log = logging.getLogger("qfnb.local.engines")

_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=30.0, pool=30.0)
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()
#: the engine's finish reasons that are not a normal end, as the platform names them
_FINISH = {"length": FINISH_LENGTH, "stop_sequence": FINISH_STOP, "tool_calls": FINISH_TOOL_CALLS}
#: the paths at the engine's own root (not below ``/v1``) whose stream is llama-server's own (``{"content",
#: "stop", ...}`` chunks, not OpenAI's): fill in the middle
NATIVE_PATHS = ("/infill",)
#: llama-server's own ``stop_type`` -> the OpenAI name :data:`_FINISH` reads
_NATIVE_STOP = {"limit": "length", "word": "stop_sequence"}


def client() -> httpx.AsyncClient:
    """One pooled client per event loop, for everything but the streams to our own engines (:mod:`.loopback`)."""
    loop = asyncio.get_running_loop()
    pooled = _clients.get(loop)
    if pooled is None:
        # llama-server closes an idle connection after 5 s; forgetting ours at 2 s means a request is
        # never sent on a connection the server is closing (RemoteProtocolError)
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=64, keepalive_expiry=2.0)
        pooled = _clients[loop] = httpx.AsyncClient(timeout=_TIMEOUT, limits=limits, trust_env=False)
    return pooled


class SchemaNotCompiled(CannotServe):
    """The engine refused a schema's grammar (a 400: the request, not the engine, is at fault)."""


@dataclass(frozen=True)
class Watch:
    """The watchdog's limits and hooks for requests on our own engine (:mod:`.watchdog`):
    ``unstick(slot, stretch)`` (blocking), after a request on engine slot ``slot`` was cancelled,
    checks that the engine obeys (its decode loop answers, the slot stops, within a probe's time
    stretched ``stretch`` times by the machine's load) and kills the process if not (True: it was
    killed as stuck); ``renew()`` (blocking) leases the running engine
    again (a restarted one)."""

    stall_seconds: float
    request_seconds: float
    unstick: Callable[[int | None, float], bool]
    renew: Callable[[], Endpoint]


@dataclass(frozen=True)
class Endpoint:
    """Where one request goes: base URL (with ``/v1``), key, extra body fields, a release hook, and
    the adapter set it runs with (the gate runs one set at a time: :mod:`~qfnb.local.engines.lanes`)."""

    base_url: str
    api_key: str | None = None
    extra: dict[str, Any] | None = None
    release: Callable[[], None] | None = None
    broken: Callable[[], None] | None = None
    group: str | None = None
    watch: Watch | None = None
    #: our own engine's streams go on at a pace once text flows, a token waiting this long at most, in
    #: seconds (0: each chunk as it comes): the text of a few tokens goes on as one piece
    stream_interval: float = 0.0
    #: the engine keeps that pace itself (it holds the tokens and sends a piece as one chunk: :func:`pace_fields`);
    #: else the link's reader keeps it (:meth:`.loopback.EngineReply.pace`)
    engine_paces: bool = False
    #: the model's end-of-sequence token as text, as the engine names it (``""``: not known)
    eos_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def pace_fields(interval: float) -> dict[str, int]:
    """The request fields that ask our build of llama-server (scripts/llama_server_stream_pace.patch) to keep a
    stream's pace, the rule :meth:`.loopback.EngineReply.pace` keeps for an engine without it: after the first
    token, the tokens that follow are held until :data:`.loopback.TOKENS_A_PIECE` of them for each paced stream
    are, or the hold ends on a tick of the engine's one clock (every half ``interval``, so streams held together
    go out in the same step), and go out as one chunk; what is held when the answer ends goes out before its end.
    The engine then parses, writes and wakes its HTTP threads once a piece rather than once a token, and the link
    reads one event a piece."""
    return {"stream_interval_ms": max(1, round(interval * 1000)), "stream_tokens": TOKENS_A_PIECE}


def stale_connection(exc: httpx.TransportError) -> bool:
    """A reused connection closed under us (not an engine that is down or too slow)."""
    return isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError))


def _unanswered(name: str, target: Endpoint, exc: httpx.TransportError, *, answered: bool = False,
                reached: bool = False) -> EngineUnavailable:
    """The engine did not answer (or, ``answered``, stopped answering): its lease is reported
    broken, and the error says where it was; ``reached``: the engine had the request."""
    if target.broken is not None:
        target.broken()
    what = "stopped answering" if answered else "did not answer"
    return EngineUnavailable(f"{name}: the engine at {target.base_url} {what} ({type(exc).__name__})", reached=reached)


class _Sent:
    """Whether a request's body has been sent (httpcore's trace, or the loopback link's, which calls it
    the same way): from then on the engine has it.

    The caller hears it (:func:`~qfnb.local.engines.base.reached`) as the body *starts* going out:
    nothing awaits between that trace and the socket's write, while after the write anyio's send
    yields to the event loop once before the trace says it is complete. A process killed in that
    turn of the loop (30 ms on a loaded machine, with the job's other rows to run) had sent a row
    its journal did not say the engine had: the chaos bench's seed 2 left 5 such sends unpaid."""

    def __init__(self) -> None:
        self.done = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "http11.send_request_body.started":
            reached()
        elif event == "http11.send_request_body.complete":
            self.done = True


async def post_json(name: str, target: Endpoint, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` POSTed to the engine ``name`` at ``url``, and its JSON answer."""
    try:
        try:
            resp = await client().post(url, json=body, headers=target.headers)
        except httpx.TransportError as exc:
            if not stale_connection(exc):
                raise
            # a pooled connection the engine closed as it was reused: nothing was read, send again
            resp = await client().post(url, json=body, headers=target.headers)
    except httpx.TransportError as exc:
        raise _unanswered(name, target, exc) from exc
    if resp.status_code != 200:
        raise engine_error(name, resp.status_code, resp.content[:2000])
    answer: dict[str, Any] = resp.json()
    return answer


@contextlib.asynccontextmanager
async def _answered(url: str, target: Endpoint, body: dict[str, Any],
                    sent: _Sent) -> AsyncIterator[tuple[int, AsyncIterator[bytes], Callable[[], Awaitable[bytes]],
                                                        Callable[[int], None] | None]]:
    """``body`` POSTed to ``url``: the answer's status, its body as it arrives, a read of it whole, and
    the reader's pace (:meth:`.loopback.EngineReply.pace`; None: the body is read as it arrives).
    Our own engine (it has a watch) is spoken to by :func:`.loopback.open_answer` directly, without
    httpx's client (its cookies, auth and redirect steps, and three layers a chunk); any other through
    httpx's keep-alive pool (a connection a request widened the window in which a killed engine had read
    a request its journal never saw: docs/local-platform.md, the chaos bench)."""
    if target.watch is None:
        async with client().stream("POST", url, json=body, headers=target.headers,
                                   extensions={"trace": sent.trace}) as resp:
            if resp.status_code == 200 and _whole_json(resp.headers.get("content-type")):
                yield resp.status_code, as_event(await resp.aread()), resp.aread, None
            else:
                yield resp.status_code, resp.aiter_raw(), resp.aread, None
        return
    interval = target.stream_interval
    if interval > 0 and target.engine_paces:
        body, interval = {**body, **pace_fields(interval)}, 0.0  # the engine paces: the reader takes each chunk
    request = httpx.Request("POST", url, json=body, headers=target.headers,  # encoded as httpx's client would
                            extensions={"timeout": _TIMEOUT.as_dict(), "trace": sent.trace})
    answer = await open_answer(request, interval)
    try:
        yield answer.status, answer.chunks(), answer.read, answer.pace  # (unpaced where the interval is 0)
    finally:
        answer.close()


def _whole_json(content_type: str | None) -> bool:
    """An answer sent whole as JSON (an engine that does not stream, whatever ``stream`` asked)."""
    return (content_type or "").split(";")[0].strip().lower() == "application/json"


async def as_event(raw: bytes) -> AsyncIterator[bytes]:
    """An engine's whole JSON answer (``chat.completion`` or ``text_completion``) as the one SSE event a
    stream of it would end with: its text (a chat choice's ``message`` read as its ``delta``), tool
    calls, logprobs, finish reason and usage. Read as a stream, such an answer had no event: its text
    and the tokens the engine billed for it were lost (a batch's usage read 0)."""
    try:
        answer = fastjson.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise EngineUnavailable(f"the engine answered JSON that is no completion: {raw[:200]!r}")
    choices = [{**{k: v for k, v in c.items() if k != "message"}, "delta": c["message"]}
               if isinstance(c, dict) and isinstance(c.get("message"), dict) else c
               for c in answer.get("choices") or ()]
    yield b"data: " + fastjson.dumps({**answer, "choices": choices}) + b"\n\n"


async def stream(name: str, target: Endpoint, path: str, body: dict[str, Any],
                 beat: Callable[[], None] | None = None) -> AsyncIterator[Delta]:
    """``body`` POSTed to ``path`` of the engine ``name``, its SSE answer as Deltas; ``beat()`` is
    called on each chunk of progress (a token, or llama-server's ``prompt_progress``)."""
    native = path in NATIVE_PATHS
    root = target.base_url.rstrip("/")
    url = (root.removesuffix("/v1") if native else root) + path
    had = False  # a first sending's body went out and the engine then hung up: it may have read it
    for attempt in (1, 2):
        answered = False
        sent = _Sent()
        try:
            async with _answered(url, target, body, sent) as (status, chunks, read, pace):
                answered = True
                if status != 200:
                    raise engine_error(name, status, (await read())[:2000])
                async for delta in deltas(chunks, chat=path == "/chat/completions", beat=beat, model=name,
                                          pace=pace, native=native):
                    yield delta
            return
        except httpx.TransportError as exc:
            if attempt == 1 and not answered and stale_connection(exc):
                # most often a pooled keep-alive connection that the engine closed as it was
                # reused; nothing was answered, so the request goes once more on a new connection.
                # But an engine that read the whole request and died before answering ends the
                # connection the same way (a clean close: what it had not read would reset it):
                # if the resend then finds no engine, that first sending was the dying engine's
                had = sent.done and isinstance(exc, httpx.RemoteProtocolError)
                log.debug("%s: engine connection closed before answering; resending once", name)
                continue
            reached_it = answered or sent.done or (had and isinstance(exc, httpx.ConnectError))
            raise _unanswered(name, target, exc, answered=answered, reached=reached_it) from exc


def engine_error(name: str, status: int, raw: bytes) -> Exception:
    """The engine's error answer as the platform's exception (a context overflow, a schema it
    cannot compile, or the engine unavailable)."""
    try:
        err = json.loads(raw).get("error") or {}
        message = str(err.get("message") or err) if isinstance(err, dict) else str(err)
        kind = str(err.get("type", "")) if isinstance(err, dict) else ""
    except (ValueError, AttributeError):
        message, kind = raw.decode("utf-8", "replace"), ""
    if "context" in kind or "context" in message.lower():
        return PromptTooLong(f"{name}: {message}")
    if status == 400 and ("schema" in message.lower() or "grammar" in message.lower()):
        return SchemaNotCompiled(f"{name}: the engine could not compile the JSON schema into a grammar: {message}")
    return EngineUnavailable(f"{name}: the engine answered HTTP {status}: {message}")


class _Usage:
    """What an answer's chunks said of its usage: cumulative counts, the last one wins."""

    __slots__ = ("accepted", "cached", "completion", "drafted", "prompt")

    def __init__(self) -> None:
        self.prompt = self.completion = self.cached = self.drafted = self.accepted = 0

    def read(self, data: dict[str, Any]) -> None:
        usage = data.get("usage") or {}
        if usage:
            self.prompt = int(usage.get("prompt_tokens") or self.prompt)
            self.completion = int(usage.get("completion_tokens") or self.completion)
            details = usage.get("prompt_tokens_details") or {}
            self.cached = int(details.get("cached_tokens") or self.cached)
        timings = data.get("timings") or {}
        if timings.get("predicted_n"):  # the tokens so far (a chunk of held tokens carries it: pace_fields)
            self.completion = max(self.completion, int(timings["predicted_n"]))
        if not self.cached and timings.get("cache_n"):  # llama-server's own count of reused prompt tokens
            self.cached = int(timings["cache_n"])
        if timings.get("draft_n"):  # speculative decoding: tokens drafted, and accepted by the model
            self.drafted, self.accepted = int(timings["draft_n"]), int(timings.get("draft_n_accepted") or 0)


def _chunk(payload: bytes) -> dict[str, Any] | None:
    """An event's JSON object (bytes that are not UTF-8 read with U+FFFD in their place); None for
    ``[DONE]`` and anything else."""
    if payload == b"[DONE]":
        return None
    try:
        data = fastjson.loads(payload)
    except ValueError:
        try:
            data = json.loads(payload.decode("utf-8", "replace"))
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


class _Reading:
    """An engine's SSE answer read so far: its tokens, finish reason and usage."""

    __slots__ = ("beat", "chat", "events", "finish", "native", "pieces", "used")

    def __init__(self, chat: bool, beat: Callable[[], None] | None, native: bool = False) -> None:
        self.chat, self.beat, self.native = chat, beat, native
        self.events = DataEvents()
        self.finish: str | None = None
        self.pieces = 0  # tokens (events with text, a tool-call fragment or logprobs)
        self.used = _Usage()

    def feed(self, raw: bytes) -> list[Delta]:
        """The Deltas of one piece of the body: the text of its tokens joined into one, each tool-call
        fragment and token with logprobs one of its own."""
        out: list[Delta] = []
        text: list[str] = []
        for payload in self.events.feed(raw):
            data = _chunk(payload)
            if data is None:
                continue
            if self.beat is not None and ("choices" in data or "prompt_progress" in data or "content" in data):
                self.beat()
            self.used.read(data)
            if self.native:
                self._native(data, text)
            for choice in data.get("choices") or ():
                self._choice(choice, text, out)
        if text:
            out.append(self._text(text))
        return out

    def _choice(self, choice: dict[str, Any], text: list[str], out: list[Delta]) -> None:
        delta = choice.get("delta") or {}
        piece = delta.get("content") if self.chat else choice.get("text")
        fragments = delta.get("tool_calls") if self.chat else None
        logprobs = (choice.get("logprobs") or {}).get("content")  # llama-server's, on either endpoint
        if fragments or logprobs:
            if text:
                out.append(self._text(text))
                text.clear()
            self.pieces += 1
            out.append(Delta(piece or "", None, self.used.prompt, max(self.used.completion, self.pieces),
                             tool_calls=fragments or None, logprobs=logprobs or None))
        elif piece:
            self.pieces += 1
            text.append(piece)
        self.finish = choice.get("finish_reason") or self.finish

    def _native(self, data: dict[str, Any], text: list[str]) -> None:
        """llama-server's own chunk: its ``content``; the last one (``stop``) says why it ended and the counts."""
        piece = data.get("content")
        if isinstance(piece, str) and piece:
            self.pieces += 1
            text.append(piece)
        if data.get("stop"):
            self.finish = _NATIVE_STOP.get(str(data.get("stop_type") or ""), self.finish)
            self.used.prompt = int(data.get("tokens_evaluated") or self.used.prompt)
            self.used.completion = int(data.get("tokens_predicted") or self.used.completion)

    def _text(self, text: list[str]) -> Delta:
        return Delta("".join(text), None, self.used.prompt, max(self.used.completion, self.pieces))


async def deltas(body: AsyncIterator[bytes], *, chat: bool, beat: Callable[[], None] | None = None,
                 model: str | None = None, pace: Callable[[int], None] | None = None,
                 native: bool = False) -> AsyncIterator[Delta]:
    """The engine's SSE answer (``body``, as it arrives) as Deltas; the last one carries the finish reason and usage.
    The text of the tokens read together (one piece of ``body``) goes on as one Delta, and ``pace(n)`` is
    called once it has, ``n`` the tokens so far (the body's reader then holds what comes next for a
    while: :func:`_answered`); tool-call fragments and tokens with logprobs go on one event a Delta.
    ``beat()`` is called on each chunk that shows progress (prompt read, or tokens); the draft tokens of
    speculative decoding are counted for ``model`` (:func:`.calls.count_drafts`); ``native``: the stream is
    llama-server's own (:data:`NATIVE_PATHS`)."""
    reading = _Reading(chat, beat, native)
    async for raw in body:
        handed = reading.feed(raw)
        for delta in handed:
            yield delta
        if handed and pace is not None:
            pace(reading.pieces)
    used = reading.used
    if used.drafted and model is not None:
        calls.count_drafts(model, used.drafted, used.accepted)
    yield Delta("", _FINISH.get(reading.finish or "", FINISH_NORMAL), used.prompt, used.completion or reading.pieces,
                cached_tokens=used.cached)
