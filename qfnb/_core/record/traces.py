"""Spans in the data dir's ``traces.sqlite3``: reading the local platform's call spans (what
``%qftrace`` shows: the last calls, one kernel session's, one cell's), and the spans qfnb's clients
add to the same table: each tool call an agent runs (:func:`tool_span`) and each evaluation item
(:class:`OpenSpan`, :func:`item_spans`). A call made inside such a span sends its ``traceparent``
(:func:`origin_headers`), so the platform's span of that call nests under it. With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the client's spans are exported over OTLP too (service ``qfnb``).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qfnb._core.record.ledger import SESSION, current_cell, current_job
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.otel import OtelExport
from qfnb.protocol.platform.sqlite_files import open_db, select, transaction
from qfnb.protocol.platform.traces import (
    CELL_HEADER,
    INSERT_SPAN,
    SESSION_HEADER,
    TOOL_OPERATION,
    TRACEPARENT,
    TRACES_FILE,
    TRACES_SCHEMA,
    CallSpan,
    new_span_id,
    new_trace_id,
    traceparent,
)

__all__ = ["ROW_ATTRIBUTE", "OpenSpan", "RowSpan", "batch_spans", "item_scope", "item_spans", "origin_headers",
           "read_spans", "tool_span", "write_spans"]

log = logging.getLogger("qfnb.traces")

#: the span the code running now is inside (its calls' ``traceparent``): (trace id, span id)
_current: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("qfnb_span", default=None)
#: while a batch runs an evaluation's items: the span of the item at each position of the batch
_items: contextvars.ContextVar[Sequence[OpenSpan] | None] = contextvars.ContextVar("qfnb_item_spans", default=None)


def origin_headers() -> dict[str, str]:
    """The headers that tell the local platform where a call came from: this session and the cell
    (``%qftrace --cell``), and the span it was made in (``traceparent``: it nests under it)."""
    cell, inside = current_cell(), _current.get()
    return {SESSION_HEADER: SESSION, **({CELL_HEADER: str(cell)} if cell is not None else {}),
            **({TRACEPARENT: traceparent(*inside)} if inside is not None else {})}


@dataclass
class OpenSpan:
    """A client-side span being timed: ``name`` is its ``model`` column (the model tag of an
    evaluation item, the tool's name of a tool call), ``attributes`` its further attributes."""

    operation: str
    name: str
    work: str  # what it is a part of: "agent", "evaluation" (the trace table's ``route``)
    attributes: dict[str, str | int | float] = field(default_factory=dict)
    trace_id: str = ""
    span_id: str = field(default_factory=new_span_id)
    parent_id: str = ""
    started: float = 0.0
    duration_s: float = 0.0
    status: int = 200
    cell: int | None = field(default_factory=current_cell)
    job: str = field(default_factory=lambda: current_job() or "")

    def __post_init__(self) -> None:
        if not self.trace_id:  # a child of the span the code runs in, else a trace of its own
            inside = _current.get()
            self.trace_id, self.parent_id = inside if inside is not None else (new_trace_id(), "")

    @contextlib.contextmanager
    def timed(self) -> Iterator[OpenSpan]:
        """Time the block as this span's; the calls made in it nest under it. An error marks it failed."""
        token = _current.set((self.trace_id, self.span_id))
        self.started, clock = time.time(), time.perf_counter()
        try:
            yield self
        except BaseException:
            self.status = 500
            raise
        finally:
            self.duration_s = time.perf_counter() - clock
            _current.reset(token)

    def span(self) -> CallSpan:
        return CallSpan(trace_id=self.trace_id, span_id=self.span_id, parent_id=self.parent_id,
                        operation=self.operation, route=self.work, model=self.name, status=self.status,
                        started=self.started or time.time(), duration_s=self.duration_s, ttft_s=None,
                        session=SESSION, cell=self.cell, job=self.job,
                        extra=json.dumps(self.attributes, ensure_ascii=False) if self.attributes else "")


@contextlib.contextmanager
def tool_span(name: str, call_id: str = "") -> Iterator[OpenSpan]:
    """A tool call an agent runs, kept when it ends (``gen_ai.operation.name`` ``execute_tool``)."""
    opened = OpenSpan(TOOL_OPERATION, name, "agent", {"gen_ai.tool.call.id": call_id} if call_id else {})
    try:
        with opened.timed():
            yield opened
    finally:
        write_spans([opened.span()])


@contextlib.contextmanager
def item_spans(spans: Sequence[OpenSpan]) -> Iterator[None]:
    """While the block runs a batch: the item at position ``i`` is timed as ``spans[i]`` (its calls
    nest under it) by the batch's :func:`item_scope`."""
    token = _items.set(spans)
    try:
        yield
    finally:
        _items.reset(token)


#: the scope of an item without a span (the rule: a batch outside an evaluation); reusable
_NO_SPAN: contextlib.AbstractContextManager[object] = contextlib.nullcontext()


def item_scope(index: int) -> contextlib.AbstractContextManager[object]:
    """Around one batch item's call: its span's time, when an evaluation set one (:func:`item_spans`)."""
    spans = _items.get()
    if spans is None or not 0 <= index < len(spans):
        return _NO_SPAN
    return spans[index].timed()


#: a batch row's span's attribute: the row's ``custom_id``
ROW_ATTRIBUTE = "qfnb.batch.row"


@dataclass(frozen=True)
class RowSpan:
    """One answered (or failed) row of a batch job that ran off this platform: its id, tokens and the
    seconds it took where the job says (a Ray worker does; the cloud's Files + Batch does not: 0)."""

    custom_id: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float = 0.0
    status: int = 200


def batch_spans(job: str, model: str, target: str, rows: Sequence[RowSpan], *, started: float,
                seconds: float) -> None:
    """A batch job run on a Ray cluster's engines or the cloud (``target``) as spans in the trace table,
    as the local platform's batch rows are: the job's span and, under it, one span per row (its tokens
    and time), so ``%qftrace --slowest`` finds the slowest row. Written once, when the job's tokens go
    to the ledger (:func:`~qfnb._core.http.recording.batch_hold.settle_task`)."""
    parent = OpenSpan("batch", model, f"{target} batch", {"qfnb.batch.rows": len(rows)}, job=job,
                      trace_id=new_trace_id(), started=started, duration_s=seconds)
    spans = [parent.span()]
    for row in rows:
        spans.append(CallSpan(trace_id=parent.trace_id, span_id=new_span_id(), parent_id=parent.span_id,
                              operation="chat", route=f"{target} batch", model=model, status=row.status,
                              started=started, duration_s=row.seconds, ttft_s=None, input_tokens=row.prompt_tokens,
                              output_tokens=row.completion_tokens, session=SESSION, cell=parent.cell, job=job,
                              extra=json.dumps({ROW_ATTRIBUTE: row.custom_id})))
    write_spans(spans)


def write_spans(spans: Sequence[CallSpan], data_dir: Path | None = None) -> None:
    """Add ``spans`` to ``data_dir``'s trace table (default: ``$QFNB_DATA_DIR`` or ``~/.qfnb``) in one
    transaction; a table that cannot be written is logged, never raised (the work it traced is done)."""
    if not spans:
        return
    path = (data_dir or default_data_dir()) / TRACES_FILE
    try:
        with contextlib.closing(open_db(path, TRACES_SCHEMA)) as db, transaction(db):
            db.executemany(INSERT_SPAN, [s.row() for s in spans])
    except (sqlite3.Error, OSError) as exc:
        log.warning("traces: could not keep %d spans in %s (%s)", len(spans), path, exc)
    export = _exporter()
    if export is not None:
        export.add_all(list(spans))


_export: OtelExport | None = None
_export_read = False


def _exporter() -> OtelExport | None:
    """This process's OTLP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (looked up once)."""
    global _export, _export_read
    if not _export_read:
        _export, _export_read = OtelExport.from_env("qfnb"), True
    return _export


def read_spans(data_dir: Path | None = None, *, last: int = 20, session: str | None = None,
               cell: int | None = None) -> list[CallSpan]:
    """The ``last`` spans (oldest first) of ``data_dir`` (default: ``$QFNB_DATA_DIR`` or ``~/.qfnb``),
    only ``session``'s and ``cell``'s when given; none when the platform has served no call."""
    path = (data_dir or default_data_dir()) / TRACES_FILE
    if not path.is_file():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        found = select(db, "SELECT * FROM spans", {"session =": session, "cell =": cell},
                       " ORDER BY started DESC LIMIT ?", [max(1, last)])
    except sqlite3.OperationalError:  # a file the platform has not finished creating
        return []
    finally:
        db.close()
    return [CallSpan(**row) for row in reversed(found)]
