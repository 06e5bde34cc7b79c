"""OpenAI's fine-tuning API (``/v1/fine_tuning/jobs`` and the same under ``/v2``) over
:mod:`qfnb.local.domain.training.openai_fine_tuning`: bearer auth, every refusal in OpenAI's error shape. The
training files come from ``/v1/files`` (:mod:`.batch`, ``purpose="fine-tune"``). Beside it,
qfnb's own ``/v1/fine_tuning/answer_logprobs`` scores given answers under a served model (base or
tuned), what comparing a tuned model with its base on preference pairs reads."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records.meter import current_note
from qfnb.local.domain.state.values import BodyError
from qfnb.local.domain.training import answer_bounds, answer_scores
from qfnb.local.domain.training import openai_fine_tuning as ft
from qfnb.local.server.middleware.keyed_creates import marked, once_per_key
from qfnb.local.server.middleware.openai_errors import Answered, list_page, metadata_filter, object_route
from qfnb.local.server.serving.serve import ClientGone, unless_gone
from qfnb.local.server.serving.wire import json_body

PREFIXES = ("/v1", "/v2")
log = logging.getLogger("qfnb.local.fine_tuning")


def _metadata_filter(request: Request) -> dict[str, str] | None:
    """``metadata[k]=v`` query pairs (the SDK's ``metadata={...}``; OpenAI's caps on metadata), or
    ``metadata=null``: no filter."""
    pairs = {key[len("metadata["):-1]: value for key, value in request.query_params.items()
             if key.startswith("metadata[") and key.endswith("]")}
    return metadata_filter(pairs) or None


@object_route
async def jobs(request: Request, p: Platform) -> Answered:
    if request.method == "POST":  # a job made once per Idempotency-Key
        body = await json_body(request)
        created = await once_per_key(request, p, body, partial(ft.create_job, p, body))
        return marked(JSONResponse(created.answer), created)
    after, limit = list_page(request)
    return await run_in_threadpool(ft.list_jobs, p, after, limit, _metadata_filter(request))


@object_route
async def one_job(request: Request, p: Platform) -> dict[str, Any]:
    return await run_in_threadpool(ft.retrieve_job, p, request.path_params["job_id"])


@object_route
async def cancel(request: Request, p: Platform) -> dict[str, Any]:
    return await run_in_threadpool(ft.cancel_job, p, request.path_params["job_id"])


@object_route
async def events(request: Request, p: Platform) -> dict[str, Any]:
    after, limit = list_page(request)
    return await run_in_threadpool(ft.list_events, p, request.path_params["job_id"], after, limit)


@object_route
async def checkpoints(request: Request, p: Platform) -> dict[str, Any]:
    after, limit = list_page(request)
    return await run_in_threadpool(ft.list_checkpoints, p, request.path_params["job_id"], after, limit)


@object_route
async def answer_logprobs(request: Request, p: Platform) -> Answered:
    """qfnb's own: how likely a served model finds given answers (:mod:`qfnb.local.domain.training.answer_scores`),
    bounded per call (:mod:`qfnb.local.domain.training.answer_bounds`) and stopped when its client leaves."""
    body = await json_body(request)
    answer_bounds.check_scoring_call(body)
    note = current_note()
    if note is not None:
        note.model_call = True  # counted in /metrics: the answers' tokens scored, as input

    def scored(model: str, tokens: int) -> None:
        if note is not None:
            note.answered_by(model, "score")
            note.usage(note.prompt + tokens, 0)

    try:
        return await unless_gone(request, answer_scores.score_answers(p, body, scored))
    except ClientGone:
        log.info("client left %r before its scores: scoring cancelled", request.url.path)
        return Response(status_code=499)


@object_route
async def unsupported(request: Request, p: Platform) -> dict[str, Any]:
    """pause/resume (OpenAI's, for long jobs) and checkpoint permissions (sharing across projects)."""
    action = request.url.path.rsplit("/", 1)[-1]
    if action in ("pause", "resume"):
        raise BodyError("", f"{action} is not available on the local platform: a job runs to its end or is "
                        "cancelled (POST /v1/fine_tuning/jobs/{id}/cancel)")
    raise BodyError("", f"{request.url.path}: checkpoint permissions are not kept on the local platform (one user)")


def routes() -> list[Route]:
    out = []
    for prefix in PREFIXES:
        base = prefix + "/fine_tuning/jobs"
        out += [Route(base, jobs, methods=["GET", "POST"]),
                Route(base + "/{job_id}", one_job, methods=["GET"]),
                Route(base + "/{job_id}/cancel", cancel, methods=["POST"]),
                Route(base + "/{job_id}/events", events, methods=["GET"]),
                Route(base + "/{job_id}/checkpoints", checkpoints, methods=["GET"]),
                Route(prefix + "/fine_tuning/answer_logprobs", answer_logprobs, methods=["POST"]),
                Route(base + "/{job_id}/pause", unsupported, methods=["POST"]),
                Route(base + "/{job_id}/resume", unsupported, methods=["POST"]),
                Route(prefix + "/fine_tuning/checkpoints/{rest:path}", unsupported, methods=["GET", "POST", "DELETE"])]
    return out

