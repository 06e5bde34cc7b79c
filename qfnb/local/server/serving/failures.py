"""Failures that are not the request's fault, answered in each route's own shape.

A full disk (``ENOSPC``, SQLite's "database or disk is full") is a *storage full* error,
never exception text: v1 routes answer HTTP 200 with their error code and ``storage full``,
v2 and BOS routes HTTP 507, the OAuth route ``{"error": "temporarily_unavailable"}`` with
HTTP 503. Anything else unexpected is a 500 in the route's format that says only that the
server log has the details. A write that failed for lack of space marks the platform
degraded for ``/healthz`` for a minute.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse, Response

from qfnb.local.server.serving.wire import bce_error, v1_data_error, v1_error, v2_error
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.wires.qianfan.routes import OAUTH_TOKEN

STORAGE_FULL = "storage full: the local platform's disk has no space left; free some and retry"
INTERNAL = "internal error (the server log has the details)"
#: below this many free bytes in the data dir, ``/healthz`` says degraded
LOW_SPACE_BYTES = 32 * 1024 * 1024
#: how long after a failed write ``/healthz`` keeps saying degraded
DEGRADED_FOR = 60.0

_last_full: dict[str, float] = {}


def is_storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.OperationalError) and "full" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def health(data_dir: Path | str) -> dict[str, Any]:
    """``{"status": "ok"}``, or ``{"status": "degraded", "problems": [...]}`` when the data dir's
    disk is (nearly) full or a write failed for lack of space in the last minute."""
    noted = _last_full.get(str(data_dir))
    try:
        low = shutil.disk_usage(data_dir).free < LOW_SPACE_BYTES
    except OSError:
        low = False
    if low or (noted is not None and time.monotonic() - noted < DEGRADED_FOR):
        return {"status": "degraded", "problems": ["storage full"]}
    return {"status": "ok"}


def unknown_route(method: str, path: str, status: int = 404) -> Response:
    """No route (404) or no such method on it (405), in the shape of the API ``path`` belongs to:
    OpenAI's error object under ``/v1`` and ``/v2`` (Anthropic's under ``/v1/messages``), the
    platform's v1 body elsewhere."""
    what = "Unknown request URL" if status == 404 else "Method not allowed for URL"
    message = f"{what}: {method} {path}. Please check the URL and the method."
    if path.startswith("/v1/messages"):
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status_code=status)
    if path.startswith(("/v1/", "/v2/")) or path in ("/v1", "/v2"):
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                       "code": "unknown_url" if status == 404 else "method_not_allowed"}},
                            status_code=status)
    return JSONResponse({"error_code": int(ErrorCode.UNSUPPORTED_METHOD), "error_msg": message}, status_code=status)


def failure_response(path: str, exc: BaseException | None, data_dir: Path | str | None = None) -> Response:
    """The answer to an unexpected failure of a request to ``path`` (``exc`` may be None)."""
    full = exc is not None and is_storage_full(exc)
    if full and data_dir is not None:
        _last_full[str(data_dir)] = time.monotonic()
    message = STORAGE_FULL if full else INTERNAL
    status = 507 if full else 500
    if path.startswith(OAUTH_TOKEN):
        return JSONResponse({"error": "temporarily_unavailable" if full else "server_error",
                             "error_description": message}, status_code=503 if full else 500)
    if path.startswith("/v2/chat"):
        return JSONResponse({"error": {"code": "storage_full" if full else "internal_error", "message": message,
                                       "type": "server_error"}}, status_code=status)
    if path.startswith("/v2/") or path.startswith("/v1/"):
        return v2_error(status, "StorageFull" if full else "InternalError", message)
    if path.startswith("/bos/"):
        return bce_error(status, "InsufficientStorage" if full else "InternalError", message)
    if path.startswith("/wenxinworkshop/dataset/"):
        return v1_data_error(ErrorCode.CONSOLE_INTERNAL_ERROR, message, status)
    if path.startswith("/wenxinworkshop/"):
        return v1_error(ErrorCode.CONSOLE_INTERNAL_ERROR, message, inference=False)
    return v1_error(ErrorCode.INTERNAL_ERROR, message, inference=True)
