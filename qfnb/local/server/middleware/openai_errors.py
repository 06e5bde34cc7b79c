"""OpenAI's error object, for every OpenAI-style route of the local platform (``/v1/files``,
``/v1/batches``, the OpenAI-compatible inference routes, the Responses API):
``{"error": {"message", "type", "param", "code"}}`` with the HTTP status of the failure; and the
OpenAI family's route wrapper (:func:`openai_route`: bearer auth, lane, body, every refusal in
that shape), shared by the chat and the Responses route modules."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from qfnb.local.domain.batch.tasks import TooManyJobs
from qfnb.local.domain.records.keyed_creates import KeyReused
from qfnb.local.domain.state.values import BodyError, NotFound
from qfnb.local.engines.base import CannotServe, PromptTooLong
from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.local.server.middleware.auth import authenticator
from qfnb.local.server.serving.multipart import MultipartError
from qfnb.local.server.serving.serve import Handler, model_route
from qfnb.local.server.serving.wire import response_id
from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.wires.chat.openai_wire import METADATA_PAIRS, check_metadata
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER

log = logging.getLogger("qfnb.local.inference")

#: HTTP status -> OpenAI's error ``type``
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
          429: "rate_limit_error"}
#: what a files, batches or fine-tuning handler answers: a JSON object, or a response of its own
Answered: TypeAlias = dict[str, Any] | Response


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None,
                 request_id: str | None = None) -> JSONResponse:
    """An OpenAI error response; ``param`` names the request field at fault; ``request_id`` is the
    answer's ``id`` (the inference routes give one, as the cloud's v2 does)."""
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body: dict[str, object] = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    if request_id is not None:
        body["id"] = request_id
    return JSONResponse(body, status_code=status)


def openai_body_error(exc: BodyError, status: int = 400) -> JSONResponse:
    """A refused field as OpenAI answers it: the sentence names the field, ``param`` is the field."""
    return openai_error(status, str(exc), param=exc.field or None, code="invalid_value" if exc.field else None)


def inference_error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    """OpenAI's error object with the answer's ``id`` (the inference routes give one, as the cloud's v2 does)."""
    return openai_error(status, message, param=param, code=code, request_id=response_id())


def openai_refusal(exc: BodyError | NotFound | KeyReused) -> JSONResponse:
    """A refused call of the OpenAI family's files, batches and fine-tuning routes: the field named (an unknown
    model 404 ``model_not_found``), an unknown object 404, an ``Idempotency-Key`` reused for another body 422."""
    if isinstance(exc, NotFound):
        return openai_error(404, str(exc), code="not_found")
    if isinstance(exc, KeyReused):
        return openai_error(422, str(exc), param=IDEMPOTENCY_HEADER, code="idempotency_key_reused")
    if exc.code == ErrorCode.API_NAME_NOT_EXIST:
        return openai_error(404, str(exc), param="model", code="model_not_found")
    return openai_body_error(exc)


def bearer_refusal(request: Request) -> JSONResponse | None:
    """OpenAI's 401 for a request without a valid bearer token (files, batches, stored responses)."""
    problem = authenticator(request).check_bearer(request)
    return None if problem is None else openai_error(401, problem, code="invalid_api_key")


def object_route(call: Callable[[Request, Any], Awaitable[Answered]]) -> Callable[[Request], Awaitable[Response]]:
    """A route of OpenAI's files, batches or fine-tuning jobs: bearer auth, every refusal in OpenAI's shape."""

    async def route(request: Request) -> Response:
        if (failure := bearer_refusal(request)) is not None:
            return failure
        try:
            answer = await call(request, request.app.state.platform)
        except (BodyError, NotFound, KeyReused) as exc:
            return openai_refusal(exc)
        except MultipartError as exc:
            return openai_error(400, f"file: {exc}", param="file")
        except TooManyJobs as exc:
            return openai_error(429, str(exc), code="batch_queue_full")
        except CannotServe as exc:
            return openai_error(400, f"model: {exc}", param="model", code="cannot_score")
        except ClientDisconnect:
            log.info("the client went away during %s %r; nothing was stored", request.method, request.url.path)
            return Response(status_code=499)
        return answer if isinstance(answer, Response) else JSONResponse(answer)

    return route


def list_page(request: Request) -> tuple[str | None, int]:
    """``after`` and ``limit`` (1-100, default 20) of an OpenAI list call; BodyError naming ``limit``."""
    raw = request.query_params.get("limit", "20")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= 100):
        raise BodyError("limit", f"must be an integer from 1 to 100, got {raw!r:.40}")
    return request.query_params.get("after"), int(raw)


def page_args(query: Any, order: str = "desc") -> dict[str, Any] | JSONResponse:
    """``limit`` (1-100, default 20), ``order`` (asc/desc, default ``order``) and ``after`` of an
    OpenAI list call, or its 400."""
    try:
        limit = max(1, min(100, int(query.get("limit", 20))))
    except ValueError:
        return openai_error(400, "limit must be a whole number from 1 to 100", param="limit")
    order = query.get("order", order)
    if order not in ("asc", "desc"):
        return openai_error(400, "order must be 'asc' or 'desc'", param="order")
    return {"limit": limit, "order": order, "after": query.get("after")}


def metadata_query(query: Any, others: tuple[str, ...]) -> dict[str, str] | JSONResponse:
    """A list call's ``metadata[KEY]=VALUE`` filter (:func:`metadata_filter`'s caps); a query parameter neither
    that nor one of ``others`` is refused by name (400)."""
    wanted: dict[str, str] = {}
    for name, value in query.multi_items():
        if name.startswith("metadata[") and name.endswith("]") and len(name) > len("metadata[]"):
            wanted[name[len("metadata["):-1]] = value
        elif name not in others:
            return openai_error(400, f"unknown query parameter {name!r:.80}: use metadata[KEY]=VALUE, "
                                     f"{', '.join(others)}", param=name[:80])
    try:
        return metadata_filter(wanted)
    except BodyError as exc:
        return openai_body_error(exc)


def metadata_filter(wanted: dict[str, str]) -> dict[str, str]:
    """A list filter's ``metadata`` pairs within OpenAI's caps on metadata (16 pairs, keys of 1-64 characters,
    values up to 512: each pair is one more condition to evaluate); BodyError naming ``metadata`` otherwise."""
    if len(wanted) > METADATA_PAIRS:
        raise BodyError("metadata", f"filter by at most {METADATA_PAIRS} metadata[KEY]=VALUE pairs, got "
                        f"{len(wanted)}")
    try:
        return check_metadata(wanted)
    except ProtocolError as exc:
        raise BodyError(exc.field, str(exc).removeprefix(f"{exc.field}: ")) from None


def _bearer_refusal(request: Request) -> Response | None:
    problem = authenticator(request).check_bearer(request)
    # the cloud v2 code (clients re-mint on it)
    return None if problem is None else inference_error(401, "invalid_iam_token", problem)


def openai_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route of the OpenAI API: bearer auth, the request's lane, its JSON body, and every
    refusal in OpenAI's error shape (see :func:`refusal`)."""
    return model_route(handler, _bearer_refusal, refusal)


def refusal(exc: Exception) -> Response:
    """400 naming the field, 404 for an unknown model, 429 busy (with Retry-After), 503 engine down."""
    if isinstance(exc, BodyError | ProtocolError):
        if exc.code == ErrorCode.API_NAME_NOT_EXIST:
            return inference_error(404, "model_not_found", str(exc), "model")
        return inference_error(400, "invalid_argument", str(exc), exc.field)
    if isinstance(exc, PromptTooLong):
        return inference_error(400, "context_length_exceeded", f"messages: {exc}", "messages")
    if isinstance(exc, EngineBusy):
        response = inference_error(429, "rate_limit_exceeded", f"Rate limit reached: {exc}")
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response
    if isinstance(exc, EngineUnavailable):
        log.warning("%s", exc)
        return inference_error(503, "service_unavailable", f"the model engine is unavailable, retry shortly: {exc}")
    return inference_error(400, "invalid_argument", str(exc))  # an engine's refusal (a base model asked for tools)
