"""``qfnb.openai_client()``'s model calls on the one record: cache, budget and ledger.

The ``openai`` SDK sends through an httpx2 transport (its HTTP library); :class:`RecordedTransport`
is that transport. A model call (chat and text completions, embeddings, Responses, Messages)
becomes a :class:`~qfnb._core.http.recorded.Recording` as qfnb's own calls do: answered from the
response cache on a hit (the served model's digest in the key); its worst case reserved against
the budget before it is sent (a call without an output cap is sent with the one reserved; one that
would cross the budget is answered 429 ``insufficient_quota``, unsent); settled and written to the
ledger with the engine's own counts when its answer, or what arrived of a stream, is in. A chat or
text stream that did not ask for ``include_usage`` is sent asking for it, and the usage chunk is
kept from the caller. A batch (``POST /v1/batches``) takes the durable batch task's hold
(:mod:`~qfnb._core.http.batch_hold`): under a budget its input file's rows are read from the platform
and their worst case held before the batch is created (one that would cross the budget is answered
429, uncreated); when the batch ends, seen by the transport's own watch of it or by a read of the
client (retrieve, list, cancel), the hold settles to its usage and the batch is in the ledger once.
Every other request (models, files) passes through unchanged.
:class:`SyncRecordedTransport` runs the same on qfnb's loop for ``openai.OpenAI``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx2

from qfnb._core.backend.daemon import ensure_daemon
from qfnb._core.backend.openai_access import base_url, mint_key
from qfnb._core.config import Config, embedded_config
from qfnb._core.http.batch_hold import Hold, RowTally, hold_rows, keep, settle_task
from qfnb._core.http.recorded import Recording, with_output_cap
from qfnb._core.http.response import QfRequest, QfResponse
from qfnb._core.record.budget import BudgetExceeded, active_budget
from qfnb._core.runtime import sync
from qfnb.protocol.sse import DONE, SSEDecoder, encode_event

if TYPE_CHECKING:
    import openai

__all__ = ["RecordedTransport", "SyncRecordedTransport", "async_openai_client", "openai_client", "recorded_api"]

#: the path's last part -> the ledger's route (what :func:`~qfnb._core.http.recorded.worst_case` reads)
_ROUTES = {"chat/completions": "v2/chat", "completions": "v2/completions", "embeddings": "v2/embeddings",
           "responses": "v2/responses", "messages": "v2/messages"}
#: an OpenAI batch's statuses once it has ended
_ENDED = ("completed", "failed", "cancelled", "expired")
#: routes whose streams end with ``data: [DONE]`` and carry ``include_usage``
_USAGE_OPTION = ("v2/chat", "v2/completions")
#: seconds between the watch's first reads of a batch it made, and at most (the wait grows by half each read)
WATCH_FIRST_S, WATCH_MOST_S = 1.0, 30.0

logger = logging.getLogger("qfnb.usage")


def openai_client(*, data_dir: Path | str | None = None, api: str = "v1", **kwargs: Any) -> openai.OpenAI:
    """``openai.OpenAI`` for the local platform of ``data_dir`` (started if none runs), its model
    calls recorded as qfnb's own are (cache, budget, ledger); ``kwargs`` go to the client
    (``timeout``, ``max_retries``...)."""
    import openai

    platform = ensure_daemon(data_dir)
    transport = SyncRecordedTransport(embedded_config(Config.from_env(), platform))
    return openai.OpenAI(base_url=base_url(platform, api), api_key=mint_key(platform),
                         http_client=openai.DefaultHttpxClient(transport=transport), **_own(kwargs))


def async_openai_client(*, data_dir: Path | str | None = None, api: str = "v1", **kwargs: Any) -> openai.AsyncOpenAI:
    """``openai.AsyncOpenAI`` for the local platform, recorded (see :func:`openai_client`)."""
    import openai

    platform = ensure_daemon(data_dir)
    transport = RecordedTransport(embedded_config(Config.from_env(), platform))
    return openai.AsyncOpenAI(base_url=base_url(platform, api), api_key=mint_key(platform),
                              http_client=openai.DefaultAsyncHttpxClient(transport=transport), **_own(kwargs))


def _own(kwargs: dict[str, Any]) -> dict[str, Any]:
    if "http_client" in kwargs:
        raise ValueError("openai_client records its calls through its own http_client; give timeout=, "
                         "max_retries= or default_headers= instead of http_client=")
    return kwargs


def recorded_api(path: str) -> str | None:
    """The ledger route of a model call's URL path (``/v1/chat/completions`` -> ``v2/chat``), or None."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in ("v1", "v2"):
        return None
    return _ROUTES.get("/".join(parts[1:]))


def _asks_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


class RecordedTransport(httpx2.AsyncBaseTransport):
    """The async transport of qfnb's openai clients (``inner`` sends; default: httpx's own)."""

    def __init__(self, config: Config, inner: httpx2.AsyncBaseTransport | None = None, *,
                 watch_first_s: float = WATCH_FIRST_S) -> None:
        self.config = config
        self.inner = inner or httpx2.AsyncHTTPTransport()
        self.watch_first_s = watch_first_s
        #: the watches of the batches this transport made, until each sees its batch end
        self._watches: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        for task in list(self._watches):  # a batch no longer watched settles when a reader sees it end
            task.cancel()
        await self.inner.aclose()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        api = recorded_api(request.url.path) if request.method == "POST" else None
        body = json.loads(await request.aread() or b"{}") if api is not None else None
        if api is None or not isinstance(body, dict):
            if not _batches(request.url.path):
                return await self.inner.handle_async_request(request)
            if request.method == "POST" and request.url.path.rstrip("/").endswith("/batches"):
                return await self._create_batch(request)
            return await self._note_batches(request, await self.inner.handle_async_request(request))
        stream = body.get("stream") is True
        body = with_output_cap(api, body)
        hide_usage = stream and api in _USAGE_OPTION and not _asks_usage(body)
        if hide_usage:  # the ledger needs the engine's count; the caller did not ask for its chunk
            body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        rec = Recording.begin(self.config, api, str(body.get("model") or ""), body, stream=stream)
        if rec.caching and rec.lookup(await self._served(request, rec)):
            return _replayed(rec.replay(request.url.path), stream, hide_usage)
        try:
            rec.reserve()
        except BudgetExceeded as exc:
            return _over_budget(exc, request)
        try:
            reply = await self.inner.handle_async_request(_with_body(request, body))
        except BaseException:
            rec.release()
            raise
        return await _recorded(rec, request, reply, hide_usage)

    async def _create_batch(self, request: httpx2.Request) -> httpx2.Response:
        """``POST /v1/batches``: under a budget, its input file's rows' worst case held first (429,
        uncreated, past the budget); the batch made, watched until it ends."""
        hold: Hold | None = None
        try:
            body = json.loads(await request.aread() or b"{}")
        except ValueError:
            body = None
        file_id = body.get("input_file_id") if isinstance(body, dict) else None
        if active_budget() is not None and isinstance(file_id, str) and file_id:
            tally = RowTally()
            model = await self._tally_file(request, file_id, tally)
            if isinstance(model, httpx2.Response):  # the file cannot be read: the platform's answer
                return model
            try:
                hold = hold_rows(tally, model or "batch", self.config,
                                 what=f"the OpenAI batch of {file_id} ({tally.rows:,} rows)")
            except BudgetExceeded as exc:
                return _over_budget(exc, request)
        try:
            reply = await self._note_batches(request, await self.inner.handle_async_request(request), hold)
        except BaseException:
            if hold is not None:
                hold.release()
            raise
        return reply

    async def _tally_file(self, request: httpx2.Request, file_id: str, tally: RowTally) -> str | httpx2.Response:
        """Count each row of the uploaded file ``file_id`` into ``tally`` (read as it streams, as the
        platform reads it: a line that is not a request runs nothing); the first row's model, or the
        platform's refusal to give the file."""
        prefix = request.url.path.rstrip("/").removesuffix("/batches")
        url = request.url.copy_with(path=f"{prefix}/files/{quote(file_id, safe='')}/content", query=None)
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        reply = await self.inner.handle_async_request(httpx2.Request("GET", url, headers=headers))
        model = ""
        try:
            if reply.status_code != 200:
                content = await reply.aread()
                return httpx2.Response(reply.status_code, headers=_passed(reply), content=content, request=request)
            async for line in reply.aiter_lines():
                try:
                    row = json.loads(line) if line.strip() else None
                except ValueError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("body"), dict):
                    tally.add(row["body"])
                    model = model or str(row["body"].get("model") or "")
        finally:
            await reply.aclose()
        return model

    async def _note_batches(self, request: httpx2.Request, reply: httpx2.Response,
                            hold: Hold | None = None) -> httpx2.Response:
        """A batch answer as it came; each ended batch it shows settles and goes to the ledger once (a
        row for the whole task, as a durable ``BatchJob``'s: whichever face sees it end first writes it).
        A batch just made (``hold``: what it holds, if anything) is kept and watched until it ends."""
        if reply.status_code != 200:
            if hold is not None:  # refused: nothing was created
                hold.release()
            return reply
        content = await reply.aread()
        await reply.aclose()
        try:
            found = json.loads(content)
        except ValueError:
            found = None
        batches = [b for b in ((found.get("data") or []) if found.get("object") == "list" else [found])
                   if isinstance(b, dict)] if isinstance(found, dict) else []
        made = request.method == "POST" and request.url.path.rstrip("/").endswith("/batches")
        if made and len(batches) == 1 and isinstance(batches[0].get("id"), str):
            if hold is not None:
                keep(self.config, batches[0]["id"], hold)
            if not _record_batch(batches[0], self.config):
                self._watch(request, batches[0]["id"])
        elif made and hold is not None:  # an answer that names no batch: nothing to hold for
            hold.release()
        else:
            for batch in batches:
                _record_batch(batch, self.config)
        return httpx2.Response(reply.status_code, headers=_passed(reply), content=content, request=request)

    def _watch(self, request: httpx2.Request, batch_id: str) -> None:
        """Read the batch ``batch_id`` now and then until it ends, then settle and record it."""
        url = request.url.copy_with(path=request.url.path.rstrip("/") + "/" + quote(batch_id, safe=""), query=None)
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        task = asyncio.get_running_loop().create_task(self._watched(url, headers, batch_id))
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    async def _watched(self, url: httpx2.URL, headers: dict[str, str], batch_id: str) -> None:
        wait = self.watch_first_s
        while True:
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, WATCH_MOST_S)
            try:
                reply = await self.inner.handle_async_request(httpx2.Request("GET", url, headers=headers))
                content = await reply.aread()
                await reply.aclose()
            except httpx2.HTTPError as exc:
                logger.debug("batch %s: the platform did not answer its watch (%s); reading again", batch_id, exc)
                continue
            if reply.status_code == 404:
                logger.info("batch %s is gone from the platform; a reader of it settles it", batch_id)
                return
            try:
                found = json.loads(content) if reply.status_code == 200 else None
            except ValueError:
                found = None
            if isinstance(found, dict) and _record_batch(found, self.config):
                return

    async def _served(self, request: httpx2.Request, rec: Recording) -> str | None:
        """The digest of the model that would answer (the platform's ``/v1/models/{name}``), or None."""
        base = request.url.copy_with(path="/" + request.url.path.strip("/").split("/")[0] + "/models/"
                                     + quote(rec.target, safe=""), query=None)
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        try:
            reply = await self.inner.handle_async_request(httpx2.Request("GET", base, headers=headers))
            content = await reply.aread()
            await reply.aclose()
        except httpx2.HTTPError:
            return None
        if reply.status_code != 200:
            return None
        found = json.loads(content)
        return str(found.get("digest") or "") if isinstance(found, dict) else None


async def _recorded(rec: Recording, request: httpx2.Request, reply: httpx2.Response,
                    hide_usage: bool) -> httpx2.Response:
    """The platform's ``reply`` to the caller, settled and recorded (a stream: once it ends)."""
    headers = {k: v for k, v in reply.headers.items() if k.lower() not in ("content-length", "content-encoding")}
    if reply.status_code < 400 and rec.stream:
        chunks = rec.finish(_chunks(reply, request.url.path))
        assert not isinstance(chunks, QfResponse)
        return httpx2.Response(reply.status_code, headers=headers, request=request,
                               stream=_EventStream(chunks, hide_usage))
    content = await reply.aread()
    await reply.aclose()
    if reply.status_code >= 400:  # refused: nothing generated, nothing to record
        rec.release()
    else:
        rec.finish(QfResponse(reply.status_code, headers, json.loads(content), QfRequest("POST", request.url.path)))
    return httpx2.Response(reply.status_code, headers=headers, content=content, request=request)


def _batches(path: str) -> bool:
    """``/v1/batches``, ``/v1/batches/{id}`` and ``/v1/batches/{id}/cancel`` (either API version)."""
    parts = path.strip("/").split("/")
    return len(parts) >= 2 and parts[0] in ("v1", "v2") and parts[1] == "batches"


def _record_batch(batch: Mapping[str, Any], config: Config) -> bool:
    """Whether the OpenAI batch ``batch`` has ended; if so, its hold settled to its usage and its
    tokens in the ledger once per platform and task (the key a durable ``BatchJob`` writes under,
    so the two faces of one task never count it twice)."""
    usage = batch.get("usage")
    if batch.get("status") not in _ENDED or not isinstance(usage, Mapping) or not batch.get("id"):
        return False
    started, ended = batch.get("in_progress_at"), next(
        (batch[k] for k in ("completed_at", "failed_at", "cancelled_at", "expired_at") if batch.get(k)), None)
    seconds = float(ended - started) if isinstance(started, int) and isinstance(ended, int) else 0.0
    settle_task(config, str(batch["id"]), prompt=int(usage.get("input_tokens") or 0),
                completion=int(usage.get("output_tokens") or 0), seconds=seconds)
    return True


def _passed(reply: httpx2.Response) -> dict[str, str]:
    """A reply's headers, to pass on with its body read whole."""
    return {k: v for k, v in reply.headers.items() if k.lower() not in ("content-encoding", "content-length")}


def _over_budget(exc: BudgetExceeded, request: httpx2.Request) -> httpx2.Response:
    """The budget's refusal as OpenAI says a spent quota (429 ``insufficient_quota``), not to be retried:
    the openai SDK raises ``RateLimitError`` with the budget's message; nothing was sent."""
    error = {"message": str(exc), "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
    return httpx2.Response(429, headers={"x-should-retry": "false"}, json={"error": error}, request=request)


def _with_body(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Request:
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    return httpx2.Request(request.method, request.url, headers=headers, content=json.dumps(body).encode(),
                         extensions=request.extensions)


async def _chunks(reply: httpx2.Response, path: str) -> AsyncIterator[QfResponse]:
    """A streamed answer's events as the record sees them (a JSON body each; the event name kept)."""
    decoder = SSEDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    request = QfRequest("POST", path)
    try:
        async for raw in reply.aiter_bytes():
            for item in decoder.feed(text.decode(raw)):
                if isinstance(item.data, dict):
                    yield QfResponse(reply.status_code, dict(reply.headers), item.data, request,
                                     {"event": item.event} if item.event else {})
        for item in decoder.close():
            if isinstance(item.data, dict):
                yield QfResponse(reply.status_code, dict(reply.headers), item.data, request)
    finally:
        await reply.aclose()


class _EventStream(httpx2.AsyncByteStream):
    """Chunks back into server-sent events, without the usage chunk qfnb asked for (``hide_usage``)."""

    def __init__(self, chunks: AsyncIterator[QfResponse], hide_usage: bool) -> None:
        self.chunks, self.hide_usage = chunks, hide_usage

    async def __aiter__(self) -> AsyncIterator[bytes]:
        ended = False
        async for chunk in self.chunks:
            if self.hide_usage and chunk.body.get("choices") == [] and "usage" in chunk.body:
                continue
            event = chunk.statistic.get("event") or _event_name(chunk.body)
            ended = ended or event is None
            yield encode_event(chunk.body, event)
        if ended:  # a chat or text stream ends with [DONE] (a Responses or Messages stream does not)
            yield encode_event(DONE)

    async def aclose(self) -> None:
        close = getattr(self.chunks, "aclose", None)
        if close is not None:
            await close()


def _event_name(body: Mapping[str, Any]) -> str | None:
    """A replayed Responses or Messages event's name (its ``type``); chat chunks have none."""
    kind = body.get("type")
    return kind if isinstance(kind, str) and "object" not in body else None


def _replayed(answer: QfResponse | AsyncIterator[QfResponse], stream: bool, hide_usage: bool) -> httpx2.Response:
    headers = {"x-qfnb-cache": "hit"}
    if isinstance(answer, QfResponse):
        return httpx2.Response(200, headers=headers, json=answer.body)
    return httpx2.Response(200, headers={**headers, "content-type": "text/event-stream"},
                          stream=_EventStream(answer, hide_usage))


class SyncRecordedTransport(httpx2.BaseTransport):
    """:class:`RecordedTransport` for ``openai.OpenAI``: each request runs on qfnb's loop."""

    def __init__(self, config: Config, inner: httpx2.AsyncBaseTransport | None = None, *,
                 watch_first_s: float = WATCH_FIRST_S) -> None:
        self.recorded = RecordedTransport(config, inner, watch_first_s=watch_first_s)

    def close(self) -> None:
        sync.run(self.recorded.aclose())

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        content = request.read()
        sent = httpx2.Request(request.method, request.url, headers=request.headers, content=content,
                             extensions=request.extensions)
        context = contextvars.copy_context()  # the caller's cache mode, job and repeat
        reply = sync.run(self.recorded.handle_async_request(sent), context=context)
        stream = reply.stream
        if isinstance(stream, httpx2.AsyncByteStream):
            return httpx2.Response(reply.status_code, headers=reply.headers, request=request,
                                   stream=_SyncBytes(stream, context))
        return reply


class _SyncBytes(httpx2.SyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, context: contextvars.Context) -> None:
        self.stream, self.context = stream, context

    def __iter__(self) -> Iterator[bytes]:
        yield from sync.iterate(self.stream, context=self.context)

    def close(self) -> None:
        sync.run(self.stream.aclose(), context=self.context)
