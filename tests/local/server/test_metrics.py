"""``/metrics`` as Prometheus reads it (issue 56): the exposition parses, its names and types are the
documented ones, its labels are bounded (model names, route templates, status classes; never a prompt
or an id) and 10 models stay under 200 series with a scrape well under 50 ms. The call spans: kept in
the data dir with their ``gen_ai.*`` fields, joining a caller's ``traceparent``, and exported through
the OpenTelemetry SDK (its in-memory exporter standing in for OTLP)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_doubles import FakeChat, FakeRegistry, FakeServed
from platform_helpers import Signer, make_settings
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from qfnb.local.domain.records import traces
from qfnb.local.domain.records.meter import Meter, current_note
from qfnb.local.domain.records.traces import OtelExport, TraceSink
from qfnb.local.engines.base import Delta
from qfnb.local.server.app import create_app
from qfnb.local.server.middleware.metrics import Observation
from qfnb.protocol.platform.traces import TRACES_FILE, CallSpan, new_span_id, new_trace_id

MODELS = [f"Chat-{i}" for i in range(10)]
TYPES = {"qfnb_requests": "counter", "qfnb_prompt_tokens": "counter", "qfnb_completion_tokens": "counter",
         "qfnb_trained_tokens": "counter", "qfnb_request_duration_seconds": "histogram",
         "qfnb_time_to_first_token_seconds": "histogram", "qfnb_engines_loaded": "gauge",
         "qfnb_engine_queued_requests": "gauge", "qfnb_engine_running_requests": "gauge",
         "qfnb_engine_rss_bytes": "gauge", "qfnb_prompt_cache_hit_ratio": "gauge", "qfnb_batch_rows_done": "gauge",
         "qfnb_batch_rows_in_flight": "gauge", "qfnb_batch_rows_repeated": "gauge", "qfnb_finetune_step": "gauge",
         "qfnb_finetune_seconds_per_step": "gauge", "qfnb_usage_calls": "counter", "qfnb_usage_tokens": "counter",
         "qfnb_engine_draft_tokens": "counter", "qfnb_engine_draft_tokens_accepted": "counter",
         "qfnb_completions_withdrawn": "counter"}


class TenModels(FakeRegistry):
    """Ten chat models, each an engine with a process (its RSS reported)."""

    def __init__(self) -> None:
        super().__init__()
        self.models = [FakeServed(m, m.lower(), ("chat", "completions"), "llama.cpp") for m in MODELS]

    def engine_states(self) -> list[dict[str, Any]]:
        return [{"model": m, "endpoint": m.lower(), "state": "ready", "slots": 2, "busy": 1, "queued": i % 3,
                 "pid": 1000 + i, "rssBytes": 2**28 + i} for i, m in enumerate(MODELS)]


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path / "data"), TenModels())
    with TestClient(app, base_url="http://127.0.0.1") as c:
        c.headers["Authorization"] = "Bearer " + c.get("/v1/BCE-BEARER/token", auth=Signer()).json()["token"]
        yield c


def _traffic(client: TestClient) -> None:
    for model in MODELS:
        secret = f"my secret prompt for {model}"  # must never become a label
        assert client.post("/v2/chat/completions", json={"model": model, "messages": [
            {"role": "user", "content": secret}]}).status_code == 200
        with client.stream("POST", "/v1/chat/completions", json={"model": model, "stream": True, "messages": [
                {"role": "user", "content": secret}]}) as stream:
            assert sum(1 for _ in stream.iter_lines()) > 2
    assert client.post("/v2/chat/completions", json={"model": "no-such-model-xyz", "messages": [
        {"role": "user", "content": "hi"}]}).status_code == 404


def test_the_exposition_parses_with_bounded_labels_and_few_series(client: TestClient) -> None:
    _traffic(client)
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {n: f.type for n, f in families.items()} == TYPES
    series = [s for f in families.values() for s in f.samples]
    assert len(series) <= 200, len(series)
    allowed = {"model": {*MODELS, "unresolved"}, "status": {"2xx", "4xx", "5xx"}, "le": None,
               "route": {"/chat/completions"}}  # /v1 and /v2: the same OpenAI surface
    for sample in series:
        for label, value in sample.labels.items():
            assert label in allowed, label
            assert allowed[label] is None or value in allowed[label], (label, value)
        assert "secret" not in str(sample.labels) and "no-such-model" not in str(sample.labels)
    requests = families["qfnb_requests"].samples
    assert sum(s.value for s in requests if s.labels["status"] == "2xx") == 20
    assert [s.labels for s in requests if s.labels["status"] == "4xx"] == [
        {"route": "/chat/completions", "model": "unresolved", "status": "4xx"}]
    assert {s.labels["model"]: s.value for s in families["qfnb_engine_queued_requests"].samples} == {
        m: float(i % 3) for i, m in enumerate(MODELS)}
    ttft = [s for s in families["qfnb_time_to_first_token_seconds"].samples if s.name.endswith("_count")]
    assert len(ttft) == 10 and all(s.value == 2 for s in ttft)
    registry = client.app.state.platform.meter.registry  # type: ignore[attr-defined]
    best = min(_timed(lambda: generate_latest(registry)) for _ in range(5))
    assert best < 0.05, f"a scrape took {best * 1000:.1f} ms"


def _timed(work: Any) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def test_each_call_is_a_span_in_the_data_dir_and_over_the_sdk(client: TestClient) -> None:
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    meter = client.app.state.platform.meter  # type: ignore[attr-defined]
    meter.sink.export = OtelExport(exporter)
    parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    client.post("/v2/chat/completions", headers={"traceparent": f"00-{parent[0]}-{parent[1]}-01",
                                                  "X-Qfnb-Cell": "7", "X-Qfnb-Session": "abc123"},
                json={"model": "Chat-3", "messages": [{"role": "user", "content": "hello you"}]})
    meter.sink.flush()
    meter.sink.export.processor.force_flush()
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat Chat-3" and attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "Chat-3" and attrs["http.route"] == "/chat/completions"
    assert attrs["gen_ai.usage.input_tokens"] == 2 and attrs["gen_ai.usage.output_tokens"] > 0
    assert format(span.context.trace_id, "032x") == parent[0] and format(span.parent.span_id, "016x") == parent[1]
    db = sqlite3.connect(Path(client.app.state.platform.settings.data_dir) / TRACES_FILE)  # type: ignore[attr-defined]
    (row,) = db.execute("SELECT model, input_tokens, output_tokens, cell, session, trace_id, span_id "
                        "FROM spans").fetchall()
    assert row == ("Chat-3", 2, attrs["gen_ai.usage.output_tokens"], 7, "abc123", parent[0],
                   format(span.context.span_id, "016x"))  # the exported span is the kept one, ids and all


def test_an_otlp_endpoint_without_the_extra_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        sink = TraceSink(tmp_path)
        assert sink.export is None and "qfnb[otel]" in caplog.text
    else:
        sink = TraceSink(tmp_path)
        assert sink.export is not None
    sink.close()


def test_spans_still_queued_are_written_when_the_platform_stops(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer thread keeps spans in batches; the ones queued when the platform stops (its
    lifespan's end, as a daemon stop runs it) are written then, none lost."""
    monkeypatch.setattr(traces, "_WRITE_EVERY_S", 3600.0)  # the writer thread writes nothing in this test
    app = create_app(make_settings(tmp_path / "data"), TenModels())
    with TestClient(app, base_url="http://127.0.0.1") as c:
        c.headers["Authorization"] = "Bearer " + c.get("/v1/BCE-BEARER/token", auth=Signer()).json()["token"]
        for i, model in enumerate(MODELS):
            assert c.post("/v2/chat/completions", json={"model": model, "stream": i % 2 == 0, "messages": [
                {"role": "user", "content": "one two three"}]}).status_code == 200
        assert not (tmp_path / "data" / TRACES_FILE).exists()  # all still queued
    db = sqlite3.connect(tmp_path / "data" / TRACES_FILE)
    rows = db.execute("SELECT model, input_tokens, output_tokens, status FROM spans ORDER BY started").fetchall()
    assert [r[0] for r in rows] == MODELS and all(r[1] > 0 and r[2] > 0 and r[3] == 200 for r in rows)


def test_a_full_span_queue_drops_new_spans_and_says_how_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(traces, "MAX_QUEUED", 3)
    monkeypatch.setattr(traces, "_WRITE_EVERY_S", 3600.0)
    sink = TraceSink(tmp_path, export=False)
    for i in range(5):
        sink.add(CallSpan(new_trace_id(), new_span_id(), "", "chat", "/chat/completions", f"m{i}", 200, float(i),
                          0.1, None))
    sink.close()
    db = sqlite3.connect(tmp_path / TRACES_FILE)
    assert [m for (m,) in db.execute("SELECT model FROM spans ORDER BY started")] == ["m0", "m1", "m2"]
    assert "2 spans dropped" in caplog.text


def test_a_fine_tune_finished_again_by_the_next_daemon_is_counted_once(tmp_path: Path) -> None:
    """A daemon killed after it counted a finished run and before the run showed Done: the next one
    finishes the run again, and counts nothing twice (the span is written before the run is Done)."""
    first = Meter(tmp_path, sink=TraceSink(tmp_path, export=False))
    first.record_training("m", 120, 1.0, 5.0, job="fine-tune task-1")  # written at once, not in 0.2 s
    second = Meter(tmp_path, sink=TraceSink(tmp_path, export=False))  # the daemon killed without closing
    second.record_training("m", 120, 1.0, 5.0, job="fine-tune task-1")
    second.record_training("m", 30, 2.0, 1.0, job="fine-tune task-2")
    second.close()
    db = sqlite3.connect(tmp_path / TRACES_FILE)
    spans = db.execute("SELECT job, trained_tokens FROM spans WHERE route = 'fine-tune' ORDER BY job").fetchall()
    db.close()
    assert spans == [("fine-tune task-1", 120), ("fine-tune task-2", 30)]
    assert second.trained_tokens.labels("m")._value.get() == 30


def test_the_counts_are_prometheus_histograms_and_counters_of_the_calls(tmp_path: Path) -> None:
    """The sums made in batches read as prometheus_client's own metrics would: cumulative ``le``
    buckets, ``_sum`` and ``_count``, requests by status class, tokens of answered calls only."""
    meter = Meter(tmp_path, sink=TraceSink(tmp_path, export=False))
    for i, (seconds, status) in enumerate([(0.1, 200), (0.5, 200), (2.0, 200), (40.0, 200), (0.2, 404), (0.3, 503)]):
        meter.record(CallSpan(new_trace_id(), new_span_id(), "", "chat", "/chat/completions", "m", status, float(i),
                              seconds, 0.05 if status == 200 else None, 10, 3, 4))
    found = {(s.name, s.labels.get("le"), s.labels.get("status")): s.value
             for family in text_string_to_metric_families(generate_latest(meter.registry).decode())
             for s in family.samples}
    meter.close()
    duration = "qfnb_request_duration_seconds"
    assert [found[duration + "_bucket", le, None] for le in ("0.25", "1.0", "5.0", "30.0", "+Inf")] == [1, 2, 3, 3, 4]
    assert found[duration + "_count", None, None] == 4 and found[duration + "_sum", None, None] == pytest.approx(42.6)
    assert found["qfnb_time_to_first_token_seconds_bucket", "0.1", None] == 4
    assert [found["qfnb_requests_total", None, c] for c in ("2xx", "4xx", "5xx")] == [4, 1, 1]
    assert found["qfnb_prompt_tokens_total", None, None] == 40
    assert found["qfnb_completion_tokens_total", None, None] == 12
    assert meter.calls.prompt_cache() == {"m": pytest.approx(0.4)}


def test_a_batch_of_spans_is_written_whole_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's multi-row inserts (and the rows left over) keep every span, each value in its column."""
    monkeypatch.setattr(traces, "_WRITE_EVERY_S", 3600.0)
    sink = TraceSink(tmp_path, export=False)
    spans = [CallSpan(new_trace_id(), new_span_id(), "p" * (i % 2), "chat", "/chat/completions", f"m{i}", 200 + i,
                      float(i), i / 10, None if i % 3 else i / 100, i, 2 * i, i % 5, 0, f"s{i}", i % 4 or None)
             for i in range(123)]
    for span in spans:
        sink.add(span)
    sink.close()
    db = sqlite3.connect(tmp_path / TRACES_FILE)
    assert [CallSpan(*row) for row in db.execute("SELECT * FROM spans ORDER BY started")] == spans


class _Stalls(FakeChat):
    """Answers three words, then waits (until ``go_on``) as an engine that stalls mid-answer."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.stalled, self.go_on = threading.Event(), threading.Event()

    def _words(self, text: str, sampling: Any) -> Iterator[Delta]:
        words = list(super()._words(text, sampling))
        yield from words[:3]
        self.stalled.set()
        self.go_on.wait(30)
        yield from words[3:]


_SIX_WORDS = "one two three four five six"


@pytest.mark.parametrize(("path", "route", "ask"), [
    ("/v2/chat/completions", "/chat/completions", {"messages": [{"role": "user", "content": _SIX_WORDS}]}),
    ("/v1/messages", "/messages", {"max_tokens": 64, "messages": [{"role": "user", "content": _SIX_WORDS}]}),
    ("/v1/responses", "/responses", {"input": _SIX_WORDS}),
])
def test_a_stream_the_client_cut_counts_what_it_streamed(tmp_path: Path, path: str, route: str,
                                                         ask: dict[str, Any]) -> None:
    """A client that leaves mid-stream: its call is counted with the tokens streamed until then (the
    engine's three deltas), in ``/metrics`` and in its span, at the status it was answered with; on
    each wire whose render counts its stream its own way."""
    registry = FakeRegistry()
    engine = registry.engines["tiny-chat"] = _Stalls("tiny-chat")
    app = create_app(make_settings(tmp_path / "data"), registry)
    body = json.dumps({"model": "Tiny-Chat", "stream": True, **ask}).encode()

    async def cut() -> None:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            token = (await client.get("/v1/BCE-BEARER/token", auth=Signer())).json()["token"]
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.to_thread(engine.stalled.wait, 30)
            return {"type": "http.disconnect"}  # the client leaves while the engine stalls

        async def send(message: dict[str, Any]) -> None:
            pass

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
                 "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                             (b"authorization", f"Bearer {token}".encode())]}
        await app(scope, receive, send)

    try:
        asyncio.run(cut())
    finally:
        engine.go_on.set()
    meter = app.state.platform.meter
    meter.sink.flush()
    found = {(s.name, s.labels.get("status")): s.value
             for family in text_string_to_metric_families(generate_latest(meter.registry).decode())
             for s in family.samples if s.labels.get("route", route) == route}
    assert found["qfnb_requests_total", "2xx"] == 1
    assert found["qfnb_prompt_tokens_total", None] == 6 and found["qfnb_completion_tokens_total", None] == 3
    assert found["qfnb_time_to_first_token_seconds_count", None] == 1
    db = sqlite3.connect(tmp_path / "data" / TRACES_FILE)
    assert db.execute("SELECT model, status, input_tokens, output_tokens FROM spans").fetchall() == [
        ("Tiny-Chat", 200, 6, 3)]
    meter.close()


def test_a_calls_note_reads_the_callers_headers_and_never_shows_the_key(tmp_path: Path) -> None:
    meter = Meter(tmp_path, sink=TraceSink(tmp_path, export=False))
    watch = Observation({"type": "http", "headers": [(b"authorization", b"Bearer sk-never-shown"),
                                                     (b"x-qfnb-cell", b"3"), (b"x-qfnb-session", b"k1")]}, meter)
    try:
        assert current_note() is watch and (watch.cell, watch.session) == (3, "k1")
        assert "sk-never-shown" not in repr(watch) and "'cell': 3" in repr(watch)
    finally:
        watch.close()
        meter.close()
    assert current_note() is None


def test_draft_tokens_of_speculative_decoding_are_counters_per_model(client: TestClient,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import Counter

    from qfnb.local.engines.call_state import calls

    monkeypatch.setattr(calls, "_drafted", Counter())
    monkeypatch.setattr(calls, "_accepted", Counter())
    calls.count_drafts(MODELS[0], 40, 31)
    calls.count_drafts(MODELS[0], 10, 2)
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert [(s.labels, s.value) for s in families["qfnb_engine_draft_tokens"].samples
            if s.name.endswith("_total")] == [({"model": MODELS[0]}, 50.0)]
    assert [(s.labels, s.value) for s in families["qfnb_engine_draft_tokens_accepted"].samples
            if s.name.endswith("_total")] == [({"model": MODELS[0]}, 33.0)]
