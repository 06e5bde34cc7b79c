"""A qfnb batch as one Ray job, run on the cluster::

    python -m qfnb.local.cluster.ray_batch --input rows.jsonl --model MODEL [--workers N] [--slots S]

The input holds the rows still to answer (OpenAI batch rows; ``custom_id`` is the row's index in the
whole job). Each worker is a Ray actor that starts its own engine with qfnb's engine code
(:class:`~qfnb.local.engines.registry.EngineRegistry`: llama-server for a built-in or stored model, or
the OpenAI-compatible engine ``QFNB_ENGINES`` names, e.g. a vLLM server), and answers up to ``S`` rows
at a time; rows are spread over the workers as they free up.

Before a row goes to a worker, the driver prints ``QFNB-SENT {"custom_id", "cap"}``: a row sent and never
printed was lost with the attempt, and is paid; so is each sending a worker's engine had when it went away
(``qfnb_lost`` on the row's line: its cap each). Every finished row is one flushed line of the job's log,
``QFNB-ROW {json}`` (OpenAI's output or error row, with ``qfnb_prompt``, the row's last user message, and
``qfnb_node``, the Ray node that answered it): the logs are the job's journal. The client reads them back
through the Jobs API and, calling the same job again after a stop or a crash, sends only the rows no attempt
answered.

A job stopped through the Jobs API gets SIGTERM (Ray SIGKILLs it ``RAY_JOB_STOP_WAIT_TIME_S`` later, 3 s
by default): the driver then asks each worker what its rows in flight have spent so far (the tokens
their engines reported up to the last streamed piece) and prints one ``QFNB-SPENT {json}`` line per
row, so the stopped attempt's ledger entry counts them although the rows are answered again.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qfnb.local.cluster.jobs import (
    JOURNAL_ENV,
    JOURNAL_KEY,
    LOST_KEY,
    NODE_KEY,
    PROMPT_KEY,
    ROW_PREFIX,
    SENT_PREFIX,
    SPENT_PREFIX,
    print_line,
)
from qfnb.local.convert.answer import answer_of
from qfnb.local.domain.batch.rows import RowError, error_row, parse_line
from qfnb.local.domain.batch.runner import MAX_ATTEMPTS, answered_row, backoff
from qfnb.local.engines import loop_guard
from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.local.engines.options import EngineOptions
from qfnb.local.engines.registry import EngineRegistry
from qfnb.local.engines.store.assets import AssetError
from qfnb.protocol.wires.qianfan.batch import ROW_SECONDS_KEY

log = logging.getLogger("qfnb.local.cluster.ray_batch")

#: rows one worker's engine answers at once (its llama-server slots)
DEFAULT_SLOTS = 2
#: seconds the driver waits for the workers' in-flight spending once stopped (Ray kills it after 3)
SPENT_WAIT = 1.5


class Stopped(Exception):
    """The job got SIGTERM (``stop_job``)."""


def row_line(row: dict[str, Any], prompt: str | None = None, node: str | None = None,
             journal: str | None = None) -> str:
    """A finished row as its log line (with its input's last user message and the node that answered
    it, when given), marked with its submission's journal mark (``journal``, else :data:`JOURNAL_ENV`'s)."""
    shown = {**row, **({PROMPT_KEY: prompt} if prompt is not None else {}),
             **({NODE_KEY: node} if node is not None else {})}
    return _journal_line(ROW_PREFIX, shown, journal)


def _journal_line(prefix: str, item: dict[str, Any], journal: str | None) -> str:
    mark = journal if journal is not None else os.environ.get(JOURNAL_ENV)
    return prefix + json.dumps({**item, **({JOURNAL_KEY: mark} if mark else {})}, ensure_ascii=False,
                               separators=(",", ":"))


def spent_line(key: str, prompt_tokens: int, completion_tokens: int, journal: str | None = None) -> str:
    """What a row in flight had spent when its job was stopped, as its log line (marked as a row is)."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return _journal_line(SPENT_PREFIX, {"custom_id": key, "usage": usage}, journal)


def sent_line(raw: str, line: int, model: str, journal: str | None = None) -> str | None:
    """The journal line of a row about to be sent (its key and its answer's cap), or None for a row
    the worker refuses unsent (its error row says why)."""
    try:
        row = parse_line(raw.encode("utf-8"), line, model, {})
    except RowError:
        return None
    return _journal_line(SENT_PREFIX, {"custom_id": row.key, "cap": row.cap}, journal)


def prompt_of(raw: str) -> str:
    """The last user message's text of an input row (what ``%qfbatch``'s dataset shows as its prompt)."""
    try:
        body = json.loads(raw).get("body") or {}
        messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return ""
    users = [m for m in messages if m.get("role") == "user"] or messages
    content = users[-1].get("content", "") if users else ""
    if isinstance(content, list):  # content parts: their text
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def line_number(raw: str, fallback: int) -> int:
    """The row's 1-based line in the whole job (its ``custom_id`` + 1), for error messages."""
    try:
        return int(json.loads(raw).get("custom_id")) + 1
    except (ValueError, TypeError, AttributeError):
        return fallback


class EngineWorker:
    """One worker: its own engine (started on first use, in a data dir of its own) and rows answered on it."""

    def __init__(self, model: str, slots: int) -> None:
        self.model = model
        self.data_dir = Path(tempfile.mkdtemp(prefix="qfnb-ray-worker-"))
        options = EngineOptions.from_env(os.environ)
        self.registry = EngineRegistry(self.data_dir, options=EngineOptions(
            slots=slots, idle_seconds=options.idle_seconds, external=options.external))
        #: rows in flight: the prompt and completion tokens their engine reported so far
        self.flying: dict[str, tuple[int, int]] = {}

    def node_id(self) -> str:
        """The id of the Ray node this worker (and its engine) runs on."""
        return str(importlib.import_module("ray").get_runtime_context().get_node_id())

    def where(self) -> str:
        """This worker's node, for an error message ("this Ray node" when Ray cannot say)."""
        ray = sys.modules.get("ray")  # not imported: not in a Ray worker (no 20 s import for a message)
        # asked outside a worker, Ray's runtime context would start a local Ray instance
        if ray is None or not ray.is_initialized():
            return "this Ray node"
        return f"the Ray node {self.node_id()}"

    def spent(self) -> dict[str, tuple[int, int]]:
        """The tokens each row in flight has used so far (asked when the job is stopped)."""
        return {key: used for key, used in self.flying.items() if used != (0, 0)}

    async def answer(self, raw: str, line: int) -> dict[str, Any]:
        """``raw``'s output row, or its error row (a busy engine is retried with back-off), with the
        seconds it took here (:data:`ROW_SECONDS_KEY`: its span's duration in ``%qftrace``) and the
        caps of the sendings an engine had and lost before (:data:`LOST_KEY`: each one paid)."""
        clock = time.perf_counter()
        lost: list[int] = []
        row = await self._answer(raw, line, lost)
        return {**row, ROW_SECONDS_KEY: round(time.perf_counter() - clock, 4), **({LOST_KEY: lost} if lost else {})}

    async def _answer(self, raw: str, line: int, lost: list[int]) -> dict[str, Any]:
        try:
            row = parse_line(raw.encode("utf-8"), line, self.model, {})
        except RowError as exc:
            return error_row(line, exc.key or f"line-{line}", "invalid_request", str(exc))
        ask = row.ask()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                engine = self.registry.chat(row.model or self.model)
                deltas = []
                async for delta in loop_guard.whole_answer(engine, ask, ask.model):
                    deltas.append(delta)
                    self.flying[row.key] = (delta.prompt_tokens, delta.completion_tokens)
                return answered_row(row, engine.name, answer_of(deltas))
            except (EngineBusy, EngineUnavailable) as exc:
                if isinstance(exc, EngineUnavailable) and exc.reached:  # the engine had it and went away: paid
                    lost.append(row.cap)
                if attempt == MAX_ATTEMPTS:
                    return error_row(row.line, row.key, "engine_unavailable", f"{exc} (after {attempt} attempts)")
                await asyncio.sleep(backoff(attempt, exc.retry_after if isinstance(exc, EngineBusy) else 0.0))
            except PromptTooLong as exc:
                return error_row(row.line, row.key, "context_length_exceeded", str(exc))
            except (ValueError, LookupError) as exc:
                return error_row(row.line, row.key, "invalid_request", str(exc))
            except AssetError as exc:  # this node lacks the model's weights: said, and the other rows go on
                return error_row(row.line, row.key, "model_not_available",
                                 f"{self.where()} cannot serve {row.model or self.model}: {exc} "
                                 "(the job's runtime_env installs qfnb and the model's weight packages: docs/ray.md)")
            finally:
                self.flying.pop(row.key, None)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.registry.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def worker_count(asked: int | None, cpus: float, cpus_per_worker: float, rows: int) -> int:
    """Workers to start: as asked, else one per ``cpus_per_worker`` of the cluster's CPUs; never more than rows."""
    wanted = asked if asked else int(cpus // cpus_per_worker)
    return max(1, min(wanted, rows))


def run(lines: list[str], *, model: str, workers: int | None, slots: int, cpus_per_worker: float) -> int:
    """Answer ``lines`` on engines started on the cluster's workers, printing each row as it ends; rows answered."""
    ray: Any = importlib.import_module("ray")  # the cluster's own: this module runs as a Ray job's entrypoint

    ray.init(logging_level=logging.WARNING, log_to_driver=False)
    count = worker_count(workers, float(ray.cluster_resources().get("CPU", 1)), cpus_per_worker, len(lines))
    actor = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(EngineWorker)
    pool = [actor.remote(model, slots) for _ in range(count)]
    nodes = dict(zip(pool, ray.get([worker.node_id.remote() for worker in pool]), strict=True))
    log.warning("qfnb ray batch: %d rows on %d workers x %d slots on %d nodes (%s)", len(lines), count, slots,
                len(set(nodes.values())), model)
    queue = list(enumerate(lines))[::-1]
    flying: dict[Any, tuple[Any, int, str]] = {}

    def send(worker: Any) -> None:
        if queue:
            index, raw = queue.pop()
            line = line_number(raw, index + 1)
            sent = sent_line(raw, line, model)
            if sent is not None:
                print_line(sent)  # before it is sent: a kill from here on leaves it paid
            flying[worker.answer.remote(raw, line)] = (worker, index, raw)

    stop: list[int] = []  # a signal only notes the stop: raising inside Ray's C calls breaks them
    before = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    try:
        return _drive(ray, nodes, slots, send, flying, stop)
    finally:
        signal.signal(signal.SIGTERM, before)


def _drive(ray: Any, nodes: dict[Any, str], slots: int, send: Any, flying: dict[Any, tuple[Any, int, str]],
           stop: list[int]) -> int:
    """Keep every worker's slots full until the rows are answered or the job is stopped (``nodes``: each
    worker's node id)."""
    pool = list(nodes)
    for worker in pool:
        for _ in range(slots):
            send(worker)
    answered = 0
    while flying and not stop:
        ready, _ = ray.wait(list(flying), num_returns=1, timeout=0.5)  # returns now and then: a stop is seen
        for ref in ready:
            worker, index, raw = flying.pop(ref)
            try:
                row = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker died: this row's error, the rest go on
                line = line_number(raw, index + 1)
                row = error_row(line, str(line - 1), "worker_failed", str(exc).splitlines()[0])
            answered += row.get("error") is None
            print_line(row_line(row, prompt_of(raw), nodes[worker]))
            send(worker)
    if stop:
        counted = _print_spent(ray, pool)
        log.warning("qfnb ray batch stopped: %d rows in flight, %d of them with tokens spent so far", len(flying),
                    counted)
        raise Stopped
    for worker in pool:
        ray.get(worker.close.remote())
    return answered


def _print_spent(ray: Any, pool: list[Any]) -> int:
    """Each row in flight's spending so far, one ``QFNB-SPENT`` line each (what the workers answer in
    :data:`SPENT_WAIT` seconds; a worker that does not answer in time leaves its rows uncounted, and
    mid-answer a row counts its streamed completion tokens only: llama-server reports the prompt's
    tokens with the answer's last chunk). Returns the rows counted."""
    refs = [worker.spent.remote() for worker in pool]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=SPENT_WAIT)
    counted = 0
    for ref in ready:
        try:
            spent = ray.get(ref)
        except ray.exceptions.RayError:
            continue
        for key, (prompt, completion) in spent.items():
            print_line(spent_line(key, prompt, completion))
            counted += 1
    return counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qfnb.local.cluster.ray_batch", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="JSONL of the rows to answer")
    parser.add_argument("--model", required=True, help="the model each worker's engine serves")
    parser.add_argument("--workers", type=int, default=None, help="workers (default: one per cpus-per-worker CPUs)")
    parser.add_argument("--slots", type=int, default=DEFAULT_SLOTS, help="rows one worker answers at once")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    args = parser.parse_args(argv)
    lines = [line for line in Path(args.input).read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines:
        try:
            run(lines, model=args.model, workers=args.workers, slots=args.slots,
                cpus_per_worker=args.cpus_per_worker)
        except Stopped:
            return 143  # as SIGTERM would: Ray records the job STOPPED
    return 0


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
