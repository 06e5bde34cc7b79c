"""The routes' one entry to a handler that may create: a keyed create
(:data:`~qfnb.protocol.wires.qianfan.routes.KEYED_CREATES`) carrying an ``Idempotency-Key`` runs once per caller and
key (:mod:`qfnb.local.domain.records.keyed_creates`); every other call, and a create without a key, runs as it
always did. An answer given again carries ``X-Qfnb-Idempotent-Replay: stored``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records import keyed_creates
from qfnb.local.domain.records.keyed_creates import Created, KeyReused
from qfnb.local.domain.state.values import BodyError
from qfnb.local.server.middleware.idempotency import caller_of
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, REUSED_HEADER, idempotency_key_problem, keyed_create

__all__ = ["Created", "KeyReused", "marked", "once_per_key"]


async def once_per_key(request: Request, platform: Platform, body: dict[str, Any], run: Callable[[], Any]) -> Created:
    """``run()``'s answer (in a worker thread), once per caller and key for a keyed create that carries an
    ``Idempotency-Key`` (its credential verified by the route); BodyError naming the header when it is not
    a key; :class:`KeyReused` when the key was this caller's for another request."""
    action = request.query_params.get("Action")
    key = _key(request) if keyed_create(request.url.path, action) else None
    owner = caller_of(request.scope) if key is not None else None
    if key is None or owner is None:
        return Created(await run_in_threadpool(run), replayed=False)
    route = request.url.path + (f"?Action={action}" if action else "")
    return await run_in_threadpool(keyed_creates.run_once, platform.store, owner, key, route, body, run)


def marked(response: Response, created: Created) -> Response:
    """``response``, saying so when it is an earlier try's stored answer."""
    if created.replayed:
        response.headers[REUSED_HEADER] = "stored"
    return response


def _key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (None: it sent none); BodyError naming the header when it is no key."""
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None or not raw.strip():
        return None
    key = raw.strip()
    if (problem := idempotency_key_problem(key)) is not None:
        raise BodyError(IDEMPOTENCY_HEADER, problem)
    return key
