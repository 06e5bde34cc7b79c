"""Inference routes: OAuth, v1 chat/completions/embeddings/text2image/plugin, v2 chat.

Engines are async (:mod:`qfnb.local.engines.gate`): each admits a bounded number of requests
and refuses the rest at once (the platform's QPS error, HTTP 429 on v2), every answer streams
from the engine, and a client that goes away cancels its generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.values import BodyError
from qfnb.local.engines import lanes, text2image
from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.gate import AsyncChat, EngineBusy, as_async_chat, as_async_embedder
from qfnb.local.engines.llama_server import EngineUnavailable
from qfnb.local.server import rerank, routes_tokens
from qfnb.local.server.answers import Tally, merge_tool_calls, stream_error_event, tool_calls_of, v1_finish
from qfnb.local.server.auth import authenticator
from qfnb.local.server.failures import failure_response
from qfnb.local.server.offload import engine_endpoint, offload
from qfnb.local.server.wire import json_body, now, parse, response_id, v1_error
from qfnb.protocol.daemon import MODEL_HEADER
from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.inference import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    PluginRequest,
    Text2ImageRequest,
    check_v1_chat_fields,
    v1_schema,
)
from qfnb.protocol.routes import MODEL_API_PREFIX
from qfnb.protocol.sse import encode_event
from qfnb.protocol.tools import functions_as_tools, v1_function_call, v1_history_as_openai

log = logging.getLogger("qfnb.local.inference")

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "penalty_score", "max_output_tokens", "stop", "seed")
PRIORITY_HEADER = "x-qfnb-priority"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


def _params(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in SAMPLING_KEYS if body.get(k) is not None}


async def chat_engine(platform: Platform, model: Any) -> AsyncChat:
    platform.note_loading(model)
    return as_async_chat(await offload(platform.registry.chat, engine_endpoint(model)))


def mark_priority(request: Request) -> None:
    """The engines' lane for this request: ``X-Qfnb-Priority: batch`` marks batch traffic."""
    batch = request.headers.get(PRIORITY_HEADER, "").strip().lower() == lanes.BATCH
    lanes.priority.set(lanes.BATCH if batch else lanes.INTERACTIVE)


class ClientGone(Exception):
    """The client disconnected before its (non-streaming) answer was ready."""


def busy_v1(exc: EngineBusy) -> Response:
    response = v1_error(ErrorCode.QPS_LIMIT_REACHED, f"Open api qps request limit reached: {exc}")
    response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response


# ---- v1 ------------------------------------------------------------------------------------


async def v1_inference(request: Request) -> Response:
    platform = _platform(request)
    failure = authenticator(request).check_inference(request)
    if failure is not None:
        return failure
    api_type, endpoint = request.path_params["api_type"], request.path_params["endpoint"]
    mark_priority(request)
    try:
        return await _v1_route(request, platform, api_type, endpoint, await json_body(request))
    except (BodyError, text2image.Unavailable, PromptTooLong, EngineBusy) as exc:
        return _v1_refusal(exc)
    except EngineUnavailable as exc:
        log.warning("%s", exc)
        return v1_error(ErrorCode.SERVER_HIGH_LOAD, f"the model engine is unavailable, retry shortly: {exc}")
    except ClientGone:
        log.info("client left /%s/%s before its answer: generation cancelled", api_type, endpoint)
        return Response(status_code=499)
    except Exception as exc:
        log.exception("inference on /%s/%s failed", api_type, endpoint)
        return failure_response(request.url.path, exc, platform.settings.data_dir)


async def _v1_route(request: Request, platform: Platform, api_type: str, endpoint: str,
                    body: dict[str, Any]) -> Response:
    if api_type == "chat":
        return await _chat(request, platform, endpoint, body)
    if api_type == "completions":
        return await _completion(request, platform, endpoint, body)
    if api_type == "embeddings":
        return await _embeddings(platform, endpoint, body)
    if api_type == "text2image":
        parse(Text2ImageRequest, body)
        draw = text2image.drawer(platform.registry, endpoint, platform.settings.text2image_model_dir)
        return JSONResponse(await offload(draw, body))
    if api_type == "plugin":
        return await _plugin(platform, endpoint, body)
    if api_type == "reranker":
        return JSONResponse({"id": response_id(), "object": "reranker_list", "created": now(),
                             **await rerank.rerank(platform, body, endpoint)})
    raise BodyError("endpoint", f"API name not exist: the local platform has no {api_type} model "
                    f"(no local weights for it); {api_type} needs the cloud platform (set "
                    "QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY)", ErrorCode.API_NAME_NOT_EXIST)


def _v1_refusal(exc: Exception) -> Response:
    """The v1 error answer for a request refused before or while its engine ran."""
    if isinstance(exc, BodyError):
        return v1_error(exc.code, str(exc))
    if isinstance(exc, PromptTooLong):
        return v1_error(ErrorCode.INVALID_PARAM, f"messages: {exc}")
    if isinstance(exc, EngineBusy):
        return busy_v1(exc)
    return v1_error(ErrorCode.API_NAME_NOT_EXIST, str(exc))  # text2image.Unavailable


async def _chat(request: Request, platform: Platform, endpoint: str, body: dict[str, Any]) -> Response:
    req = parse(ChatRequest, body)
    try:
        check_v1_chat_fields(body)
    except ProtocolError as exc:
        raise BodyError(exc.field, str(exc).split(": ", 1)[-1], exc.code) from exc
    model = await offload(platform.resolve, "chat", endpoint)
    engine = await chat_engine(platform, model)
    fields = v1_fields(body)
    if not fields and not any(m.get("function_call") or m["role"] == "function" for m in req.messages):
        deltas = engine.achat(req.messages, system=req.system, params=_params(body))
        return await _v1_answer(request, deltas, "chat.completion", req.stream, model.name)
    ask = getattr(engine, "achat_fields", None)
    if ask is None or ("tools" in fields and not getattr(engine, "can_call_tools", True)):
        raise BodyError("functions" if "tools" in fields else "response_format",
                        f"{model.name} cannot call functions or follow a response format: it is a base model "
                        "without a chat template (use an instruct model such as Qwen2.5-Coder-0.5B-Instruct)")
    system = [{"role": "system", "content": req.system}] if req.system else []
    try:
        deltas = ask([*system, *v1_history_as_openai(req.messages)], params=_params(body), fields=fields)
    except ValueError as exc:  # the engine's own refusal
        raise BodyError("functions", str(exc)) from exc
    return await _v1_answer(request, deltas, "chat.completion", req.stream, model.name)


def force_named_tool(fields: dict[str, Any], choice: Any) -> None:
    """A named ``tool_choice`` offers that one tool in ``fields["tools"]`` and requires its call (what
    the engine can force)."""
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        fields["tools"] = [t for t in fields["tools"] if t["function"]["name"] == name]
        fields["tool_choice"] = "required"


def v1_fields(body: dict[str, Any]) -> dict[str, Any]:
    """v1's ``functions``, ``tool_choice`` and ``response_format`` as the engine's OpenAI fields
    (a named ``tool_choice`` offers that one function and requires its call)."""
    fields: dict[str, Any] = {}
    if body.get("functions"):
        fields["tools"] = functions_as_tools(body["functions"])
        force_named_tool(fields, body.get("tool_choice"))
    schema = v1_schema(body.get("response_format"))
    if schema is not None:
        fields["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    for key in ("frequency_penalty", "presence_penalty"):
        if body.get(key) is not None:
            fields[key] = body[key]
    return fields


async def _completion(request: Request, platform: Platform, endpoint: str, body: dict[str, Any]) -> Response:
    req = parse(CompletionRequest, body)
    model = await offload(platform.resolve, "completions", endpoint)
    engine = await chat_engine(platform, model)
    deltas = engine.acomplete(req.prompt, params=_params(body))
    return await _v1_answer(request, deltas, "completion", req.stream, model.name)


async def _plugin(platform: Platform, endpoint: str, body: dict[str, Any]) -> Response:
    parse(PluginRequest, body)
    raise BodyError("endpoint", f"API name not exist: no plugin is deployed at /plugin/{endpoint}/ on the local "
                    "platform (plugins are a cloud feature)", ErrorCode.API_NAME_NOT_EXIST)


async def _embeddings(platform: Platform, endpoint: str, body: dict[str, Any]) -> Response:
    req = parse(EmbeddingRequest, body)
    model = await offload(platform.resolve, "embeddings", endpoint)
    platform.note_loading(model)
    embedder = as_async_embedder(await offload(platform.registry.embedder, engine_endpoint(model)))
    vectors, tokens = await embedder.aembed(req.input)
    data = [{"object": "embedding", "embedding": list(v), "index": i} for i, v in enumerate(vectors)]
    return JSONResponse({"id": response_id(), "object": "embedding_list", "created": now(), "data": data,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                        headers={MODEL_HEADER: model.name})


async def aclose(deltas: AsyncIterator[Any]) -> None:
    """Close an async generator early (runs its cleanup: the engine request is cancelled)."""
    close = getattr(deltas, "aclose", None)
    if close is not None:
        await close()


async def primed_stream(deltas: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Pull the first delta before the response is committed, so a failure at the start (a busy
    engine, a prompt too long, an engine that will not start) is a JSON error, not a cut stream."""
    try:
        first = await anext(deltas)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await aclose(deltas)
        raise

    async def chained() -> AsyncIterator[Any]:
        try:
            if first is not None:
                yield first
                async for delta in deltas:
                    yield delta
        finally:
            await aclose(deltas)

    return chained()


async def collect(request: Request, deltas: AsyncIterator[Any]) -> list[Any]:
    """Every delta of a non-streaming answer; raises :class:`ClientGone` (and cancels the
    generation) as soon as the client disconnects."""

    async def consume() -> list[Any]:
        try:
            return [d async for d in deltas]
        finally:
            await aclose(deltas)

    task = asyncio.ensure_future(consume())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise ClientGone
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _v1_answer(request: Request, answer: AsyncIterator[Any], obj: str, stream: bool, model: str) -> Response:
    """The v1 answer (one body or its event stream), naming the ``model`` that served it in ``MODEL_HEADER``."""
    rid, created = response_id(), now()
    if not stream:
        deltas = await collect(request, answer)
        tally = Tally(deltas)
        body = {"id": rid, "object": obj, "created": created, "result": "".join(d.text for d in deltas),
                "is_truncated": tally.finish == "length", "need_clear_history": False,
                "finish_reason": v1_finish(tally.finish), "usage": tally.usage()}
        calls = tool_calls_of(deltas)
        if calls:  # ERNIE's function calling: the call instead of a result
            body.update(result="", function_call=v1_function_call(calls), finish_reason="function_call")
        return JSONResponse(body, headers={MODEL_HEADER: model})
    stream_deltas = await primed_stream(answer)
    return StreamingResponse(_v1_events(stream_deltas, rid, obj, created), media_type="text/event-stream",
                             headers={**SSE_HEADERS, MODEL_HEADER: model})


async def _v1_events(deltas: AsyncIterator[Any], rid: str, obj: str, created: int) -> AsyncIterator[bytes]:
    """v1 SSE: one ``data:`` chunk per delta, ``sentence_id`` counting up, ``is_end`` on the last."""
    tally = Tally()
    pending: Any = None
    sentence = 0
    calls: list[Any] = []

    def chunk(delta: Any, end: bool) -> bytes:
        body: dict[str, Any] = {"id": rid, "object": obj, "created": created, "sentence_id": sentence,
                                "is_end": end, "is_truncated": False, "result": delta.text if delta else "",
                                "need_clear_history": False, "usage": tally.usage()}
        if end:
            body["finish_reason"] = v1_finish(tally.finish)
            body["is_truncated"] = tally.finish == "length"  # the answer hit max_output_tokens
            if calls:
                body.update(function_call=v1_function_call(calls), finish_reason="function_call")
        return encode_event(body)

    try:
        async for delta in deltas:
            tally.add(delta)
            fragments = getattr(delta, "tool_calls", None)  # engines without tools have no such field
            if fragments:
                merge_tool_calls(calls, fragments)
            if pending is not None:
                yield chunk(pending, False)
                sentence += 1
            pending = delta
        yield chunk(pending, True)
    except Exception:
        log.exception("stream failed")
        yield stream_error_event(v2=False)


# ---- v2 errors (the chat routes themselves are in routes_openai) --------------------------------


def v2_chat_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "type": code}, "id": response_id()},
                        status_code=status)


def routes() -> list[Route]:
    return [
        *routes_tokens.routes(),
        Route(MODEL_API_PREFIX + "/{api_type}/{endpoint:path}", v1_inference, methods=["POST"]),
    ]
