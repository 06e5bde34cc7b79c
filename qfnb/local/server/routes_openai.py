"""The OpenAI API on the local platform, at both ``/v1`` and ``/v2``: chat completions (tools,
structured output, ``n`` choices, logprobs), completions, embeddings, rerank and models; files and
batches are served by :mod:`.routes_batch` under the same two prefixes.

One ``OpenAI(base_url="http://127.0.0.1:<port>/v1", api_key=<bearer token>)`` (or ``…/v2``) does
all of it. The OpenAI routes take OpenAI's fields and ranges (``temperature`` 0 is greedy); any
field they cannot honour is refused with a 400 naming it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.values import BodyError
from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.gate import AsyncChat, EngineBusy, as_async_embedder
from qfnb.local.engines.llama_server import EngineUnavailable
from qfnb.local.server import openai_errors, rerank
from qfnb.local.server.answers import Tally, stream_error_event, tool_calls_of, v2_finish
from qfnb.local.server.auth import authenticator
from qfnb.local.server.offload import engine_endpoint, offload
from qfnb.local.server.routes_inference import (
    SSE_HEADERS,
    ClientGone,
    chat_engine,
    collect,
    force_named_tool,
    mark_priority,
    primed_stream,
)
from qfnb.local.server.wire import json_body, now, parse, response_id
from qfnb.protocol.daemon import MODEL_HEADER
from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.inference import CompletionRequest, EmbeddingRequest, OpenAIChatRequest, check_openai_chat
from qfnb.protocol.openai_wire import check_encoding, drop_nulls, encode_vector, text_messages
from qfnb.protocol.sse import DONE, encode_event

log = logging.getLogger("qfnb.local.inference")

PREFIXES = ("/v1", "/v2")
#: OpenAI fields handed to the engine as they are (see ``OpenAIChat.achat_fields``)
ENGINE_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "logprobs", "top_logprobs",
                 "frequency_penalty", "presence_penalty", "logit_bias")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    """OpenAI's error object (:mod:`.openai_errors`), with the answer's ``id``."""
    return openai_errors.openai_error(status, message, param=param, code=code, request_id=response_id())


def _platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


def chat_params(req: OpenAIChatRequest) -> dict[str, Any]:
    """The engine's sampling parameters from an OpenAI body (``temperature`` 0: greedy)."""
    stop = [req.stop] if isinstance(req.stop, str) else req.stop
    limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    params = {"temperature": req.temperature, "top_p": req.top_p, "top_k": req.top_k, "seed": req.seed,
              "penalty_score": req.penalty_score, "stop": stop, "max_output_tokens": limit}
    return {k: v for k, v in params.items() if v is not None}


def engine_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI fields of ``body`` that only an engine call with them can honour (a named
    ``tool_choice``: :func:`force_named_tool`)."""
    fields = {k: body[k] for k in ENGINE_FIELDS if body.get(k) is not None}
    if fields.get("response_format", {}).get("type") == "text":
        del fields["response_format"]
    force_named_tool(fields, fields.get("tool_choice"))
    if fields.get("logprobs") is False:
        fields.pop("logprobs")
        fields.pop("top_logprobs", None)
    return fields


def answers(engine: AsyncChat, messages: list[dict[str, Any]], params: dict[str, Any], fields: dict[str, Any],
            n: int) -> list[AsyncIterator[Any]]:
    """``n`` answers to one request (with a seed, choice ``i`` samples with ``seed + i``)."""
    if not fields and not any(m["role"] == "tool" or m.get("tool_calls") for m in messages):
        system = "\n".join(m["content"] for m in messages if m["role"] == "system") or None
        turns = [m for m in messages if m["role"] != "system"]
        return [engine.achat(turns, system=system, params=_nth(params, i)) for i in range(n)]
    ask = getattr(engine, "achat_fields", None)
    if ask is None:
        raise BodyError(next(iter(fields), "messages"), f"the engine of {engine.name} cannot serve "
                        f"{', '.join(fields) or 'tool turns'}")
    return [ask(messages, params=_nth(params, i), fields=fields) for i in range(n)]


def _nth(params: dict[str, Any], i: int) -> dict[str, Any]:
    return {**params, "seed": params["seed"] + i} if i and params.get("seed") is not None else params


def choice_of(index: int, deltas: list[Any], want_logprobs: bool) -> tuple[dict[str, Any], Tally]:
    """One non-streamed choice: content, assembled tool calls, logprobs, finish reason."""
    tally, calls = Tally(deltas), tool_calls_of(deltas)
    logprobs = [entry for d in deltas for entry in getattr(d, "logprobs", None) or ()]
    text = "".join(d.text for d in deltas)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else v2_finish(tally.finish)
    return ({"index": index, "message": message, "logprobs": {"content": logprobs} if want_logprobs else None,
             "finish_reason": finish}, tally)


Handler = Callable[[Request, Platform, dict[str, Any]], Awaitable[Response]]


def openai_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route of the OpenAI API: bearer auth, the request's lane, its JSON body, and every
    refusal in OpenAI's error shape (see :func:`refusal`)."""

    async def route(request: Request) -> Response:
        problem = authenticator(request).check_bearer(request)
        if problem is not None:
            return openai_error(401, "invalid_iam_token", problem)  # the cloud v2 code (clients re-mint on it)
        mark_priority(request)
        try:
            return await handler(request, _platform(request), await json_body(request))
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


async def _chat(request: Request, platform: Platform, body: dict[str, Any]) -> Response:
    req = parse(OpenAIChatRequest, body)
    messages = text_messages(req.messages)  # the models read text: a media part is refused here, by name
    model = await offload(platform.resolve, "chat", req.model)
    engine = await chat_engine(platform, model)
    fields = engine_fields(body)
    if "tools" in fields and not getattr(engine, "can_call_tools", True):
        raise BodyError("tools", f"{model.name} cannot call tools: it is a base model without a chat template "
                        "(use an instruct model such as Qwen2.5-Coder-0.5B-Instruct)")
    streams = answers(engine, messages, chat_params(req), fields, req.n)
    rid, created = response_id("chatcmpl-"), now()
    answered = req.model if req.model.lower() in (model.name.lower(), model.endpoint.lower()) else model.name
    want_logprobs = bool(req.logprobs)
    if req.stream:
        primed = [await primed_stream(s) for s in streams]
        include_usage = bool((req.stream_options or {}).get("include_usage"))
        return StreamingResponse(_events(primed, rid, answered, created, include_usage, want_logprobs),
                                 media_type="text/event-stream", headers={**SSE_HEADERS, MODEL_HEADER: model.name})
    (results,) = await collect(request, _together(streams))
    choices, usage = [], Tally()
    for i, deltas in enumerate(results):
        choice, tally = choice_of(i, deltas, want_logprobs)
        choices.append(choice)
        usage.prompt = max(usage.prompt, tally.prompt)
        usage.completion += tally.usage()["completion_tokens"]
    return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": answered,
                         "choices": choices, "usage": usage.usage()}, headers={MODEL_HEADER: model.name})


async def _together(streams: list[AsyncIterator[Any]]) -> AsyncIterator[list[Any]]:
    """Every stream collected concurrently: one item, the list of each stream's deltas."""
    async def one(s: AsyncIterator[Any]) -> list[Any]:
        return [d async for d in s]

    tasks = [asyncio.ensure_future(one(s)) for s in streams]
    try:
        yield list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _interleaved(streams: list[AsyncIterator[Any]]) -> AsyncIterator[tuple[int, Any]]:
    """``(choice index, delta)`` from every stream as they arrive."""
    queue: asyncio.Queue[tuple[int, Any, BaseException | None]] = asyncio.Queue()
    end = object()

    async def pump(i: int, s: AsyncIterator[Any]) -> None:
        try:
            async for d in s:
                await queue.put((i, d, None))
            await queue.put((i, end, None))
        except BaseException as exc:
            await queue.put((i, end, exc))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        left = len(tasks)
        while left:
            i, d, exc = await queue.get()
            if exc is not None:
                raise exc
            if d is end:
                left -= 1
                continue
            yield i, d
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _events(streams: list[AsyncIterator[Any]], rid: str, model: str, created: int, include_usage: bool,
                  want_logprobs: bool) -> AsyncIterator[bytes]:
    tallies = [Tally() for _ in streams]
    called = [False] * len(streams)
    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
    try:
        for i in range(len(streams)):
            yield encode_event({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                                     "logprobs": None, "finish_reason": None}]})
        async for i, delta in _interleaved(streams):
            tallies[i].add(delta)
            out: dict[str, Any] = {}
            if delta.text:
                out["content"] = delta.text
            fragments = getattr(delta, "tool_calls", None)  # engines without tools have no such field
            if fragments:
                out["tool_calls"] = fragments
                called[i] = True
            if out:
                logprobs = {"content": getattr(delta, "logprobs", None) or []} if want_logprobs else None
                yield encode_event({**base, "choices": [{"index": i, "delta": out, "logprobs": logprobs,
                                                         "finish_reason": None}]})
    except Exception:
        log.exception("stream failed")
        yield stream_error_event(v2=True)
        return
    for i, tally in enumerate(tallies):
        finish = "tool_calls" if called[i] else v2_finish(tally.finish)
        last: dict[str, Any] = {**base, "choices": [{"index": i, "delta": {}, "logprobs": None,
                                                     "finish_reason": finish}]}
        yield encode_event(last)
    if include_usage:  # a chunk of its own with no choices, as OpenAI sends it (where clients read it)
        usage = Tally()
        usage.prompt = max(t.prompt for t in tallies)
        usage.completion = sum(t.usage()["completion_tokens"] for t in tallies)
        yield encode_event({**base, "choices": [], "usage": usage.usage()})
    yield encode_event(DONE)


# ---- completions, embeddings, rerank -----------------------------------------------------------


#: the fields ``/completions`` takes (OpenAI's, less ``n``/``logprobs``/``echo``/``suffix``/``best_of``)
COMPLETION_FIELDS = ("model", "prompt", "stream", "temperature", "top_p", "max_tokens", "stop", "seed", "user",
                     "frequency_penalty", "presence_penalty")


async def _completions(request: Request, platform: Platform, body: dict[str, Any]) -> Response:
    body = drop_nulls(body)
    for key in body:
        if key not in COMPLETION_FIELDS:
            raise BodyError(key, f"is not supported by the local platform's completions API (supported: "
                            f"{', '.join(COMPLETION_FIELDS)}; for choices and logprobs use chat completions)")
    if body.get("stream"):
        raise BodyError("stream", "streamed answers are served on chat completions; send stream: false here")
    check_openai_chat({k: body[k] for k in ("temperature", "top_p", "seed", "stop", "frequency_penalty",
                                            "presence_penalty", "max_tokens") if body.get(k) is not None})
    stop = body.get("stop")
    params = {"stop": [stop] if isinstance(stop, str) else stop, "max_output_tokens": body.get("max_tokens"),
              "temperature": body.get("temperature"), "top_p": body.get("top_p"), "seed": body.get("seed")}
    req = parse(CompletionRequest, {"prompt": body.get("prompt")})
    model = await offload(platform.resolve, "completions", str(body.get("model")))
    engine = await chat_engine(platform, model)
    deltas = await collect(request, engine.acomplete(req.prompt, params={k: v for k, v in params.items()
                                                                         if v is not None}))
    tally = Tally(deltas)
    return JSONResponse({"id": response_id("cmpl-"), "object": "text_completion", "created": now(),
                         "model": str(body.get("model")),
                         "choices": [{"index": 0, "text": "".join(d.text for d in deltas), "logprobs": None,
                                      "finish_reason": v2_finish(tally.finish)}], "usage": tally.usage()})


async def _embeddings(request: Request, platform: Platform, body: dict[str, Any]) -> Response:
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
    embedder = as_async_embedder(await offload(platform.registry.embedder, engine_endpoint(model)))
    vectors, tokens = await embedder.aembed(req.input)
    data = [{"object": "embedding", "embedding": encode_vector(v, encoding), "index": i} for i, v in enumerate(vectors)]
    return JSONResponse({"object": "list", "data": data, "model": model.name,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def _rerank(request: Request, platform: Platform, body: dict[str, Any]) -> Response:
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

