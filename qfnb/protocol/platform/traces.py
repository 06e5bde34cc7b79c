"""Call spans: what one model call was (an HTTP call, a batch row, a fine-tune), as the platform
keeps it in ``<data_dir>/traces.sqlite3`` and exports it over OTLP, with OpenTelemetry's ``gen_ai.*``
attribute names; and the spans qfnb's clients add to the same table (a tool call an agent ran, an
evaluation item), whose platform calls nest under them by ``traceparent``. ``%qftrace`` reads the
table. No I/O here.
"""

from __future__ import annotations

import json
import random
from typing import NamedTuple

__all__ = ["CELL_HEADER", "INSERT_SPAN", "KEEP_SPANS", "PLATFORM_WORK", "SESSION_HEADER", "TOOL_OPERATION",
           "TRACEPARENT", "TRACES_FILE", "TRACES_SCHEMA", "CallSpan", "new_span_id", "new_trace_id",
           "parse_traceparent", "traceparent"]

TRACES_FILE = "traces.sqlite3"
#: the platform's work that is no HTTP call (a batch row, a fine-tune): its spans' ``route``
PLATFORM_WORK = ("batch", "fine-tune")
#: ``gen_ai.operation.name`` of a tool call an agent ran (its span's ``model`` is the tool's name)
TOOL_OPERATION = "execute_tool"
#: a W3C trace context header: a call made inside a span joins its trace
TRACEPARENT = "traceparent"
#: the notebook cell (execution count) and kernel session a call came from, sent by qfnb's clients
CELL_HEADER = "X-Qfnb-Cell"
SESSION_HEADER = "X-Qfnb-Session"
#: how many spans the file keeps (the oldest go first)
KEEP_SPANS = 20_000

TRACES_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT NOT NULL, operation TEXT NOT NULL,
    route TEXT NOT NULL, model TEXT NOT NULL, status INTEGER NOT NULL, started REAL NOT NULL,
    duration_s REAL NOT NULL, ttft_s REAL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, trained_tokens INTEGER NOT NULL, session TEXT NOT NULL, cell INTEGER,
    job TEXT NOT NULL, extra TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS spans_started ON spans(started);
"""


_bits = random.getrandbits


def new_trace_id() -> str:
    """A W3C trace id: 32 hex digits, not all zero. An id, not a secret: the process's PRNG (as the
    OpenTelemetry SDK makes its ids), no system call per span."""
    return (_bits(128) or 1).to_bytes(16, "big").hex()  # a third of a format spec's time (``:032x``)


def new_span_id() -> str:
    """A W3C span id: 16 hex digits, not all zero."""
    return (_bits(64) or 1).to_bytes(8, "big").hex()


class CallSpan(NamedTuple):
    """One call: ``operation`` is ``gen_ai.operation.name`` (chat, text_completion, embeddings,
    fine_tune), ``route`` the route template it came in on (``batch`` for a batch row). A named
    tuple, immutable and made in about a microsecond on every model call (a frozen dataclass took
    six); it is its own row of the trace table."""

    trace_id: str
    span_id: str
    parent_id: str
    operation: str
    route: str
    model: str
    status: int
    started: float  # Unix time
    duration_s: float
    ttft_s: float | None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    trained_tokens: int = 0
    session: str = ""
    cell: int | None = None
    job: str = ""
    #: further attributes as a JSON object (a tool call's ``gen_ai.tool.name``, an evaluation item's scores)
    extra: str = ""

    def row(self) -> tuple[str | int | float | None, ...]:
        """The span's values in :meth:`columns`' order (its row in the trace table)."""
        return tuple(self)

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return cls._fields

    @property
    def name(self) -> str:
        """The span's name, as the semantic conventions make it: ``chat Qwen2.5-0.5B``."""
        return f"{self.operation} {self.model}"

    def attributes(self) -> dict[str, str | int | float]:
        """The span's OpenTelemetry attributes (``gen_ai.*``, ``http.*`` and qfnb's own)."""
        found: dict[str, str | int | float] = {"gen_ai.operation.name": self.operation, "gen_ai.system": "qfnb"}
        if self.operation == TOOL_OPERATION:
            found["gen_ai.tool.name"] = self.model
        else:
            found.update({"gen_ai.request.model": self.model, "gen_ai.response.model": self.model,
                          "gen_ai.usage.input_tokens": self.input_tokens,
                          "gen_ai.usage.output_tokens": self.output_tokens})
        if self.route.startswith("/"):  # an HTTP call the platform served
            found.update({"http.route": self.route, "http.response.status_code": self.status})
        else:
            found["qfnb.work"] = self.route
        if self.cached_tokens:
            found["gen_ai.usage.cached_input_tokens"] = self.cached_tokens
        if self.trained_tokens:
            found["qfnb.trained_tokens"] = self.trained_tokens
        if self.ttft_s is not None:
            found["qfnb.time_to_first_token_s"] = round(self.ttft_s, 6)
        if self.job:
            found["qfnb.job"] = self.job
        if self.cell is not None:
            found["qfnb.cell"] = self.cell
        if self.session:
            found["qfnb.session"] = self.session
        if self.extra:
            found.update(json.loads(self.extra))
        return found

    @property
    def client_side(self) -> bool:
        """A span qfnb's client made (a tool call, an evaluation item), not a call the platform served."""
        return not self.route.startswith("/") and self.route not in PLATFORM_WORK


#: one span's row into the trace table
INSERT_SPAN = (f"INSERT INTO spans({', '.join(CallSpan.columns())}) "
               f"VALUES ({', '.join('?' * len(CallSpan.columns()))})")


def traceparent(trace_id: str, span_id: str) -> str:
    """The W3C ``traceparent`` value of a span (sampled)."""
    return f"00-{trace_id}-{span_id}-01"


def parse_traceparent(value: str) -> tuple[str, str] | None:
    """``(trace id, parent span id)`` of a W3C ``traceparent`` value, or None when it is not one."""
    parts = value.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    return parts[1], parts[2]
