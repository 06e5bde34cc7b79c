"""OpenAI's error object, for every OpenAI-style route of the local platform (``/v1/files``,
``/v1/batches``, the OpenAI-compatible inference routes):
``{"error": {"message", "type", "param", "code"}}`` with the HTTP status of the failure."""

from __future__ import annotations

from starlette.responses import JSONResponse

from qfnb.local.domain.values import BodyError

#: HTTP status -> OpenAI's error ``type``
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
          429: "rate_limit_error"}


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, request_id: str | None = None) -> JSONResponse:
    """An OpenAI error response; ``param`` names the request field at fault; ``request_id`` is the
    answer's ``id`` (the inference routes give one, as the cloud's v2 does)."""
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body: dict[str, object] = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    if request_id is not None:
        body["id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


def openai_body_error(exc: BodyError, status: int = 400) -> JSONResponse:
    """A refused field as OpenAI answers it: the sentence names the field, ``param`` is the field."""
    return openai_error(status, str(exc), param=exc.field or None, code="invalid_value" if exc.field else None)
