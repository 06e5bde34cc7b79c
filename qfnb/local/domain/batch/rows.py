"""Rows of a batch-inference job: reading input lines, writing answer and error rows, and
finding where an interrupted job stands (pure file work, no engines).

Input lines may be OpenAI batch requests (``{"custom_id", "method", "url", "body": {...}}``),
Qianfan-style rows (``{"id", "query"}`` or ``{"id", "messages"}``) or dataset rows
(``{"prompt", ...}``, a conversation list of them). Every output or error row names its input
``line``, so a restarted job knows exactly which rows have an answer.

Every row passes the checks the chat routes apply (:func:`qfnb.local.domain.state.requests.parse`
with the OpenAI chat body's rules): a row that the route would refuse becomes an error row
naming its field. A line longer than the request body cap becomes an error row without being
read whole (lines are streamed at most ``MAX_BODY_BYTES`` at a time).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.local.domain.state.requests import parse
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.limits import DEFAULT_OUTPUT_TOKENS, MAX_BODY_BYTES
from qfnb.protocol.wires.chat.openai_wire import drop_nulls, text_messages
from qfnb.protocol.wires.openai.requests import V2ChatRequest, check_openai_chat
from qfnb.protocol.wires.qianfan.batch import ROW_URLS

#: an input line's bytes: the chat routes' body cap
MAX_LINE_BYTES = MAX_BODY_BYTES
#: requests in one OpenAI batch input file (OpenAI's limit)
MAX_OPENAI_REQUESTS = 50_000

#: sampling fields a row's body may set (OpenAI names -> the engines' platform names)
_PARAMS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed", "stop": "stop",
           "max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
           "max_output_tokens": "max_output_tokens", "penalty_score": "penalty_score"}
#: what a row may hold besides its parameters: the prompt, its model and its key (and a dataset row's
#: reference ``response``, which is not asked); any other field (tools, response_format, n, ...) is refused
#: by name rather than dropped (a batch answers text only)
_ROW_FIELDS = frozenset({"messages", "query", "prompt", "response", "system", "model", "id", "custom_id",
                         "stream", "user_id", "user"}) | frozenset(_PARAMS)


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

    @property
    def cap(self) -> int:
        """The most tokens the row's answer may take (its ``max_tokens``, else the engines' default)."""
        return Sampling.of(self.params).max_tokens or DEFAULT_OUTPUT_TOKENS

    def ask(self) -> ChatAsk:
        """What the engine is asked: the system turn first, the sampling under the engine's names."""
        system = ({"role": "system", "content": self.system},) if self.system else ()
        return ChatAsk(model=self.model or "", messages=(*system, *self.messages), sampling=Sampling.of(self.params))


def params_of(source: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters in the engines' terms (``max_tokens`` -> ``max_output_tokens`` …)."""
    return {_PARAMS[k]: v for k, v in source.items() if k in _PARAMS and v is not None}


def parse_line(raw: bytes | int, line: int, default_model: str | None, defaults: dict[str, Any]) -> Row:
    """The request on input line ``line`` (an int: the length of a line over the cap, not read);
    :class:`RowError` naming the line (and the field) if the row cannot be run."""
    if isinstance(raw, int):
        raise RowError(f"line {line} is {raw} bytes; a request is at most {MAX_LINE_BYTES} bytes (the body cap of "
                       "the chat routes)")
    item = _load(raw, line)
    key = item.get("custom_id", item.get("id"))
    key = f"line-{line}" if key is None else str(key)
    source = drop_nulls(_request_of(item, line, key))
    messages = _messages_of(source, line, key)
    check_row(source, messages, default_model, line, key, openai="body" in item)
    system = "\n".join(m["content"] for m in messages if m.get("role") == "system") or source.get("system")
    turns = [{"role": m.get("role", "user"), "content": m["content"]} for m in messages if m.get("role") != "system"]
    if not turns:
        raise RowError(f"line {line}: messages have no user turn", key)
    model = source.get("model") or default_model
    return Row(line, key, str(model) if model else None, turns, system if isinstance(system, str) else None,
               {**defaults, **params_of(source)})


def check_row(source: dict[str, Any], messages: list[dict[str, Any]], model: str | None, line: int,
              key: str, *, openai: bool = False) -> None:
    """The row as its route would check it (an OpenAI batch request's ``body`` by the OpenAI chat
    route's rules, else Qianfan's): roles, sampling ranges, the local caps; a field a batch does not
    carry is refused by name."""
    for name in source:
        if name not in _ROW_FIELDS:
            raise RowError(f"line {line}: {name}: is not supported in a batch row (supported: "
                           f"{', '.join(sorted(_ROW_FIELDS))})", key)
    if openai:
        try:
            check_openai_chat({k: v for k, v in source.items() if k not in ("id", "custom_id", "query", "prompt")})
        except ProtocolError as exc:
            raise RowError(f"line {line}: {exc}", key) from None
    body = {k: v for k, v in source.items() if k not in ("messages", "query", "prompt", "id", "custom_id", "system")}
    system = source.get("system")
    turns = ([{"role": "system", "content": system}] if isinstance(system, str) and system else []) + messages
    body.update(model=body.get("model") or model or "default", messages=turns)
    if openai:  # its sampling ranges are OpenAI's (checked above); roles and the local caps are shared
        body = {k: v for k, v in body.items() if k not in _PARAMS}
    try:
        parse(V2ChatRequest, body)
    except BodyError as exc:
        raise RowError(f"line {line}: {exc}", key) from None


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
    shaped = isinstance(messages, list) and all(isinstance(m, dict) for m in messages)
    try:
        turns = text_messages(messages) if shaped else []  # content parts as text, developer as system
    except ProtocolError as exc:
        raise RowError(f"line {line}: {exc}", key) from None
    if not turns or not all(isinstance(m.get("content"), str) for m in turns):
        raise RowError(f"line {line}: messages must be a non-empty list of {{role, content}} objects", key)
    return turns


def answer_row(row: Row, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """An output row (OpenAI's batch output shape, plus the input ``line``)."""
    return {"id": f"batch_req_{request_id}", "custom_id": row.key, "line": row.line,
            "response": {"status_code": 200, "request_id": request_id, "body": body}, "error": None}


def error_row(line: int, key: str, code: str, message: str) -> dict[str, Any]:
    """An error-file row (OpenAI's shape, plus the input ``line``)."""
    return {"id": f"batch_req_line{line}", "custom_id": key, "line": line, "response": None,
            "error": {"code": code, "message": message}}


def input_lines(path: Path, skip: bytearray | None = None) -> Iterator[tuple[int, bytes | int]]:
    """``(line number, raw line)`` of the non-blank lines, streamed; lines marked in ``skip`` are
    left out. A line over :data:`MAX_LINE_BYTES` is not read whole: its length comes instead."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""), 1):
            size: bytes | int = raw
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                size = len(raw)
                while raw and not raw.endswith(b"\n"):  # skip the rest, a chunk at a time
                    raw = fh.readline(1 << 20)
                    size += len(raw)
            if skip is not None and n <= len(skip) and skip[n - 1]:
                continue
            if isinstance(size, int) or size.strip():
                yield n, size


class InputRejected(ValueError):
    """An input file the job refuses as a whole (OpenAI validates a batch's file before running it)."""


def check_openai_input(path: Path) -> None:
    """An OpenAI batch's input file: at most :data:`MAX_OPENAI_REQUESTS` requests, each ``custom_id``
    unique (a client maps results by it). Streamed; memory is a hash per row."""
    seen: dict[int, int] = {}
    for rows, (line, raw) in enumerate(input_lines(path), 1):
        if rows > MAX_OPENAI_REQUESTS:
            raise InputRejected(f"the input file holds more than {MAX_OPENAI_REQUESTS} requests, the most one batch "
                                "takes")
        if isinstance(raw, int):
            continue
        try:
            item = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue  # that line's own error row says why
        key = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(key, str):
            continue
        digest = hash(key)
        if digest in seen and _custom_id(path, seen[digest]) == key:
            raise InputRejected(f"custom_id {key[:80]!r} on line {line} is also on line {seen[digest]}; each "
                                "request of a batch needs a unique custom_id")
        seen.setdefault(digest, line)


def _custom_id(path: Path, wanted: int) -> object:
    for line, raw in input_lines(path):
        if line == wanted:
            return json.loads(raw).get("custom_id") if isinstance(raw, bytes) else None
    return None


def count_lines(path: Path) -> tuple[int, int]:
    """``(rows, last line number)`` of an input file (streamed)."""
    rows = last = 0
    for n, _ in input_lines(path):
        rows, last = rows + 1, n
    return rows, last


@dataclass
class BatchProgress:
    """A job's counts: its rows answered and failed and their answers' tokens, and its repeats: sends whose
    answers were lost with the process (in flight at a kill or a stop), each paid. A repeat's prompt tokens
    are the answered send's own (the same row, template and tokenizer: exact); its answer is counted at the
    row's cap (an estimate)."""

    done: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    preempted: int = 0
    retried: int = 0
    repeated_requests: int = 0     # sends whose answers a kill lost (each paid once more)
    repeat_input_tokens: int = 0   # their prompt tokens: exact, for the lost sends of rows answered since
    repeat_output_tokens: int = 0  # the caps of the lost sends of rows that ended (answered or failed): an estimate
    #: model -> [requests, prompt tokens, completion tokens] paid, lost sends included (``/metrics``' batch counts)
    by_model: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Standing:
    """Where a job stands, read back from its files."""

    answered: bytearray          # one byte per input line: 1 once it has an answer or an error row
    progress: BatchProgress = field(default_factory=BatchProgress)  # its counts, the runner's from here on
    repeats: int = 0             # rows that were in flight when the job stopped (sent again now)
    unconfirmed: int = 0         # of them, sendings no engine had confirmed (not paid: :func:`_in_flight`)
    lost: dict[int, list[int]] = field(default_factory=dict)  # unanswered line -> the caps of its lost sends


def add_paid(by_model: dict[str, list[int]], model: str, requests: int, prompt: int, completion: int) -> None:
    """Add sends to a job's ``model -> [requests, prompt tokens, completion tokens]``."""
    paid = by_model.get(model, [0, 0, 0])
    by_model[model] = [paid[0] + requests, paid[1] + prompt, paid[2] + completion]


def journal_entry(line: int, cap: int) -> bytes:
    """A dispatch journal's line: the row, and the most tokens its answer may take."""
    return f"{line} {cap}\n".encode()


def standing(last_line: int, output: Path, errors: Path, journal: Path, lost_log: Path | None = None) -> Standing:
    """Read the output, error, dispatch-journal and lost-sends files of a job (streamed; memory is
    one byte per input line, and an entry per lost send). The journal's rows without an answer are
    the sends the last run lost: they are added to ``lost_log`` (fsynced) before the caller starts a
    new journal, so a second kill before they are answered keeps them."""
    state = Standing(bytearray(last_line))
    counts = state.progress
    earlier = list(_entries(lost_log, last_line)) if lost_log is not None else []
    lost_lines = {line for line, _ in earlier}
    ended: dict[int, tuple[str, int]] = {}  # a lost line that ended -> (model, prompt tokens); "" and 0: an error row
    for path, ok in ((output, True), (errors, False)):
        for line, row in _rows_of(path, last_line):
            if state.answered[line - 1]:
                continue
            state.answered[line - 1] = 1
            if ok:
                counts.done += 1
                body = (row.get("response") or {}).get("body") or {}
                usage = body.get("usage") or {}
                prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                counts.input_tokens += prompt
                counts.output_tokens += completion
                add_paid(counts.by_model, str(body.get("model") or ""), 1, prompt, completion)
                if line in lost_lines:
                    ended[line] = (str(body.get("model") or ""), prompt)
            else:
                counts.failed += 1
                if line in lost_lines:
                    ended[line] = ("", 0)
    in_flight, state.unconfirmed = _in_flight(journal, state.answered)
    state.repeats = len(in_flight) + state.unconfirmed
    if lost_log is not None and in_flight:
        with open(lost_log, "ab") as fh:
            fh.write(b"".join(journal_entry(line, cap) for line, cap in in_flight.items()))
            fh.flush()
            os.fsync(fh.fileno())
    for line, cap in [*earlier, *in_flight.items()]:
        counts.repeated_requests += 1
        if line in ended:
            model, prompt = ended[line]
            counts.repeat_input_tokens += prompt
            counts.repeat_output_tokens += cap
            add_paid(counts.by_model, model, 1, prompt, cap)
        else:
            state.lost.setdefault(line, []).append(cap)
    return state


def _rows_of(path: Path, last_line: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, row)`` of an output or error file's readable rows for lines 1..``last_line``; a last
    line that a kill left half-written (no newline: everything before it was fsynced) is cut off."""
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        whole = 0
        for raw in fh:
            if not raw.endswith(b"\n"):
                fh.truncate(whole)
                return
            whole += len(raw)
            try:
                row = json.loads(raw)
                line = int(row["line"])
            except (ValueError, KeyError, TypeError):
                continue
            if 1 <= line <= last_line:
                yield line, row


def _entries(path: Path | None, last_line: int) -> Iterator[tuple[int, int]]:
    """``(line, cap)`` of a journal's or lost-sends log's whole lines (an older journal's bare line
    number has the default cap; a journal's ``-N`` takes line N's last sending back, ``+N`` (cap -1)
    confirms that the engine had it)."""
    if path is None or not path.exists():
        return
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return  # a line the kill cut: its send had not begun (the journal is flushed before sending)
            parts = raw.split()
            try:
                if raw.startswith(b"+"):  # a confirmation: its cap is -1
                    line, cap = int(parts[0][1:]), -1
                else:
                    line = int(parts[0])
                    cap = int(parts[1]) if len(parts) > 1 else DEFAULT_OUTPUT_TOKENS
            except (ValueError, IndexError):
                continue
            if 1 <= abs(line) <= last_line:
                yield line, cap


def _in_flight(journal: Path, answered: bytearray) -> tuple[dict[int, int], int]:
    """The lines whose last sending the engine had (``+N`` after ``N cap``) and that have no answer,
    with their caps: sendings the job's end lost, each paid; and how many other unanswered lines were
    about to be sent (journaled, not confirmed: their requests may not have left, and are not paid).
    A line taken back (``-N``: that sending never reached the engine, or was noted lost already)
    counts in neither; a line sent twice in one run (pre-empted, then sent again) counts once."""
    sent: dict[int, int] = {}
    confirmed: set[int] = set()
    for line, cap in _entries(journal, len(answered)):
        if line < 0:
            sent.pop(-line, None)
            confirmed.discard(-line)
        elif cap < 0:
            if line in sent:
                confirmed.add(line)
        elif not answered[line - 1]:
            sent[line] = cap
            confirmed.discard(line)
    lost = {line: cap for line, cap in sent.items() if line in confirmed}
    return lost, len(sent) - len(lost)
