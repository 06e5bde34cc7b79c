"""``qfnb.openai_client()``'s model calls on the one record: cache, budget and ledger.

The ``openai`` SDK sends through an httpx2 transport (its HTTP library); :class:`RecordedTransport`
is that transport. A model call (chat and text completions, embeddings, Responses, Messages)
becomes a :class:`~qfnb._core.http.recording.recorded.Recording` as qfnb's own calls do: answered from the
response cache on a hit (the served model's digest in the key); its worst case reserved against
the budget before it is sent (a call without an output cap is sent with the one reserved; one that
would cross the budget is answered 429 ``insufficient_quota``, unsent); settled and written to the
ledger with the engine's own counts when its answer, or what arrived of a stream, is in. A chat or
text stream that did not ask for ``include_usage`` is sent asking for it, and the usage chunk is
kept from the caller. A batch request goes to :class:`~.openai_batches.BatchFace` (held, watched,
recorded once), a fine-tuning job's to :class:`~.openai_fine_tuning.FineTuneFace` (its forecast held,
watched, settled on its trained tokens and recorded once). A Responses call continuing a stored
response (``previous_response_id``) holds that conversation's tokens too, read from the platform.
Every other request (models, files) passes through unchanged.
:class:`SyncRecordedTransport` runs the same on qfnb's loop for ``openai.OpenAI``.

A request refused at the platform's address (its daemon was killed, or is restarting) finds or
starts the daemon again once, as qfnb's own calls do (:func:`~qfnb._core.backend.heal.revive`), and
is sent again: a refused connection sent nothing, so nothing is repeated.
"""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2

from qfnb._core.backend.daemon import ensure_daemon
from qfnb._core.backend.heal import revive
from qfnb._core.backend.openai_access import base_url, mint_key
from qfnb._core.config import Config, embedded_config
from qfnb._core.http.recording.recorded import Recording, conversation_tokens, with_output_cap, with_usage_chunk
from qfnb._core.http.response import QfRequest, QfResponse
from qfnb._core.record.budget import BudgetExceeded, active_budget
from qfnb._core.record.traces import origin_headers
from qfnb._core.runtime import sync
from qfnb._core.runtime.openai_batches import WATCH_FIRST_S, BatchFace, get_beside, is_batches, over_budget, passed
from qfnb._core.runtime.openai_fine_tuning import FineTuneFace, is_fine_tuning
from qfnb._core.transport.urls import under
from qfnb.protocol.wires.codec.sse import DONE, SSEDecoder, encode_event

if TYPE_CHECKING:
    import openai

__all__ = ["RecordedTransport", "SyncRecordedTransport", "async_openai_client", "openai_client", "recorded_api"]

#: the path's last part -> the ledger's route (what :func:`~qfnb._core.http.recording.recorded.worst_case` reads)
_ROUTES = {"chat/completions": "v2/chat", "completions": "v2/completions", "embeddings": "v2/embeddings",
           "responses": "v2/responses", "messages": "v2/messages"}
#: routes whose streams end with ``data: [DONE]`` and carry ``include_usage``
_USAGE_OPTION = ("v2/chat", "v2/completions")


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


class Reviving(httpx2.AsyncBaseTransport):
    """``inner``, with a refused connection healed: ``revive(origin)`` (in a thread) finds or starts
    the daemon that served ``origin`` again, and the request goes once more (it was never sent)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, revive: Callable[[str], bool] = revive) -> None:
        self.inner, self.revive = inner, revive

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()  # a second sending sends the same body
        try:
            return await self.inner.handle_async_request(request)
        except httpx2.ConnectError:
            if not await asyncio.to_thread(self.revive, f"{request.url.scheme}://{request.url.netloc.decode()}"):
                raise
        return await self.inner.handle_async_request(request)


class RecordedTransport(httpx2.AsyncBaseTransport):
    """The async transport of qfnb's openai clients (``inner`` sends; default: httpx's own, healing a
    daemon that went away: :class:`Reviving`)."""

    def __init__(self, config: Config, inner: httpx2.AsyncBaseTransport | None = None, *,
                 watch_first_s: float = WATCH_FIRST_S) -> None:
        self.config = config
        self.inner = inner or Reviving(httpx2.AsyncHTTPTransport())
        self.batches = BatchFace(config, self.inner, watch_first_s=watch_first_s)
        self.fine_tunes = FineTuneFace(config, self.inner, watch_first_s=watch_first_s)

    async def aclose(self) -> None:
        self.batches.close()
        self.fine_tunes.close()
        await self.inner.aclose()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        api = recorded_api(request.url.path) if request.method == "POST" else None
        body = json.loads(await request.aread() or b"{}") if api is not None else None
        if api is None or not isinstance(body, dict):
            if is_batches(request.url.path):
                return await self.batches.handle(request)
            if is_fine_tuning(request.url.path):
                return await self.fine_tunes.handle(request)
            return await self.inner.handle_async_request(request)
        stream = body.get("stream") is True
        body = with_output_cap(api, body)
        body, hide_usage = with_usage_chunk(body) if stream and api in _USAGE_OPTION else (body, False)
        rec = Recording.begin(self.config, api, str(body.get("model") or ""), body, stream=stream)
        if rec.caching and rec.lookup(await self._served(request, rec)):
            return _replayed(rec.replay(request.url.path), stream, hide_usage)
        try:
            if rec.continues is not None and active_budget() is not None:
                rec.stored = await self._stored(request, rec.continues)
            rec.reserve()
        except BudgetExceeded as exc:
            return over_budget(exc, request)
        try:
            reply = await self.inner.handle_async_request(_with_body(request, body))
        except BaseException:
            rec.release()
            raise
        return await _recorded(rec, request, reply, hide_usage)

    async def _stored(self, request: httpx2.Request, previous: str) -> int:
        """The tokens of the stored conversation a Responses call continues (the platform's
        ``GET .../responses/{previous}``: its usage); 0 when there is no such response or the key may not
        read it (the platform refuses the call itself)."""
        reply = await self.inner.handle_async_request(get_beside(request, under(request.url.path, previous)))
        content = await reply.aread()
        await reply.aclose()
        if reply.status_code in (401, 403, 404):  # the platform refuses the call itself, generating nothing
            return 0
        found = json.loads(content) if reply.status_code == 200 else None
        if not isinstance(found, dict):
            raise BudgetExceeded(f"previous_response_id {previous!r}: the platform did not say what the stored "
                                 f"conversation holds (HTTP {reply.status_code}); stopped before sending")
        return conversation_tokens(found, previous)

    async def _served(self, request: httpx2.Request, rec: Recording) -> str | None:
        """The digest of the model that would answer (the platform's ``/v1/models/{name}``), or None."""
        version = "/" + request.url.path.strip("/").split("/")[0]
        try:
            reply = await self.inner.handle_async_request(get_beside(request, under(version, "models", rec.target)))
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
    headers = passed(reply)
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


def _with_body(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Request:
    """``request`` with ``body``, and where it came from (the platform's trace table keeps it)."""
    headers = {**{k: v for k, v in request.headers.items() if k.lower() != "content-length"}, **origin_headers()}
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
