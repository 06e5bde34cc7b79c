"""The one serving flow every inference route takes: resolve the model -> admission at its
engine -> ``generate`` ``n`` times -> stream or collect -> tally -> render.

A route parses its body, converts it to an ask (:mod:`qfnb.local.convert`), and calls
:func:`serve` with that protocol's :class:`~qfnb.local.convert.answer.Render`; it maps the
exceptions :func:`serve` raises to its wire's errors. Engines admit a bounded number of requests
and refuse the rest at once (``EngineBusy``); a client that goes away cancels its generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from qfnb.local.convert.answer import Answer, Render, Tally, answer_of, total_usage
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records.meter import CallNote, current_note
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines import loop_guard
from qfnb.local.engines.api import Engine, ServedLike
from qfnb.local.engines.ask import Ask, ChatAsk
from qfnb.local.engines.base import CannotServe, Delta, PromptTooLong, aclose
from qfnb.local.engines.call_state import progress
from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.local.server.serving.lane import lane_of
from qfnb.local.server.serving.offload import offload
from qfnb.local.server.serving.wire import ANSWER_HEADERS, json_body
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.platform.daemon import MODEL_HEADER

__all__ = ["SSE_HEADERS", "ClientGone", "answers", "chat_engine", "collect", "embed", "model_route", "serve",
           "unless_gone"]

T = TypeVar("T")

log = logging.getLogger("qfnb.local.inference")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGone(Exception):
    """The client disconnected before its (non-streaming) answer was ready."""


Handler = Callable[[Request, Platform, dict[str, Any], str], Awaitable[Response]]


def model_route(handler: Handler, auth: Callable[[Request], Response | None],
                refuse: Callable[[Exception], Response]) -> Callable[[Request], Awaitable[Response]]:
    """A route of a model API: ``auth`` (its refusal, or None), the request's lane, its JSON body,
    and every refusal in that API's error shape (``refuse``)."""

    async def route(request: Request) -> Response:
        note = current_note()
        if note is not None:
            note.model_call = True  # counted in /metrics, refused or not
        if (failure := auth(request)) is not None:
            return failure
        lane = lane_of(request)
        try:
            return await handler(request, request.app.state.platform, await json_body(request), lane)
        except (BodyError, ProtocolError, PromptTooLong, EngineBusy, EngineUnavailable, ValueError) as exc:
            return refuse(exc)
        except ClientGone:
            log.info("client left %r before its answer: generation cancelled", request.url.path)
            return Response(status_code=499)

    return route


def answers(engine: Engine, served: ServedLike, ask: Ask, *, whole: bool = True) -> list[AsyncIterator[Delta]]:
    """The ``ask.n`` answer streams (choice ``i`` samples with ``seed + i``); a base model asked to
    call tools is refused (``CannotServe``) before anything runs. An answer under a JSON schema that loops
    inside a string is asked again where the client gets it ``whole``, and its rest written where it is
    streamed (:mod:`~qfnb.local.engines.loop_guard`)."""
    if isinstance(ask, ChatAsk) and ask.offered_tools and not engine.can_call_tools:
        raise CannotServe(f"{served.name} cannot call tools: it is a base model without a chat template "
                             "(use an instruct model such as Qwen2.5-Coder-0.5B-Instruct)")
    if not whole:
        if isinstance(ask, ChatAsk) and ask.schema is not None and not ask.offered_tools:
            return [loop_guard.streamed(engine, ask.nth(i), name=served.name) for i in range(ask.n)]
        return [engine.generate(ask.nth(i)) for i in range(ask.n)]
    return [loop_guard.whole_answer(engine, ask.nth(i), served.name) for i in range(ask.n)]


async def serve(request: Request, platform: Platform, ask: Ask, render: Render, *, counted: bool = True,
                headers: Callable[[ServedLike], Mapping[str, str]] | None = None) -> Response:
    """Answer ``ask`` as ``render`` draws it, naming the model that served it in ``MODEL_HEADER``
    (and the ``headers`` the route makes of the served model). The call's usage (what the answer
    reports) goes to the platform's meter unless not ``counted`` (a token count).

    Raises what the routes map to their errors: ``BodyError`` (an unknown model), ``EngineBusy``,
    ``PromptTooLong``, ``EngineUnavailable``, ``CannotServe`` and
    :class:`ClientGone`.
    """
    api_type = "chat" if isinstance(ask, ChatAsk) else "completions"
    served, engine = await chat_engine(platform, api_type, ask.model)
    named = {MODEL_HEADER: served.name, **(headers(served) if headers is not None else {})}
    request.scope[ANSWER_HEADERS] = named  # sent by a heartbeat that starts the answer before the route
    streams = answers(engine, served, ask, whole=not render.stream)
    note = current_note()
    if note is not None and not counted:
        note.model_call, note = False, None
    if note is not None:
        note.answered_by(served.name, "chat" if api_type == "chat" else "text_completion")
    if render.stream:
        primed = [await primed_stream(s, note) for s in streams]
        tallies = [Tally() for _ in primed]  # kept by the render as it streams: its usage on the wire and the note's
        _follow(lambda: sum(t.completion_tokens for t in tallies))
        merged = indexed(primed[0], note, tallies) if len(primed) == 1 else interleaved(primed, note, tallies)
        return StreamingResponse(render.events(merged, tallies, served),
                                 media_type="text/event-stream", headers={**SSE_HEADERS, **named})
    (results,) = await collect(request, together(streams, note))
    if note is not None:
        note.usage(*usage_of([a.tally for a in results]))
    return JSONResponse(render.body(results, served), headers=named)


async def chat_engine(platform: Platform, api_type: str, name: str) -> tuple[ServedLike, Engine]:
    """The model ``name`` names for ``api_type`` and its engine: looked up on the event loop when nothing
    blocks (the name known, its engine loaded), else in the inference routes' own threads (a lookup in
    the store, a first call's load). Raises ``BodyError`` for an unknown name."""
    served = platform.resolved(api_type, name)
    if served is None:
        served = await offload(platform.resolve, api_type, name)
    platform.note_loading(served)  # its first call loads the engine, off the event loop
    endpoint = platform.engine_endpoint(served)
    engine = platform.registry.ready_chat(endpoint)
    if engine is None:
        with progress.loading():
            engine = await offload(platform.registry.chat, endpoint)
    return served, engine


async def embed(platform: Platform, name: str, texts: list[str]) -> tuple[ServedLike, list[list[float]], int]:
    """``texts`` embedded by the embedding model ``name`` (resolved, loaded on its first call): the
    model, the vectors and the tokens they took (noted as the call's usage)."""
    model = await offload(platform.resolve, "embeddings", name)
    platform.note_loading(model)
    with progress.loading():
        embedder = await offload(platform.registry.embedder, platform.engine_endpoint(model))
    vectors, tokens = await embedder.aembed(texts)
    note_usage(model.name, "embeddings", tokens)
    return model, vectors, tokens


def note_usage(model: str, operation: str, prompt: int, completion: int = 0) -> None:
    """A call answered without a stream of deltas (embeddings, rerank): its model and usage."""
    note = current_note()
    if note is not None:
        note.answered_by(model, operation)
        note.usage(prompt, completion)


def usage_of(tallies: Sequence[Tally]) -> tuple[int, int, int]:
    """The usage of ``n`` answers to one prompt as every wire reports it (:func:`total_usage`), and
    the prompt tokens read from the engine's cache."""
    if len(tallies) == 1:  # the usual answer: total_usage's sums of one
        (tally,) = tallies
        return tally.prompt, tally.completion_tokens, tally.cached
    total = total_usage(tallies)
    return total["prompt_tokens"], total["completion_tokens"], max((t.cached for t in tallies), default=0)


def _counted(note: CallNote, tallies: Sequence[Tally]) -> None:
    """A stream is over (ended, or cut by the client): its usage is what the render counted in
    ``tallies`` (read when the call's span is made), also for a client that did not ask for
    ``include_usage``."""
    note.counted_by(lambda: usage_of(tallies))


async def primed_stream(deltas: AsyncIterator[Delta], note: CallNote | None = None) -> AsyncIterator[Delta]:
    """Pull the first delta before the response is committed, so a failure at the start (a busy
    engine, a prompt too long, an engine that will not start) is a JSON error, not a cut stream.
    Its arrival is the call's first token (in ``note``)."""
    try:
        first = await anext(deltas)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await aclose(deltas)
        raise
    if first is not None and note is not None:
        note.first_token()

    async def chained() -> AsyncIterator[Delta]:
        try:
            if first is not None:
                yield first
                async for delta in deltas:
                    yield delta
        finally:
            await aclose(deltas)

    return chained()


async def collect(request: Request, items: AsyncIterator[Any]) -> list[Any]:
    """Every item of a non-streaming answer; raises :class:`ClientGone` (and cancels the
    generation) as soon as the client disconnects."""

    async def consume() -> list[Any]:
        try:
            return [d async for d in items]
        finally:
            await aclose(items)

    return await unless_gone(request, consume())


async def unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; raises :class:`ClientGone` (and cancels ``work``, its engine calls with it) as soon
    as the client disconnects."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise ClientGone
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def together(streams: list[AsyncIterator[Delta]], note: CallNote | None = None) -> AsyncIterator[list[Answer]]:
    """Every stream collected concurrently: one item, the list of their answers (the first delta's
    time noted in ``note``: time to first token)."""
    async def one(s: AsyncIterator[Delta]) -> Answer:
        deltas: list[Delta] = []
        _follow(lambda: _tokens_of(deltas))
        try:
            async for delta in s:
                if not deltas and note is not None:
                    note.first_token()
                deltas.append(delta)
        except BaseException:  # cancelled (the client left): the engine's request too
            await aclose(s)
            raise
        return answer_of(deltas)

    tasks = [asyncio.ensure_future(one(s)) for s in streams]
    try:
        yield list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def indexed(stream: AsyncIterator[Delta], note: CallNote | None = None,
                  tallies: Sequence[Tally] = ()) -> AsyncIterator[tuple[int, Delta]]:
    """The deltas of a single answer as choice 0 (pulled by the response itself, so a client that
    goes away stops the engine at once). Nothing per delta for the ``note``: when the stream ends
    (or the client leaves) its usage is what the render counted in ``tallies``."""
    try:
        async for delta in stream:
            yield 0, delta
    except BaseException:  # closed early (the client left): the engine's request too
        await aclose(stream)
        raise
    finally:
        if note is not None:
            _counted(note, tallies)


def _follow(tokens: Callable[[], int]) -> None:
    """Count ``tokens()`` in the keyed call's progress, if this is one (read only when asked)."""
    call = progress.current()
    if call is not None:
        call.follow(tokens)


def _tokens_of(deltas: list[Delta]) -> int:
    """The tokens of an answer so far: the engine's count (cumulative), else its pieces of text."""
    return (deltas[-1].completion_tokens if deltas else 0) or sum(1 for d in deltas if d.text)


async def interleaved(streams: list[AsyncIterator[Delta]], note: CallNote | None = None,
                      tallies: Sequence[Tally] = ()) -> AsyncIterator[tuple[int, Delta]]:
    """``(choice index, delta)`` from every stream as they arrive (the ``note`` as :func:`indexed`
    keeps it)."""
    queue: asyncio.Queue[tuple[int, Delta | None, BaseException | None]] = asyncio.Queue()

    async def pump(i: int, s: AsyncIterator[Delta]) -> None:
        try:
            async for d in s:
                await queue.put((i, d, None))
            await queue.put((i, None, None))
        except BaseException as exc:
            await queue.put((i, None, exc))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        left = len(tasks)
        while left:
            i, d, exc = await queue.get()
            if exc is not None:
                raise exc
            if d is None:
                left -= 1
                continue
            yield i, d
    finally:
        if note is not None:
            _counted(note, tallies)
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
