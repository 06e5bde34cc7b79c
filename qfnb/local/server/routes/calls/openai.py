"""The OpenAI API on the local platform, at both ``/v1`` and ``/v2``: chat completions (tools,
structured output, ``n`` choices, logprobs), completions, embeddings, rerank and models; files and
batches are served by :mod:`..platform.batch` under the same two prefixes.

One ``OpenAI(base_url="http://127.0.0.1:<port>/v1", api_key=<bearer token>)`` (or ``…/v2``) does
all of it. The OpenAI routes take OpenAI's fields and ranges (``temperature`` 0 is greedy); any
field they cannot honour is refused with a 400 naming it. A chat with ``store: true`` is kept
(:mod:`.chat_store` reads it back); a field accepted but not acted on for the model that
answered (``metadata`` without ``store``, ``reasoning_effort`` for a model that does not reason...)
is named in the ``X-Qfnb-Ignored-Fields`` header.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.convert import openai_chat
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records import chat_completions
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.api import ServedLike
from qfnb.local.server.middleware.openai_errors import openai_route
from qfnb.local.server.routes.calls import rerank
from qfnb.local.server.serving import model_choice
from qfnb.local.server.serving.serve import embed, serve
from qfnb.local.server.serving.wire import VectorsJSON, now, parse, response_id, vector_rows
from qfnb.protocol.platform.daemon import MODEL_HEADER
from qfnb.protocol.wires.chat.openai_wire import IGNORED_FIELDS_HEADER, check_encoding, drop_nulls, encode_vector
from qfnb.protocol.wires.openai.requests import OpenAIChatRequest, OpenAICompletionRequest, OpenAIEmbeddingRequest

PREFIXES = ("/v1", "/v2")


async def _chat(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    choice = model_choice.choose(platform, body)  # no model named: the tool model for tools (model_choice)
    req = parse(OpenAIChatRequest, choice.body)
    asked = req.model_dump(exclude_none=True)

    def keep(completion: dict[str, Any]) -> None:
        chat_completions.save(platform.store, completion, asked)

    def headers(served: ServedLike) -> dict[str, str]:
        fields = openai_chat.ignored_fields(req, served)
        return {**choice.headers(served.name), **({IGNORED_FIELDS_HEADER: ", ".join(fields)} if fields else {})}

    render = openai_chat.ChatRender(req.model, req.stream, response_id(chat_completions.PREFIX), now(),
                                    logprobs=bool(req.logprobs),
                                    include_usage=bool((req.stream_options or {}).get("include_usage")),
                                    tier=req.service_tier is not None, keep=keep if req.store else None)
    return await serve(request, platform, openai_chat.chat_ask(req, lane), render, headers=headers)


async def _completions(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    req = parse(OpenAICompletionRequest, drop_nulls(body))
    render = openai_chat.CompletionRender(str(req.model), response_id("cmpl-"), now(), stream=req.stream,
                                          include_usage=bool((req.stream_options or {}).get("include_usage")))
    return await serve(request, platform, openai_chat.text_ask(req, lane), render)


async def _embeddings(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    body = drop_nulls(body)
    for key in body:
        if key not in ("model", "input", "encoding_format", "user"):
            raise BodyError(key, "is not supported by the local platform's embeddings API (supported: model, "
                            "input, encoding_format 'float' or 'base64', user)")
    encoding = check_encoding(body.get("encoding_format"))
    texts = body.get("input")
    req = parse(OpenAIEmbeddingRequest, {"input": [texts] if isinstance(texts, str) else texts})
    model, vectors, tokens = await embed(platform, str(body.get("model")), req.input)
    data = [{"object": "embedding", "embedding": v if encoding == "float" else encode_vector(v, encoding), "index": i}
            for i, v in enumerate(vector_rows(vectors))]
    return VectorsJSON({"object": "list", "data": data, "model": model.name,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                       headers={MODEL_HEADER: model.name})


async def _rerank(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    ranked = await rerank.rerank(platform, body)
    return JSONResponse({"id": response_id(), "object": "rerank_list", "created": now(), **ranked},
                        headers={MODEL_HEADER: ranked["model"]})


chat, completions = openai_route(_chat), openai_route(_completions)
embeddings, reranking = openai_route(_embeddings), openai_route(_rerank)


def routes() -> list[Route]:
    return [route for prefix in PREFIXES for route in (
        Route(prefix + "/chat/completions", chat, methods=["POST"]),
        Route(prefix + "/completions", completions, methods=["POST"]),
        Route(prefix + "/embeddings", embeddings, methods=["POST"]),
        Route(prefix + "/rerankers", reranking, methods=["POST"]),
        Route(prefix + "/rerank", reranking, methods=["POST"]))]

