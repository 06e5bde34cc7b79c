"""The platform's one usage point: every model call it serves (an HTTP call, a batch row, a fine-tune)
is counted here, with the tokens its answer reports, so ``/metrics`` and the trace table agree with
the usage ledger the clients keep (``%qfusage``) to the token.

An HTTP call is followed by a :class:`CallNote` (set by the server's request shell for the request's
task): the serving flow notes the model that answered and the usage it put on the wire, the shell
closes it with the status and its time, and :meth:`Meter.record` counts it; work with no request
(batch rows, fine-tunes) calls :meth:`Meter.record` itself. The counters live in a registry of this
platform's own, so several platforms in one process do not collide.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from itertools import accumulate
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from qfnb.local.domain.records.traces import TraceSink
from qfnb.protocol.platform.traces import CallSpan, new_span_id, new_trace_id

__all__ = ["CallNote", "Meter", "current_note", "status_class"]

log = logging.getLogger("qfnb.local.meter")

#: request durations, in seconds: few buckets, so 10 models stay under 200 series (docs/observability.md)
DURATION_BUCKETS = (0.25, 1.0, 5.0, 30.0)
#: time to the first token: a warm engine, a busy one, a cold start that loads the model
TTFT_BUCKETS = (0.1, 0.5, 2.5)
#: calls' spans summed into the counters at once (and at each scrape)
SUM_EVERY = 256
#: routes whose calls and tokens ``/metrics`` reads from the platform's durable state (:attr:`CallCounts.durable`)
DURABLE_ROUTES = frozenset({"batch"})

disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``_created`` twin of every series (process-wide; the platform's own process)

_note: contextvars.ContextVar[CallNote | None] = contextvars.ContextVar("qfnb_call_note", default=None)
_new_tuple = tuple.__new__


def current_note() -> CallNote | None:
    """The note of the HTTP call being served in this task, or None (no request: a batch row)."""
    return _note.get()


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ``5xx`` (a label never carries the exact status: bounded series)."""
    return f"{max(1, min(5, status // 100))}xx"


class CallNote:
    """What one HTTP call did, filled in as it is served. The class attributes are the defaults: a
    note sets only what its call changes (made on every request, it costs two assignments, not
    fifteen)."""

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
    #: a stream's usage (prompt, completion, cached), read when its span is made: what its render
    #: counted as it streamed, so nothing is counted again per delta
    counts: Callable[[], tuple[int, int, int]] | None = None
    #: the HTTP status an error answered with HTTP 200 stands for (the Qianfan v1 wire puts its
    #: errors in the body): the call is counted and traced with it, not as answered
    failed: int = 0

    def __init__(self) -> None:
        self.clock = time.perf_counter()  # the call's start (its Unix time is worked out once, for its span)

    def __repr__(self) -> str:
        return f"CallNote({vars(self)})"

    #: ``CallNote.bind(note)`` makes ``note`` the one :func:`current_note` finds in this task (a
    #: token back), ``CallNote.unbind(token)`` undoes it: the context variable's own methods, no frame
    bind = staticmethod(_note.set)
    unbind = staticmethod(_note.reset)

    def answered_by(self, model: str, operation: str) -> None:
        self.model, self.operation = model, operation

    def first_token(self) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.clock

    def usage(self, prompt: int, completion: int, cached: int = 0) -> None:
        """The usage the answer reported (the wire's ``usage``): what the ledger records."""
        self.prompt, self.completion, self.cached, self.used = prompt, completion, cached, True

    def counted_by(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        """A stream is over (ended, or cut by the client): its usage is ``counts()``, read once, when
        the span is made."""
        self.counts, self.used = counts, True

    def span(self, status: int) -> CallSpan:
        """The call as a span, made as its tuple (the named tuple's own ``__new__`` is a Python
        function taking each field as an argument: about a third of the span's cost)."""
        used, seconds = self.used, time.perf_counter() - self.clock
        if self.counts is not None:
            self.prompt, self.completion, self.cached = self.counts()
        return _new_tuple(CallSpan, (
            self.trace_id or new_trace_id(), new_span_id(), self.parent_id, self.operation, self.route,
            self.model or "unresolved", self.failed or status, time.time() - seconds, seconds, self.first_token_s,
            self.prompt if used else 0, self.completion if used else 0, self.cached, 0, self.session, self.cell, "",
            ""))


class _Series:
    """The sums of one route and model's answered calls (status below 400): their tokens and times."""

    __slots__ = ("cached", "duration", "duration_sum", "output", "prompt", "ttft", "ttft_sum")

    def __init__(self) -> None:
        self.prompt = self.output = self.cached = 0
        self.duration_sum = self.ttft_sum = 0.0
        self.duration = [0] * (len(DURATION_BUCKETS) + 1)  # per bucket (not cumulative), the last +Inf
        self.ttft = [0] * (len(TTFT_BUCKETS) + 1)


class CallCounts(Collector):
    """The calls' counters and histograms, exposed as prometheus_client's metric families when scraped. A
    call's span is queued (an append) and the queue summed in batches (every :data:`SUM_EVERY` spans, and at
    each scrape): prometheus_client's own ``Counter`` and ``Histogram`` lock and check at each update, five a
    call, about 15 us of CPU (bench/observability.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: deque[CallSpan] = deque()  # appended by any thread, summed under the lock
        self._calls: dict[tuple[str, str, int], int] = {}  # (route, model, status) -> its calls
        self._series: dict[tuple[str, str], _Series] = {}  # (route, model) -> its answered calls' sums
        #: the calls and tokens of durable work (``(route, model) -> [requests, prompt, completion]``),
        #: read from the platform's state when scraped: a batch job's rows outlive the process that
        #: answered them, so its :data:`DURABLE_ROUTES` counts are its own, not this process's spans
        self.durable: Callable[[], dict[tuple[str, str], list[int]]] | None = None

    def add(self, span: CallSpan) -> None:
        self._queued.append(span)
        if len(self._queued) >= SUM_EVERY:
            with self._lock:
                self._sum_queued()

    def _sum_queued(self) -> None:
        """Sum the queued spans into their series (the caller holds the lock)."""
        queued, calls, series = self._queued, self._calls, self._series
        while queued:
            span = queued.popleft()
            key = (span.route, span.model, span.status)
            calls[key] = calls.get(key, 0) + 1
            if span.status >= 400:
                continue
            sums = series.get(key[:2]) or series.setdefault(key[:2], _Series())
            if span.input_tokens:
                sums.prompt += span.input_tokens
                sums.cached += span.cached_tokens
            sums.output += span.output_tokens
            sums.duration_sum += span.duration_s
            sums.duration[bisect_left(DURATION_BUCKETS, span.duration_s)] += 1  # le: the first bound >= it
            if span.ttft_s is not None:
                sums.ttft_sum += span.ttft_s
                sums.ttft[bisect_left(TTFT_BUCKETS, span.ttft_s)] += 1

    def prompt_cache(self) -> dict[str, float]:
        """Per model whose engine reports a prompt cache (llama-server): the share of prompt tokens it
        read from its cache."""
        read: dict[str, list[int]] = {}
        with self._lock:
            self._sum_queued()
            for (_, model), sums in self._series.items():
                both = read.setdefault(model, [0, 0])
                both[0] += sums.prompt
                both[1] += sums.cached
        return {m: cached / prompt for m, (prompt, cached) in read.items() if prompt and cached}

    def _summed(self) -> tuple[dict[tuple[str, str, str], int], dict[tuple[str, str], _Series]]:
        """The calls by (route, model, status class), and the answered calls' sums by (route,
        model), the durable routes' read from the platform's state."""
        calls: dict[tuple[str, str, str], int] = {}
        with self._lock:
            self._sum_queued()
            for (route, model, status), n in self._calls.items():
                by_class = (route, model, status_class(status))
                calls[by_class] = calls.get(by_class, 0) + n
            answered = copy.deepcopy(self._series)  # read outside the lock: a copy
        if self.durable is not None:
            _durable_counts(self.durable(), calls, answered)
        return calls, answered

    def answered(self) -> dict[str, int]:
        """The answered calls per model, every route: ``qfnb_requests_total{status="2xx"}`` summed
        over the routes (``qfnb status``' ``answeredCalls``), the ledger's calls to this platform."""
        per_model: dict[str, int] = {}
        for (_, model, by_class), n in self._summed()[0].items():
            if by_class == "2xx":
                per_model[model] = per_model.get(model, 0) + n
        return per_model

    def collect(self) -> Iterator[Metric]:
        calls, answered = self._summed()
        requests = CounterMetricFamily("qfnb_requests", "Model calls served, by route template, model and status "
                                       "class", labels=("route", "model", "status"))
        for by_class, n in calls.items():
            requests.add_metric(by_class, n)
        prompt = CounterMetricFamily("qfnb_prompt_tokens", "Prompt (input) tokens the answers reported",
                                     labels=("route", "model"))
        output = CounterMetricFamily("qfnb_completion_tokens", "Completion (output) tokens the answers reported",
                                     labels=("route", "model"))
        duration = HistogramMetricFamily("qfnb_request_duration_seconds", "A model call's time, request to last byte",
                                         labels=("route", "model"))
        ttft = HistogramMetricFamily("qfnb_time_to_first_token_seconds", "Request to the engine's first token",
                                     labels=("route", "model"))
        for labels, sums in answered.items():
            if sums.prompt:
                prompt.add_metric(labels, sums.prompt)
            if sums.output:
                output.add_metric(labels, sums.output)
            duration.add_metric(labels, _buckets(DURATION_BUCKETS, sums.duration), sums.duration_sum)
            if sum(sums.ttft):
                ttft.add_metric(labels, _buckets(TTFT_BUCKETS, sums.ttft), sums.ttft_sum)
        yield from (requests, prompt, output, duration, ttft)


def _durable_counts(durable: dict[tuple[str, str], list[int]], calls: dict[tuple[str, str, str], int],
                    answered: dict[tuple[str, str], _Series]) -> None:
    """Put the durable routes' counts (read from the platform's state) in place of this process's:
    their times stay this process's spans'."""
    for by_class in [k for k in calls if k[0] in DURABLE_ROUTES]:
        del calls[by_class]
    for labels, sums in answered.items():
        if labels[0] in DURABLE_ROUTES:
            sums.prompt = sums.output = 0
    for (route, model), (n, prompt_tokens, completion_tokens) in durable.items():
        calls[(route, model, "2xx")] = n
        sums = answered.setdefault((route, model), _Series())
        sums.prompt, sums.output = prompt_tokens, completion_tokens


def _buckets(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """A histogram's cumulative buckets as the exposition writes them (``le``, count), +Inf last."""
    return [(floatToGoString(bound), float(total))  # type: ignore[no-untyped-call]
            for bound, total in zip((*bounds, float("inf")), accumulate(counts), strict=True)]


class Meter:
    """The platform's counters, histograms and trace sink (one per platform)."""

    def __init__(self, data_dir: Path, sink: TraceSink | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = CallCounts()
        self.registry.register(self.calls)
        self.trained_tokens = Counter("qfnb_trained_tokens", "Tokens fine-tunes trained on (finished runs)",
                                      ("model",), registry=self.registry)
        self.sink = sink if sink is not None else TraceSink(data_dir)

    def record(self, span: CallSpan) -> None:
        """Count one call (its tokens only when it answered: a 2xx) and keep its span."""
        self.calls.add(span)
        self.sink.add(span)

    def record_training(self, model: str, trained: int, started: float, seconds: float, *, job: str) -> None:
        """A finished fine-tune, once: its trained tokens and its span (no HTTP call), written before this
        returns. A job whose span is written already (a daemon killed after counting it, before the run
        showed Done: the next one finishes it again) is not counted twice."""
        if self.sink.holds_job("fine-tune", job):
            log.info("%s was counted already", job)
            return
        if trained:
            self.trained_tokens.labels(model).inc(trained)
        self.sink.add(CallSpan(trace_id=new_trace_id(), span_id=new_span_id(), parent_id="", operation="fine_tune",
                               route="fine-tune", model=model, status=200, started=started, duration_s=seconds,
                               ttft_s=None, trained_tokens=trained, job=job))
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()
