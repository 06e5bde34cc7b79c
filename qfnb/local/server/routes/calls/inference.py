"""Inference routes: OAuth, v1 chat/completions/embeddings/text2image/plugin, v2 chat.

Engines are async (:mod:`qfnb.local.engines.gate`): each admits a bounded number of requests
and refuses the rest at once (the platform's QPS error, HTTP 429 on v2), every answer streams
from the engine, and a client that goes away cancels its generation.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.convert import qianfan_v1
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records.meter import current_note
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.ask import BATCH, ChatAsk, TextAsk
from qfnb.local.engines.base import CannotServe, PromptTooLong, text_turns
from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.hf import text2image
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.local.server.middleware.auth import authenticator
from qfnb.local.server.routes.calls import rerank
from qfnb.local.server.serving.failures import failure_response
from qfnb.local.server.serving.lane import lane_of
from qfnb.local.server.serving.offload import offload
from qfnb.local.server.serving.serve import ClientGone, chat_engine, embed, serve
from qfnb.local.server.serving.wire import VectorsJSON, json_body, now, parse, response_id, v1_error, vector_rows
from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.platform.daemon import MODEL_HEADER
from qfnb.protocol.wires.qianfan.inference import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    PackedEmbeddingRequest,
    PluginRequest,
    Text2ImageRequest,
)
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

log = logging.getLogger("qfnb.local.inference")

# ---- v1 ------------------------------------------------------------------------------------

#: the v1 API types whose calls are model calls (counted in /metrics); the tokenizer is not
_MODEL_CALLS = frozenset({"chat", "completions", "embeddings", "reranker"})


async def v1_inference(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    if (failure := authenticator(request).check_inference(request)) is not None:
        return failure
    api_type, endpoint = request.path_params["api_type"], request.path_params["endpoint"]
    if (note := current_note()) is not None and api_type in _MODEL_CALLS:
        note.model_call = True  # counted in /metrics, refused or not
    lane = lane_of(request)
    try:
        return await _v1_route(request, platform, api_type, endpoint, await json_body(request), lane)
    except (BodyError, ProtocolError, text2image.Unavailable, PromptTooLong, EngineBusy, CannotServe) as exc:
        return _v1_refusal(exc)
    except EngineUnavailable as exc:
        log.warning("%s", exc)
        _failed_as(503)
        return v1_error(ErrorCode.SERVER_HIGH_LOAD, f"the model engine is unavailable, retry shortly: {exc}")
    except ClientGone:
        log.info("client left /%s/%s before its answer: generation cancelled", api_type, endpoint)
        return Response(status_code=499)
    except Exception as exc:
        log.exception("inference on /%s/%s failed", api_type, endpoint)
        _failed_as(500)
        return failure_response(request.url.path, exc, platform.settings.data_dir)


def _failed_as(status: int) -> None:
    """A v1 error (answered with HTTP 200, its ``error_code`` in the body: the platform's wire) is
    counted in ``/metrics`` and traced with the HTTP status it stands for, as the OpenAI routes
    answer it: not as an answered call."""
    if (note := current_note()) is not None:
        note.failed = status


async def _v1_route(request: Request, platform: Platform, api_type: str, endpoint: str,
                    body: dict[str, Any], lane: str) -> Response:
    rid, created, stream = response_id(), now(), bool(body.get("stream"))
    if api_type == "chat":
        ask = qianfan_v1.chat_ask(parse(ChatRequest, body), endpoint, lane)
        return await serve(request, platform, ask, qianfan_v1.V1Render("chat.completion", stream, rid, created))
    if api_type == "completions":
        text = qianfan_v1.text_ask(parse(CompletionRequest, body), endpoint, lane)
        return await serve(request, platform, text, qianfan_v1.V1Render("completion", stream, rid, created))
    if api_type == "embeddings":
        return await _embeddings(platform, endpoint, body, lane)
    if api_type == "text2image":
        parse(Text2ImageRequest, body)
        draw = text2image.drawer(platform.registry, endpoint, platform.settings.text2image_model_dir)
        return JSONResponse(await offload(draw, body))
    if api_type == "plugin":
        parse(PluginRequest, body)
        raise BodyError("endpoint", f"API name not exist: no plugin is deployed at /plugin/{endpoint}/ on the local "
                        "platform (plugins are a cloud feature)", ErrorCode.API_NAME_NOT_EXIST)
    if api_type == "tokenizer":
        return await _tokenizer(platform, body)
    if api_type == "reranker":
        ranked = await rerank.rerank(platform, body, endpoint)
        return JSONResponse({"id": response_id(), "object": "reranker_list", "created": now(), **ranked},
                            headers={MODEL_HEADER: ranked["model"]})
    raise BodyError("endpoint", f"API name not exist: the local platform has no {api_type} model "
                    f"(no local weights for it); {api_type} needs the cloud platform (set "
                    "QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY)", ErrorCode.API_NAME_NOT_EXIST)


def _v1_refusal(exc: Exception) -> Response:
    """The v1 error answer for a request refused before or while its engine ran."""
    if isinstance(exc, BodyError | ProtocolError):
        _failed_as(404 if exc.code == ErrorCode.API_NAME_NOT_EXIST else 400)
        return v1_error(exc.code, str(exc))
    if isinstance(exc, EngineBusy):
        _failed_as(429)
        response = v1_error(ErrorCode.QPS_LIMIT_REACHED, f"Open api qps request limit reached: {exc}")
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response
    if isinstance(exc, text2image.Unavailable):
        _failed_as(404)
        return v1_error(ErrorCode.API_NAME_NOT_EXIST, str(exc))
    _failed_as(400)
    if isinstance(exc, PromptTooLong):
        return v1_error(ErrorCode.INVALID_PARAM, f"messages: {exc}")
    return v1_error(ErrorCode.INVALID_PARAM, f"functions: {exc}")  # the engine's refusal (a base model and tools)


#: the fields of ``/tokenizer/erniebot``: the platform's ``prompt`` and ``model``, and qfnb's ``messages``
_TOKENIZER_FIELDS = ("prompt", "messages", "model")


async def _tokenizer(platform: Platform, body: dict[str, Any]) -> Response:
    """``/tokenizer/erniebot``: ``prompt``'s tokens counted by ``model``'s own tokenizer; or, with
    ``messages`` (chat turns) instead, the prompt tokens a chat call of those turns takes (the
    model's template included), which a forecast needs."""
    unknown = sorted(set(body) - set(_TOKENIZER_FIELDS))
    if unknown:
        raise BodyError(unknown[0], f"unknown field; the tokenizer takes {', '.join(_TOKENIZER_FIELDS)}")
    prompt, messages, name = body.get("prompt"), body.get("messages"), body.get("model")
    if not isinstance(name, str) or not name.strip():
        raise BodyError("model", "must name the chat model whose tokenizer counts")
    if (prompt is None) == (messages is None):
        raise BodyError("prompt", "give prompt (a text) or messages (chat turns), one of them")
    model, engine = await chat_engine(platform, "chat", name)
    ask: TextAsk | ChatAsk
    if messages is not None:
        if not isinstance(messages, list) or not messages:
            raise BodyError("messages", "must be a non-empty list of {role, content} turns")
        try:
            turns = text_turns(messages)
        except (ValueError, AttributeError) as exc:
            raise BodyError("messages", str(exc)) from None
        ask = ChatAsk(model=model.name, messages=tuple(turns))
    else:
        if not isinstance(prompt, str) or not prompt:
            raise BodyError("prompt", "must be a non-empty string")
        ask = TextAsk(model=model.name, prompt=prompt)
    try:
        count = await engine.count_tokens(ask)
    except CannotServe as exc:
        raise BodyError("model", str(exc)) from None
    return JSONResponse({"id": response_id(), "object": "tokenizer", "created": now(),
                         "usage": {"prompt_tokens": count, "total_tokens": count}},
                        headers={MODEL_HEADER: model.name})


async def _embeddings(platform: Platform, endpoint: str, body: dict[str, Any], lane: str) -> Response:
    """v1 embeddings: the cloud's 16 texts a call, or up to 2048 from a qfnb batch (its lane), which
    packs its calls' texts into one (``Embedding().batch_do`` against this platform)."""
    req = parse(PackedEmbeddingRequest if lane == BATCH else EmbeddingRequest, body)
    model, vectors, tokens = await embed(platform, endpoint, req.input)
    data = [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vector_rows(vectors))]
    return VectorsJSON({"id": response_id(), "object": "embedding_list", "created": now(), "data": data,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                       headers={MODEL_HEADER: model.name})


def routes() -> list[Route]:
    return [
        Route(MODEL_API_PREFIX + "/{api_type}/{endpoint:path}", v1_inference, methods=["POST"]),
    ]
