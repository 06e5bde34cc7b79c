"""Idempotent model calls: a retry reuses the work its first attempt started.

A model call carrying an ``Idempotency-Key`` header (qfnb's client sends one per logical call, the
same on each of its retries; the openai/anthropic SDKs send theirs when asked to) runs once per key
and caller. :class:`Idempotent` (ASGI middleware, outermost) runs the call in a task of its own,
which goes on when the client's connection drops, and keeps every message of its answer:

* a retry while that task still works attaches to it: it hears what was sent so far (a stream's
  events, the heartbeats) and then the rest, as it comes;
* a retry after it finished gets the stored answer; no engine is called, nothing counted again
  (the call's metrics and ledger row are the first attempt's, recorded when its answer ended);
* the same key with another body (or route) is refused, 422 naming the key;
* a failed answer (an HTTP error, or an error in the body) is not kept: a retry runs again.

Keys are kept per credential (the bearer token, the access token or the IAM access key as sent: a
key never reaches another caller's answer), for ``ttl`` seconds after the answer ended, at most
``max_calls`` of them and ``max_bytes`` of answers (the oldest finished go first). A call nobody
listens to for ``grace`` seconds (the client left and did not retry) is cancelled; a caller that
stops its call on purpose cancels it at once with ``DELETE /qfnb/calls/{key}`` (:func:`routes`), and
``GET /qfnb/calls/{key}`` says what the call is doing: its phase, its seconds loading, queued and
generating, its tokens so far (:mod:`qfnb.local.engines.call_state.progress`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.engines.call_state import progress
from qfnb.local.engines.call_state.progress import CallProgress
from qfnb.local.server.middleware.guard import declared_length
from qfnb.local.server.middleware.heartbeat import credential_verifies, is_model_call, read_body, replayed
from qfnb.local.server.middleware.openai_errors import openai_error
from qfnb.local.server.serving import failures
from qfnb.local.server.serving.wire import v1_error, v2_chat_error
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.limits import MAX_BODY_BYTES
from qfnb.protocol.wires.qianfan.routes import (
    CALLS_ROUTE,
    IDEMPOTENCY_HEADER,
    MAX_IDEMPOTENCY_KEY_CHARS,
    MODEL_API_PREFIX,
    REUSED_HEADER,
)

__all__ = ["IDEMPOTENCY_HEADER", "REUSED_HEADER", "Calls", "Idempotent", "caller_of", "routes"]

log = logging.getLogger("qfnb.local.inference")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: the longest key accepted
MAX_KEY_CHARS = MAX_IDEMPOTENCY_KEY_CHARS
_KEY_NAME = IDEMPOTENCY_HEADER.lower().encode()
_REUSED_NAME = REUSED_HEADER.lower().encode()


class _Work:
    """One keyed call: its task, what it sent so far, who listens."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.progress = CallProgress()
        self.messages: list[Message] = []
        self.size = 0
        self.done = False
        self.ended = 0.0
        self.listeners = 0
        self.task: asyncio.Task[None] | None = None
        self._news = asyncio.Event()
        self._abandon: asyncio.TimerHandle | None = None
        self.forget: Callable[[], None] = lambda: None  # drops it from its table

    async def keep(self, message: Message) -> None:
        """The inner app's ``send``: the message kept, the listeners woken."""
        self.messages.append(message)
        self.size += len(message.get("body", b""))
        self._news.set()
        self._news = asyncio.Event()

    def finish(self) -> None:
        self.done, self.ended = True, time.monotonic()
        self._news.set()
        if self._abandon is not None:
            self._abandon.cancel()

    @property
    def failed(self) -> bool:
        """Whether the answer was an error (a retry should run again, not get it back)."""
        start = next((m for m in self.messages if m["type"] == "http.response.start"), None)
        if start is None or int(start["status"]) >= 400:
            return True
        if any(m["type"] == "http.response.body" and not m.get("more_body", False) for m in self.messages):
            return _error_body(b"".join(m.get("body", b"") for m in self.messages if m["type"] ==
                                        "http.response.body"))
        return True  # the app returned before its answer's end

    async def follow(self, send: Send, receive: Receive, reused: str | None, grace: float) -> None:
        """Sends every message, kept and to come, until the answer ends or the client leaves."""
        self.listeners += 1
        if self._abandon is not None:
            self._abandon.cancel()
            self._abandon = None
        gone = asyncio.ensure_future(_disconnect(receive))
        try:
            sent = 0
            while True:
                news = self._news
                while sent < len(self.messages):
                    message = self.messages[sent]
                    if sent == 0 and reused is not None and message["type"] == "http.response.start":
                        message = {**message, "headers": [*message.get("headers", ()),
                                                          (_REUSED_NAME, reused.encode())]}
                    sent += 1
                    try:
                        await send(message)
                    except Exception:  # the connection is gone (the server says so on send)
                        return
                if self.done:
                    return
                waiting = asyncio.ensure_future(news.wait())
                await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if gone.done():
                    log.info("a client left a keyed call; its work goes on for a retry (%g s without one)", grace)
                    return
        finally:
            gone.cancel()
            self.listeners -= 1
            if self.listeners == 0 and not self.done and self.task is not None:
                self._abandon = asyncio.get_running_loop().call_later(grace, self._give_up)

    def _give_up(self) -> None:
        if self.listeners == 0 and not self.done:
            log.info("nobody came back for a keyed call: cancelled")
            self.cancel()

    def cancel(self) -> None:
        """Stops the call's work now (its engine request is cancelled as on a client's disconnect)."""
        if self.task is not None and not self.done:
            self.forget()  # a late retry runs again rather than attach to a call being cancelled
            self.task.cancel()


class Calls:
    """The table of keyed calls, per credential: bounded in count, bytes and age."""

    def __init__(self, *, ttl: float = 600.0, max_calls: int = 512, max_bytes: int = 64 << 20,
                 grace: float = 30.0) -> None:
        self.ttl, self.max_calls, self.max_bytes, self.grace = ttl, max_calls, max_bytes, grace
        self._calls: OrderedDict[tuple[str, str], _Work] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, owner: str, key: str) -> _Work | None:
        self._expire()
        return self._calls.get((owner, key))

    def start(self, owner: str, key: str, digest: str, path: str,
              run: Callable[[Receive, Send], Awaitable[None]], body: bytes) -> _Work | None:
        """A new keyed call, its task started; None when the table is full of calls still working."""
        self._expire()
        if len(self._calls) >= self.max_calls and not self._evict_one():
            return None
        work = _Work(digest)
        self._calls[(owner, key)] = work
        work.forget = lambda: self._drop((owner, key), work)
        work.task = asyncio.ensure_future(self._run((owner, key), path, work, run, body))
        return work

    async def _run(self, name: tuple[str, str], path: str, work: _Work,
                   run: Callable[[Receive, Send], Awaitable[None]], body: bytes) -> None:
        progress.bind(work.progress)  # this task's own context: the engines mark its phases

        async def never_gone() -> Message:  # the call goes on whoever listens; cancelling ends it
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        try:
            await run(replayed(body, never_gone), work.keep)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.exception("a keyed call to %r failed", path)
            if not work.messages:
                await _answer(failures.failure_response(path, exc), work.keep)
        finally:
            work.finish()
            failed = work.failed
            work.progress.end(failed=failed)
            if failed:
                self._drop(name, work)
            self._fit()

    def withdraw(self, owner: str, key: str) -> str | None:
        """Cancels ``owner``'s call under ``key``: ``cancelled``, ``finished`` (nothing to do) or None
        (no such call of this owner's)."""
        work = self.get(owner, key)
        if work is None:
            return None
        if work.done:
            return "finished"
        log.info("a keyed call was withdrawn by its caller: cancelled")
        work.cancel()
        return "cancelled"

    def _drop(self, name: tuple[str, str], work: _Work) -> None:
        if self._calls.get(name) is work:
            del self._calls[name]

    def close(self) -> None:
        """Cancels the calls still working (the platform stops)."""
        for work in self._calls.values():
            if work.task is not None and not work.task.done():
                work.task.cancel()
        self._calls.clear()

    def _expire(self) -> None:
        now = time.monotonic()
        for name, work in list(self._calls.items()):
            if work.done and now - work.ended > self.ttl:
                del self._calls[name]

    def _evict_one(self) -> bool:
        for name, work in self._calls.items():
            if work.done:
                del self._calls[name]
                return True
        return False

    def _fit(self) -> None:
        while sum(w.size for w in self._calls.values() if w.done) > self.max_bytes and self._evict_one():
            pass


class Idempotent:
    """ASGI middleware: model calls with an ``Idempotency-Key`` run once per key and caller."""

    def __init__(self, app: Any, calls: Calls | None = None) -> None:
        self.app, self.calls = app, calls if calls is not None else Calls()

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        key = _key_of(scope) if scope["type"] == "http" and is_model_call(scope["method"], scope["path"]) else None
        length = declared_length(scope) if key is not None else None
        if key is None or length is None or length > MAX_BODY_BYTES or self.calls.grace <= 0:
            await self.app(scope, receive, send)  # not keyed (or no bounded body): as it comes
            return
        path = str(scope["path"])
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            await _answer(_refusal(path, 400, f"the {IDEMPOTENCY_HEADER} header must be 1 to "
                                   f"{MAX_KEY_CHARS} printable characters"), send)
            return
        owner = caller_of(scope)
        if owner is None or not credential_verifies(scope):
            # no credential that verifies: as it comes (the route refuses it), the table and the body unread
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return  # the client left before its body arrived
        digest = hashlib.sha256(b"\n".join([scope["method"].encode(), path.encode(), _query(scope), body])).hexdigest()
        work = self.calls.get(owner, key)
        if work is not None and work.digest != digest:
            await _answer(_refusal(path, 422, f"{IDEMPOTENCY_HEADER} {key!r} was used for another request "
                                   "(a different body or route); a retry sends the same request, a new call "
                                   "a new key"), send)
            return
        reused: str | None = None
        if work is not None:  # the credential verified above: a kept answer goes to no expired or unknown one
            reused = "stored" if work.done else "attached"
            log.info("a retry of a keyed call: %s", reused)
        else:
            work = self.calls.start(owner, key, digest, path, lambda r, s: self.app(scope, r, s), body)
            if work is None:  # the table is full of calls still working: this one as it comes
                await self.app(scope, replayed(body, receive), send)
                return
        await work.follow(send, receive, reused, self.calls.grace)


def routes(calls: Calls) -> list[Route]:
    """``DELETE /qfnb/calls/{key}``: the caller stops its keyed call; ``GET``: what the call is doing
    (:mod:`qfnb.protocol.wires.local.call_progress`). A key is found only under the credential that sent it;
    another's answers 404, as an unknown key does."""

    async def one_call(request: Request) -> Response:
        key = request.path_params["key"]
        if (refused := _refused(request)) is not None:
            return refused
        owner = caller_of(request.scope) or ""
        if request.method == "DELETE":
            state = calls.withdraw(owner, key)
            found = None if state is None else {"state": state}
        else:
            work = calls.get(owner, key)
            found = None if work is None else work.progress.snapshot()
        return _unknown(key) if found is None else JSONResponse({"key": key, **found})

    return [Route(CALLS_ROUTE + "/{key}", one_call, methods=["GET", "DELETE"])]


def _refused(request: Request) -> Response | None:
    """401 for a request to the keyed-calls route without a credential."""
    return None if request.app.state.auth.allows_any_model_call(request) else openai_error(
        401, "the keyed-calls route needs the credential the call was sent with (an access token, a signature, "
        "a bearer token or x-api-key)")


def _unknown(key: str) -> Response:
    shown = repr(key) if len(key) <= MAX_KEY_CHARS else f"{key[:32]!r}… ({len(key)} characters, longer than any key)"
    return openai_error(404, f"no call under {IDEMPOTENCY_HEADER} {shown} from this caller (it may "
                        "have ended and been forgotten)", param=IDEMPOTENCY_HEADER, code="unknown_key")


def _key_of(scope: Any) -> str | None:
    return next((str(v.decode("latin-1").strip()) for k, v in scope.get("headers") or () if k == _KEY_NAME), None)


def caller_of(scope: Any) -> str | None:
    """Whose call it is: a digest of the credential as sent, the whole of it (a token), or an IAM
    signature's access key once the signature verifies with its secret (None: it does not; the key
    id alone, public in every signed request, owns nothing)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
    authorization = headers.get("authorization", "")
    if authorization.startswith("bce-auth-v1/"):
        signer = Request(scope).app.state.auth.signed_by(Request(scope))
        if signer is None:
            return None
        credential = "iam:" + signer
    elif authorization:
        credential = "bearer:" + authorization.partition(" ")[2].strip()
    elif headers.get("x-api-key"):
        credential = "bearer:" + headers["x-api-key"].strip()
    else:
        credential = "token:" + Request(scope).query_params.get("access_token", "")
    return hashlib.sha256(credential.encode()).hexdigest()


def _query(scope: Any) -> bytes:
    """The query string without the credential (a refreshed access token is the same request)."""
    query = Request(scope).query_params
    return "&".join(f"{k}={v}" for k, v in sorted(query.multi_items()) if k != "access_token").encode()


def _error_body(body: bytes) -> bool:
    """Whether a whole answer's JSON, or a stream's last event, is an error."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith(("data:", "event:", ":")):
        events = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = next((e for e in reversed(events) if e and e != "[DONE]"), "")
        if "event: error" in body.decode("utf-8", "replace"):
            return True
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        return False
    return isinstance(parsed, dict) and bool(parsed.get("error_code") or parsed.get("error")
                                             or parsed.get("type") in ("error", "response.failed"))


def _refusal(path: str, status: int, message: str) -> JSONResponse:
    """A refusal in the format of the route at ``path``."""
    if path.startswith(MODEL_API_PREFIX):
        return v1_error(ErrorCode.INVALID_PARAM, message)
    if path.startswith("/v1/messages"):
        return JSONResponse({"type": "error", "error": {"type": "invalid_request_error", "message": message}},
                            status_code=status)
    if path.startswith("/v2/chat"):
        return v2_chat_error(status, "invalid_argument", message)
    return openai_error(status, message, param=IDEMPOTENCY_HEADER, code="idempotency_key_reused"
                        if status == 422 else "invalid_value")


async def _answer(response: Response, send: Send) -> None:
    """Sends a whole response through ``send``, with no request behind it."""
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": bytes(response.body)})


async def _disconnect(receive: Receive) -> None:
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
