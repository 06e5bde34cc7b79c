"""Offline batch inference as a durable platform job (``/v2/batchinference``, OpenAI batches).

A task reads a JSONL object from the local BOS (or a platform dataset), runs every row on a
served chat model and appends answers and per-row errors to ``output.jsonl`` / ``error.jsonl``
under ``<outputBosUri>/<taskId>/``. The daemon owns it: a task survives its caller, and one
interrupted by a daemon restart resumes at the first row without an answer (:func:`recover`).
States: Queuing -> Running -> Done / Stopped / Failed / Expired.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from qfnb.local.domain import batch_rows
from qfnb.local.domain import console as c
from qfnb.local.domain.batch_runner import BatchProgress, Paths, Runner
from qfnb.local.domain.datasets import BOS_PREFIX
from qfnb.local.domain.platform import EVAL_PREFIX, Platform
from qfnb.local.domain.values import BodyError
from qfnb.local.engines.gate import AsyncChat, as_async_chat
from qfnb.protocol.batch import ACTIVE, COMPLETION_WINDOWS, RunStatus

log = logging.getLogger("qfnb.local.domain.batch")

_stops: dict[tuple[str, int], threading.Event] = {}
_threads: dict[tuple[str, int], threading.Thread] = {}
_lock = threading.Lock()


def _split_uri(uri: Any, field: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith(BOS_PREFIX):
        raise BodyError(field, f"must be a bos:/bucket/key URI, got {uri!r}")
    bucket, _, key = uri[len(BOS_PREFIX):].lstrip("/").partition("/")
    if not bucket:
        raise BodyError(field, f"names no bucket: {uri!r}")
    return bucket, key


def _input_path(platform: Platform, task: dict[str, Any]) -> Path:
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


def out_dir(platform: Platform, task: dict[str, Any]) -> tuple[str, str, Path]:
    """``(bucket, key prefix, folder)`` of a task's output objects."""
    bucket, prefix = _split_uri(task["outputBosUri"], "outputBosUri")
    prefix = "/".join(p for p in (prefix.strip("/"), task["sid"]) if p)
    try:
        return bucket, prefix, platform.objects.path(bucket, prefix + "/output.jsonl").parent
    except ValueError as exc:
        raise BodyError("outputBosUri", str(exc)) from None


def paths(platform: Platform, task: dict[str, Any]) -> Paths:
    folder = out_dir(platform, task)[2]
    work = platform.settings.data_dir / "batches" / task["sid"]
    return Paths(_input_path(platform, task), folder / "output.jsonl", folder / "error.jsonl", work / "dispatched.log")


def create(platform: Platform, body: dict[str, Any], *, openai: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the request, store the task (Queuing) and start it."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BodyError("name", "is required")
    params = body.get("inferenceParams") or {}
    if not isinstance(params, dict):
        raise BodyError("inferenceParams", "must be an object")
    window = body.get("completion_window")
    if window is not None and window not in COMPLETION_WINDOWS:
        raise BodyError("completion_window", f"must be one of {sorted(COMPLETION_WINDOWS)} or omitted, got {window!r}")
    model = body.get("endpoint") or body.get("modelId")
    if model is not None:
        model = _served_name(platform, str(model), "modelId" if body.get("modelId") else "endpoint")
    if body.get("afsConfig"):
        raise BodyError("afsConfig", "AFS is not available on the local platform; use inputBosUri/outputBosUri")
    if body.get("datasetId") is None:
        _split_uri(body.get("inputBosUri"), "inputBosUri")
    _split_uri(body.get("outputBosUri") if body.get("outputBosUri") is not None else "", "outputBosUri")
    draft = {"sid": "infer-draft", "datasetId": body.get("datasetId"), "inputBosUri": body.get("inputBosUri"),
             "outputBosUri": body["outputBosUri"]}
    paths(platform, draft)  # BodyError naming inputBosUri / outputBosUri / datasetId, before anything is stored
    task = platform.store.insert("batches", {
        "name": name, "description": body.get("description") or "", "endpoint": body.get("endpoint"),
        "modelId": body.get("modelId"), "model": model, "inferenceParams": params,
        "inputBosUri": body.get("inputBosUri"), "outputBosUri": body["outputBosUri"],
        "datasetId": body.get("datasetId"),
        "completionWindow": window, "runStatus": RunStatus.QUEUING.value, "openai": openai,
        "done": 0, "failed": 0, "total": None, "inputTokens": 0, "outputTokens": 0, "repeatedRequests": 0,
        "preempted": 0, "retried": 0, "runSeconds": 0.0})
    start(platform, task["id"])
    return platform.store.get("batches", task["id"]) or task


def _served_name(platform: Platform, model: str, field: str) -> str:
    """The chat endpoint a task's ``endpoint`` / ``modelId`` names: a service, a model version
    (its adapter is registered as the evaluations do) or a served model."""
    service = next(iter(platform.store.all("services", lambda s: model in (s.get("sid"), s.get("uri")))), None)
    if service is not None:
        return str(service["uri"])
    version = platform.store.get("versions", model) if model.startswith("amv-") or model.isdigit() else None
    if version is not None:
        adapter = c.adapter_path(version)
        if adapter is None:
            return str(version["baseModel"])
        endpoint = f"{EVAL_PREFIX}{version['sid']}"
        platform.registry.register_adapter(endpoint, version["baseModel"], adapter)
        return endpoint
    try:
        platform.resolve("chat", model)
    except BodyError as exc:
        raise BodyError(field, str(exc).split(": ", 1)[-1]) from None
    return model


def get(platform: Platform, key: Any, field: str = "taskId") -> dict[str, Any]:
    task = platform.store.get("batches", key) if isinstance(key, str | int) else None
    if task is None:
        raise c.NotFound(f"{field} {key!r}: no such batch inference task")
    return task


def stop(platform: Platform, key: Any) -> dict[str, Any]:
    """Stop a task: rows in flight are dropped, finished rows stay in the output."""
    task = get(platform, key)
    if task["runStatus"] in ACTIVE:
        with _lock:
            event = _stops.setdefault(_key(platform, task["id"]), threading.Event())
            thread = _threads.get(_key(platform, task["id"]))
        event.set()
        if thread is None or not thread.is_alive():  # nothing runs it here: stopped at once
            return platform.store.update("batches", task["id"], runStatus=RunStatus.STOPPED.value,
                                         finished=time.time())
        task = platform.store.update("batches", task["id"], runStatus=RunStatus.STOPPING.value)
    return task


def _key(platform: Platform, task_id: int) -> tuple[str, int]:
    return str(platform.settings.data_dir), task_id


def start(platform: Platform, task_id: int) -> None:
    key = _key(platform, task_id)
    with _lock:
        if key in _threads and _threads[key].is_alive():
            return
        _stops.setdefault(key, threading.Event())
        thread = _threads[key] = threading.Thread(target=_run, args=(platform, task_id),
                                                  name=f"qfnb-batch-{task_id}", daemon=True)
    thread.start()


def wait(platform: Platform, task_id: int, timeout: float | None = None) -> None:
    """Wait for a task's runner here to end (tests, shutdown)."""
    thread = _threads.get(_key(platform, task_id))
    if thread is not None:
        thread.join(timeout)


def _engines(platform: Platform) -> Any:
    cache: dict[str | None, AsyncChat] = {}

    def engine_for(model: str | None) -> AsyncChat:
        if model not in cache:
            served = platform.resolve("chat", model) if model else platform.served("chat")[0]
            target = getattr(served, "target", served)  # a preset model's service is its base engine
            platform.note_loading(served)
            cache[model] = as_async_chat(platform.registry.chat(target.endpoint))
        return cache[model]

    return engine_for


def _run(platform: Platform, task_id: int) -> None:
    task = platform.store.get("batches", task_id)
    if task is None:
        return
    stopped = _stops[_key(platform, task_id)]
    try:
        where = paths(platform, task)
        where.output.parent.mkdir(parents=True, exist_ok=True)
        where.journal.parent.mkdir(parents=True, exist_ok=True)
        if task.get("total") is None:
            rows, last = batch_rows.count_lines(where.input)
            task = platform.store.update("batches", task_id, total=rows, lastLine=last)
        state = batch_rows.standing(int(task["lastLine"]), where.output, where.errors, where.journal)
        repeats = int(task.get("repeatedRequests") or 0) + state.repeats
        if state.repeats:
            log.info("batch %s: resuming; %d rows were in flight and are sent again", task["sid"], state.repeats)
        started = time.monotonic()
        base_seconds = float(task.get("runSeconds") or 0.0)
        window = COMPLETION_WINDOWS.get(task.get("completionWindow") or "")
        task = platform.store.update("batches", task_id, runStatus=RunStatus.RUNNING.value, repeatedRequests=repeats,
                                     done=state.done, failed=state.failed,
                                     startedAt=task.get("startedAt") or time.time())
        where.journal.write_bytes(b"")  # counted (and stored) above: a new journal for this run
        created = float(task["created"])
        expired = threading.Event()

        def save(progress: BatchProgress, final: bool) -> None:
            platform.store.update("batches", task_id, done=progress.done, failed=progress.failed,
                                  inputTokens=progress.input_tokens, outputTokens=progress.output_tokens,
                                  preempted=int(task.get("preempted") or 0) + progress.preempted,
                                  retried=int(task.get("retried") or 0) + progress.retried,
                                  runSeconds=round(base_seconds + time.monotonic() - started, 3))

        def should_stop() -> bool:
            if window is not None and time.time() - created > window:
                expired.set()
            return stopped.is_set() or expired.is_set()

        runner = Runner(where, state, model=task.get("model"), params=dict(task["inferenceParams"]),
                        engine_for=_engines(platform), save=save, stopped=should_stop)
        outcome = asyncio.run(runner.run())
        status = RunStatus.DONE if outcome == "done" else RunStatus.EXPIRED if expired.is_set() else RunStatus.STOPPED
        finish(platform, task_id, status)
    except Exception as exc:
        log.exception("batch task %s failed", task_id)
        platform.store.update("batches", task_id, runStatus=RunStatus.FAILED.value, errorCode=500,
                              errorReason=str(exc), finished=time.time())


def finish(platform: Platform, task_id: int, status: RunStatus) -> None:
    """Mark the task ended (an OpenAI batch gets its result files when it is next read)."""
    task = platform.store.update("batches", task_id, runStatus=status.value, finished=time.time())
    log.info("batch %s %s: %s done, %s failed of %s", task["sid"], status.value, task["done"], task["failed"],
             task["total"])


def recover(platform: Platform) -> None:
    """After a restart: tasks that were running go on where they stopped; a pending stop completes."""
    for task in platform.store.all("batches", lambda t: t.get("runStatus") in ACTIVE):
        if task["runStatus"] == RunStatus.STOPPING.value:
            finish(platform, task["id"], RunStatus.STOPPED)
            continue
        log.info("resuming batch inference task %s interrupted by a server restart", task["sid"])
        start(platform, task["id"])
