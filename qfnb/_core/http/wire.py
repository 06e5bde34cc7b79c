"""Pure helpers between HTTP and qfnb objects: error bodies → exceptions, SSE → chunks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qfnb._core.errors import QfnbError, RequestError, StreamError, api_error
from qfnb.protocol.wires.codec.sse import SSEItem

__all__ = ["error_from_body", "error_from_http", "stream_item_error"]


def error_from_body(body: Any, status: int = 200, request_id: str | None = None) -> QfnbError | None:
    """The exception a response body stands for, or None if it is a success.

    Handles v1 ``{"error_code", "error_msg"}``, v2 inference ``{"error": {"code", "message"}}``
    and v2 console ``{"code", "message", "requestId"}`` (only with a non-2xx status).
    """
    if not isinstance(body, dict):
        return None
    rid = request_id or body.get("id") or body.get("requestId") or body.get("log_id")
    rid = str(rid) if rid else None
    code = body.get("error_code")
    if code not in (None, 0):
        return api_error(code, body.get("error_msg", ""), rid, status_code=status)
    err = body.get("error")
    if isinstance(err, dict) and (err.get("code") or err.get("message")):
        return api_error(err.get("code") or err.get("type") or "error", err.get("message", ""), rid,
                         status_code=status)
    if status >= 300 and isinstance(body.get("code"), str | int) and "message" in body:
        return api_error(body["code"], body.get("message", ""), rid, status_code=status)
    return None


def error_from_http(status: int, body: Any, headers: Mapping[str, str], text: str = "") -> QfnbError:
    """The exception for a non-2xx answer: the platform's error if the body names one."""
    rid = headers.get("x-baidu-request-id") or headers.get("x-bce-request-id")
    found = error_from_body(body, status, rid)
    if found is not None:
        return found
    bce_code = headers.get("x-bce-error-code")
    detail = f"{bce_code}: {headers.get('x-bce-error-message', '')}" if bce_code else (text[:300] or "no body")
    hint = ""
    if status in (401, 403):
        hint = " (check the access key / secret key or token)"
    return RequestError(f"HTTP {status} from the platform: {detail}{hint}", status_code=status,
                        body=body if body is not None else text[:2000], request_id=rid, headers=headers)


def stream_item_error(item: SSEItem) -> QfnbError | None:
    """The error a stream item carries (a bare JSON error line, or an error event), if any.

    An ``event: error`` is the server saying the answer broke off on its side (an engine
    failed mid-answer): a :class:`StreamError` with ``retryable`` set (the call may be made again)."""
    data = item.data
    if item.event == "error":
        found = error_from_body(data) if isinstance(data, dict) else None
        text = str(getattr(found, "error_msg", None) or data)[:300]
        exc = StreamError(f"the stream broke off on the server's side: {text} (the call may be retried)")
        exc.retryable = True
        exc.error_code = getattr(found, "error_code", None)
        return exc
    if isinstance(data, dict):
        return error_from_body(data)
    if item.bare:
        return StreamError(f"unexpected line in the event stream: {str(data)[:200]!r}")
    return None
