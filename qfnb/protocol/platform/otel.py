"""Spans over OpenTelemetry: :class:`OtelExport` sends :class:`~qfnb.protocol.platform.traces.CallSpan` s to
an SDK ``SpanExporter`` (OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: the ``qfnb[otel]``
extra, imported only then). The platform exports the calls it serves, qfnb's clients their tool
calls and evaluation items; both keep the same spans in the data dir's trace table.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from qfnb.protocol.platform.traces import CallSpan

__all__ = ["OtelExport"]

log = logging.getLogger("qfnb.otel")


class OtelExport:
    """Spans as OpenTelemetry spans on ``exporter`` (an SDK ``SpanExporter``), batched by the SDK."""

    def __init__(self, exporter: Any, service: str = "qfnb-platform") -> None:
        # deferred: the OpenTelemetry SDK is the optional otel extra
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import IdGenerator

        class KeptIds(IdGenerator):
            """The ids the span already has (the trace table's), so a child made elsewhere (the
            platform's span of a tool's call) finds its parent in the OTLP backend too."""

            def generate_span_id(self) -> int:
                return int(ids.span.span_id, 16)

            def generate_trace_id(self) -> int:
                return int(ids.span.trace_id, 16)

        ids = self._ids = threading.local()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=KeptIds())
        self.processor = BatchSpanProcessor(exporter, schedule_delay_millis=500)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("qfnb.local")

    @classmethod
    def from_env(cls, service: str = "qfnb-platform") -> OtelExport | None:
        """The OTLP/HTTP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (it reads the OTEL_*
        variables itself); None otherwise, or when the extra is not installed (said in the log)."""
        if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return None
        try:
            # deferred: the OTLP exporter is the optional otel extra
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry OTLP exporter is not installed "
                        "(pip install 'qfnb[otel]'): spans are kept in the data dir only")
            return None
        return cls(OTLPSpanExporter(), service)

    def add_all(self, spans: list[CallSpan]) -> None:
        """Each of ``spans``; an exporter that fails is logged, never raised (the calls are done)."""
        try:
            for span in spans:
                self.add(span)
        except Exception as exc:
            log.warning("could not export %d spans over OTLP: %s", len(spans), exc)

    def add(self, span: CallSpan) -> None:
        from opentelemetry import trace

        context = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
            int(span.trace_id, 16), int(span.parent_id, 16), is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))) if span.parent_id else None
        started = int(span.started * 1e9)
        self._ids.span = span
        kind = trace.SpanKind.INTERNAL if span.client_side else trace.SpanKind.SERVER
        otel = self.tracer.start_span(span.name, context=context, kind=kind,
                                      attributes=span.attributes(), start_time=started)
        if span.status >= 500:  # a failed call, tool call or item
            otel.set_status(trace.Status(trace.StatusCode.ERROR))
        otel.end(end_time=started + int(span.duration_s * 1e9))

    def close(self) -> None:
        self.provider.shutdown()
