"""Each tool call an agent's loop runs is a span in the data dir's trace table (issue 56):
``execute_tool`` with ``gen_ai.tool.name``, failed when the tool failed, and a platform call the tool
makes nests under it (the client sends ``traceparent``; the platform's span takes it as its parent)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.record.traces import read_spans
from qfnb.agents import FunctionTool, StepReply, ToolLoop
from qfnb.protocol.platform.traces import CallSpan
from qfnb.resources import ChatCompletion
from tests.fakes.local_platform import ServedPlatform, served_platform


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    data = tmp_path / "data"
    monkeypatch.setenv("QFNB_DATA_DIR", str(data))  # the client's trace table is the platform's, as embedded
    with served_platform(data) as platform:
        platform.as_default_backend(monkeypatch)
        yield platform


def ask_tiny(prompt: str) -> str:
    """Ask the small chat model a question."""
    return str(ChatCompletion().do(messages=[{"role": "user", "content": prompt}])["result"])


def broken(city: str) -> str:
    """A tool whose service is down."""
    raise RuntimeError(f"the weather service for {city} is down")


def _spans(served: ServedPlatform) -> list[CallSpan]:
    served.app.state.platform.meter.sink.flush()  # the platform writes its spans in batches
    return read_spans(last=100)


def test_tool_calls_are_spans_and_a_tools_model_call_nests_under_it(served: ServedPlatform) -> None:
    replies = iter([StepReply(calls=(("ask_tiny", '{"prompt": "say ping"}', "c1"),)),
                    StepReply(calls=(("broken", '{"city": "Paris"}', "c2"),)), StepReply(text="done")])

    def step(messages: list[dict[str, Any]], tools: Sequence[FunctionTool]) -> StepReply:
        return next(replies)

    tools = {t.name: t for t in (FunctionTool.from_function(ask_tiny), FunctionTool.from_function(broken))}
    loop = ToolLoop(step, tools, [{"role": "user", "content": "ping, then the weather"}])
    loop.advance()
    assert [c.status for c in loop.calls] == ["ran", "failed"] and loop.answer == "done"

    spans = _spans(served)
    ran = [s for s in spans if s.operation == "execute_tool"]
    assert [(s.model, s.status) for s in ran] == [("ask_tiny", 200), ("broken", 500)]
    attributes = ran[0].attributes()
    assert attributes["gen_ai.operation.name"] == "execute_tool" and attributes["gen_ai.tool.name"] == "ask_tiny"
    assert attributes["gen_ai.tool.call.id"] == "c1" and "http.route" not in attributes
    (chat,) = [s for s in spans if s.operation == "chat"]  # the platform's span of the tool's model call
    assert (chat.trace_id, chat.parent_id) == (ran[0].trace_id, ran[0].span_id)
    assert ran[0].started <= chat.started and chat.started + chat.duration_s <= ran[0].started + ran[0].duration_s
    assert ran[1].trace_id != ran[0].trace_id and not ran[1].parent_id  # each call at the top is a trace
    assert chat.input_tokens > 0 and chat.session == ran[0].session  # the same kernel session


def test_a_model_call_outside_any_tool_starts_its_own_trace(served: ServedPlatform) -> None:
    ask_tiny("hello")
    (chat,) = [s for s in _spans(served) if s.operation == "chat"]
    assert chat.parent_id == "" and len(chat.trace_id) == 32


def test_with_an_otlp_exporter_the_tool_span_is_exported_with_its_kept_ids(served: ServedPlatform,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    from opentelemetry.trace import SpanKind

    from qfnb._core.record import traces
    from qfnb.protocol.platform.otel import OtelExport

    exported = memory.InMemorySpanExporter()
    export = OtelExport(exported, "qfnb")
    monkeypatch.setattr(traces, "_export", export)
    monkeypatch.setattr(traces, "_export_read", True)
    with traces.tool_span("ask_tiny", "c9"):
        ask_tiny("hello")
    export.processor.force_flush()
    (otel,) = exported.get_finished_spans()
    (kept,) = [s for s in _spans(served) if s.operation == "execute_tool"]
    assert otel.name == "execute_tool ask_tiny" and otel.kind == SpanKind.INTERNAL
    assert (format(otel.context.trace_id, "032x"), format(otel.context.span_id, "016x")) == (kept.trace_id,
                                                                                             kept.span_id)
    assert dict(otel.attributes or {})["gen_ai.tool.call.id"] == "c9"
