"""``POST /qfnb/complete``: code completion (fill in the middle) for editors, on the platform's coder
model through llama-server's ``/infill`` (:mod:`qfnb.local.engines.llama.infill`).

Under the platform's key (a bearer token or an IAM signature) like the OpenAI routes, with their
error shape. The answer is JSON: ``{"text", "model", "finish", "usage"}``. A client that leaves
before the answer (the editor's user typed on) cancels the generation at the engine, and the call
is counted in ``/metrics`` under its own route with status 499; ``qfnb_completions_withdrawn``
counts the generations stopped before their end.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain.meter import current_note
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.values import BodyError
from qfnb.local.engines.base import CannotServe, Delta, aclose
from qfnb.local.engines.llama import infill
from qfnb.local.server.middleware.openai_errors import openai_route
from qfnb.local.server.serving.serve import chat_engine, collect, together
from qfnb.local.server.serving.wire import parse
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL
from qfnb.protocol.platform.daemon import MODEL_HEADER
from qfnb.protocol.wires.completion import COMPLETE_ROUTE, CompleteRequest

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
    ((answer,),) = await collect(request, together([_counted(stream, withdrawn)], note))
    tally = answer.tally
    if note is not None:
        note.usage(tally.prompt, tally.completion, tally.cached)
    return JSONResponse({"text": answer.text, "model": served.name, "finish": tally.finish,
                         "usage": {"prompt_tokens": tally.prompt, "completion_tokens": tally.completion,
                                   "cached_tokens": tally.cached}},
                        headers={MODEL_HEADER: served.name})


def routes(platform: Platform) -> list[Route]:
    """The completion route; its withdrawn counter joins the platform's metrics."""
    withdrawn = WithdrawnCollector()
    platform.meter.registry.register(withdrawn)

    async def complete(request: Request, platform: Platform, body: dict[str, Any], lane: str) -> Response:
        return await _complete(request, platform, body, withdrawn)

    return [Route(COMPLETE_ROUTE, openai_route(complete), methods=["POST"])]
