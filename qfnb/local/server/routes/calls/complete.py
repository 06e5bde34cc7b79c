"""``POST /qfnb/complete``: code completion (fill in the middle) for editors, on the platform's coder
model through llama-server's ``/infill`` (:mod:`qfnb.local.engines.llama.infill`).

Under the platform's key (a bearer token or an IAM signature) like the OpenAI routes, with their
error shape. The answer is JSON: ``{"text", "model", "finish", "usage"}``; with ``"stream": true``,
server-sent events: ``{"delta": piece}`` as the engine writes them, the last one with that JSON's
fields. A client that leaves before the answer (the editor's user typed on) cancels the generation
at the engine, and the call is counted in ``/metrics`` under its own route with status 499;
``qfnb_completions_withdrawn`` counts the generations stopped before their end.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records.meter import CallNote, current_note
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.base import CannotServe, Delta, aclose
from qfnb.local.engines.llama import infill
from qfnb.local.server.middleware.openai_errors import openai_route
from qfnb.local.server.serving.serve import SSE_HEADERS, chat_engine, collect, primed_stream, together
from qfnb.local.server.serving.wire import parse
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL
from qfnb.protocol.platform.daemon import MODEL_HEADER
from qfnb.protocol.wires.local.completion import COMPLETE_ROUTE, CompleteRequest

__all__ = ["WithdrawnCollector", "routes"]


class WithdrawnCollector(Collector):
    """``qfnb_completions_withdrawn``: completions whose generation was stopped before its end."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("qfnb_completions_withdrawn", "Code completions whose generation the engine "
                                  "stopped before its end (the editor's user typed on)", value=self.count)


async def _counted(stream: AsyncIterator[Delta], withdrawn: WithdrawnCollector) -> AsyncIterator[Delta]:
    """``stream``, counted in ``withdrawn`` when it is closed before its last delta (closing it
    stops the engine's generation)."""
    finished = False
    try:
        async for delta in stream:
            finished = delta.finish_reason is not None
            yield delta
    finally:
        if not finished:
            withdrawn.add()
        await aclose(stream)


async def _complete(request: Request, platform: Platform, body: dict[str, Any],
                    withdrawn: WithdrawnCollector) -> Response:
    req = parse(CompleteRequest, body)
    served, engine = await chat_engine(platform, "completions", req.model or LOCAL_CHAT_MODEL)
    if not isinstance(engine, infill.Infiller):
        raise BodyError("model", f"{served.name} cannot fill in the middle: only a coder model on qfnb's own "
                        "llama-server can (such as Qwen2.5-Coder-0.5B-Instruct)")
    ask = infill.InfillAsk(req.prefix, req.suffix, tuple((c.filename, c.text) for c in req.extra),
                           req.max_tokens, tuple(req.stop), req.key)
    note = current_note()
    if note is not None:
        note.answered_by(served.name, "text_completion")
    try:
        stream = engine.infill(ask)
    except CannotServe as exc:
        raise BodyError("model", str(exc)) from exc
    if req.stream:
        primed = await primed_stream(_counted(stream, withdrawn), note)
        return StreamingResponse(_events(primed, served.name, note), media_type="text/event-stream",
                                 headers={**SSE_HEADERS, MODEL_HEADER: served.name})
    ((answer,),) = await collect(request, together([_counted(stream, withdrawn)], note))
    tally = answer.tally
    if note is not None:
        note.usage(tally.prompt, tally.completion, tally.cached)
    return JSONResponse(_last(answer.text, served.name, tally.finish, tally.prompt, tally.completion, tally.cached),
                        headers={MODEL_HEADER: served.name})


def _last(text: str, model: str, finish: str | None, prompt: int, completion: int, cached: int) -> dict[str, Any]:
    """The answer's body (whole), or a stream's last event: the text, the model, the finish and usage."""
    return {"text": text, "model": model, "finish": finish,
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": cached}}


async def _events(deltas: AsyncIterator[Delta], model: str, note: CallNote | None) -> AsyncIterator[bytes]:
    """The deltas as server-sent events: ``{"delta": piece}`` each, the last with the whole ``text``, the
    finish and usage (a client that leaves stops the stream: the engine's generation is withdrawn)."""
    pieces: list[str] = []
    async for delta in deltas:
        pieces.append(delta.text)
        if delta.finish_reason is None:
            yield b"data: " + json.dumps({"delta": delta.text}).encode() + b"\n\n"
            continue
        if note is not None:
            note.usage(delta.prompt_tokens, delta.completion_tokens, delta.cached_tokens)
        last = _last("".join(pieces), model, delta.finish_reason, delta.prompt_tokens, delta.completion_tokens,
                     delta.cached_tokens)
        yield b"data: " + json.dumps({"delta": delta.text, **last}).encode() + b"\n\ndata: [DONE]\n\n"


def routes(platform: Platform) -> list[Route]:
    """The completion route; its withdrawn counter joins the platform's metrics."""
    withdrawn = WithdrawnCollector()
    platform.meter.registry.register(withdrawn)

    async def complete(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
        return await _complete(request, platform, body, withdrawn)

    return [Route(COMPLETE_ROUTE, openai_route(complete), methods=["POST"])]
