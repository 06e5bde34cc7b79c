"""The platform's one usage point: every model call it serves (an HTTP call, a batch row, a fine-tune)
is counted here, with the tokens its answer reports, so ``/metrics`` and the trace table agree with
the usage ledger the clients keep (``%qfusage``) to the token.

An HTTP call is followed by a :class:`CallNote` (set by the server's middleware for the request's
task): the serving flow notes the model that answered and the usage it put on the wire
(:meth:`CallNote.usage`), the middleware closes it with the status and its time, and
:meth:`Meter.record` counts it. Work with no request (batch rows, fine-tunes) calls
:meth:`Meter.record` itself. The counters live in a registry of this platform's own (not
prometheus_client's global one), so several platforms in one process do not collide.

A call's counts are sums kept under one lock (:class:`CallCounts`) and handed to prometheus_client
as metric families when scraped: its ``Counter`` and ``Histogram`` children lock and check at each
update, five updates a call cost about 15 us of CPU (bench/observability.py), these about 3.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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
        """The call as a span (positional: a named tuple takes keywords at three times the cost)."""
        used = self.used
        return CallSpan(self.trace_id or new_trace_id(), new_span_id(), self.parent_id, self.operation, self.route,
                        self.model or "unresolved", status, self.started, time.perf_counter() - self.clock,
                        self.first_token_s, self.prompt if used else 0, self.completion if used else 0, self.cached,
                        0, self.session, self.cell)


class _Answered:
    """The sums of one route and model's answered calls (status below 400)."""

    __slots__ = ("duration", "duration_sum", "output", "prompt", "ttft", "ttft_sum")

    def __init__(self) -> None:
        self.prompt = self.output = 0
        self.duration_sum = self.ttft_sum = 0.0
        self.duration = [0] * (len(DURATION_BUCKETS) + 1)  # per bucket (not cumulative), the last +Inf
        self.ttft = [0] * (len(TTFT_BUCKETS) + 1)


class CallCounts(Collector):
    """The calls' counters and histograms (``qfnb_requests``, ``qfnb_prompt_tokens``,
    ``qfnb_completion_tokens``, ``qfnb_request_duration_seconds``, ``qfnb_time_to_first_token_seconds``),
    summed under one lock as calls end and exposed as prometheus_client's metric families when scraped.
    A series appears with its first value."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}  # (route, model, status) -> calls
        self._answered: dict[tuple[str, str], _Answered] = {}

    def add(self, span: CallSpan) -> None:
        key = (span.route, span.model, span.status)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            if span.status >= 400:
                return
            sums = self._answered.get(key[:2])
            if sums is None:
                sums = self._answered[key[:2]] = _Answered()
            sums.prompt += span.input_tokens
            sums.output += span.output_tokens
            sums.duration_sum += span.duration_s
            sums.duration[bisect_left(DURATION_BUCKETS, span.duration_s)] += 1  # le: the first bound >= it
            if span.ttft_s is not None:
                sums.ttft_sum += span.ttft_s
                sums.ttft[bisect_left(TTFT_BUCKETS, span.ttft_s)] += 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            requests = dict(self._requests)
            answered = [(route, model, sums.prompt, sums.output, sums.duration_sum, list(sums.duration),
                         sums.ttft_sum, list(sums.ttft)) for (route, model), sums in self._answered.items()]
        calls = CounterMetricFamily("qfnb_requests", "Model calls served, by route template, model and status class",
                                    labels=("route", "model", "status"))
        by_class: dict[tuple[str, str, str], int] = {}
        for (route, model, status), n in requests.items():
            by_class[route, model, status_class(status)] = by_class.get((route, model, status_class(status)), 0) + n
        for labels, n in by_class.items():
            calls.add_metric(labels, n)
        prompt = CounterMetricFamily("qfnb_prompt_tokens", "Prompt (input) tokens the answers reported",
                                     labels=("route", "model"))
        output = CounterMetricFamily("qfnb_completion_tokens", "Completion (output) tokens the answers reported",
                                     labels=("route", "model"))
        duration = HistogramMetricFamily("qfnb_request_duration_seconds", "A model call's time, request to last byte",
                                         labels=("route", "model"))
        ttft = HistogramMetricFamily("qfnb_time_to_first_token_seconds", "Request to the engine's first token",
                                     labels=("route", "model"))
        for route, model, prompt_n, output_n, duration_sum, durations, ttft_sum, ttfts in answered:
            if prompt_n:
                prompt.add_metric((route, model), prompt_n)
            if output_n:
                output.add_metric((route, model), output_n)
            duration.add_metric((route, model), _buckets(DURATION_BUCKETS, durations), duration_sum)
            if sum(ttfts):
                ttft.add_metric((route, model), _buckets(TTFT_BUCKETS, ttfts), ttft_sum)
        yield from (calls, prompt, output, duration, ttft)


def _buckets(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """A histogram's cumulative buckets as the exposition writes them (``le``, count), +Inf last."""
    cumulative, total = [], 0
    for bound, n in zip((*bounds, float("inf")), counts, strict=True):
        total += n
        cumulative.append((floatToGoString(bound), float(total)))
    return cumulative


class Meter:
    """The platform's counters, histograms and trace sink (one per platform)."""

    def __init__(self, data_dir: Path, sink: TraceSink | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = CallCounts()
        self.registry.register(self.calls)
        self.trained_tokens = Counter("qfnb_trained_tokens", "Tokens fine-tunes trained on (finished runs)",
                                      ("model",), registry=self.registry)
        self.sink = sink if sink is not None else TraceSink(data_dir)
        self._lock = threading.Lock()
        self._prompt_cache: dict[str, tuple[int, int]] = {}  # model -> (prompt tokens, of them from the cache)

    def prompt_cache(self) -> dict[str, float]:
        """Per model whose engine reports a prompt cache (llama-server): the share of prompt tokens it
        read from its cache since the platform started."""
        with self._lock:
            return {m: cached / read for m, (read, cached) in self._prompt_cache.items() if read and cached}

    def record(self, span: CallSpan) -> None:
        """Count one call (its tokens only when it answered: a 2xx) and keep its span."""
        self.calls.add(span)
        if span.input_tokens and span.status < 400:
            with self._lock:
                read, cached = self._prompt_cache.get(span.model, (0, 0))
                self._prompt_cache[span.model] = (read + span.input_tokens, cached + span.cached_tokens)
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
