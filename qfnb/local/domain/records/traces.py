"""Where the platform's call spans go: always ``<data_dir>/traces.sqlite3`` (what ``%qftrace``
shows, no server needed), and over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
(:class:`~qfnb.protocol.platform.otel.OtelExport`).

Spans are queued (a bounded queue) and written (and exported) in batches by a background thread, never
on the event loop; :meth:`TraceSink.close` (the platform's shutdown) writes what is still queued.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path

from qfnb.protocol.platform.otel import OtelExport
from qfnb.protocol.platform.sqlite_files import LazyDb, open_db, transaction
from qfnb.protocol.platform.traces import INSERT_SPAN, KEEP_SPANS, TRACES_FILE, TRACES_SCHEMA, CallSpan

__all__ = ["OtelExport", "TraceSink"]  # OtelExport: where the platform's tests and tools find it

log = logging.getLogger("qfnb.local.traces")

#: spans written at once: a burst of calls lands in one transaction
_WRITE_EVERY_S = 0.2
#: spans a multi-row ``INSERT`` writes (50 rows of 18 values: under SQLite's oldest limit of 999
#: values a statement): one statement for them, not one a row, so the writer's thread hands the
#: GIL back and forth once a chunk rather than once a span (a third less CPU a span, measured alone)
_ROWS_A_STATEMENT = 50
_INSERT_ROWS = (INSERT_SPAN.split(" VALUES ")[0] + " VALUES "
                + ", ".join(["(" + ", ".join("?" * len(CallSpan.columns())) + ")"] * _ROWS_A_STATEMENT))
#: the most spans queued for the writer; beyond it (a disk that stalls for long) new spans are
#: dropped, counted and logged, rather than held in memory without bound
MAX_QUEUED = 50_000


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
        # no fsync at each commit (WAL stays consistent; a power cut may lose the last batch of
        # spans): a commit's fsync cost more CPU than the batch's inserts
        self._file = LazyDb(functools.partial(open_db, self.path, TRACES_SCHEMA, synchronous="NORMAL"))
        self._written = 0
        self._dropped = 0  # spans not kept: the queue was full

    def add(self, span: CallSpan) -> None:
        """Queue ``span`` (the writer thread keeps it within :data:`_WRITE_EVERY_S`): an append, and a
        wake-up only for the first span of a batch."""
        if len(self._pending) >= MAX_QUEUED:
            self._dropped += 1
            return
        self._pending.append(span)
        if not self._armed:
            self._armed = True
            if self._writer is None:
                self._start_writer()
            self._wake.set()

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="qfnb-traces", daemon=True)
                self._writer.start()
                atexit.register(self.flush)

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
            if self._dropped:
                log.warning("traces: %d spans dropped: more than %d were waiting to be written", self._dropped,
                            MAX_QUEUED)
                self._dropped = 0
            if not batch:
                return
            if self.export is not None:
                self.export.add_all(batch)
            try:
                with transaction(self._file.conn()) as db:
                    whole = len(batch) - len(batch) % _ROWS_A_STATEMENT
                    for start in range(0, whole, _ROWS_A_STATEMENT):  # a span is its row
                        chunk = batch[start:start + _ROWS_A_STATEMENT]
                        db.execute(_INSERT_ROWS, list(itertools.chain.from_iterable(chunk)))
                    db.executemany(INSERT_SPAN, batch[whole:])
                    self._written += len(batch)
                    if self._written >= KEEP_SPANS // 10:
                        self._written = 0
                        db.execute("DELETE FROM spans WHERE rowid <= (SELECT MAX(rowid) FROM spans) - ?",
                                   (KEEP_SPANS,))
            except (sqlite3.Error, OSError) as exc:  # the trace table never breaks a call
                log.warning("traces: could not keep %d spans (%s)", len(batch), exc)

    def holds_job(self, route: str, job: str) -> bool:
        """Whether a span of ``job`` on ``route`` was written (the queued ones are written first)."""
        self.flush()
        try:
            with self._lock:
                found = self._file.conn().execute("SELECT 1 FROM spans WHERE route = ? AND job = ? LIMIT 1",
                                                  (route, job)).fetchone()
        except (sqlite3.Error, OSError) as exc:
            log.warning("traces: could not read the spans of %s (%s)", job, exc)
            return False
        return found is not None

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._file.close()
        if self.export is not None:
            self.export.close()
