"""OpenAI's Responses API at ``/v1/responses`` and ``/v2/responses`` (Qianfan v2's name):
create (a string or a list of items, ``instructions``, ``store``, ``previous_response_id``,
``stream`` with semantic events, function tools, ``text.format``), retrieve, delete,
``input_items`` and cancel; and (a platform addition) a list of stored responses by metadata.
A request is read into its model (:class:`~qfnb.protocol.wires.responses.request.ResponsesRequest`) and
converted, over the stored conversation, straight to the engine's ask
(:func:`~qfnb.local.convert.responses.responses_ask`) and served by the one flow (:func:`~.serve.serve`); the
finished response is stored in the platform's SQLite before the answer's last byte is sent.

A chain's turns carry one cache key (``prompt_cache_key``, else the first response's id) to the
engine, which keeps the conversation on the slot that holds its prefix, so a follow-up prefills
only its new input; ``usage.input_tokens_details.cached_tokens`` says how many it did not.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from qfnb.local.convert.responses import ResponsesRender, responses_ask
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records import responses as stored
from qfnb.local.domain.state.values import NotFound
from qfnb.local.server.middleware import openai_errors
from qfnb.local.server.middleware.openai_errors import openai_route
from qfnb.local.server.serving import model_choice
from qfnb.local.server.serving.serve import serve
from qfnb.local.server.serving.wire import now, parse
from qfnb.protocol.wires.chat.openai_wire import drop_nulls
from qfnb.protocol.wires.chat.turn import new_id
from qfnb.protocol.wires.responses.answer import RESPONSE_PREFIX, list_page, with_ids
from qfnb.protocol.wires.responses.request import ResponsesRequest

PREFIXES = ("/v1", "/v2")

#: responses being answered now (id -> cancelled?), for ``cancel``
_running: dict[str, bool] = {}
_running_lock = threading.Lock()


async def _create(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
    choice = model_choice.choose(platform, body)  # no model named: the tool model for tools (model_choice)
    req = parse(ResponsesRequest, choice.body)
    data = drop_nulls(choice.body)  # as the client sent it: the response object echoes it
    try:
        history, key = await run_in_threadpool(_conversation, platform, req.previous_response_id)
    except NotFound as exc:
        return openai_errors.openai_error(400, str(exc), param="previous_response_id",
                                          code="previous_response_not_found")
    rid = new_id(RESPONSE_PREFIX)
    key = req.prompt_cache_key or key or rid
    ask = responses_ask(req, history, lane, key)
    items = with_ids([item.model_dump(by_alias=True, exclude_none=True) for item in req.items()])

    def keep(response: dict[str, Any]) -> None:
        with _running_lock:
            _running.pop(rid, None)
        if req.store:
            stored.save(platform.store, response, items, instructions=req.instructions, cache_key=key)

    with _running_lock:
        _running[rid] = False
    render = ResponsesRender(rid, data, now(), keep, stream=req.stream, cancelled=lambda: _running.get(rid, False))
    response: Response | None = None
    try:
        response = await serve(request, platform, ask, render, headers=lambda served: choice.headers(served.name))
        if isinstance(response, StreamingResponse):  # forgotten when the stream ends, or its client leaves
            response.body_iterator = _forgetting(rid, response.body_iterator)
        return response
    finally:
        if not isinstance(response, StreamingResponse):
            _forget(rid)


def _forget(rid: str) -> None:
    """``rid`` is no longer being answered (it is stored, or it never will be): not cancellable."""
    with _running_lock:
        _running.pop(rid, None)


async def _forgetting(rid: str, body: AsyncIterable[Any]) -> AsyncIterator[Any]:
    try:
        async for chunk in body:
            yield chunk
    finally:
        _forget(rid)


def _conversation(platform: Platform, previous: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """The stored conversation ``previous`` ends (its items, oldest first) and its cache key."""
    if previous is None:
        return [], None
    return stored.history(platform.store, previous), stored.get(platform.store, previous).get("cache_key")


async def _list(request: Request) -> Response:
    """``GET /responses?metadata[KEY]=VALUE…``: the stored responses whose metadata holds every pair
    (a platform addition: OpenAI lists none), as a page of OpenAI's list shape."""
    platform: Platform = request.app.state.platform
    if (failure := openai_errors.bearer_refusal(request)) is not None:
        return failure
    query = request.query_params
    wanted = openai_errors.metadata_query(query, ("after", "limit", "order"))
    if isinstance(wanted, Response):
        return wanted
    page = openai_errors.page_args(query)
    if isinstance(page, Response):
        return page
    if not wanted:
        return openai_errors.openai_error(400, "name at least one metadata[KEY]=VALUE to list stored responses by",
                                          param="metadata")
    return JSONResponse(await run_in_threadpool(functools.partial(stored.listed, platform.store, wanted, **page)))


async def _one(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    if (failure := openai_errors.bearer_refusal(request)) is not None:
        return failure
    rid = request.path_params["response_id"]
    try:
        if request.method == "DELETE":
            return JSONResponse(await run_in_threadpool(stored.delete, platform.store, rid))
        if request.url.path.endswith("/cancel"):
            with _running_lock:
                running = rid in _running
                if running:
                    _running[rid] = True
            if not running:
                stored.get(platform.store, rid)  # 404 when unknown
                return openai_errors.openai_error(400, f"Response {rid!r} is not in progress: only a response being "
                                                  "answered can be cancelled", param="response_id")
            return JSONResponse({"id": rid, "object": "response", "status": "cancelled"})
        record = await run_in_threadpool(stored.get, platform.store, rid)
    except NotFound as exc:
        return openai_errors.openai_error(404, str(exc), param="response_id", code="not_found")
    if request.url.path.endswith("/input_items"):
        page = openai_errors.page_args(request.query_params)
        return page if isinstance(page, Response) else JSONResponse(list_page(record["input_items"], **page))
    return JSONResponse(record["response"])


create = openai_route(_create)


def routes() -> list[Route]:
    return [route for base in (prefix + "/responses" for prefix in PREFIXES) for route in (
        Route(base, create, methods=["POST"]), Route(base, _list, methods=["GET"]),
        Route(base + "/{response_id}", _one, methods=["GET", "DELETE"]),
        Route(base + "/{response_id}/input_items", _one, methods=["GET"]),
        Route(base + "/{response_id}/cancel", _one, methods=["POST"]))]
