"""The v2 console's refusals, one ladder for every v2 console route (fine-tuning, models and services;
batch inference): a refused field 400 ``InvalidParameter``, an unknown object 404 ``ResourceNotFound``, an
``Idempotency-Key`` reused for another body 422 ``IdempotencyKeyReused``, a full queue 429
``TooManyRequests``. Beside :mod:`.openai_errors`, the OpenAI family's."""

from __future__ import annotations

from starlette.responses import JSONResponse

from qfnb.local.domain.records.keyed_creates import KeyReused
from qfnb.local.domain.state.values import BodyError, NotFound
from qfnb.local.server.serving.wire import v2_error


def v2_refusal(exc: Exception, too_many: tuple[type[Exception], ...] = ()) -> JSONResponse | None:
    """``exc`` as the v2 console answers it; ``too_many``: the route's own full-queue errors (429). None:
    ``exc`` is no refusal (the route's failure path answers it)."""
    if isinstance(exc, BodyError):
        return v2_error(400, "InvalidParameter", str(exc))
    if isinstance(exc, NotFound):
        return v2_error(404, "ResourceNotFound", str(exc))
    if isinstance(exc, KeyReused):
        return v2_error(422, "IdempotencyKeyReused", str(exc))
    if isinstance(exc, too_many):
        return v2_error(429, "TooManyRequests", str(exc))
    return None
