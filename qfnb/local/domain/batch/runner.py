"""The runner of one batch-inference job: feeds the engine, writes the answers, survives restarts.

- It keeps as many rows in flight as the engine has slots (read from its gate), never more, so
  nothing of the job waits in the gate's queue; rows for one model (one LoRA adapter) go together.
- Interactive requests keep a share: when one is admitted while the job fills every slot, the
  job's youngest row is cancelled at once (the engine frees its slot within a decode step) and
  goes back to the front of the line, so chat waits at most one decode step behind the job.
- Each answer (or per-row error) is appended to the output (or error) object and fsynced
  before it counts; a journal notes each dispatched line (and its token cap) before it is sent,
  so a restarted job resumes at the first row without an answer, and the sends a kill lost are
  paid for in its usage: their prompt tokens are the answered send's (exact), their answers the
  row's cap (an estimate), each one a repeat (``BatchProgress.repeated_requests``).
- It sleeps until something happens: a row ends, an engine's gate admits or releases a request
  (:meth:`Gate.watch`), the job is stopped (:meth:`Runner.poke`) or its window ends. No poll:
  a job waiting for slots costs no CPU (``wakeups`` counts how often it looked).
- A busy or crashed engine (HTTP 429/5xx from an external one) is retried with back-off; an
  engine's other 4xx refusal is that row's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from qfnb.local.convert.answer import Answer, answer_of, usage_of
from qfnb.local.convert.openai_chat import choice_of
from qfnb.local.domain.batch.rows import (
    BatchProgress,
    Row,
    RowError,
    Standing,
    add_paid,
    answer_row,
    error_row,
    input_lines,
    journal_entry,
    parse_line,
)
from qfnb.local.engines import loop_guard
from qfnb.local.engines.api import Engine
from qfnb.local.engines.base import PromptTooLong, on_reached
from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.protocol.platform.traces import CallSpan, new_span_id, new_trace_id

log = logging.getLogger("qfnb.local.domain.batch")

#: input rows read ahead of the engine (to group rows of one model; bounds memory)
LOOKAHEAD = 256
#: how often progress counts are written to the store
SAVE_EVERY = 0.5
MAX_ATTEMPTS = 8
#: a lost send's span: a repeat, its answer counted at the row's cap
LOST_SEND = '{"qfnb.repeat": true, "qfnb.output_tokens_estimated": true}'
BACKOFF_CAP = 20.0


def backoff(attempt: int, hint: float = 0.0) -> float:
    """Seconds to wait before attempt ``attempt + 1``: doubling from 0.5 s, at most 20 s, never
    less than the engine's own ``Retry-After``."""
    return float(max(hint, min(BACKOFF_CAP, 0.5 * 2 ** (attempt - 1))))


def _http_status(exc: Exception) -> int | None:
    """The HTTP status an external engine answered, when the error names one."""
    found = re.search(r"answered HTTP (\d{3})", str(exc))
    return int(found.group(1)) if found else None


def answered_row(row: Row, engine_name: str, answer: Answer) -> dict[str, Any]:
    """The output row of ``row`` answered with the engine's ``answer`` (a chat completion body, text only)."""
    rid = uuid.uuid4().hex[:20]
    choice = choice_of(0, answer, logprobs=False)
    del choice["logprobs"]  # a batch answers text only: its rows carry no logprobs field
    body = {"id": f"chatcmpl-{rid}", "object": "chat.completion", "created": int(time.time()),
            "model": row.model or engine_name, "choices": [choice],
            "usage": usage_of(answer.tally.prompt, answer.tally.completion)}
    return answer_row(row, rid, body)


@dataclass
class Paths:
    input: Path
    output: Path
    errors: Path
    journal: Path
    lost: Path | None = None  # the sends kills lost (``batch_rows.standing`` keeps it)


class _JobShare:
    """Rows of all batch jobs in this process admitted per engine gate (thread-safe), so jobs
    tell interactive requests from each other's rows."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.lock = threading.RLock()  # held while a job reserves places, so two jobs never over-book

    def add(self, gate: Any, n: int) -> None:
        with self.lock:
            self._counts[id(gate)] = self._counts.get(id(gate), 0) + n

    def get(self, gate: Any) -> int:
        return self._counts.get(id(gate), 0)


BATCH_ADMITTED = _JobShare()


@dataclass(slots=True, eq=False)
class _Flight:
    """One row on its way through the engine."""

    row: Row
    engine: Engine
    admitted: bool = False
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[Any] | None = None
    reached: bool = False  # the engine had this sending (``on_reached``)
    streamed: int = 0      # completion tokens it has answered so far

    def mark(self, admitted: bool) -> None:
        """Note whether the row holds (or is about to hold) a place in the engine's gate."""
        if admitted != self.admitted:
            self.admitted = admitted
            BATCH_ADMITTED.add(self.engine.gate, 1 if admitted else -1)


class Runner:
    """Runs one job to its end (or until ``stopped()``); ``engine_for(model)`` gives an engine,
    ``save(progress)`` stores the counts."""

    def __init__(self, paths: Paths, standing: Standing, *, model: str | None, params: dict[str, Any],
                 engine_for: Callable[[str | None], Engine], save: Callable[[BatchProgress], None],
                 stopped: Callable[[], bool], deadline: float | None = None,
                 record: Callable[[CallSpan], None] | None = None, job: str = "") -> None:
        self.paths, self.model, self.params = paths, model, params
        self.record = record  # each answered row, once it is written (the platform's meter)
        self._spans: dict[int, CallSpan] = {}
        self.job = job
        self.engine_for, self.save, self.stopped = engine_for, save, stopped
        self.deadline = deadline  # epoch seconds when the job's window ends (it wakes then)
        self.wakeups = 0  # how often the loop woke up (a job waiting for slots stays still)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watched: dict[int, Any] = {}
        self.answered = standing.answered
        self.progress = standing.progress  # counted on from where the job stands
        self.lost = standing.lost  # unanswered rows whose earlier sends were lost: counted when they end
        self._ahead: deque[Row] = deque()
        self._lines: Iterator[tuple[int, bytes | int]] = iter(())
        self._exhausted = False
        self._flights: dict[asyncio.Task[Any], _Flight] = {}
        self._current: str | None = None
        self._draining = False
        self._journal: BinaryIO | None = None  # the dispatch journal, while the job runs

    @property
    def in_flight(self) -> int:
        """Rows at an engine now."""
        return len(self._flights)

    # ---- waking up ------------------------------------------------------------------------------

    def drain(self) -> None:
        """The process is shutting down (thread-safe): send no more rows; the run ends ``"drained"``
        once the rows at an engine have ended and are written (the job resumes at the next start)."""
        self._draining = True
        self.poke()

    def poke(self) -> None:
        """Wake the loop (thread-safe): a gate changed or the job was stopped."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has ended: nothing to wake
            loop.call_soon_threadsafe(wake.set)

    def _engine(self, model: str | None) -> Engine:
        engine = self.engine_for(model)
        if id(engine.gate) not in self._watched:
            engine.gate.watch(self.poke)
            self._watched[id(engine.gate)] = engine.gate
        return engine

    async def _sleep_until_woken(self) -> set[asyncio.Task[Any]]:
        """Wait for a row to end, a wake-up or the window's end; the rows that ended."""
        assert self._wake is not None
        waker = asyncio.ensure_future(self._wake.wait())
        timeout = None if self.deadline is None else max(0.0, self.deadline - time.time())
        try:
            done, _ = await asyncio.wait([*self._flights, waker], timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
        self.wakeups += 1
        return {t for t in done if t is not waker}

    # ---- input -------------------------------------------------------------------------------

    def _fill(self) -> list[dict[str, Any]]:
        """Read ahead up to LOOKAHEAD rows; malformed lines become error rows (returned)."""
        bad: list[dict[str, Any]] = []
        while not self._exhausted and len(self._ahead) < LOOKAHEAD:
            try:
                line, raw = next(self._lines)
            except StopIteration:
                self._exhausted = True
                break
            try:
                self._ahead.append(parse_line(raw, line, self.model, self.params))
            except RowError as exc:
                bad.append(error_row(line, exc.key or f"line-{line}", "invalid_request", str(exc)))
        return bad

    def _next_row(self) -> Row | None:
        """The next row to send: one for the model in flight if there is one ahead (grouping)."""
        if not self._ahead:
            return None
        if self._current is not None and self._ahead[0].model != self._current:
            for i, row in enumerate(self._ahead):
                if row.model == self._current:
                    del self._ahead[i]
                    return row
        row = self._ahead.popleft()
        self._current = row.model
        return row

    # ---- capacity ------------------------------------------------------------------------------

    def _room(self, engine: Engine) -> int:
        """How many of the job's rows may be in flight on ``engine`` now: its slots, less the
        interactive requests its gate admitted and the rows of other jobs on it."""
        gate = engine.gate
        mine = sum(1 for f in self._flights.values() if f.engine.gate is gate and f.admitted)
        jobs = BATCH_ADMITTED.get(gate)
        interactive = max(0, gate.admitted - jobs)
        return max(0, gate.slots - interactive - (jobs - mine))

    def _preempt(self) -> None:
        """When interactive requests wait behind full slots, cancel the job's youngest rows (they
        go back in line). Jobs never pre-empt each other."""
        for gate in {id(f.engine.gate): f.engine.gate for f in self._flights.values()}.values():
            waiting = gate.admitted - gate.slots
            if waiting <= 0 or gate.admitted - BATCH_ADMITTED.get(gate) <= 0:
                continue
            flights = [f for f in self._flights.values()
                       if f.engine.gate is gate and f.admitted and f.task is not None and not f.task.done()]
            for flight in sorted(flights, key=lambda f: f.started, reverse=True)[:waiting]:
                assert flight.task is not None
                flight.task.cancel()
                self.progress.preempted += 1

    # ---- one row --------------------------------------------------------------------------------

    async def _answer(self, flight: _Flight) -> dict[str, Any]:
        """One row's answer or error row (retried while the engine is busy); its gate place goes however it ends."""
        try:
            row = flight.row
            ask = row.ask()
            for attempt in itertools.count(1):
                flight.mark(True)
                flight.reached, flight.streamed = False, 0
                reached = on_reached.set(lambda: self._reached(flight))
                try:
                    deltas = []
                    async for delta in loop_guard.whole_answer(flight.engine, ask, ask.model):
                        deltas.append(delta)
                        flight.streamed = max(flight.streamed, delta.completion_tokens)
                    break
                except (EngineBusy, EngineUnavailable) as exc:
                    flight.mark(False)
                    self._unsent(row, lost=isinstance(exc, EngineUnavailable) and exc.reached)
                    status = _http_status(exc)
                    if status is not None and 400 <= status < 500 and status not in (408, 409, 429):
                        return error_row(row.line, row.key, "invalid_request", str(exc))  # the engine refused this row
                    if attempt >= MAX_ATTEMPTS:
                        return error_row(row.line, row.key, "engine_unavailable", f"{exc} (after {attempt} attempts)")
                    hint = exc.retry_after if isinstance(exc, EngineBusy) else 0.0
                    self.progress.retried += 1
                    log.info("batch row %d: %s; retrying in %.1f s", row.line, exc, backoff(attempt, hint))
                    await asyncio.sleep(backoff(attempt, hint))
                    self._note(journal_entry(row.line, row.cap))
                except PromptTooLong as exc:
                    return error_row(row.line, row.key, "context_length_exceeded", str(exc))
                except ValueError as exc:
                    return error_row(row.line, row.key, "invalid_request", str(exc))
                finally:
                    on_reached.reset(reached)
            answer = answer_of(deltas)
            if self.record is not None:
                self._spans[row.line] = _row_span(row.model or flight.engine.name, flight.started, answer.tally.prompt,
                                                  answer.tally.completion_tokens, answer.tally.cached, self.job)
            return answered_row(row, flight.engine.name, answer)
        finally:
            flight.mark(False)

    def _reached(self, flight: _Flight) -> None:
        flight.reached = True
        self._note(b"+%d\n" % flight.row.line)

    def _note(self, entry: bytes) -> None:
        """Journal ``entry`` now: a sending of a row before it is made (a kill from here on leaves it in flight), or
        a mark for it (``+`` the engine has it, ``-`` take the sending back)."""
        if self._journal is not None:
            self._journal.write(entry)
            self._journal.flush()

    def _unsent(self, row: Row, *, lost: bool, answered: int | None = None) -> None:
        """A sending of ``row`` ended without an answer: it never reached the engine (its journal
        line is taken back), or (``lost``) the engine had it and went away mid-answer, or the job
        pre-empted it (``answered``: the tokens it had answered), so it was paid: a lost send, noted
        in ``lost.log`` at once and counted when the row ends (its answer at the row's cap, or at
        what a pre-empted sending had answered)."""
        if lost:
            spent = row.cap if answered is None else answered
            self.lost.setdefault(row.line, []).append(spent)
            self.progress.repeated_requests += 1
            if self.paths.lost is not None:
                with open(self.paths.lost, "ab") as fh:
                    fh.write(journal_entry(row.line, spent))
        self._note(b"-%d\n" % row.line)

    # ---- the loop -------------------------------------------------------------------------------

    async def run(self) -> str:
        """Run until every row has an answer (``"done"``), the job is stopped (``"stopped"``) or the
        process drains it (``"drained"``)."""
        self._lines = input_lines(self.paths.input, self.answered)
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        with open(self.paths.output, "ab") as out, open(self.paths.errors, "ab") as err, \
                open(self.paths.journal, "ab") as journal:
            self._journal = journal
            last_save = time.monotonic()
            try:
                pending: list[dict[str, Any]] = []
                while True:
                    self._wake.clear()  # what changes from here on wakes the wait below
                    pending += self._fill()
                    if self.stopped():
                        await self._write(out, err, pending)
                        return "stopped"
                    if not self._draining:  # a process shutting down sends nothing it may not write
                        pending += self._dispatch(journal)  # freed slots are refilled before the fsync
                    await self._write(out, err, pending)
                    if self._draining and not self._flights:
                        return "drained"
                    if not self._flights and self._exhausted and not self._ahead:
                        return "done"
                    pending = self._collect(await self._sleep_until_woken())
                    self._preempt()
                    if time.monotonic() - last_save >= SAVE_EVERY:
                        self.save(self.progress)
                        last_save = time.monotonic()
            finally:
                for gate in self._watched.values():
                    gate.unwatch(self.poke)
                await self._cancel_all()
                self.save(self.progress)

    def _dispatch(self, journal: BinaryIO) -> list[dict[str, Any]]:
        """Start rows while the engine has room; rows naming a model that is not served are
        returned as error rows."""
        refused = []
        while True:
            row = self._next_row()
            if row is None:
                break
            try:
                engine = self._engine(row.model)
            except Exception as exc:  # e.g. a row's body names a model the platform does not serve
                refused.append(error_row(row.line, row.key, "model_not_found", f"line {row.line}: {exc}"))
                continue
            with BATCH_ADMITTED.lock:
                in_flight = sum(1 for f in self._flights.values() if f.engine.gate is engine.gate)
                if in_flight >= self._room(engine):
                    self._ahead.appendleft(row)
                    break
                flight = _Flight(row, engine)
                flight.mark(True)  # the place is this job's from now on
            flight.task = asyncio.ensure_future(self._answer(flight))
            self._flights[flight.task] = flight
            journal.write(journal_entry(row.line, row.cap))
        journal.flush()  # before anything is sent: survives the process being killed (not the machine)
        return refused

    def _collect(self, finished: set[asyncio.Task[Any]]) -> list[dict[str, Any]]:
        rows = []
        for task in finished:
            flight = self._flights.pop(task)
            if task.cancelled():
                self._ahead.appendleft(flight.row)  # pre-empted for an interactive request
                if flight.reached:  # the engine had it: paid, as what it had answered
                    self._unsent(flight.row, lost=True, answered=flight.streamed)
                continue
            exc = task.exception()
            if exc is not None:
                log.warning("batch row %d failed: %s", flight.row.line, exc)
                rows.append(error_row(flight.row.line, flight.row.key, "internal_error",
                                      f"{type(exc).__name__}: {exc}"))
            else:
                rows.append(task.result())
        return rows

    async def _write(self, out: BinaryIO, err: BinaryIO, rows: list[dict[str, Any]]) -> None:
        """Append rows and fsync them before they count (one fsync per file per wake-up, on a
        thread: the rows in flight keep streaming meanwhile)."""
        if not rows:
            return
        touched = set()
        for row in rows:
            target = out if row["error"] is None else err
            target.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
            touched.add(target)
        for fh in touched:
            fh.flush()
        await asyncio.gather(*(asyncio.to_thread(os.fsync, fh.fileno()) for fh in touched))
        for row in rows:
            self.answered[row["line"] - 1] = 1
            caps = self.lost.pop(row["line"], ())
            span = self._spans.pop(row["line"], None)
            if row["error"] is None:
                usage = row["response"]["body"]["usage"]
                self.progress.done += 1
                self.progress.input_tokens += usage["prompt_tokens"]
                self.progress.output_tokens += usage["completion_tokens"]
                if span is not None and self.record is not None:
                    self.record(span)
                    for cap in caps:  # each lost send, paid: its prompt as this one's, its answer at the cap
                        self.record(span._replace(span_id=new_span_id(), duration_s=0.0, ttft_s=None,
                                                  output_tokens=cap, cached_tokens=0, extra=LOST_SEND))
                self.progress.repeat_input_tokens += len(caps) * usage["prompt_tokens"]
                add_paid(self.progress.by_model, row["response"]["body"]["model"], 1 + len(caps),
                         (1 + len(caps)) * usage["prompt_tokens"], usage["completion_tokens"] + sum(caps))
            else:
                self.progress.failed += 1
                if caps:
                    add_paid(self.progress.by_model, "", len(caps), 0, sum(caps))
            self.progress.repeat_output_tokens += sum(caps)

    async def _cancel_all(self) -> None:
        tasks = list(self._flights)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flights.clear()


def _row_span(model: str, since: float, prompt: int, completion: int, cached: int, job: str) -> CallSpan:
    """A batch row's span (``since``: when it set off, on the monotonic clock)."""
    took = time.monotonic() - since
    return CallSpan(trace_id=new_trace_id(), span_id=new_span_id(), parent_id="", operation="chat", route="batch",
                    model=model, status=200, started=time.time() - took, duration_s=took, ttft_s=None,
                    input_tokens=prompt, output_tokens=completion, cached_tokens=cached,
                    job=job)
