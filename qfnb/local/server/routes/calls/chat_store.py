"""OpenAI's stored chat completions at ``/v1`` and ``/v2``: the chat completions created with
``store: true`` (:mod:`.openai` stores them), listed (``limit``, ``after``, ``order``,
``metadata[KEY]=VALUE``, ``model``), read back with their messages, their ``metadata`` updated,
and deleted, as the openai SDK's ``client.chat.completions.list/retrieve/update/delete`` and
``.messages.list`` call them.
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records import chat_completions as stored
from qfnb.local.domain.state.values import BodyError, NotFound
from qfnb.local.server.middleware import openai_errors
from qfnb.local.server.serving.wire import json_body
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.chat.openai_wire import check_metadata
from qfnb.protocol.wires.responses.answer import list_page

PREFIXES = ("/v1", "/v2")
#: OpenAI's default order of both lists (oldest first)
ORDER = "asc"


async def _list(request: Request) -> Response:
    """``GET /chat/completions``: a page of the stored completions (every filter must hold)."""
    if (failure := openai_errors.bearer_refusal(request)) is not None:
        return failure
    platform: Platform = request.app.state.platform
    query = request.query_params
    wanted = openai_errors.metadata_query(query, ("after", "limit", "model", "order"))
    if isinstance(wanted, Response):
        return wanted
    page = openai_errors.page_args(query, ORDER)
    if isinstance(page, Response):
        return page
    return JSONResponse(await run_in_threadpool(functools.partial(
        stored.listed, platform.store, metadata=wanted, model=query.get("model"), **page)))


async def _one(request: Request) -> Response:
    """One stored completion: ``GET`` it, ``POST`` new ``metadata``, ``DELETE`` it, or ``GET`` its messages."""
    if (failure := openai_errors.bearer_refusal(request)) is not None:
        return failure
    platform: Platform = request.app.state.platform
    cid = request.path_params["completion_id"]
    try:
        if request.method == "DELETE":
            return JSONResponse(await run_in_threadpool(stored.delete, platform.store, cid))
        if request.method == "POST":
            metadata = _new_metadata(await json_body(request))
            return JSONResponse(await run_in_threadpool(stored.update, platform.store, cid, metadata))
        record = await run_in_threadpool(stored.get, platform.store, cid)
    except (BodyError, ProtocolError) as exc:
        return openai_errors.openai_error(400, str(exc), param=exc.field or None, code="invalid_value")
    except NotFound as exc:
        return openai_errors.openai_error(404, str(exc), param="completion_id", code="not_found")
    if request.url.path.endswith("/messages"):
        page = openai_errors.page_args(request.query_params, ORDER)
        return page if isinstance(page, Response) else JSONResponse(list_page(record["messages"], **page))
    return JSONResponse(record["completion"])


def _new_metadata(body: dict[str, Any]) -> dict[str, str] | None:
    """The ``metadata`` of an update (None clears it); any other field is refused by name."""
    for key in body:
        if key != "metadata":
            raise ProtocolError(key, "cannot be changed: a stored chat completion's metadata is all an update sets")
    if "metadata" not in body:
        raise ProtocolError("metadata", "is required: send the new metadata (null clears it)")
    return None if body["metadata"] is None else check_metadata(body["metadata"])


def routes() -> list[Route]:
    return [route for base in (prefix + "/chat/completions" for prefix in PREFIXES) for route in (
        Route(base, _list, methods=["GET"]),
        Route(base + "/{completion_id}", _one, methods=["GET", "POST", "DELETE"]),
        Route(base + "/{completion_id}/messages", _one, methods=["GET"]))]
