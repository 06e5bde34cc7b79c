"""The daemon's guards: a request from a foreign ``Host``/``Origin`` (:class:`LoopbackOnly`), a web page's
request to a platform served on a network address (:class:`NoWebPages`), or a body over its cap
(:class:`BodyLimit`) is refused before any route runs; :func:`host_guard` picks the first two by address.

:class:`LoopbackOnly` applies the check ``qfnb openai``/``qfnb proxy`` run
(:func:`qfnb.protocol.platform.netguard.request_problem`): a ``Host`` that is not a loopback name is DNS
rebinding (an attacker's name resolving to 127.0.0.1), an ``Origin`` that is not one is a web page
calling the daemon from the user's browser; both are answered 403, whatever key they carry.

The body-size guard:

A declared ``Content-Length`` over the cap is answered at once, without reading a byte of the
body; a chunked (or understated) body is counted as it arrives and reading stops at the cap.
The refusal is in the route's own error format (the same whether the size was declared or
counted), and the server drains what the client still sends, so a keep-alive connection stays
usable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse, Response

from qfnb.local.domain.state.values import BodyError
from qfnb.local.server.middleware.openai_errors import openai_error
from qfnb.local.server.serving.wire import bce_error, v1_data_error, v1_error, v2_chat_error, v2_error
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.limits import MAX_BODY_BYTES, MAX_UPLOAD_BYTES
from qfnb.protocol.platform.netguard import is_loopback, request_problem
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX, OAUTH_TOKEN

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

UPLOAD_PREFIX = "/bos/"
#: OpenAI-style file uploads (batch input files) get the upload cap too
UPLOAD_PATHS = ("/v1/files", "/v2/files")
#: routes that answer OpenAI's error object
OPENAI_PATHS = ("/v1/files", "/v1/batches", "/v2/files", "/v2/batches")


class BodyTooLarge(BodyError):
    """Raised from ``receive`` once a body passes its cap; routes answer it as any BodyError."""

    def __init__(self, limit: int) -> None:
        super().__init__("body", f"is larger than {limit} bytes, the limit for this route")
        self.limit = limit


def body_limit(path: str) -> int:
    """The cap for a request to ``path``: uploads get :data:`MAX_UPLOAD_BYTES`, JSON routes the body cap."""
    return MAX_UPLOAD_BYTES if path.startswith(UPLOAD_PREFIX) or path in UPLOAD_PATHS else MAX_BODY_BYTES


def too_large(path: str, limit: int) -> Response:
    """The refusal of an oversize body in the format of the route at ``path``."""
    message = f"body: is larger than {limit} bytes, the limit for this route"
    if path.startswith(UPLOAD_PREFIX):
        return bce_error(400, "EntityTooLarge", f"objects are limited to {limit} bytes here")
    if path.startswith(OPENAI_PATHS):
        return openai_error(413, message, param="file" if path in UPLOAD_PATHS else None, code="request_too_large")
    if path.startswith(OAUTH_TOKEN):
        return JSONResponse({"error": "invalid_request", "error_description": message}, status_code=413)
    if path.startswith("/v2/chat"):
        return v2_chat_error(413, "invalid_argument", message)
    if path.startswith("/v2/"):
        return v2_error(413, "RequestEntityTooLarge", message)
    if path.startswith(MODEL_API_PREFIX):
        return v1_error(ErrorCode.INVALID_PARAM, message)
    if path.startswith("/wenxinworkshop/dataset/"):
        return v1_data_error(ErrorCode.INVALID_PARAM, message)
    if path.startswith("/wenxinworkshop/"):
        return v1_error(ErrorCode.INVALID_PARAM, message, inference=False)
    return v2_error(413, "RequestEntityTooLarge", message)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (None when absent or not a number)."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware applying :func:`body_limit` to every HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = body_limit(path)
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await too_large(path, limit)(scope, receive, send)
            return
        meter = _Meter(receive, send, limit)
        try:
            await self.app(scope, meter.receive, meter.send)
        except BodyTooLarge:
            if meter.started:
                raise
        if meter.overflowed and not meter.started:
            await too_large(path, limit)(scope, receive, send)


class _Meter:
    """``receive`` counting the body against ``limit`` (BodyTooLarge past it), and ``send``
    dropping the route's own answer to that overflow (the guard answers it once, in one format)."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive, self._send, self.limit = receive, send, limit
        self.seen, self.started, self.overflowed = 0, False, False

    async def receive(self) -> MutableMapping[str, Any]:
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.overflowed = True
                raise BodyTooLarge(self.limit)
        return message

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if self.overflowed and not self.started:
            return  # the route's own answer to the overflow: replaced by the one refusal
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)


class LoopbackOnly:
    """ASGI middleware: an HTTP request whose ``Host`` or ``Origin`` is not a loopback name is refused
    (403, the v2 error shape naming the header) before any route runs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
            problem = request_problem(headers.get("host"), headers.get("origin"))
            if problem:
                await v2_error(403, "ForbiddenHost", problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class NoWebPages:
    """ASGI middleware for a platform served on a network address: a request that carries an ``Origin`` (a
    web page in someone's browser sent it) is refused 403 before any route runs. Programs (the SDKs, a
    notebook's kernel, curl) send none. The platform answers no CORS preflight, so a page could only send what
    a browser sends unasked (a form's POST with a token in its query): that is refused too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = next((v.decode("latin-1") for k, v in scope.get("headers") or () if k.lower() == b"origin"), None)
            if origin is not None:
                await v2_error(403, "ForbiddenOrigin", f"Origin {origin[:200]!r} may not call this server: web pages "
                               "may not call a platform served on a network address")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_guard(app: Any, host: str) -> Any:
    """``app`` guarded for the address it is served on: :class:`LoopbackOnly` on a loopback address (DNS
    rebinding, web pages), :class:`NoWebPages` on a network one (its clients' Host names are not known)."""
    return LoopbackOnly(app) if is_loopback(host) else NoWebPages(app)
