"""Response shapes of the platform: v1 bodies, v2 envelopes, BCE auth errors, body parsing."""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from qfnb.local.domain.values import BodyError
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.inference import ProtocolError
from qfnb.protocol.limits import check_local

M = TypeVar("M", bound=BaseModel)

_ALNUM = string.ascii_lowercase + string.digits


def response_id(prefix: str = "as-") -> str:
    """An id like the platform's (``as-…``)."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(10))


def log_id() -> str:
    return str(uuid.uuid4().int % 10**16)


def now() -> int:
    return int(time.time())


def v1_error(code: int, message: str, *, inference: bool = True) -> JSONResponse:
    """A v1 error: HTTP 200 with ``error_code``/``error_msg`` (the platform's shape)."""
    body: dict[str, Any] = {"error_code": int(code), "error_msg": message}
    body["id" if inference else "log_id"] = response_id() if inference else log_id()
    return JSONResponse(body)


def v1_ok(result: Any, *, data_api: bool = False) -> JSONResponse:
    """A v1 console success ``{"log_id", "result"}`` (data APIs add ``status``/``success``)."""
    body: dict[str, Any] = {"log_id": log_id(), "result": result}
    if data_api:
        body.update(status=200, success=True)
    return JSONResponse(body)


def v1_data_error(code: int, message: str) -> JSONResponse:
    """A v1 data-API error: the console error plus ``status: 400``/``success: false``/``code``/``message``."""
    return JSONResponse({"log_id": log_id(), "error_code": int(code), "error_msg": message, "status": 400,
                         "success": False, "code": str(code), "message": message})


def v2_ok(result: Any) -> JSONResponse:
    """A v2 console success ``{"requestId", "result"}``."""
    return JSONResponse({"requestId": str(uuid.uuid4()), "result": result})


def v2_error(status: int, code: str, message: str) -> JSONResponse:
    """A v2 console error: HTTP 4xx with ``{"requestId", "code", "message"}``."""
    return JSONResponse({"requestId": str(uuid.uuid4()), "code": code, "message": message}, status_code=status)


def bce_error(status: int, code: str, message: str) -> JSONResponse:
    """A BCE gateway error (signature, credentials): non-2xx plus ``X-Bce-Error-*`` headers."""
    request_id = str(uuid.uuid4())
    headers = {"X-Bce-Error-Code": code, "X-Bce-Error-Message": message, "X-Bce-Request-Id": request_id}
    return JSONResponse({"requestId": request_id, "code": code, "message": message},
                        status_code=status, headers=headers)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body (an empty body counts as ``{}``)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BodyError("body", f"is not valid JSON ({exc})", ErrorCode.INVALID_JSON) from exc
    except RecursionError:
        raise BodyError("body", "is nested too deeply", ErrorCode.INVALID_JSON) from None
    if not isinstance(data, dict):
        raise BodyError("body", "must be a JSON object", ErrorCode.INVALID_JSON)
    return data


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate ``data`` as ``model`` (the protocol's rules, then the local platform's caps);
    a failure becomes a BodyError naming the field."""
    try:
        parsed = model.model_validate(data)
        check_local(data)
        return parsed
    except ProtocolError as exc:
        raise BodyError(exc.field, str(exc).split(": ", 1)[-1], exc.code) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        inner = (first.get("ctx") or {}).get("error")
        if isinstance(inner, ProtocolError):
            raise BodyError(inner.field, str(inner).split(": ", 1)[-1], inner.code) from exc
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        message = first.get("msg", "is invalid")
        code = ErrorCode.INVALID_MESSAGES if where.startswith("messages") else ErrorCode.INVALID_PARAM
        raise BodyError(where, message, code) from exc
