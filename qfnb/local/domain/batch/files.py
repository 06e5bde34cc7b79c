"""OpenAI's files + batches on the local platform: files are objects in the local BOS, a batch
is a batch-inference task (:mod:`qfnb.local.domain.batch.tasks`) shown in OpenAI's shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from qfnb.local.domain.batch import tasks as batch
from qfnb.local.domain.state.site import ServingSite
from qfnb.local.domain.state.values import BodyError, NotFound
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.chat.openai_wire import check_metadata as openai_metadata
from qfnb.protocol.wires.qianfan.batch import COMPLETION_WINDOWS, FINAL, OPENAI_STATUS, ROW_URLS

#: the local BOS bucket that holds uploaded files and batch results
BUCKET = "qfnb-files"
_attach_lock = threading.Lock()
PURPOSES = ("batch", "batch_output", "fine-tune", "assistants", "user_data", "evals")


def file_view(rec: dict[str, Any]) -> dict[str, Any]:
    return {"id": rec["sid"], "object": "file", "bytes": rec["bytes"], "created_at": int(rec["created"]),
            "filename": rec["filename"], "purpose": rec["purpose"], "status": "processed", "status_details": None}


def add_file(platform: ServingSite, filename: str, purpose: str, key: str, size: int,
             sid: str | None = None) -> dict[str, Any]:
    """Record an object already written under :data:`BUCKET`/``key`` as a file."""
    return platform.store.insert("files", {"filename": filename, "purpose": purpose, "bucket": BUCKET, "key": key,
                                           "bytes": size}, sid=sid)


def check_purpose(purpose: str | None) -> str:
    if purpose not in PURPOSES:
        raise BodyError("purpose", f"must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    return purpose


def get_file(platform: ServingSite, file_id: str) -> dict[str, Any]:
    rec = platform.store.get("files", file_id) if file_id.startswith("file-") else None
    if rec is None or rec.get("deleted"):
        raise NotFound(f"No such File object: {file_id}")
    return rec


def file_path(platform: ServingSite, rec: dict[str, Any]) -> Path:
    return platform.objects.path(rec["bucket"], rec["key"])


def list_files(platform: ServingSite, purpose: str | None = None) -> list[dict[str, Any]]:
    return [file_view(f) for f in platform.store.all("files", lambda f: not f.get("deleted") and (
        purpose is None or f["purpose"] == purpose))]


def delete_file(platform: ServingSite, file_id: str) -> dict[str, Any]:
    rec = get_file(platform, file_id)
    file_path(platform, rec).unlink(missing_ok=True)
    platform.store.update("files", rec["id"], deleted=True)
    return {"id": rec["sid"], "object": "file", "deleted": True}


def create_batch(platform: ServingSite, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/batches``: ``{input_file_id, endpoint, completion_window, metadata?}``."""
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise BodyError("input_file_id", "is required")
    endpoint = body.get("endpoint")
    if endpoint not in ROW_URLS:
        raise BodyError("endpoint", f"must be one of {', '.join(ROW_URLS)}, got {endpoint!r}")
    window = body.get("completion_window")
    if not isinstance(window, str) or window not in COMPLETION_WINDOWS:
        raise BodyError("completion_window", f"must be one of {sorted(COMPLETION_WINDOWS)}, got {window!r:.60}")
    metadata = check_metadata(body.get("metadata"))
    rec = get_file(platform, file_id)
    if rec["purpose"] != "batch":
        raise BodyError("input_file_id", f"file {file_id} was uploaded with purpose {rec['purpose']!r}; a batch's "
                        "input must be a file uploaded with purpose 'batch'")
    task = batch.create(platform, {
        "name": f"batch-{file_id}", "inputBosUri": f"bos:/{rec['bucket']}/{rec['key']}",
        "outputBosUri": f"bos:/{BUCKET}/batches", "completion_window": window,
        "inferenceParams": {}}, openai={"endpoint": endpoint, "input_file_id": file_id, "metadata": metadata})
    return batch_view(platform, task)


def check_metadata(value: Any) -> dict[str, str] | None:
    """A batch's or a fine-tuning job's ``metadata`` (None: none), held to OpenAI's caps as the chat
    routes hold it (:func:`qfnb.protocol.wires.chat.openai_wire.check_metadata`)."""
    try:
        return None if value is None else openai_metadata(value)
    except ProtocolError as exc:
        raise BodyError(exc.field, str(exc).split(": ", 1)[-1]) from None


def attach_results(platform: ServingSite, task: dict[str, Any]) -> dict[str, Any]:
    """Give an ended OpenAI batch its ``output_file_id`` / ``error_file_id`` (once, also when
    two requests read it at the same moment)."""
    with _attach_lock:
        task = platform.store.get("batches", task["id"]) or task
        info = dict(task["openai"])
        if info.get("attached"):
            return task
        info["attached"] = True
        _, prefix, folder = batch.out_dir(platform, task)
        for name, field, count in (("output.jsonl", "output_file_id", task["done"]),
                                   ("error.jsonl", "error_file_id", task["failed"])):
            path = folder / name
            if count and path.is_file():
                rec = add_file(platform, f"{task['sid']}_{name}", "batch_output", f"{prefix}/{name}",
                               path.stat().st_size)
                info[field] = rec["sid"]
        return platform.store.update("batches", task["id"], openai=info)


def stamp(value: Any) -> int | None:
    """A stored time as OpenAI's whole seconds (None stays None)."""
    return None if value is None else int(value)


def batch_view(platform: ServingSite, task: dict[str, Any]) -> dict[str, Any]:
    """A task in OpenAI's Batch shape."""
    if task.get("openai") and task["runStatus"] in FINAL and not task["openai"].get("attached"):
        task = attach_results(platform, task)
    info = task.get("openai") or {}
    status = OPENAI_STATUS[task["runStatus"]]
    window = task.get("completionWindow") or "24h"
    finished = stamp(task.get("finished"))
    errors = None
    if task["runStatus"] == "Failed":
        errors = {"object": "list", "data": [{"code": "failed", "message": task.get("errorReason"), "line": None,
                                              "param": None}]}
    return {"id": task["sid"], "object": "batch", "endpoint": info.get("endpoint", ROW_URLS[0]), "errors": errors,
            "input_file_id": info.get("input_file_id"), "completion_window": window, "status": status,
            "output_file_id": info.get("output_file_id"), "error_file_id": info.get("error_file_id"),
            "created_at": int(task["created"]), "in_progress_at": stamp(task.get("startedAt")),
            "expires_at": int(task["created"] + COMPLETION_WINDOWS[window]),
            "finalizing_at": finished if status == "completed" else None,
            "completed_at": finished if status == "completed" else None,
            "failed_at": finished if status == "failed" else None,
            "expired_at": finished if status == "expired" else None,
            "cancelling_at": stamp(task.get("stopAt")), "cancelled_at": finished if status == "cancelled" else None,
            "request_counts": {"total": task.get("total") or 0, "completed": task["done"], "failed": task["failed"]},
            "usage": _usage(task),
            "metadata": info.get("metadata")}


def _usage(task: dict[str, Any]) -> dict[str, Any]:
    """The batch's ``usage``: what it was paid for, the sends a kill lost included (qfnb's
    ``repeated``: their count, prompt tokens (exact) and answers at the rows' caps (estimated))."""
    paid_in, paid_out = batch.paid_usage(task)
    return {"input_tokens": paid_in, "output_tokens": paid_out, "total_tokens": paid_in + paid_out,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0},
            "repeated": {"requests": int(task.get("repeatedRequests") or 0),
                         "input_tokens": int(task.get("repeatInputTokens") or 0),
                         "output_tokens": int(task.get("repeatOutputTokens") or 0), "output_estimated": True}}


def cancel_batch(platform: ServingSite, batch_id: str) -> dict[str, Any]:
    task = _openai_task(platform, batch_id)
    if task["runStatus"] in FINAL:
        raise BodyError("", f"Cannot cancel a batch with status '{OPENAI_STATUS[task['runStatus']]}'.")
    platform.store.update("batches", task["id"], stopAt=time.time())
    batch.stop(platform, task["id"])
    return batch_view(platform, batch.get(platform, task["id"]))


def _openai_task(platform: ServingSite, batch_id: str) -> dict[str, Any]:
    return platform.store.get_or_raise("batches", batch_id, NotFound(f"No batch found with id '{batch_id}'"), "infer-")


def retrieve_batch(platform: ServingSite, batch_id: str) -> dict[str, Any]:
    return batch_view(platform, _openai_task(platform, batch_id))


def list_batches(platform: ServingSite, after: str | None, limit: int) -> dict[str, Any]:
    """Newest first, ``after`` a batch id (OpenAI's cursor paging)."""
    return cursor_page(platform.store.all("batches")[::-1], after, limit, "sid", partial(batch_view, platform))


def cursor_page(items: list[dict[str, Any]], after: str | None, limit: int, key: str = "id",
                view: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """OpenAI's cursor page: at most ``limit`` of the items after the one whose ``key`` is ``after``, each as
    ``view`` shows it (only those of the page), with the first and last ids."""
    if after:
        ids = [i[key] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = [view(i) if view is not None else i for i in items[:limit]]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}
