"""Heartbeats: the platform is never silent while it works on a model call.

A client's timeout counts silence between bytes (qfnb's transports read with a per-read timeout,
as httpx and the openai/anthropic SDKs do), so a call that waits in an engine's queue, for a model
to load, or for a long answer, must hear from the platform meanwhile. :class:`Heartbeat` wraps the
model routes (``POST`` to chat/completions/responses/messages, the answer scoring of
``/fine_tuning/answer_logprobs`` and Qianfan's v1 inference):

* while no answer has started after ``every`` seconds, it starts one itself (HTTP 200) and sends
  a heartbeat every ``every`` seconds: for a stream an SSE comment line (``: working 12 s``,
  which every SSE reader skips), for a whole answer a newline (JSON allows whitespace before a
  value, so ``json.loads`` and the SDKs read the body that follows as if it came alone);
* on a stream already under way, a comment line after ``every`` seconds without an event.

An answer that starts within ``every`` seconds is untouched. Once the platform has started the
answer, an error arrives in its body under HTTP 200: as it is (a JSON error body) for a whole
answer, as a ``data:`` line (``event: error`` on Anthropic's wire) for a stream — the way these
wires report an error mid-stream, which qfnb's client and the SDKs raise as the error it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from starlette.requests import Request

from qfnb.local.server.serving import failures
from qfnb.local.server.serving.wire import ANSWER_HEADERS, STREAM_FLAG
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

__all__ = ["HEARTBEAT_HEADER", "Heartbeat", "asks_model", "is_model_call", "read_body", "replayed"]

log = logging.getLogger("qfnb.local.inference")

#: the header of an answer the platform started itself: the seconds between its heartbeats
HEARTBEAT_HEADER = "x-qfnb-heartbeat"
_MODEL_ENDINGS = ("/chat/completions", "/completions", "/responses", "/messages",
                  "/fine_tuning/answer_logprobs")  # scoring given answers: a model call of many engine calls
#: POST routes that ask a model for numbers, not an answer (vectors, scores, a count): quick, no heartbeat
_MEASURE_ENDINGS = ("/embeddings", "/rerank", "/rerankers", "/count_tokens")


def is_model_call(method: str, path: str) -> bool:
    """Whether ``method path`` asks a model for an answer (the routes heartbeats cover)."""
    return method == "POST" and (path.startswith(MODEL_API_PREFIX + "/") or path.endswith(_MODEL_ENDINGS))


def asks_model(method: str, path: str) -> bool:
    """Whether ``method path`` is any model call: one for an answer (:func:`is_model_call`), or for vectors,
    scores or a token count."""
    return is_model_call(method, path) or (method == "POST" and path.endswith(_MEASURE_ENDINGS))


def _wants_stream(body: bytes) -> bool:
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return False  # the route refuses it (at once)
    return isinstance(parsed, dict) and parsed.get("stream") is True


class _Answer:
    """One call's side of the wire: what the route sends, and the heartbeats between."""

    def __init__(self, send: Any, scope: Any, body: bytes, *, anthropic: bool, every: float) -> None:
        self._send, self._scope, self._body, self.anthropic, self.every = send, scope, body, anthropic, every
        self._stream: bool | None = None
        self._lock = asyncio.Lock()
        self.began = time.monotonic()
        self.last = self.began
        self.ours = False  # the platform started the answer before the route did
        self.route_started = False
        self.failed: int | None = None  # the route's error status once ours had started
        self._error = bytearray()
        self._boundary = True  # what went out so far ends with a whole SSE event

    @property
    def stream(self) -> bool:
        """Whether the client asked for a stream: read only once the platform answers itself (a call
        slower than ``every`` s), from the flag the route left when it parsed the body, or from the
        body when the route has not parsed it yet; a call answered in time never parses it twice."""
        if self._stream is None:
            flag = self._scope.get(STREAM_FLAG)
            self._stream = flag if flag is not None else _wants_stream(self._body)
        return self._stream

    async def _out(self, message: dict[str, Any]) -> None:
        self.last = time.monotonic()
        await self._send(message)

    async def start(self) -> None:
        kind = "text/event-stream; charset=utf-8" if self.stream else "application/json"
        headers = [(b"content-type", kind.encode()), (HEARTBEAT_HEADER.encode(), f"{self.every:g}".encode())]
        if self.stream:
            headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        known = self._scope.get(ANSWER_HEADERS) or {}  # the model and its notice, when the route knows them
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in known.items()]
        await self._out({"type": "http.response.start", "status": 200, "headers": headers})
        self.ours = True

    async def beat(self) -> None:
        """A heartbeat when the wire has been silent ``every`` s (starting the answer if need be)."""
        async with self._lock:
            if time.monotonic() - self.last < self.every * 0.9:
                return
            if not self.route_started and not self.ours:
                await self.start()
            if self.stream and self._boundary and self.failed is None:
                waited = time.monotonic() - self.began
                await self._out({"type": "http.response.body", "body": f": working {waited:.0f} s\n\n".encode(),
                                 "more_body": True})
            elif not self.stream and not self.route_started:
                await self._out({"type": "http.response.body", "body": b"\n", "more_body": True})

    async def send(self, message: dict[str, Any]) -> None:
        """What the route sends, passed on (or, after ours started, fitted into it)."""
        async with self._lock:
            if message["type"] == "http.response.start":
                self.route_started = True
                if not self.ours:
                    await self._out(message)
                elif message["status"] >= 300:
                    self.failed = int(message["status"])
                return
            if message["type"] != "http.response.body":
                await self._out(message)
                return
            if self.failed is not None and self.stream:
                self._error += message.get("body", b"")
                if not message.get("more_body", False):
                    await self._out({"type": "http.response.body", "body": self._error_event(bytes(self._error))})
                return
            chunk = message.get("body", b"")
            if chunk:
                self._boundary = chunk.endswith((b"\n\n", b"\r\n\r\n"))
            await self._out(message)

    def _error_event(self, body: bytes) -> bytes:
        """A JSON error body as the stream's last event."""
        try:
            data = json.dumps(json.loads(body or b"{}"), ensure_ascii=False, separators=(",", ":"))
        except ValueError:
            data = json.dumps({"error": {"message": body.decode("utf-8", "replace")[:500], "code": self.failed}})
        return f"{'event: error' + chr(10) if self.anthropic else ''}data: {data}\n\n".encode()


class Heartbeat:
    """ASGI middleware: heartbeats on the model routes every ``every`` seconds (0: none)."""

    def __init__(self, app: Any, every: float = 10.0) -> None:
        self.app, self.every = app, every

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.every <= 0 or not is_model_call(scope["method"], scope["path"]) or \
                not credential_verifies(scope):
            await self.app(scope, receive, send)  # a credential that does not verify: refused, its body unread
            return
        read = await read_body(receive)
        body, replay = (b"", receive) if read is None else (read, replayed(read, receive))
        answer = _Answer(send, scope, body, anthropic=scope["path"].endswith("/messages"), every=self.every)
        task = asyncio.ensure_future(self.app(scope, replay, answer.send))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.every)
                if not task.done():
                    await answer.beat()
            task.result()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not answer.ours:
                raise  # CatchAll answers it in the route's error format
            log.exception("unhandled error on %s %r", scope.get("method"), scope.get("path"))
            await _fail(scope, exc, answer)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def credential_verifies(scope: Any) -> bool:
    """Whether a model call's credential verifies now (the app's authenticator; no app in the scope: left to
    the route), so a middleware reads no body for a caller the route will refuse."""
    app = scope.get("app")
    if app is None:
        return True
    return bool(app.state.auth.allows_model_call(Request(scope)))


async def _fail(scope: Any, exc: Exception, answer: _Answer) -> None:
    """The route failed after the platform started its answer: the error in the answer's body."""
    app = scope.get("app")
    data_dir = app.state.platform.settings.data_dir if app is not None else None
    response = failures.failure_response(str(scope.get("path", "")), exc, data_dir)
    answer.route_started = True
    answer.failed = response.status_code
    body = bytes(response.body)
    if answer.stream:
        body = answer._error_event(body)
    await answer._send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> bytes | None:
    """The request's whole body, or None when the client left before it arrived."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def replayed(body: bytes, receive: Any) -> Any:
    """A ``receive`` that gives ``body`` (read already) again, then waits for the disconnect."""
    given = False

    async def again() -> Any:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
