"""Anthropic's Messages API at ``/v1/messages`` and ``/v1/messages/count_tokens``, so
``anthropic.Anthropic(base_url="http://127.0.0.1:<port>", api_key=<bearer token>)`` and Claude
Code-style tools (``ANTHROPIC_BASE_URL``, ``ANTHROPIC_AUTH_TOKEN``) work against the local
platform. The key comes as ``x-api-key`` or ``Authorization: Bearer``; every refusal is in
Anthropic's error shape. A request is read into its model (:mod:`qfnb.protocol.wires.anthropic.messages`),
converted straight to the engine's ask (:func:`~qfnb.local.convert.anthropic.messages_ask`) and
served by the one flow (:func:`~.serve.serve`)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.convert.anthropic import CountRender, MessagesRender, messages_ask
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.local.server.middleware.auth import authenticator
from qfnb.local.server.serving.serve import model_route, serve
from qfnb.local.server.serving.wire import parse
from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.wires.anthropic import messages as anthropic
from qfnb.protocol.wires.chat.turn import new_id

log = logging.getLogger("qfnb.local.inference")


def anthropic_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(anthropic.error_body(status, message), status_code=status)


def refusal(exc: Exception) -> Response:
    """400 naming the field, 404 an unknown model, 429 busy (with Retry-After), 529 engine down."""
    if isinstance(exc, BodyError | ProtocolError):
        if exc.code == ErrorCode.API_NAME_NOT_EXIST:
            return anthropic_error(404, str(exc))
        return anthropic_error(400, str(exc))
    if isinstance(exc, PromptTooLong):
        return anthropic_error(400, f"prompt is too long: {exc}")
    if isinstance(exc, EngineBusy):
        response = anthropic_error(429, f"Rate limit reached: {exc}")
        response.headers["retry-after"] = str(max(1, round(exc.retry_after)))
        return response
    if isinstance(exc, EngineUnavailable):
        log.warning("%s", exc)
        return anthropic_error(529, f"the model engine is unavailable, retry shortly: {exc}")
    return anthropic_error(400, str(exc))  # CannotServe, an engine's refusal


def _key_refusal(request: Request) -> Response | None:
    """Anthropic's ``x-api-key`` is the platform's bearer token, as ``Authorization: Bearer`` is."""
    problem = authenticator(request).check_api_key(request)
    return None if problem is None else anthropic_error(401, problem)


async def _messages(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    count = request.url.path.endswith("/count_tokens")
    if count:
        counted = parse(anthropic.CountRequest, body)
        return await serve(request, platform, messages_ask(counted, lane), CountRender(), counted=False)
    req = parse(anthropic.MessagesRequest, body)
    render = MessagesRender(req.model, new_id("msg_"), stream=req.stream,
                            stops=tuple(req.stop_sequences or ()))
    return await serve(request, platform, messages_ask(req, lane), render)


messages = model_route(_messages, _key_refusal, refusal)


def routes() -> list[Route]:
    return [Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", messages, methods=["POST"])]
