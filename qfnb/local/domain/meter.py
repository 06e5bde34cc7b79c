"""The platform's one usage point: every model call it serves (an HTTP call, a batch row, a fine-tune)
is counted here, with the tokens its answer reports, so ``/metrics`` and the trace table agree with
the usage ledger the clients keep (``%qfusage``) to the token.

An HTTP call is followed by a :class:`CallNote` (set by the server's middleware for the request's
task): the serving flow notes the model that answered and the usage it put on the wire
(:meth:`CallNote.usage`), the middleware closes it with the status and its time, and
:meth:`Meter.record` counts it. Work with no request (batch rows, fine-tunes) calls
:meth:`Meter.record` itself. The counters live in a registry of this platform's own (not
prometheus_client's global one), so several platforms in one process do not collide.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

from qfnb.local.domain.traces import TraceSink
from qfnb.protocol.traces import CallSpan, new_span_id, new_trace_id

__all__ = ["CallNote", "Meter", "current_note", "status_class"]

log = logging.getLogger("qfnb.local.meter")

#: request durations, in seconds: few buckets, so 10 models stay under 200 series (docs/observability.md)
DURATION_BUCKETS = (0.25, 1.0, 5.0, 30.0)
#: time to the first token: a warm engine, a busy one, a cold start that loads the model
TTFT_BUCKETS = (0.1, 0.5, 2.5)

disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``_created`` twin of every series (process-wide; the platform's own process)

_note: contextvars.ContextVar[CallNote | None] = contextvars.ContextVar("qfnb_call_note", default=None)


def current_note() -> CallNote | None:
    """The note of the HTTP call being served in this task, or None (no request: a batch row)."""
    return _note.get()


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ``5xx`` (a label never carries the exact status: bounded series)."""
    return f"{max(1, min(5, status // 100))}xx"


@dataclass(slots=True)
class CallNote:
    """What one HTTP call did, filled in as it is served."""

    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.perf_counter)
    route: str = ""
    #: a model API's route marks its calls (only those are counted)
    model_call: bool = False
    model: str = ""
    operation: str = "chat"
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    used: bool = False  # the answer reported its usage (an answered call: in the ledger)
    first_token_s: float | None = None
    session: str = ""
    cell: int | None = None
    trace_id: str = ""  # the caller's (``traceparent``), or a new one when the span is made
    parent_id: str = ""

    def bind(self) -> contextvars.Token[CallNote | None]:
        return _note.set(self)

    @staticmethod
    def unbind(token: contextvars.Token[CallNote | None]) -> None:
        _note.reset(token)

    def answered_by(self, model: str, operation: str) -> None:
        self.model, self.operation = model, operation

    def first_token(self) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.clock

    def usage(self, prompt: int, completion: int, cached: int = 0) -> None:
        """The usage the answer reported (the wire's ``usage``): what the ledger records."""
        self.prompt, self.completion, self.cached, self.used = prompt, completion, cached, True

    def span(self, status: int) -> CallSpan:
        return CallSpan(trace_id=self.trace_id or new_trace_id(), span_id=new_span_id(), parent_id=self.parent_id,
                        operation=self.operation, route=self.route, model=self.model or "unresolved",
                        status=status, started=self.started, duration_s=time.perf_counter() - self.clock,
                        ttft_s=self.first_token_s, input_tokens=self.prompt if self.used else 0,
                        output_tokens=self.completion if self.used else 0, cached_tokens=self.cached,
                        session=self.session, cell=self.cell)


class Meter:
    """The platform's counters, histograms and trace sink (one per platform)."""

    def __init__(self, data_dir: Path, sink: TraceSink | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("route", "model")
        self.requests = Counter("qfnb_requests", "Model calls served, by route template, model and status class",
                                (*labels, "status"), registry=self.registry)
        self.prompt_tokens = Counter("qfnb_prompt_tokens", "Prompt (input) tokens the answers reported",
                                     labels, registry=self.registry)
        self.completion_tokens = Counter("qfnb_completion_tokens", "Completion (output) tokens the answers reported",
                                         labels, registry=self.registry)
        self.trained_tokens = Counter("qfnb_trained_tokens", "Tokens fine-tunes trained on (finished runs)",
                                      ("model",), registry=self.registry)
        self.duration = Histogram("qfnb_request_duration_seconds", "A model call's time, request to last byte",
                                  labels, buckets=DURATION_BUCKETS, registry=self.registry)
        self.ttft = Histogram("qfnb_time_to_first_token_seconds", "Request to the engine's first token",
                              labels, buckets=TTFT_BUCKETS, registry=self.registry)
        self.sink = sink if sink is not None else TraceSink(data_dir)
        self._lock = threading.Lock()
        self._prompt_cache: dict[str, tuple[int, int]] = {}  # model -> (prompt tokens, of them from the cache)
        self._requests: dict[tuple[str, str, int], Any] = {}  # (route, model, status) -> its requests child
        self._answered_children: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}  # see _answered

    def _answered(self, route: str, model: str) -> tuple[Any, Any, Any, Any]:
        """The labelled children an answered call of ``route`` and ``model`` counts in (prompt and
        completion tokens, duration, time to first token), made once: ``labels()`` validates and
        locks at each call. They appear (at 0) with the first answered call, not with a refusal."""
        found = self._answered_children.get((route, model))
        if found is None:
            found = self._answered_children[route, model] = (
                self.prompt_tokens.labels(route, model), self.completion_tokens.labels(route, model),
                self.duration.labels(route, model), self.ttft.labels(route, model))
        return found

    def prompt_cache(self) -> dict[str, float]:
        """Per model whose engine reports a prompt cache (llama-server): the share of prompt tokens it
        read from its cache since the platform started."""
        with self._lock:
            return {m: cached / read for m, (read, cached) in self._prompt_cache.items() if read and cached}

    def record(self, span: CallSpan) -> None:
        """Count one call (its tokens only when it answered: a 2xx) and keep its span."""
        route, model, status = span.route, span.model, span.status
        requests = self._requests.get((route, model, status))
        if requests is None:  # made once: labels() validates and locks at each call
            requests = self._requests[route, model, status] = self.requests.labels(route, model, status_class(status))
        requests.inc()
        if status < 400:
            prompt, completion, duration, ttft = self._answered(route, model)
            if span.input_tokens:
                prompt.inc(span.input_tokens)
                with self._lock:
                    read, cached = self._prompt_cache.get(model, (0, 0))
                    self._prompt_cache[model] = (read + span.input_tokens, cached + span.cached_tokens)
            if span.output_tokens:
                completion.inc(span.output_tokens)
            duration.observe(span.duration_s)
            if span.ttft_s is not None:
                ttft.observe(span.ttft_s)
        self.sink.add(span)

    def record_training(self, model: str, trained: int, started: float, seconds: float, *, job: str) -> None:
        """A finished fine-tune: its trained tokens and its span (no HTTP call)."""
        if trained:
            self.trained_tokens.labels(model).inc(trained)
        self.sink.add(CallSpan(trace_id=new_trace_id(), span_id=new_span_id(), parent_id="", operation="fine_tune",
                               route="fine-tune", model=model, status=200, started=started, duration_s=seconds,
                               ttft_s=None, trained_tokens=trained, job=job))

    def close(self) -> None:
        self.sink.close()
