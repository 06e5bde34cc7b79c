"""The OpenAI API on the local platform, at both ``/v1`` and ``/v2``: chat completions (tools,
structured output, ``n`` choices, logprobs), completions, embeddings, rerank and models; files and
batches are served by :mod:`.routes_batch` under the same two prefixes.

One ``OpenAI(base_url="http://127.0.0.1:<port>/v1", api_key=<bearer token>)`` (or ``…/v2``) does
all of it. The OpenAI routes take OpenAI's fields and ranges (``temperature`` 0 is greedy); any
field they cannot honour is refused with a 400 naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.convert import openai_chat
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.values import BodyError
from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.llama_server import EngineUnavailable
from qfnb.local.server import openai_errors, rerank
from qfnb.local.server.auth import authenticator
from qfnb.local.server.lane import lane_of
from qfnb.local.server.offload import offload
from qfnb.local.server.serve import ClientGone, serve
from qfnb.local.server.wire import json_body, now, parse, response_id
from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.inference import EmbeddingRequest, OpenAIChatRequest, OpenAICompletionRequest
from qfnb.protocol.openai_wire import check_encoding, drop_nulls, encode_vector

log = logging.getLogger("qfnb.local.inference")

PREFIXES = ("/v1", "/v2")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    """OpenAI's error object (:mod:`.openai_errors`), with the answer's ``id``."""
    return openai_errors.openai_error(status, message, param=param, code=code, request_id=response_id())


def _platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


Handler = Callable[[Request, Platform, dict[str, Any], str], Awaitable[Response]]


def openai_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route of the OpenAI API: bearer auth, the request's lane, its JSON body, and every
    refusal in OpenAI's error shape (see :func:`refusal`)."""

    async def route(request: Request) -> Response:
        problem = authenticator(request).check_bearer(request)
        if problem is not None:
            return openai_error(401, "invalid_iam_token", problem)  # the cloud v2 code (clients re-mint on it)
        lane = lane_of(request)
        try:
            return await handler(request, _platform(request), await json_body(request), lane)
        except (BodyError, ProtocolError, PromptTooLong, EngineBusy, EngineUnavailable, ValueError) as exc:
            return refusal(exc)
        except ClientGone:
            log.info("client left %s before its answer: generation cancelled", request.url.path)
            return Response(status_code=499)

    return route


def refusal(exc: Exception) -> Response:
    """400 naming the field, 404 for an unknown model, 429 busy (with Retry-After), 503 engine down."""
    if isinstance(exc, BodyError | ProtocolError):
        if exc.code == ErrorCode.API_NAME_NOT_EXIST:
            return openai_error(404, "model_not_found", str(exc), "model")
        return openai_error(400, "invalid_argument", str(exc), exc.field)
    if isinstance(exc, PromptTooLong):
        return openai_error(400, "context_length_exceeded", f"messages: {exc}", "messages")
    if isinstance(exc, EngineBusy):
        response = openai_error(429, "rate_limit_exceeded", f"Rate limit reached: {exc}")
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response
    if isinstance(exc, EngineUnavailable):
        log.warning("%s", exc)
        return openai_error(503, "service_unavailable", f"the model engine is unavailable, retry shortly: {exc}")
    return openai_error(400, "invalid_argument", str(exc))  # an engine's refusal (a base model asked for tools)


async def _chat(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    req = parse(OpenAIChatRequest, body)
    render = openai_chat.ChatRender(req.model, req.stream, response_id("chatcmpl-"), now(), logprobs=bool(req.logprobs),
                                    include_usage=bool((req.stream_options or {}).get("include_usage")))
    return await serve(request, platform, openai_chat.chat_ask(req, lane), render)


async def _completions(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    req = parse(OpenAICompletionRequest, drop_nulls(body))
    render = openai_chat.CompletionRender(str(req.model), response_id("cmpl-"), now())
    return await serve(request, platform, openai_chat.text_ask(req, lane), render)


async def _embeddings(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    body = drop_nulls(body)
    for key in body:
        if key not in ("model", "input", "encoding_format", "user"):
            raise BodyError(key, "is not supported by the local platform's embeddings API (supported: model, "
                            "input, encoding_format 'float' or 'base64', user)")
    encoding = check_encoding(body.get("encoding_format"))
    texts = body.get("input")
    req = parse(EmbeddingRequest, {"input": [texts] if isinstance(texts, str) else texts})
    model = await offload(platform.resolve, "embeddings", str(body.get("model")))
    platform.note_loading(model)
    embedder = await offload(platform.registry.embedder, platform.engine_endpoint(model))
    vectors, tokens = await embedder.aembed(req.input)
    data = [{"object": "embedding", "embedding": encode_vector(v, encoding), "index": i} for i, v in enumerate(vectors)]
    return JSONResponse({"object": "list", "data": data, "model": model.name,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def _rerank(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    return JSONResponse({"id": response_id(), "object": "rerank_list", "created": now(),
                         **await rerank.rerank(platform, body)})


chat, completions = openai_route(_chat), openai_route(_completions)
embeddings, reranking = openai_route(_embeddings), openai_route(_rerank)


def routes() -> list[Route]:
    out = []
    for prefix in PREFIXES:
        out += [Route(prefix + "/chat/completions", chat, methods=["POST"]),
                Route(prefix + "/completions", completions, methods=["POST"]),
                Route(prefix + "/embeddings", embeddings, methods=["POST"]),
                Route(prefix + "/rerankers", reranking, methods=["POST"]),
                Route(prefix + "/rerank", reranking, methods=["POST"])]
    return out

