"""Response shapes of the platform: v1 bodies, v2 envelopes and their paging, BCE auth errors, body parsing,
the base URL a request came to."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from qfnb.local.domain.state.requests import parse as parse  # checked once, for routes and batch rows
from qfnb.local.domain.state.store import new_sid
from qfnb.local.domain.state.values import BodyError
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY_CHARS


def response_id(prefix: str = "as-") -> str:
    """An id like the platform's (``as-…``)."""
    return new_sid(prefix, 10)


def log_id() -> str:
    return str(uuid.uuid4().int % 10**16)


def now() -> int:
    return int(time.time())


class VectorsJSON(JSONResponse):
    """An embeddings answer: each ``embedding`` given as a float32 numpy row is written as the
    shortest decimals that read back as the same float32 (what the engines computed), by orjson in
    C. ``json.dumps`` of the same vectors as Python floats writes 17 digits a number at about 20
    times the CPU, which a long embedding job pays once a text on the server and twice on the client."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def vector_rows(vectors: Any) -> Any:
    """The engine's vectors as float32 rows for :class:`VectorsJSON`."""
    return np.asarray(vectors, dtype=np.float32)


def v1_error(code: int, message: str, *, inference: bool = True, http_status: int = 200) -> JSONResponse:
    """A v1 error: HTTP 200 (or ``http_status``) with ``error_code``/``error_msg`` (the platform's shape)."""
    body: dict[str, Any] = {"error_code": int(code), "error_msg": message}
    body["id" if inference else "log_id"] = response_id() if inference else log_id()
    return JSONResponse(body, status_code=http_status)


def v1_ok(result: Any, *, data_api: bool = False) -> JSONResponse:
    """A v1 console success ``{"log_id", "result"}`` (data APIs add ``status``/``success``)."""
    body: dict[str, Any] = {"log_id": log_id(), "result": result}
    if data_api:
        body.update(status=200, success=True)
    return JSONResponse(body)


def v1_data_error(code: int, message: str, status: int = 400, *, http_status: int = 200) -> JSONResponse:
    """A v1 data-API error: the console error plus ``status`` (400: the request's fault; 5xx: the
    platform's)/``success: false``/``code``/``message``; HTTP 200 (or ``http_status``)."""
    return JSONResponse({"log_id": log_id(), "error_code": int(code), "error_msg": message, "status": status,
                         "success": False, "code": str(code), "message": message}, status_code=http_status)


def v2_ok(result: Any) -> JSONResponse:
    """A v2 console success ``{"requestId", "result"}``."""
    return JSONResponse({"requestId": str(uuid.uuid4()), "result": result})


def v2_error(status: int, code: str, message: str) -> JSONResponse:
    """A v2 console error: HTTP 4xx with ``{"requestId", "code", "message"}``."""
    return JSONResponse({"requestId": str(uuid.uuid4()), "code": code, "message": message}, status_code=status)


def v2_chat_error(status: int, code: str, message: str) -> JSONResponse:
    """The v2 chat routes' error body (OpenAI's shape, with the answer's id)."""
    return JSONResponse({"error": {"code": code, "message": message, "type": code}, "id": response_id()},
                        status_code=status)


def bce_error(status: int, code: str, message: str) -> JSONResponse:
    """A BCE gateway error (signature, credentials): non-2xx plus ``X-Bce-Error-*`` headers."""
    request_id = str(uuid.uuid4())
    headers = {"X-Bce-Error-Code": code, "X-Bce-Error-Message": message, "X-Bce-Request-Id": request_id}
    return JSONResponse({"requestId": request_id, "code": code, "message": message},
                        status_code=status, headers=headers)


#: the request scope's key for the body's ``stream`` flag, set by :func:`json_body` where the body is
#: parsed (once): the heartbeat middleware reads it, not the body, when it must know (heartbeat.py)
STREAM_FLAG = "qfnb.stream"
#: the request scope's key for the headers a route knows before its answer starts (the model that
#: serves it, the notice about its choice): a heartbeat that starts the answer sends them (heartbeat.py)
ANSWER_HEADERS = "qfnb.answer_headers"


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body (an empty body counts as ``{}``); its ``stream`` flag left in
    the scope (:data:`STREAM_FLAG`)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_int=_parse_int)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BodyError("body", f"is not valid JSON ({exc})", ErrorCode.INVALID_JSON) from exc
    except RecursionError:
        raise BodyError("body", "is nested too deeply", ErrorCode.INVALID_JSON) from None
    except ValueError as exc:  # e.g. a number json cannot convert
        raise BodyError("body", "holds a value that is not valid JSON here", ErrorCode.INVALID_JSON) from exc
    if not isinstance(data, dict):
        raise BodyError("body", "must be a JSON object", ErrorCode.INVALID_JSON)
    if _SURROGATE_ESCAPE.search(raw):
        where = lone_surrogate(data, "")
        if where is not None:
            raise BodyError(where or "body", "holds a lone UTF-16 surrogate (\\ud800-\\udfff without its pair), "
                            "which is not text", ErrorCode.INVALID_JSON)
    request.scope[STREAM_FLAG] = data.get("stream") is True
    return data


#: the most digits an integer literal may have (2^64 has 20; longer ones are refused, not converted)
MAX_INT_DIGITS = 40
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BodyError("body", f"holds an integer literal of {len(text.lstrip('-'))} digits; at most "
                        f"{MAX_INT_DIGITS} are accepted", ErrorCode.INVALID_JSON)
    return int(text)


def lone_surrogate(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) in ``value`` holding a lone surrogate, else None
    (iterative: any nesting JSON allowed)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= ch <= "\udfff" for ch in item):
                return where
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                here = f"{where}.{key}" if where else str(key)
                stack.append((child, here))
                stack.append((key, here))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


#: the most items one page of a console list holds
MAX_KEYS = 1000


def paged(items: list[dict[str, Any]], body: dict[str, Any], key: str, id_field: str) -> dict[str, Any]:
    """``marker``/``maxKeys``/``pageReverse`` paging over ``items`` (oldest first)."""
    marker, max_keys = page_params(body)
    if body.get("pageReverse"):
        items = items[::-1]
    if marker:
        ids = [i[id_field] for i in items]
        items = items[ids.index(marker) + 1:] if marker in ids else []
    page = items[:max_keys]
    truncated = len(items) > max_keys
    return {key: page, "pageInfo": {"marker": marker or "", "maxKeys": max_keys, "isTruncated": truncated,
                                    "nextMarker": page[-1][id_field] if truncated and page else ""}}


def page_params(body: dict[str, Any]) -> tuple[str | None, int]:
    """``marker`` (a string) and ``maxKeys`` (an integer in [1, MAX_KEYS], default 100), checked."""
    marker, reverse = body.get("marker"), body.get("pageReverse")
    max_keys = 100 if body.get("maxKeys") is None else body["maxKeys"]
    if isinstance(max_keys, bool) or not isinstance(max_keys, int) or not 1 <= max_keys <= MAX_KEYS:
        raise BodyError("maxKeys", f"must be an integer from 1 to {MAX_KEYS}, got {max_keys!r:.40}")
    if marker is not None and not isinstance(marker, str):
        raise BodyError("marker", f"must be a string (an id from a previous page), got {marker!r:.40}")
    if reverse is not None and not isinstance(reverse, bool):
        raise BodyError("pageReverse", f"must be true or false, got {reverse!r:.40}")
    return marker or None, max_keys


def idempotency_key(request: Request) -> str | None:
    """The call's ``Idempotency-Key`` (the same on its retries), or None: absent, or not 1 to
    :data:`~qfnb.protocol.wires.qianfan.routes.MAX_IDEMPOTENCY_KEY_CHARS` printable characters."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    return key if 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isprintable() else None


def base_url(request: Request) -> str:
    """The scheme and host a request came to (for URLs the platform hands back)."""
    return f"{request.url.scheme}://{request.url.netloc}"
