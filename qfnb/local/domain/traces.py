"""Where the platform's call spans go: always ``<data_dir>/traces.sqlite3`` (what ``%qftrace``
shows, no server needed), and over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the OpenTelemetry
SDK and its OTLP exporter: the ``qfnb[otel]`` extra, imported only then).

Spans are queued and written in batches by a background thread, never on the event loop.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from qfnb.protocol.traces import INSERT_SPAN, KEEP_SPANS, TRACES_FILE, TRACES_SCHEMA, CallSpan

__all__ = ["OtelExport", "TraceSink"]

log = logging.getLogger("qfnb.local.traces")

#: spans written at once: a burst of calls lands in one transaction
_WRITE_EVERY_S = 0.2


class OtelExport:
    """Spans as OpenTelemetry spans on ``exporter`` (an SDK ``SpanExporter``), batched by the SDK."""

    def __init__(self, exporter: Any) -> None:
        # deferred: the OpenTelemetry SDK is the optional otel extra
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.provider = TracerProvider(resource=Resource.create({"service.name": "qfnb-platform"}))
        self.processor = BatchSpanProcessor(exporter, schedule_delay_millis=500)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("qfnb.local")

    @classmethod
    def from_env(cls) -> OtelExport | None:
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
        return cls(OTLPSpanExporter())

    def add(self, span: CallSpan) -> None:
        from opentelemetry import trace

        context = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
            int(span.trace_id, 16), int(span.parent_id, 16), is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))) if span.parent_id else None
        started = int(span.started * 1e9)
        otel = self.tracer.start_span(span.name, context=context, kind=trace.SpanKind.SERVER,
                                      attributes=span.attributes(), start_time=started)
        if span.status >= 500:
            otel.set_status(trace.Status(trace.StatusCode.ERROR))
        otel.end(end_time=started + int(span.duration_s * 1e9))

    def close(self) -> None:
        self.provider.shutdown()


class TraceSink:
    """The spans of one data dir (and the OTLP export, when there is one)."""

    def __init__(self, data_dir: Path, export: OtelExport | bool | None = True) -> None:
        self.path = Path(data_dir) / TRACES_FILE
        self.export = OtelExport.from_env() if export is True else export or None
        self._lock = threading.Lock()
        self._pending: deque[CallSpan] = deque()  # appended by any thread, drained by the writer
        self._armed = False  # the writer has been woken for the spans queued now
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._written = 0

    def add(self, span: CallSpan) -> None:
        """Queue ``span`` (the writer thread keeps it within :data:`_WRITE_EVERY_S`): an append, and a
        wake-up only for the first span of a batch."""
        self._pending.append(span)
        if not self._armed:
            self._armed = True
            if self._writer is None:
                self._start_writer()
            self._wake.set()
        if self.export is not None:
            try:
                self.export.add(span)
            except Exception as exc:  # an exporter never breaks a call
                log.warning("could not export a span over OTLP: %s", exc)

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="qfnb-traces", daemon=True)
                self._writer.start()
                atexit.register(self.flush)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(TRACES_SCHEMA)
            self._db = db
        return self._db

    def _write_loop(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(_WRITE_EVERY_S)  # a burst of calls lands in one transaction
            self._wake.clear()
            self._armed = False  # spans added from here on wake the writer again; those before are flushed now
            self.flush()

    def flush(self) -> None:
        """Write every queued span now (the oldest beyond :data:`KEEP_SPANS` go)."""
        with self._lock:
            batch = [self._pending.popleft() for _ in range(len(self._pending))]
            if not batch:
                return
            try:
                db = self._conn()
                db.execute("BEGIN")
                db.executemany(INSERT_SPAN, [s.row() for s in batch])
                self._written += len(batch)
                if self._written >= KEEP_SPANS // 10:
                    self._written = 0
                    db.execute("DELETE FROM spans WHERE rowid <= (SELECT MAX(rowid) FROM spans) - ?", (KEEP_SPANS,))
                db.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:  # the trace table never breaks a call
                log.warning("traces: could not keep %d spans (%s)", len(batch), exc)
                if self._db is not None:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
        if self.export is not None:
            self.export.close()
