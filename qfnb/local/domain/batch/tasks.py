"""Offline batch inference as a durable platform job (``/v2/batchinference``, OpenAI batches).

A task reads a JSONL object from the local BOS (or a platform dataset), runs every row on a
served chat model and appends answers and per-row errors to ``output.jsonl`` / ``error.jsonl``
under ``<outputBosUri>/<taskId>/``. The daemon owns it: a task survives its caller, and one
interrupted by a daemon restart resumes at the first row without an answer (:func:`recover`).
States: Queuing -> Running -> Done / Stopped / Failed / Expired.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qfnb.local.domain.batch import rows as batch_rows
from qfnb.local.domain.batch.runner import Paths, Runner
from qfnb.local.domain.state.datasets import BOS_PREFIX
from qfnb.local.domain.state.requests import parse
from qfnb.local.domain.state.site import ServingSite
from qfnb.local.domain.state.values import BodyError, NotFound
from qfnb.local.engines.api import Engine
from qfnb.protocol.wires.openai.requests import V2ChatRequest
from qfnb.protocol.wires.qianfan.batch import ACTIVE, COMPLETION_WINDOWS, BatchStatus

log = logging.getLogger("qfnb.local.domain.batch")
#: seconds a shutdown waits for the rows at an engine to end and be written (:func:`drain`)
DRAIN_SECONDS = 5.0


class TooManyJobs(Exception):
    """The platform holds as many waiting batch jobs as it takes (HTTP 429, naming the cap)."""


class _Admission:
    """The batch jobs of one data dir: at most ``Settings.max_batch_jobs`` run (a thread and an
    event loop each); the rest wait in line (``Queuing``, OpenAI's ``validating``) with no thread
    and cost nothing. Creating, starting, stopping and ending a job are O(1)."""

    def __init__(self) -> None:
        self.running: dict[int, threading.Thread] = {}
        self.runners: dict[int, Runner] = {}       # the running jobs' runners (poke, wakeups)
        self.stops: dict[int, threading.Event] = {}
        self.line: deque[int] = deque()             # waiting jobs in order (stopped ones are skipped)
        self.waiting: set[int] = set()
        self.draining = False                       # the process is shutting down: nothing new starts


_rooms: dict[str, _Admission] = {}
_lock = threading.Lock()


def _room(platform: ServingSite) -> _Admission:
    return _rooms.setdefault(str(platform.settings.data_dir), _Admission())


def _split_uri(uri: Any, field: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith(BOS_PREFIX):
        raise BodyError(field, f"must be a bos:/bucket/key URI, got {uri!r}")
    bucket, _, key = uri[len(BOS_PREFIX):].lstrip("/").partition("/")
    if not bucket:
        raise BodyError(field, f"names no bucket: {uri!r}")
    return bucket, key


def _input_path(platform: ServingSite, task: dict[str, Any]) -> Path:
    if task.get("datasetId") is not None:
        ds = platform.store.get("datasets", task["datasetId"])
        path = platform.settings.data_dir / "datasets" / str((ds or {}).get("sid")) / "data.jsonl"
        if ds is None or not path.is_file():
            raise BodyError("datasetId", f"dataset {task['datasetId']!r} has no imported data")
        return path
    try:
        return platform.objects.from_uri(task["inputBosUri"])
    except ValueError as exc:
        raise BodyError("inputBosUri", str(exc)) from None


def out_dir(platform: ServingSite, task: dict[str, Any]) -> tuple[str, str, Path]:
    """``(bucket, key prefix, folder)`` of a task's output objects."""
    bucket, prefix = _split_uri(task["outputBosUri"], "outputBosUri")
    prefix = "/".join(p for p in (prefix.strip("/"), task["sid"]) if p)
    try:
        return bucket, prefix, platform.objects.path(bucket, prefix + "/output.jsonl").parent
    except ValueError as exc:
        raise BodyError("outputBosUri", str(exc)) from None


def paths(platform: ServingSite, task: dict[str, Any]) -> Paths:
    folder = out_dir(platform, task)[2]
    work = platform.settings.data_dir / "batches" / task["sid"]
    return Paths(_input_path(platform, task), folder / "output.jsonl", folder / "error.jsonl", work / "dispatched.log",
                 work / "lost.log")


def create(platform: ServingSite, body: dict[str, Any], *, openai: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the request, store the task (Queuing) and start it."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BodyError("name", "is required")
    params = body.get("inferenceParams") or {}
    if not isinstance(params, dict):
        raise BodyError("inferenceParams", "must be an object")
    _check_params(params)
    window = body.get("completion_window")
    if window is not None and (not isinstance(window, str) or window not in COMPLETION_WINDOWS):
        raise BodyError("completion_window",
                        f"must be one of {sorted(COMPLETION_WINDOWS)} or omitted, got {window!r:.60}")
    model = body.get("endpoint") or body.get("modelId")
    if model is not None:
        model = _served_name(platform, str(model), "modelId" if body.get("modelId") else "endpoint")
    if body.get("afsConfig"):
        raise BodyError("afsConfig", "AFS is not available on the local platform; use inputBosUri/outputBosUri")
    if body.get("datasetId") is None:
        _split_uri(body.get("inputBosUri"), "inputBosUri")
    _split_uri(body.get("outputBosUri") if body.get("outputBosUri") is not None else "", "outputBosUri")
    waiting = len(_room(platform).waiting)
    if waiting >= platform.settings.max_waiting_batch_jobs:
        raise TooManyJobs(f"{waiting} batch jobs are waiting, the most this platform takes "
                          f"(max_waiting_batch_jobs={platform.settings.max_waiting_batch_jobs}); retry when some "
                          "have ended or cancel some")
    task = {"name": name, "description": body.get("description") or "", "endpoint": body.get("endpoint"),
            "modelId": body.get("modelId"), "model": model, "inferenceParams": params,
            "inputBosUri": body.get("inputBosUri"), "outputBosUri": body["outputBosUri"],
            "datasetId": body.get("datasetId"),
            "completionWindow": window, "runStatus": BatchStatus.QUEUING.value, "openai": openai,
            "done": 0, "failed": 0, "total": None, "inputTokens": 0, "outputTokens": 0, "repeatedRequests": 0,
            "preempted": 0, "retried": 0, "runSeconds": 0.0}
    paths(platform, {**task, "sid": "infer-draft"})  # its input and output checked (BodyError) before it is stored
    task = platform.store.insert("batches", task)
    platform.store.after_commit(lambda: start(platform, task["id"]))  # a keyed create's: once it is stored
    return platform.store.get("batches", task["id"]) or task


def _check_params(params: dict[str, Any]) -> None:
    """A task's ``inferenceParams`` as the chat routes check them (every row gets them)."""
    try:
        parse(V2ChatRequest, {**params, "model": "default", "messages": [{"role": "user", "content": "x"}]})
    except BodyError as exc:
        raise BodyError(f"inferenceParams.{exc.field}", str(exc).split(": ", 1)[-1]) from None


def _served_name(platform: ServingSite, model: str, field: str) -> str:
    """The chat endpoint a task's ``endpoint`` / ``modelId`` names: a service, a model version
    (its adapter is registered as the evaluations do) or a served model."""
    service = next(iter(platform.store.all("services", lambda s: model in (s.get("sid"), s.get("uri")))), None)
    if service is not None:
        return str(service["uri"])
    version = platform.store.get("versions", model) if model.startswith("amv-") or model.isdigit() else None
    if version is not None:
        return platform.adapter_endpoint(version) or str(version["baseModel"])
    try:
        platform.resolve("chat", model)
    except BodyError as exc:
        raise BodyError(field, str(exc).split(": ", 1)[-1]) from None
    return model


def paid_usage(task: dict[str, Any]) -> tuple[int, int]:
    """``(input, output)`` tokens a task was paid for: its answers' usage and the sends kills lost
    (their prompts exact, their answers at the rows' caps: ``repeatInputTokens`` /
    ``repeatOutputTokens``)."""
    return (int(task.get("inputTokens") or 0) + int(task.get("repeatInputTokens") or 0),
            int(task.get("outputTokens") or 0) + int(task.get("repeatOutputTokens") or 0))


def get(platform: ServingSite, key: Any, field: str = "taskId") -> dict[str, Any]:
    return platform.store.get_or_raise("batches", key, NotFound(f"{field} {key!r}: no such batch inference task"))


def stop(platform: ServingSite, key: Any) -> dict[str, Any]:
    """Stop a task: a waiting one at once, a running one's rows in flight are dropped (finished
    rows stay in the output)."""
    room, task_id = _room(platform), get(platform, key)["id"]
    with _lock:  # the runner's last status is written under the same lock: Stopping never follows it
        room.waiting.discard(task_id)
        event, runner = room.stops.get(task_id), room.runners.get(task_id)
        task = get(platform, task_id)
        if task["runStatus"] not in ACTIVE:  # it ended meanwhile
            return task
        if event is None:  # nothing runs it here: stopped at once
            return platform.store.update("batches", task_id, runStatus=BatchStatus.STOPPED.value, finished=time.time())
        task = platform.store.update("batches", task_id, runStatus=BatchStatus.STOPPING.value)
        event.set()
    if runner is not None:
        runner.poke()
    return task


def start(platform: ServingSite, task_id: int) -> None:
    """Run the task now if fewer than ``max_batch_jobs`` run, else put it in line."""
    room = _room(platform)
    with _lock:
        if task_id in room.running or task_id in room.waiting:
            return
        if len(room.running) >= platform.settings.max_batch_jobs or room.draining:
            room.waiting.add(task_id)
            room.line.append(task_id)
            return
        _launch(platform, room, task_id)


def _launch(platform: ServingSite, room: _Admission, task_id: int) -> None:
    """Start the task's thread (``_lock`` held)."""
    room.stops[task_id] = threading.Event()
    thread = room.running[task_id] = threading.Thread(target=_run, args=(platform, task_id),
                                                      name=f"qfnb-batch-{task_id}", daemon=True)
    thread.start()


def _next(platform: ServingSite, room: _Admission, task_id: int) -> None:
    """The task's thread ends: the first waiting task takes its place."""
    with _lock:
        room.running.pop(task_id, None)
        room.stops.pop(task_id, None)
        room.runners.pop(task_id, None)
        while room.line and len(room.running) < platform.settings.max_batch_jobs and not room.draining:
            follower = room.line.popleft()
            if follower in room.waiting:  # not stopped while it waited
                room.waiting.discard(follower)
                _launch(platform, room, follower)
        if len(room.line) > 2 * len(room.waiting) + 64:  # stopped ones pile up: drop them (amortised O(1))
            room.line = deque(t for t in room.line if t in room.waiting)


def wait(platform: ServingSite, task_id: int, timeout: float | None = None) -> None:
    """Wait for a task's runner here to end (tests, shutdown)."""
    room = _room(platform)
    end = None if timeout is None else time.monotonic() + timeout
    while end is None or time.monotonic() < end:
        thread = room.running.get(task_id)
        if thread is not None:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
        elif task_id not in room.waiting:
            return
        else:
            time.sleep(0.05)  # waits in line (a test helper: no job ever polls)


def drain(platform: ServingSite, timeout: float = DRAIN_SECONDS) -> None:
    """The platform is shutting down: the running jobs send no more rows, and the rows at an engine
    get ``timeout`` seconds to end and be written; the jobs stay Running, so the next start resumes
    them. Without it a shutdown went on sending rows until the process ended, and lost their answers
    (the chaos bench found rows sent after a SIGTERM, answered by the engine and never written)."""
    room = _room(platform)
    with _lock:
        room.draining = True
        runners, threads = list(room.runners.values()), list(room.running.values())
    for runner in runners:
        runner.drain()
    end = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    left = sum(t.is_alive() for t in threads)
    if left:
        log.warning("%d batch jobs still had rows at an engine after %.0f s; they resume at the next start", left,
                    timeout)


def runners(platform: ServingSite) -> dict[int, Runner]:
    """The runners of the jobs running now (for tests and the bench: their ``wakeups``)."""
    return dict(_room(platform).runners)


def _engines(platform: ServingSite) -> Callable[[str | None], Engine]:
    """The chat engine a row's model names, each looked up once per task."""

    @functools.cache
    def engine_for(model: str | None) -> Engine:
        served = platform.resolve("chat", model) if model else platform.served("chat")[0]
        platform.note_loading(served)
        return platform.registry.chat(platform.engine_endpoint(served))

    return engine_for


def _run(platform: ServingSite, task_id: int) -> None:
    room = _room(platform)
    try:
        _run_task(platform, room, task_id)
    except batch_rows.InputRejected as exc:
        log.info("batch task %s refused its input: %s", task_id, exc)
        finish(platform, task_id, BatchStatus.FAILED, errorCode=400, errorReason=str(exc))
    except Exception as exc:
        log.exception("batch task %s failed", task_id)
        finish(platform, task_id, BatchStatus.FAILED, errorCode=500, errorReason=str(exc))
    finally:
        _next(platform, room, task_id)


def _run_task(platform: ServingSite, room: _Admission, task_id: int) -> None:
    task = get(platform, task_id)
    stopped = room.stops[task_id]
    where = paths(platform, task)
    where.output.parent.mkdir(parents=True, exist_ok=True)
    where.journal.parent.mkdir(parents=True, exist_ok=True)
    if task.get("total") is None:
        if task.get("openai"):
            batch_rows.check_openai_input(where.input)
        rows, last = batch_rows.count_lines(where.input)
        task = platform.store.update("batches", task_id, total=rows, lastLine=last)
    state = batch_rows.standing(int(task["lastLine"]), where.output, where.errors, where.journal, where.lost)
    repeats = state.progress.repeated_requests  # read from the job's own lost.log: a second read counts nothing twice
    if state.repeats:
        log.info("batch %s: resuming; %d rows were in flight and are sent again", task["sid"], state.repeats)
    started = time.monotonic()
    base_seconds = float(task.get("runSeconds") or 0.0)
    window = COMPLETION_WINDOWS.get(task.get("completionWindow") or "")
    with _lock:  # a stop that came while it was getting ready keeps its Stopping (Running never follows it)
        status = BatchStatus.STOPPING if stopped.is_set() else BatchStatus.RUNNING
        task = platform.store.update("batches", task_id, runStatus=status.value, repeatedRequests=repeats,
                                     done=state.progress.done, failed=state.progress.failed,
                                     startedAt=task.get("startedAt") or time.time())
    where.journal.write_bytes(b"")  # counted (and stored) above: a new journal for this run
    created = float(task["created"])
    deadline = None if window is None else created + window
    expired = threading.Event()

    def save(progress: batch_rows.BatchProgress) -> None:
        platform.store.update("batches", task_id, done=progress.done, failed=progress.failed,
                              inputTokens=progress.input_tokens, outputTokens=progress.output_tokens,
                              repeatedRequests=progress.repeated_requests,
                              repeatInputTokens=progress.repeat_input_tokens,
                              repeatOutputTokens=progress.repeat_output_tokens,
                              usageByModel={m: list(v) for m, v in progress.by_model.items()},
                              preempted=int(task.get("preempted") or 0) + progress.preempted,
                              retried=int(task.get("retried") or 0) + progress.retried,
                              runSeconds=round(base_seconds + time.monotonic() - started, 3))

    def should_stop() -> bool:
        if deadline is not None and time.time() > deadline:
            expired.set()
        return stopped.is_set() or expired.is_set()

    runner = Runner(where, state, model=task.get("model"), params=dict(task["inferenceParams"]),
                    engine_for=_engines(platform), save=save, stopped=should_stop, deadline=deadline,
                    record=platform.meter.record, job=f"batch {task['sid']}")
    with _lock:
        room.runners[task_id] = runner  # stop() pokes it from now on (and its loop checks stopped first)
    outcome = asyncio.run(runner.run())
    if outcome == "drained":
        log.info("batch %s: drained for the shutdown; it resumes at the next start", task["sid"])
        return
    status = BatchStatus.DONE if outcome == "done" else BatchStatus.EXPIRED if expired.is_set() else BatchStatus.STOPPED
    finish(platform, task_id, status)


def finish(platform: ServingSite, task_id: int, status: BatchStatus, **why: Any) -> None:
    """Mark the task ended, a failed one with ``why`` (its ``errorCode``, ``errorReason``); an OpenAI batch gets
    its result files when it is next read."""
    with _lock:
        task = platform.store.update("batches", task_id, runStatus=status.value, finished=time.time(), **why)
    log.info("batch %s %s: %s done, %s failed of %s", task["sid"], status.value, task["done"], task["failed"],
             task["total"])


def recover(platform: ServingSite) -> None:
    """After a restart: tasks that were running go on where they stopped; a pending stop completes."""
    active = platform.store.all("batches", lambda t: t.get("runStatus") in ACTIVE)
    for task in sorted(active, key=lambda t: (t["runStatus"] != BatchStatus.RUNNING.value, t["id"])):
        if task["runStatus"] == BatchStatus.STOPPING.value:
            finish(platform, task["id"], BatchStatus.STOPPED)
            continue
        if task["runStatus"] == BatchStatus.RUNNING.value:
            log.info("resuming batch inference task %s interrupted by a server restart", task["sid"])
        start(platform, task["id"])
