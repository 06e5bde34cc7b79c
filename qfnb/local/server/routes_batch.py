"""Batch inference routes: Qianfan's ``/v2/batchinference?Action=…`` (bce-auth-v1 signed) and
OpenAI's ``/v1/files`` + ``/v1/batches`` (bearer token), over :mod:`qfnb.local.domain.batch`."""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain import batch, batch_files
from qfnb.local.domain import console as c
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.store import new_sid
from qfnb.local.domain.values import BodyError, iso
from qfnb.local.server.auth import authenticator
from qfnb.local.server.multipart import MultipartError, MultipartReader, boundary_of
from qfnb.local.server.routes_v2 import _page
from qfnb.local.server.wire import json_body, v2_error, v2_ok
from qfnb.protocol import batch as wire

log = logging.getLogger("qfnb.local.batch")
MAX_FIELD = 64 * 1024


# ---- Qianfan: /v2/batchinference ---------------------------------------------------------------


def task_view(task: dict[str, Any]) -> dict[str, Any]:
    """A task as ``DescribeBatchInferenceTask`` shows it (qfnb adds ``failedCount`` and the rest)."""
    out_dir = f"{task['outputBosUri'].rstrip('/')}/{task['sid']}/"
    view: dict[str, Any] = {
        "taskId": task["sid"], "name": task["name"], "description": task["description"],
        "endpoint": task.get("endpoint"), "modelId": task.get("modelId"), "inferenceParams": task["inferenceParams"],
        "runStatus": task["runStatus"], "inputBosUri": task.get("inputBosUri"), "outputBosUri": task["outputBosUri"],
        "outputDir": out_dir, "completion_window": task.get("completionWindow"),
        "createTime": iso(task["created"]), "finishTime": iso(task.get("finished")),
        "doneCount": task["done"] + task["failed"], "totalCount": task.get("total") or 0,
        "progress": f"{task['done'] + task['failed']}/{task.get('total') or 0}",
        "inputTokenUsage": task.get("inputTokens", 0), "outputTokenUsage": task.get("outputTokens", 0),
        # qfnb's additions: the counts apart, where the files are, and the job's own bookkeeping
        "succeededCount": task["done"], "failedCount": task["failed"],
        "outputFileUri": out_dir + "output.jsonl", "errorFileUri": out_dir + "error.jsonl",
        "runSeconds": task.get("runSeconds", 0.0), "repeatedRequests": task.get("repeatedRequests", 0),
        "preemptedRequests": task.get("preempted", 0), "retriedRequests": task.get("retried", 0),
        "datasetId": task.get("datasetId")}
    if task["runStatus"] == wire.RunStatus.FAILED.value:
        view.update(errorCode=task.get("errorCode", 500), errorReason=task.get("errorReason", ""))
    return view


def _create(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return {"taskId": batch.create(p, body)["sid"]}


def _describe(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return task_view(batch.get(p, body.get("taskId")))


def _stop(p: Platform, body: dict[str, Any]) -> bool:
    batch.stop(p, batch.get(p, body.get("taskId"))["id"])
    return True


def _describe_all(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    wanted = body.get("runStatus") or []
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    tasks = [task_view(t) for t in p.store.all("batches", lambda t: not t.get("openai"))
             if not wanted or t["runStatus"] in wanted]
    return _page(tasks, {**body, "maxKeys": min(100, int(body.get("maxKeys") or 10))}, "taskList", "taskId")


ACTIONS = {wire.CREATE: _create, wire.DESCRIBE: _describe, wire.STOP: _stop, wire.DESCRIBE_ALL: _describe_all}


async def batchinference(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    failure = authenticator(request).check_console(request)
    if failure is not None:
        return failure
    action = request.query_params.get("Action", "")
    handler = ACTIONS.get(action)
    if handler is None:
        return v2_error(400, "InvalidAction", f"Action {action!r} on {wire.ROUTE} is not supported; use one of "
                        f"{', '.join(ACTIONS)}")
    try:
        body = await json_body(request)
        return v2_ok(await run_in_threadpool(handler, platform, body))
    except BodyError as exc:
        return v2_error(400, "InvalidParameter", str(exc))
    except c.NotFound as exc:
        return v2_error(404, "ResourceNotFound", str(exc))


# ---- OpenAI: /v1/files and /v1/batches ---------------------------------------------------------


def oa_error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


def _bearer(request: Request) -> JSONResponse | None:
    problem = authenticator(request).check_bearer(request)
    return None if problem is None else oa_error(401, problem, code="invalid_api_key")


async def _openai(request: Request, call: Any) -> Response:
    failure = _bearer(request)
    if failure is not None:
        return failure
    try:
        result = await call(request.app.state.platform)
    except BodyError as exc:
        return oa_error(400, str(exc), param=exc.field or None)
    except c.NotFound as exc:
        return oa_error(404, str(exc))
    except MultipartError as exc:
        return oa_error(400, str(exc), param="file")
    return result if isinstance(result, Response) else JSONResponse(result)


def _safe_name(name: str | None) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", (name or "upload.jsonl").rsplit("/", 1)[-1]).strip("._")
    return base[:120] or "upload.jsonl"


async def _upload(request: Request, p: Platform) -> dict[str, Any]:
    reader = MultipartReader(request.stream().__aiter__(), boundary_of(request.headers.get("content-type", "")))
    fields: dict[str, str] = {}
    stored: tuple[str, str, str, int] | None = None
    async for part, body in reader.parts():
        if part.filename is not None and part.name == "file" and stored is None:
            sid, filename = new_sid(wire.FILE_PREFIX), _safe_name(part.filename)
            _, size = await p.objects.put_stream(batch_files.BUCKET, f"{sid}/{filename}", body)
            stored = (sid, filename, f"{sid}/{filename}", size)
            continue
        value = b""
        async for chunk in body:
            value += chunk
            if len(value) > MAX_FIELD:
                raise BodyError(part.name, "is too long")
        fields[part.name] = value.decode("utf-8", "replace")
    if stored is None:
        raise BodyError("file", "is required (a multipart file part)")
    sid, filename, key, size = stored
    try:
        purpose = batch_files.check_purpose(fields.get("purpose"))
    except BodyError:
        p.objects.path(batch_files.BUCKET, key).unlink(missing_ok=True)
        raise
    rec = p.store.insert("files", {"filename": filename, "purpose": purpose, "bucket": batch_files.BUCKET,
                                   "key": key, "bytes": size}, sid=sid)
    return batch_files.file_view(rec)


async def files(request: Request) -> Response:
    async def call(p: Platform) -> Any:
        if request.method == "POST":
            return await _upload(request, p)
        return {"object": "list", "data": batch_files.list_files(p, request.query_params.get("purpose")),
                "has_more": False}

    return await _openai(request, call)


async def one_file(request: Request) -> Response:
    file_id = request.path_params["file_id"]

    async def call(p: Platform) -> Any:
        if request.method == "DELETE":
            return batch_files.delete_file(p, file_id)
        return batch_files.file_view(batch_files.get_file(p, file_id))

    return await _openai(request, call)


async def file_content(request: Request) -> Response:
    async def call(p: Platform) -> Any:
        rec = batch_files.get_file(p, request.path_params["file_id"])
        return FileResponse(batch_files.file_path(p, rec), media_type="application/octet-stream")

    return await _openai(request, call)


async def batches(request: Request) -> Response:
    async def call(p: Platform) -> Any:
        if request.method == "POST":
            body = await json_body(request)
            return await run_in_threadpool(batch_files.create_batch, p, body)
        raw = request.query_params.get("limit", "20")
        limit = int(raw) if raw.isdigit() and 0 < int(raw) <= 100 else 20
        return batch_files.list_batches(p, request.query_params.get("after"), limit)

    return await _openai(request, call)


async def one_batch(request: Request) -> Response:
    async def call(p: Platform) -> Any:
        return await run_in_threadpool(batch_files.retrieve_batch, p, request.path_params["batch_id"])

    return await _openai(request, call)


async def cancel_batch(request: Request) -> Response:
    async def call(p: Platform) -> Any:
        return await run_in_threadpool(batch_files.cancel_batch, p, request.path_params["batch_id"])

    return await _openai(request, call)


def routes() -> list[Route]:
    return [
        Route(wire.ROUTE, batchinference, methods=["POST"]),
        # OpenAI's files and batches under /v1 and /v2 alike (one base URL serves all of the OpenAI API)
        *(route for f, b in ((wire.FILES, wire.BATCHES), ("/v2/files", "/v2/batches")) for route in (
            Route(f, files, methods=["GET", "POST"]),
            Route(f + "/{file_id}", one_file, methods=["GET", "DELETE"]),
            Route(f + "/{file_id}/content", file_content, methods=["GET"]),
            Route(b, batches, methods=["GET", "POST"]),
            Route(b + "/{batch_id}", one_batch, methods=["GET"]),
            Route(b + "/{batch_id}/cancel", cancel_batch, methods=["POST"]))),
    ]
