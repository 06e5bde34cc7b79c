"""OpenAI's ``/v1/files`` + ``/v1/batches`` (bearer token), over :mod:`qfnb.local.domain.batch.tasks`; Qianfan's
``/v2/batchinference`` is a v2 console API (:mod:`.v2`)."""

from __future__ import annotations

import contextlib
import logging
import re
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from qfnb.local.domain.batch import files as batch_files
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.store import new_sid
from qfnb.local.domain.state.values import BodyError, NotFound
from qfnb.local.domain.training import openai_fine_tuning as fine_tuning
from qfnb.local.server.middleware.keyed_creates import marked, once_per_key
from qfnb.local.server.middleware.openai_errors import Answered, list_page, object_route
from qfnb.local.server.serving.multipart import MultipartReader, boundary_of
from qfnb.local.server.serving.wire import json_body
from qfnb.protocol.wires.qianfan import batch as wire

log = logging.getLogger("qfnb.local.batch")

MAX_FIELD = 64 * 1024


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
