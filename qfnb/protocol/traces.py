"""The platform's call spans: what one model call was (an HTTP call, a batch row, a fine-tune), as the
platform keeps it in ``<data_dir>/traces.sqlite3`` and exports it over OTLP, with OpenTelemetry's
``gen_ai.*`` attribute names. The platform writes the file; ``%qftrace`` reads it. No I/O here.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["CELL_HEADER", "KEEP_SPANS", "SESSION_HEADER", "TRACES_FILE", "TRACES_SCHEMA", "CallSpan", "new_span_id",
           "new_trace_id"]

TRACES_FILE = "traces.sqlite3"
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
    job TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_started ON spans(started);
"""


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class CallSpan:
    """One call: ``operation`` is ``gen_ai.operation.name`` (chat, text_completion, embeddings,
    fine_tune), ``route`` the route template it came in on (``batch`` for a batch row)."""

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

    def row(self) -> tuple[Any, ...]:
        return tuple(asdict(self).values())

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @property
    def name(self) -> str:
        """The span's name, as the semantic conventions make it: ``chat Qwen2.5-0.5B``."""
        return f"{self.operation} {self.model}"

    def attributes(self) -> dict[str, str | int | float]:
        """The span's OpenTelemetry attributes (``gen_ai.*``, ``http.*`` and qfnb's own)."""
        found: dict[str, str | int | float] = {
            "gen_ai.operation.name": self.operation, "gen_ai.system": "qfnb", "gen_ai.request.model": self.model,
            "gen_ai.response.model": self.model, "gen_ai.usage.input_tokens": self.input_tokens,
            "gen_ai.usage.output_tokens": self.output_tokens, "http.route": self.route,
            "http.response.status_code": self.status}
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
        return found
