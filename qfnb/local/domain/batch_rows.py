"""Rows of a batch-inference job: reading input lines, writing answer and error rows, and
finding where an interrupted job stands (pure file work, no engines).

Input lines may be OpenAI batch requests (``{"custom_id", "method", "url", "body": {...}}``),
Qianfan-style rows (``{"id", "query"}`` or ``{"id", "messages"}``) or dataset rows
(``{"prompt", ...}``, a conversation list of them). Every output or error row names its input
``line``, so a restarted job knows exactly which rows have an answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.protocol.batch import ROW_URLS

#: sampling fields a row's body may set (OpenAI names -> the engines' platform names)
_PARAMS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed", "stop": "stop",
           "max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
           "max_output_tokens": "max_output_tokens", "penalty_score": "penalty_score"}


class RowError(ValueError):
    """An input line that cannot be run; it becomes an error row naming the line (and its key)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass
class Row:
    """One request of a job: its input ``line`` (1-based), its key and what to ask."""

    line: int
    key: str
    model: str | None
    messages: list[dict[str, Any]]
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def params_of(source: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters in the engines' terms (``max_tokens`` -> ``max_output_tokens`` …)."""
    return {_PARAMS[k]: v for k, v in source.items() if k in _PARAMS and v is not None}


def parse_line(raw: bytes, line: int, default_model: str | None, defaults: dict[str, Any]) -> Row:
    """The request on input line ``line``; :class:`RowError` naming the line if it is malformed."""
    item = _load(raw, line)
    key = item.get("custom_id", item.get("id"))
    key = f"line-{line}" if key is None else str(key)
    source = _request_of(item, line, key)
    messages = _messages_of(source, line, key)
    system = "\n".join(m["content"] for m in messages if m.get("role") == "system") or source.get("system")
    turns = [{"role": m.get("role", "user"), "content": m["content"]} for m in messages if m.get("role") != "system"]
    if not turns:
        raise RowError(f"line {line}: messages have no user turn", key)
    model = source.get("model") or default_model
    return Row(line, key, str(model) if model else None, turns, system if isinstance(system, str) else None,
               {**defaults, **params_of(source)})


def _load(raw: bytes, line: int) -> dict[str, Any]:
    """The line's JSON object (a dataset conversation's last turn)."""
    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RowError(f"line {line} is not valid JSON: {exc}") from None
    if isinstance(item, list) and item and isinstance(item[-1], dict):  # a dataset conversation
        item = item[-1]
    if not isinstance(item, dict):
        raise RowError(f"line {line} must be a JSON object, got {type(item).__name__}")
    return item


def _request_of(item: dict[str, Any], line: int, key: str) -> dict[str, Any]:
    """What the row asks: an OpenAI batch request's ``body`` (for a supported ``url``), else the row."""
    body = item.get("body")
    if body is None:
        return item
    if not isinstance(body, dict):
        raise RowError(f"line {line}: body must be an object", key)
    url = item.get("url")
    if url is not None and url not in ROW_URLS:
        raise RowError(f"line {line}: url {url!r} is not supported; use one of {', '.join(ROW_URLS)}", key)
    return body


def _messages_of(source: dict[str, Any], line: int, key: str) -> list[dict[str, Any]]:
    """The request's messages (a ``query`` or ``prompt`` is one user turn), checked."""
    messages = source.get("messages")
    if messages is None:
        text = source.get("query", source.get("prompt"))
        if not isinstance(text, str) or not text:
            raise RowError(f"line {line} has no 'messages', 'query' or 'prompt'", key)
        messages = [{"role": "user", "content": text}]
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        raise RowError(f"line {line}: messages must be a non-empty list of {{role, content}} objects", key)
    return messages


def answer_row(row: Row, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """An output row (OpenAI's batch output shape, plus the input ``line``)."""
    return {"id": f"batch_req_{request_id}", "custom_id": row.key, "line": row.line,
            "response": {"status_code": 200, "request_id": request_id, "body": body}, "error": None}


def error_row(line: int, key: str, code: str, message: str) -> dict[str, Any]:
    """An error-file row (OpenAI's shape, plus the input ``line``)."""
    return {"id": f"batch_req_line{line}", "custom_id": key, "line": line, "response": None,
            "error": {"code": code, "message": message}}


def input_lines(path: Path, skip: bytearray | None = None) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw line)`` of the non-blank lines, streamed; lines marked in ``skip`` are left out."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if skip is not None and n <= len(skip) and skip[n - 1]:
                continue
            if raw.strip():
                yield n, raw


def count_lines(path: Path) -> tuple[int, int]:
    """``(rows, last line number)`` of an input file (streamed)."""
    rows = last = 0
    for n, _ in input_lines(path):
        rows, last = rows + 1, n
    return rows, last


@dataclass
class Standing:
    """Where a job stands, read back from its files."""

    answered: bytearray          # one byte per input line: 1 once it has an answer or an error row
    done: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    repeats: int = 0             # rows that were in flight when the job stopped (sent again now)


def _trim_torn_tail(path: Path) -> None:
    """Cut a last line that a kill left half-written (everything before it was fsynced)."""
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        pos, tail = size, b""
        while pos > 0 and b"\n" not in tail:
            step = min(4096, pos)
            pos -= step
            fh.seek(pos)
            tail = fh.read(step) + tail
        cut = pos + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        if cut != size:
            fh.truncate(cut)


def standing(last_line: int, output: Path, errors: Path, journal: Path) -> Standing:
    """Read the output, error and dispatch-journal files of a job (streamed; memory is one
    byte per input line)."""
    state = Standing(bytearray(last_line))
    for path, ok in ((output, True), (errors, False)):
        for line, row in _rows_of(path, last_line):
            if state.answered[line - 1]:
                continue
            state.answered[line - 1] = 1
            if ok:
                state.done += 1
                usage = ((row.get("response") or {}).get("body") or {}).get("usage") or {}
                state.input_tokens += int(usage.get("prompt_tokens") or 0)
                state.output_tokens += int(usage.get("completion_tokens") or 0)
            else:
                state.failed += 1
    state.repeats = _in_flight(journal, state.answered)
    return state


def _rows_of(path: Path, last_line: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, row)`` of an output or error file's readable rows for lines 1..``last_line``
    (a torn last line cut first)."""
    _trim_torn_tail(path)
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                row = json.loads(raw)
                line = int(row["line"])
            except (ValueError, KeyError, TypeError):
                continue
            if 1 <= line <= last_line:
                yield line, row


def _in_flight(journal: Path, answered: bytearray) -> int:
    """How many lines the dispatch journal names that have no answer (sent, then the job stopped)."""
    if not journal.exists():
        return 0
    seen = bytearray(len(answered))
    count = 0
    with open(journal, "rb") as fh:
        for raw in fh:
            try:
                line = int(raw)
            except ValueError:
                continue
            if 1 <= line <= len(answered) and not answered[line - 1] and not seen[line - 1]:
                seen[line - 1] = 1
                count += 1
    return count
