"""Batch inference routes: Qianfan's ``/v2/batchinference?Action=…`` (bce-auth-v1 signed) and
OpenAI's ``/v1/files`` + ``/v1/batches`` (bearer token), over :mod:`qfnb.local.domain.batch.tasks`."""

from __future__ import annotations

import contextlib
import logging
import re
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain.batch import files as batch_files
from qfnb.local.domain.batch import tasks as batch
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.store import new_sid
from qfnb.local.domain.state.values import BodyError, NotFound, iso
from qfnb.local.domain.training import openai_fine_tuning as fine_tuning
from qfnb.local.server.middleware.auth import authenticator
from qfnb.local.server.middleware.keyed_creates import marked, once_per_key
from qfnb.local.server.middleware.openai_errors import Answered, list_page, object_route
from qfnb.local.server.middleware.v2_errors import v2_refusal
from qfnb.local.server.serving.multipart import MultipartReader, boundary_of
from qfnb.local.server.serving.wire import json_body, page_params, paged, v2_error, v2_ok
from qfnb.protocol.wires.qianfan import batch as wire

log = logging.getLogger("qfnb.local.batch")

MAX_FIELD = 64 * 1024


# ---- Qianfan: /v2/batchinference ---------------------------------------------------------------


def task_view(task: dict[str, Any]) -> dict[str, Any]:
    """A task as ``DescribeBatchInferenceTask`` shows it (qfnb adds ``failedCount`` and the rest)."""
    out_dir = f"{task['outputBosUri'].rstrip('/')}/{task['sid']}/"
    paid_in, paid_out = batch.paid_usage(task)
    view: dict[str, Any] = {
        "taskId": task["sid"], "name": task["name"], "description": task["description"],
        "endpoint": task.get("endpoint"), "modelId": task.get("modelId"), "inferenceParams": task["inferenceParams"],
        "runStatus": task["runStatus"], "inputBosUri": task.get("inputBosUri"), "outputBosUri": task["outputBosUri"],
        "outputDir": out_dir, "completion_window": task.get("completionWindow"),
        "createTime": iso(task["created"]), "finishTime": iso(task.get("finished")),
        "doneCount": task["done"] + task["failed"], "totalCount": task.get("total") or 0,
        "progress": f"{task['done'] + task['failed']}/{task.get('total') or 0}",
        "inputTokenUsage": paid_in, "outputTokenUsage": paid_out,
        # qfnb's additions: the counts apart, where the files are, and the job's own bookkeeping
        "succeededCount": task["done"], "failedCount": task["failed"],
        "outputFileUri": out_dir + "output.jsonl", "errorFileUri": out_dir + "error.jsonl",
        "runSeconds": task.get("runSeconds", 0.0), "repeatedRequests": task.get("repeatedRequests", 0),
        "repeatedInputTokens": task.get("repeatInputTokens", 0),
        "repeatedOutputTokensEstimated": task.get("repeatOutputTokens", 0),
        "preemptedRequests": task.get("preempted", 0), "retriedRequests": task.get("retried", 0),
        "datasetId": task.get("datasetId")}
    if task["runStatus"] == wire.BatchStatus.FAILED.value:
        view.update(errorCode=task.get("errorCode", 500), errorReason=task.get("errorReason", ""))
    return view


def _create(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return {"taskId": batch.create(p, body)["sid"]}


def _describe(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return task_view(batch.get(p, body.get("taskId")))


def _stop(p: Platform, body: dict[str, Any]) -> bool:
    batch.stop(p, batch.get(p, body.get("taskId"))["id"])
    return True


def _run_statuses(value: Any) -> list[str]:
    """``runStatus`` of DescribeBatchInferenceTasks: a status or a list of them (none: all)."""
    wanted = [] if value is None else [value] if isinstance(value, str) else value
    names = [s.value for s in wire.BatchStatus]
    if not isinstance(wanted, list) or not all(isinstance(w, str) and w in names for w in wanted):
        raise BodyError("runStatus", f"must be one of {', '.join(names)} or a list of them, got {value!r:.60}")
    return wanted


def _describe_all(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    wanted = _run_statuses(body.get("runStatus"))
    max_keys = 10 if body.get("maxKeys") is None else body["maxKeys"]
    page_params({**body, "maxKeys": max_keys})  # maxKeys / marker / pageReverse checked before any work
    tasks = [task_view(t) for t in p.store.all("batches", lambda t: not t.get("openai"))
             if not wanted or t["runStatus"] in wanted]
    return paged(tasks, {**body, "maxKeys": max_keys}, "taskList", "taskId")


ACTIONS = {wire.CREATE: _create, wire.DESCRIBE: _describe, wire.STOP: _stop, wire.DESCRIBE_ALL: _describe_all}


async def batchinference(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    if (failure := authenticator(request).check_console(request)) is not None:
        return failure
    action = request.query_params.get("Action", "")
    handler = ACTIONS.get(action)
    if handler is None:
        return v2_error(400, "InvalidAction", f"Action {action!r} on {wire.ROUTE} is not supported; use one of "
                        f"{', '.join(ACTIONS)}")
    try:
        body = await json_body(request)
        created = await once_per_key(request, platform, body, partial(handler, platform, body))  # a create: once
        return marked(v2_ok(created.answer), created)
    except Exception as exc:
        if (refused := v2_refusal(exc, (batch.TooManyJobs,))) is None:
            raise
        return refused


# ---- OpenAI: /v1/files and /v1/batches ---------------------------------------------------------


#: bytes of a stored file name (UTF-8; file systems take 255)
MAX_NAME_BYTES = 120
#: non-file form fields of an upload, and their bytes in all (OpenAI's upload has two: purpose and file)
MAX_FORM_FIELDS = 16
MAX_FORM_BYTES = 4 * MAX_FIELD


def _safe_name(name: str | None) -> str:
    """The name a file is stored under: its last path segment, letters (any script), digits and
    ``. _ -``; at most :data:`MAX_NAME_BYTES` bytes, keeping the extension."""
    base = re.sub(r"[^\w.-]+", "_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip("._")
    if not base:
        return "upload.jsonl"
    stem, dot, ext = base.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, dot, ext = base, "", ""
    room = MAX_NAME_BYTES - len((dot + ext).encode())
    stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip("._") or "upload"
    return stem + dot + ext


async def _read_field(name: str, body: Any, room: int) -> str:
    value = b""
    async for chunk in body:
        value += chunk
        if len(value) > min(MAX_FIELD, room):
            raise BodyError(name or "form", f"is longer than {min(MAX_FIELD, room)} bytes, the most a form field "
                            f"of this upload may hold ({MAX_FORM_BYTES} bytes for all fields together)")
    return value.decode("utf-8", "replace")


async def _upload(request: Request, p: Platform) -> dict[str, Any]:
    reader = MultipartReader(request.stream().__aiter__(), boundary_of(request.headers.get("content-type", "")))
    fields: dict[str, str] = {}
    stored: tuple[str, str, str, int] | None = None
    writing: str | None = None
    used = count = 0
    try:
        async for part, body in reader.parts():
            if part.filename is not None and part.name == "file" and stored is None:
                sid, filename = new_sid(wire.FILE_PREFIX), _safe_name(part.filename)
                writing = f"{sid}/{filename}"
                _, size = await p.objects.put_stream(batch_files.BUCKET, writing, body)
                stored = (sid, filename, f"{sid}/{filename}", size)
                continue
            count += 1
            if count > MAX_FORM_FIELDS:
                raise BodyError("form", f"holds more than {MAX_FORM_FIELDS} fields; an upload takes 'file' and "
                                "'purpose'")
            value = await _read_field(part.name, body, MAX_FORM_BYTES - used)
            used += len(value.encode())
            fields[part.name] = value
        if stored is None:
            raise BodyError("file", "is required (a multipart file part)")
        purpose = batch_files.check_purpose(fields.get("purpose"))
        if purpose == "fine-tune":  # checked now, naming the line and field, and not kept if it is refused
            shape = await run_in_threadpool(fine_tuning.check_file, p.objects.path(batch_files.BUCKET, stored[2]))
    except BaseException:
        if writing is not None:
            _remove(p, writing)
        raise
    sid, filename, key, size = stored
    rec = batch_files.add_file(p, filename, purpose, key, size, sid=sid)
    if purpose == "fine-tune":
        rec = p.store.update("files", rec["id"], fineTune={"format": shape.format, "examples": shape.examples})
    return batch_files.file_view(rec)


def _remove(p: Platform, key: str) -> None:
    """Remove a refused upload's object and its folder."""
    path = p.objects.path(batch_files.BUCKET, key)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


@object_route
async def files(request: Request, p: Platform) -> Answered:
    if request.method == "POST":
        return await _upload(request, p)
    return {"object": "list", "data": batch_files.list_files(p, request.query_params.get("purpose")),
            "has_more": False}


@object_route
async def one_file(request: Request, p: Platform) -> Answered:
    file_id = request.path_params["file_id"]
    if request.method == "DELETE":
        return batch_files.delete_file(p, file_id)
    return batch_files.file_view(batch_files.get_file(p, file_id))


@object_route
async def file_content(request: Request, p: Platform) -> Answered:
    rec = batch_files.get_file(p, request.path_params["file_id"])
    return FileResponse(batch_files.file_path(p, rec), media_type="application/octet-stream")


@object_route
async def batches(request: Request, p: Platform) -> Answered:
    if request.method == "POST":  # a batch made once per Idempotency-Key
        body = await json_body(request)
        created = await once_per_key(request, p, body, partial(batch_files.create_batch, p, body))
        return marked(JSONResponse(created.answer), created)
    return batch_files.list_batches(p, *list_page(request))


@object_route
async def one_batch(request: Request, p: Platform) -> Answered:
    return await run_in_threadpool(batch_files.retrieve_batch, p, request.path_params["batch_id"])


@object_route
async def cancel_batch(request: Request, p: Platform) -> Answered:
    return await run_in_threadpool(batch_files.cancel_batch, p, request.path_params["batch_id"])


@object_route
async def no_such_route(request: Request, p: Platform) -> Answered:
    raise NotFound(f"Invalid URL ({request.method} {request.url.path})")


def routes() -> list[Route]:
    return [
        Route(wire.ROUTE, batchinference, methods=["POST"]),
        # OpenAI's files and batches under /v1 and /v2 alike (one base URL serves all of the OpenAI API);
        # anything else under them (an id holding '/', a wrong verb path) is OpenAI's 404, in its shape
        *(route for f, b in ((wire.FILES, wire.BATCHES), ("/v2/files", "/v2/batches")) for route in (
            Route(f, files, methods=["GET", "POST"]),
            Route(f + "/{file_id}", one_file, methods=["GET", "DELETE"]),
            Route(f + "/{file_id}/content", file_content, methods=["GET"]),
            Route(b, batches, methods=["GET", "POST"]),
            Route(b + "/{batch_id}", one_batch, methods=["GET"]),
            Route(b + "/{batch_id}/cancel", cancel_batch, methods=["POST"]),
            Route(f + "/{rest:path}", no_such_route, methods=["GET", "POST", "DELETE"]),
            Route(b + "/{rest:path}", no_such_route, methods=["GET", "POST", "DELETE"]))),
    ]
