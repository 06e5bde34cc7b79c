"""The Files + Batch backend of ``BatchJob``: the cloud's OpenAI-compatible batch API with a v2 API
key (cloud.baidu.com/doc/qianfan/s/Oml4r78ea), billed at the batch price.

The rows (OpenAI batch rows, ``body.model`` the v2 model id) are uploaded as one JSONL file
(``POST /v2/files``, ``purpose=batch``), the batch made on it (``POST /v2/batches``, endpoint
``/v2/chat/completions``, its fingerprint mark in ``metadata``), read (``GET /v2/batches/{id}``,
listed by ``GET /v2/batches``), cancelled (``POST /v2/batches/{id}/cancel``), and its output and
error files read back (``GET /v2/files/{id}/content``). Every call is the client's bearer call
(:meth:`~qfnb._core.http.client.AsyncQianfanClient.v2_api`): auth, retry and outages as any other."""

from __future__ import annotations

import io
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from qfnb._core.errors import ValidationError
from qfnb._core.http.recording.batch_hold import settle_task
from qfnb._core.http.response import QfResponse
from qfnb._core.record.traces import batch_spans
from qfnb.protocol.wires.qianfan import batch as wire

from .state import JobState, answered, row_error, row_spans

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb._core.http.client import AsyncQianfanClient

logger = logging.getLogger("qfnb.batch")

#: how long the platform may take over a batch
COMPLETION_WINDOW = "24h"
#: batches per page of the list
PAGE = 100
_ENDED_AT = ("completed_at", "failed_at", "cancelled_at", "expired_at")


def batch_state(batch: dict[str, Any]) -> JobState:
    """A Files + Batch batch as a :class:`JobState` (its status as the runStatus it corresponds to)."""
    counts = batch.get("request_counts") or {}
    usage = batch.get("usage") or {}
    meta = batch["metadata"] if isinstance(batch.get("metadata"), dict) else {}
    status = str(batch.get("status") or "")
    started = batch.get("in_progress_at")
    ended = next((batch[k] for k in _ENDED_AT if isinstance(batch.get(k), int | float)), None)
    seconds = float((ended or time.time()) - started) if isinstance(started, int | float) else 0.0
    return JobState(str(batch["id"]), str(meta.get("name") or batch["id"]),
                    wire.RUN_STATUS.get(status, wire.BatchStatus.RUNNING.value),
                    int(counts.get("completed") or 0), int(counts.get("failed") or 0), int(counts.get("total") or 0),
                    int(usage.get("output_tokens") or 0), max(seconds, 0.0), dict(batch))


def v2_value(row: dict[str, Any]) -> QfResponse | Exception:
    """An output or error row as ``batch_do`` gives it: a QfResponse with the v2 chat body and its
    answer's text as ``result`` beside it, or the exception as a value."""
    body = answered(row)
    if body is None:
        return row_error(row)
    message = ((body.get("choices") or [{}])[0] or {}).get("message") or {}
    return QfResponse(200, {}, {**body, "result": message.get("content") or ""})


class FilesBatches:
    """:class:`~qfnb.resources.batch.state.BatchBackend` over the v2 Files + Batch API."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @property
    def client(self) -> AsyncQianfanClient:
        from qfnb._core.http.client import get_client  # deferred: loads the HTTP client

        return get_client(self.config)

    def model_of(self, model: str | None, endpoint: str | None, model_id: str | None) -> str:
        if not (model or model_id):
            raise ValidationError("model", "a v2 batch names its model: model= (a v2 model id), or model_id= "
                                  "for a deployment's id; endpoint= is the v1 API's")
        return str(model or model_id)

    def body(self, body: dict[str, Any], params: dict[str, Any], model: str) -> dict[str, Any]:
        # each row carries its model and the task's parameters, under the v2 API's names (the task's
        # ``max_output_tokens`` is the row's ``max_completion_tokens``: a cap the cloud reads)
        return {**wire.v2_names(params), **wire.v2_names(body), "model": body.get("model") or model}

    async def create(self, lines: Iterator[str], *, name: str, mark: str, model: str, endpoint: str | None,
                     model_id: str | None, params: dict[str, Any]) -> str:
        content_type, content = wire.multipart({"purpose": "batch"}, "qfnb-batch.jsonl",
                                               "".join(lines).encode("utf-8"), "qfnb-" + secrets.token_hex(12))
        upload = await self.client.v2_api("POST", wire.V2_FILES, content, content_type=content_type)
        del content
        file_id = str(upload.body.get("id") or "")
        if not file_id:
            raise ValidationError("input_file_id", "the platform's upload answer named no file id")
        metadata = {"description": mark, **({"name": name} if name else {})}
        made = await self.client.v2_api("POST", wire.V2_BATCHES, {
            "input_file_id": file_id, "endpoint": wire.V2_CHAT_ENDPOINT,
            "completion_window": COMPLETION_WINDOW, "metadata": metadata})
        logger.info("batch %s made on file %s", made.body.get("id"), file_id)
        return str(made.body["id"])

    async def state(self, job_id: str) -> JobState:
        resp = await self.client.v2_api("GET", f"{wire.V2_BATCHES}/{quote(job_id, safe='')}")
        return batch_state(resp.body)

    async def page(self, max_pages: int | None) -> list[JobState]:
        found: list[dict[str, Any]] = []
        after: str | None = None
        pages = 0
        while max_pages is None or pages < max_pages:
            params: dict[str, Any] = {"limit": PAGE, **({"after": after} if after else {})}
            body = (await self.client.v2_api("GET", wire.V2_BATCHES, params=params)).body
            data = [b for b in body.get("data") or [] if isinstance(b, dict) and b.get("id")]
            found += data
            pages += 1
            if not body.get("has_more") or not data:
                break
            after = str(body.get("last_id") or data[-1]["id"])
        found.sort(key=lambda b: b.get("created_at") or 0)  # oldest first, whatever order the platform lists
        return [batch_state(b) for b in found]

    async def stop(self, job_id: str) -> None:
        await self.client.v2_api("POST", f"{wire.V2_BATCHES}/{quote(job_id, safe='')}/cancel")

    async def rows(self, state: JobState, which: str) -> AsyncIterator[dict[str, Any]]:
        file_id = state.view.get({"output": "output_file_id", "errors": "error_file_id"}[which])
        if not file_id:
            return
        resp = await self.client.v2_api("GET", f"{wire.V2_FILES}/{quote(str(file_id), safe='')}/content",
                                        octets=True)
        for line in io.BytesIO(resp.body.get("_bytes") or b""):  # the file's bytes held once, read a line at a time
            if line.strip():
                yield json.loads(line)

    def value(self, row: dict[str, Any]) -> QfResponse | Exception:
        return v2_value(row)

    async def record(self, state: JobState, *, reused: bool = False) -> None:
        """The ended batch's usage summed from its output file, settled and in the ledger once, under
        the model that answered (``batch-job``: priced at the batch price)."""
        if not state.finished:
            return
        prompt = completion = 0
        model = ""
        spans = []
        async for row in self.rows(state, "output"):
            body = answered(row)
            if body is None:
                continue
            spans += row_spans([row])
            usage = body.get("usage") or {}
            prompt += int(usage.get("prompt_tokens") or 0)
            completion += int(usage.get("completion_tokens") or 0)
            model = model or str(body.get("model") or "")
        fresh = settle_task(self.config, state.task_id, prompt=prompt, completion=completion,
                            seconds=state.run_seconds, model=model or None, reused=reused, rows=len(spans))
        if fresh and not reused and not self.config.embedded:  # the local platform traced its rows itself
            started = state.view.get("in_progress_at")
            batch_spans(f"batch-job {state.task_id}", model or "batch", "cloud", spans,
                        started=float(started) if isinstance(started, int | float) else 0.0,
                        seconds=state.run_seconds)
