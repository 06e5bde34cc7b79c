"""The one response decoder: a transport's reply (whole or streamed) to QfResponses or errors.

:func:`decode_body` reads a whole JSON answer (HTTP errors, platform error bodies, non-JSON
bodies), for plain calls and for stream requests answered with one JSON body alike;
:func:`open_stream` turns an event stream into chunk QfResponses, reading the first event
before handing the stream out so that an error sent as the first line (token expired,
overload) or a cut before any data is retried like any other failed call.
"""

from __future__ import annotations

import codecs
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from qfnb._core.errors import APIError, ConnectionError, QfnbError, RequestError, StreamError, TimeoutError
from qfnb._core.http.call import Call
from qfnb._core.http.response import QfRequest, QfResponse
from qfnb._core.http.wire import error_from_body, error_from_http, stream_item_error
from qfnb._core.transport import Reply, StreamReply
from qfnb.protocol.wires.codec import fastjson
from qfnb.protocol.wires.codec.sse import SSEDecoder, SSEItem

__all__ = ["decode_body", "decode_reply", "open_stream"]


def decode_body(call: Call, status: int, headers: Mapping[str, str], content: bytes) -> dict[str, Any]:
    """The JSON object of a whole answer, or the error it stands for. Non-JSON bodies of
    ``raw`` calls (BOS objects) come back as ``{"_raw": text, "_bytes": content}``, and so does
    any 2xx ``application/octet-stream`` answer to one: an object's bytes are never read as JSON
    (a JSONL object of one line holding ``"error"`` is data, not the platform's error)."""
    body: Any = None
    if call.octets and status < 300:  # a file's content asked for as such (a JSONL file is data)
        return {"_raw": content.decode("utf-8", errors="replace"), "_bytes": content}
    if not (call.api == "raw" and status < 300 and _octets(headers)):
        with contextlib.suppress(ValueError):
            body = fastjson.loads(content) if content else {}
    if status < 300:
        if not isinstance(body, dict):
            if call.api == "raw":
                return {"_raw": content.decode("utf-8", errors="replace"), "_bytes": content}
            kind = "an event stream or a JSON object" if call.stream else "a JSON object"
            raise RequestError(f"expected {kind} from {call.path}, got {content[:200]!r}", status_code=status,
                               body=content[:2000], headers=headers)
        err = error_from_body(body, status, headers.get("x-baidu-request-id"))
        if err is None:
            return body
    else:
        err = error_from_http(status, body, headers, content.decode("utf-8", errors="replace") if body is None else "")
    if isinstance(err, APIError):
        err.retry_after = headers.get("retry-after") if status >= 300 else None
        err.headers = {k.lower(): v for k, v in headers.items()}
        err.body = body
    raise err


def _octets(headers: Mapping[str, str]) -> bool:
    return str(headers.get("content-type") or headers.get("Content-Type") or "").startswith(
        "application/octet-stream")


def decode_reply(call: Call, reply: Reply, latency: float) -> QfResponse:
    """A plain call's QfResponse (or its error)."""
    body = decode_body(call, reply.status_code, reply.headers, reply.content)
    stat = {"request_latency": latency, "total_latency": latency,
            "start_timestamp": int((time.time() - latency) * 1000)}
    return QfResponse(reply.status_code, reply.headers, body,
                      QfRequest(call.method, call.path, call.headers.get("Request_id"), content=call.content,
                                headers=call.headers), stat)


def is_event_stream(reply: StreamReply) -> bool:
    return reply.status_code == 200 and "json" not in reply.headers.get("content-type", "")


async def open_stream(call: Call, reply: StreamReply, start: float) -> AsyncIterator[QfResponse]:
    """The chunks of a streamed answer, its first already read; closes ``reply`` when done."""
    request = QfRequest(call.method, call.path, call.request_id, content=call.content, headers=call.headers)
    if not is_event_stream(reply):  # an error, or a server answering with one JSON body: one chunk
        try:
            raw = await reply.aread()
        finally:
            await reply.aclose()
        body = decode_body(call, reply.status_code, reply.headers, raw)
        return _single(QfResponse(reply.status_code, reply.headers, body, request,
                                  {"request_latency": time.perf_counter() - start}))
    chunks = _iterate_stream(reply, request, start, v2=call.api == "v2")
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        return _single(None)
    except StreamError as exc:
        await chunks.aclose()
        raise ConnectionError(f"{exc} (before any data; safe to retry)") from None
    except BaseException:
        await chunks.aclose()
        raise
    return _chain(first, chunks)


async def _single(item: QfResponse | None) -> AsyncIterator[QfResponse]:
    if item is not None:
        yield item


async def _chain(first: QfResponse, rest: AsyncGenerator[QfResponse, None]) -> AsyncIterator[QfResponse]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


async def _events(reply: StreamReply, url: str, count: list[int]) -> AsyncGenerator[SSEItem, None]:
    """The SSE items of ``reply``'s body; a broken body is a StreamError."""
    decoder = SSEDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    chunks = reply.__aiter__()
    while True:
        try:
            raw = await chunks.__anext__()
        except StopAsyncIteration:
            break
        except ConnectionError as exc:
            why = f"{exc}; " if isinstance(exc, TimeoutError) else ""
            broke = StreamError(f"the stream from {url} broke off after {count[0]} chunk(s) "
                                f"({why}{type(exc).__name__}); the answer is incomplete")
            broke.cut = True
            raise broke from None
        for item in decoder.feed(utf8.decode(raw)):
            yield item
    for item in decoder.feed(utf8.decode(b"", final=True)):
        yield item
    for item in decoder.close():
        yield item


#: the events that end a Responses-API stream (it sends no ``[DONE]``)
RESPONSE_END_EVENTS = ("response.completed", "response.incomplete", "response.failed")


async def _iterate_stream(reply: StreamReply, request: QfRequest, start: float, *,
                          v2: bool) -> AsyncGenerator[QfResponse, None]:
    """Decode the SSE body into chunk QfResponses; a cut or unterminated stream is a StreamError."""
    count = [0]
    first: float | None = None
    events = _events(reply, request.url, count)
    try:
        async for item in events:
            if item.done:
                return
            err: QfnbError | None = stream_item_error(item)
            if err is not None:
                raise err
            if not isinstance(item.data, dict):
                continue
            now = time.perf_counter()
            if first is None:
                first = now - start
            count[0] += 1
            body = item.data
            if item.event:
                body.setdefault("_event", item.event)
            yield QfResponse(reply.status_code, reply.headers, body, request,
                             {"first_token_latency": first, "request_latency": now - start,
                              "total_latency": now - start})
            if (not v2 and body.get("is_end")) or (v2 and body.get("type") in RESPONSE_END_EVENTS):
                return
        raise StreamError(f"the stream from {request.url} ended after {count[0]} chunk(s) without its final "
                          "event; the answer is incomplete")
    finally:
        await events.aclose()
        await reply.aclose()
