"""``GET /metrics`` (Prometheus text exposition) and what follows every model call.

:class:`Observation` gives each HTTP request a :class:`~qfnb.local.domain.records.meter.CallNote`; the serving
flow fills it in (the model that answered, the usage on the wire, the first token's time); just
before the response's last byte goes out the note is recorded in the platform's meter (counters,
histograms, the call's span), so a client that has read its answer sees it counted.

The gauges are read from the platform's state when scraped (:class:`StateCollector`), not kept up
to date by the code they describe. ``/metrics`` answers a request carrying the platform's key
(a bearer token or an IAM signature); without one, only a loopback ``Host`` from a loopback client
(a local Prometheus), so a page of another origin that rebinds a name to 127.0.0.1 reads nothing.
"""

from __future__ import annotations

import contextlib
import logging
import operator
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain.batch import tasks as batch
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records.meter import CallNote, Meter
from qfnb.local.engines.call_state import calls
from qfnb.local.server.middleware.auth import authenticator
from qfnb.protocol.console.enums import RunStatus
from qfnb.protocol.platform.traces import CELL_HEADER, SESSION_HEADER, TRACEPARENT, parse_traceparent
from qfnb.protocol.platform.usage_file import usage_by_target

__all__ = ["METRICS_ROUTE", "Observation", "StateCollector", "routes"]

log = logging.getLogger("qfnb.local.metrics")

METRICS_ROUTE = "/metrics"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_CELL, _SESSION = CELL_HEADER.lower().encode(), SESSION_HEADER.lower().encode()
_TRACEPARENT = TRACEPARENT.encode()
_OURS = frozenset((_CELL, _SESSION, _TRACEPARENT))
_NAME = operator.itemgetter(0)
_UNSHOWN = frozenset(("scope", "meter", "token"))
#: route labels by (route template, Qianfan API type): a few dozen, made once each
_ROUTES: dict[tuple[str, object], str] = {}
_NO_PARAMS: dict[str, object] = {}
_MAX_ROUTES = 256
_OPENAI_PREFIXES = ("v1", "v2")


def _route_of(scope: dict[str, Any]) -> str:
    """The route template the request matched, never the path itself (a label stays bounded): the
    OpenAI surface without its ``/v1`` or ``/v2`` prefix (the same API under both, as the ledger
    counts it: ``/chat/completions``), the Qianfan v1 API type filled in (one of a few words)."""
    route = scope.get("route")
    key = route.path if isinstance(route, Route) else "unmatched", scope.get("path_params", _NO_PARAMS).get("api_type")
    found = _ROUTES.get(key)
    if found is None:
        found = _route_label(*key)
        if len(_ROUTES) < _MAX_ROUTES:  # a client's own words in the path are not kept without bound
            _ROUTES[key] = found
    return found


def _route_label(path: str, api_type: object) -> str:
    if api_type and "{api_type}" in path:
        return path.replace("{api_type}", str(api_type))
    head, _, rest = path.lstrip("/").partition("/")
    return "/" + rest if head in _OPENAI_PREFIXES and rest else path


def _read_headers(note: CallNote, raw: Any) -> None:
    """The caller's cell, session and W3C trace context (``traceparent``: the call joins its caller's
    trace), from the request's headers."""
    headers = dict(raw)
    if (cell := headers.get(_CELL)) is not None:
        with contextlib.suppress(ValueError):
            note.cell = int(cell)
    if (session := headers.get(_SESSION)) is not None:
        note.session = session.decode("latin-1")[:32]
    if (caller := headers.get(_TRACEPARENT)) is not None:
        parsed = parse_traceparent(caller.decode("latin-1"))
        if parsed is not None:
            note.trace_id, note.parent_id = parsed


class Observation(CallNote):
    """One HTTP request followed: its :class:`CallNote` (the one the serving flow fills in, bound to
    the request's task) and what the platform's request shell (``app.CatchAll``, with the platform's
    ``meter``, when observing) notes of it: the status it answered (:attr:`status`, as the response
    starts), and, for a model call, the call recorded once, just before the response's last byte
    (:meth:`record`, or when the client left). One object a request, not a middleware of its own: a
    middleware layer and its ``send`` wrapper cost about as much as the counting itself
    (bench/observability.py)."""

    status: int = 500
    recorded: bool = False

    def __init__(self, scope: dict[str, Any], meter: Meter) -> None:
        CallNote.__init__(self)
        self.scope, self.meter = scope, meter
        raw = scope.get("headers") or ()
        if not _OURS.isdisjoint(map(_NAME, raw)):  # most calls carry none of the three: one test, in C
            _read_headers(self, raw)
        self.token = CallNote.bind(self)

    def __repr__(self) -> str:  # the note, never the request's scope (its headers carry the key)
        return f"Observation({ {k: v for k, v in vars(self).items() if k not in _UNSHOWN} })"

    def close(self) -> None:
        """The request is over: a model call not recorded yet (the client left mid-stream) counts
        what was generated."""
        try:
            if not self.recorded and self.model_call:
                self.status = self.status if self.used else 499
                self.record()
        finally:
            CallNote.unbind(self.token)

    def record(self) -> None:
        """Count the call (a model call, once) with the status it answered."""
        if self.recorded or not self.model_call:
            return
        self.recorded = True
        self.route = _route_of(self.scope)
        try:
            self.meter.record(self.span(self.status))
        except Exception:  # counting never breaks a call
            log.exception("could not record a call to %s", self.route)


class StateCollector(Collector):
    """The gauges, read from the platform's state at each scrape."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def collect(self) -> Iterator[Metric]:
        engines = self.platform.registry.engine_states()
        queued = GaugeMetricFamily("qfnb_engine_queued_requests", "Requests waiting for a slot, per engine",
                                   labels=["model"])
        running = GaugeMetricFamily("qfnb_engine_running_requests", "Requests holding a slot, per engine",
                                    labels=["model"])
        rss = GaugeMetricFamily("qfnb_engine_rss_bytes", "Resident memory of an engine's process", labels=["model"])
        loaded = 0
        for engine in engines:
            model = str(engine.get("model") or "")
            if engine.get("state") in ("ready", "starting"):
                loaded += 1
            queued.add_metric([model], float(engine.get("queued") or 0))
            running.add_metric([model], float(engine.get("busy") or 0))
            if engine.get("rssBytes"):
                rss.add_metric([model], float(engine["rssBytes"]))
        yield from (GaugeMetricFamily("qfnb_engines_loaded", "Engines loaded or loading", value=loaded), queued,
                    running, rss)
        ratio = GaugeMetricFamily("qfnb_prompt_cache_hit_ratio", "Share of prompt tokens the engine (llama-server) "
                                  "read from its prompt cache since the platform started", labels=["model"])
        for model, share in sorted(self.platform.meter.calls.prompt_cache().items()):
            ratio.add_metric([model], share)
        yield ratio
        for more in (self._drafts(), self._batches(), self._fine_tunes(), self._ledger()):
            yield from more

    def _ledger(self) -> Iterator[CounterMetricFamily]:
        """Every target's calls and tokens as the clients' usage ledger (in this data dir) holds them: the
        rows a Ray cluster's engines or the cloud answered never reach this platform's own counters."""
        calls = CounterMetricFamily("qfnb_usage_calls", "Model calls the usage ledger holds, by target (local, "
                                    "ray, cloud) and model: a batch row is one; replays are none",
                                    labels=["target", "model"])
        tokens = CounterMetricFamily("qfnb_usage_tokens", "Tokens the usage ledger holds, by target, model and kind",
                                     labels=["target", "model", "kind"])
        for found in usage_by_target(self.platform.settings.data_dir):
            calls.add_metric([found.target, found.model], found.calls)
            tokens.add_metric([found.target, found.model, "prompt"], found.prompt_tokens)
            tokens.add_metric([found.target, found.model, "completion"], found.completion_tokens)
        yield from (calls, tokens)

    @staticmethod
    def _drafts() -> Iterator[CounterMetricFamily]:
        """Speculative decoding: the tokens each model's engine drafted, and those its model accepted."""
        drafted = CounterMetricFamily("qfnb_engine_draft_tokens", "Tokens drafted by speculative decoding, per "
                                      "model", labels=["model"])
        accepted = CounterMetricFamily("qfnb_engine_draft_tokens_accepted", "Drafted tokens the model accepted, per "
                                       "model", labels=["model"])
        for model, (n, ok) in sorted(calls.drafts().items()):
            drafted.add_metric([model], float(n))
            accepted.add_metric([model], float(ok))
        yield from (drafted, accepted)

    def _batches(self) -> Iterator[GaugeMetricFamily]:
        jobs = self.platform.store.all("batches", lambda b: b.get("runStatus") == "Running")
        runners = batch.runners(self.platform)
        yield GaugeMetricFamily("qfnb_batch_rows_done", "Rows answered by the batch jobs running now",
                                value=sum(int(j.get("done") or 0) for j in jobs))
        yield GaugeMetricFamily("qfnb_batch_rows_in_flight", "Rows of running batch jobs at an engine now",
                                value=sum(r.in_flight for r in runners.values()))
        yield GaugeMetricFamily("qfnb_batch_rows_repeated", "Rows sent again after a restart (running jobs)",
                                value=sum(int(j.get("repeatedRequests") or 0) for j in jobs))

    def _fine_tunes(self) -> Iterator[GaugeMetricFamily]:
        runs = self.platform.store.all("runs", lambda r: r.get("status") == RunStatus.RUNNING.value)
        step = GaugeMetricFamily("qfnb_finetune_step", "The running fine-tune's step", labels=["model"])
        pace = GaugeMetricFamily("qfnb_finetune_seconds_per_step", "The running fine-tune's seconds per step",
                                 labels=["model"])
        for run in runs:
            model, done = str(run.get("baseModel") or ""), int(run.get("currentStep") or 0)
            step.add_metric([model], done)
            if done:
                pace.add_metric([model], float(run.get("elapsedSeconds") or 0.0) / done)
        yield from (step, pace)


def _allowed(request: Request) -> bool:
    if authenticator(request).check_bearer(request) is None:
        return True
    host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
    client = request.client.host if request.client is not None else ""
    return host in _LOOPBACK and client in _LOOPBACK


async def metrics(request: Request) -> Response:
    """The platform's metrics in Prometheus' text format."""
    if not _allowed(request):
        return JSONResponse({"error": {"code": "unauthorized", "message": "/metrics needs the platform's key "
                                       "(Authorization: Bearer <token>) from a host other than this machine"}},
                            status_code=401)
    platform: Platform = request.app.state.platform
    return Response(generate_latest(platform.meter.registry), media_type=CONTENT_TYPE_LATEST)


def routes(platform: Platform) -> list[Route]:
    """``/metrics``; the state gauges join the platform's registry."""
    platform.meter.registry.register(StateCollector(platform))
    return [Route(METRICS_ROUTE, metrics, methods=["GET"])]
