"""The console backend of ``BatchJob``: an offline batch-inference task (``/v2/batchinference``) whose
rows are one JSONL object in the platform's BOS (the v1 cloud with IAM keys, and the embedded platform)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from qfnb._core.http.recording.batch_hold import settle_task
from qfnb._core.http.response import QfResponse

from ..console.data import Data
from . import objects
from .state import JobState, answered, row_error

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

INPUT_BUCKET = "qfnb-batch-inputs"
OUTPUT_URI = "bos:/qfnb-batch-results/"


def v1_value(row: dict[str, Any]) -> QfResponse | Exception:
    """An output or error row as ``batch_do`` gives it: a QfResponse with the v1 chat body, or
    the exception as a value."""
    body = answered(row)
    if body is None:
        return row_error(row)
    choice = (body.get("choices") or [{}])[0]
    finish = choice.get("finish_reason") or "stop"
    return QfResponse(200, {}, {"id": body.get("id"), "object": "chat.completion", "created": body.get("created"),
                                "result": (choice.get("message") or {}).get("content", ""),
                                "is_truncated": finish == "length", "need_clear_history": False,
                                "finish_reason": "normal" if finish == "stop" else finish,
                                "usage": body.get("usage") or {}})


class ConsoleTasks:
    """:class:`~qfnb.resources.batch.state.BatchBackend` over the console's batch-inference tasks."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def model_of(self, model: str | None, endpoint: str | None, model_id: str | None) -> str:
        return str(endpoint or model or model_id)

    def body(self, body: dict[str, Any], params: dict[str, Any], model: str) -> dict[str, Any]:
        return body  # the task names the model and carries the parameters

    async def create(self, lines: Iterator[str], *, name: str, mark: str, model: str, endpoint: str | None,
                     model_id: str | None, params: dict[str, Any]) -> str:
        key = f"{uuid.uuid4().hex}.jsonl"
        await objects.aupload_lines(self.config, f"bos:/{INPUT_BUCKET}/{key}", lines)  # in bounded pieces
        made = await Data.acreate_offline_batch_inference_task(
            name=name or f"qfnb-batch-{key[:8]}", input_bos_uri=f"bos:/{INPUT_BUCKET}/{key}",
            output_bos_uri=OUTPUT_URI, model_id=model_id, endpoint=endpoint or model,
            inference_params=params, description=mark, config=self.config)
        return str(made.parsed.result.task_id)

    async def state(self, job_id: str) -> JobState:
        resp = await Data.aget_offline_batch_inference_task(task_id=job_id, config=self.config)
        return JobState.of(resp.parsed.result)

    async def page(self, max_pages: int | None) -> list[JobState]:
        states: list[JobState] = []
        marker: str | None = None
        for _ in itertools.count() if max_pages is None else range(max_pages):
            got = await Data.alist_offline_batch_inference_task(marker=marker, max_keys=100, config=self.config)
            page = got.parsed.result
            states += [JobState.of(t) for t in page.task_list]
            if not page.page_info.is_truncated:
                break
            marker = page.page_info.next_marker
        return states

    async def stop(self, job_id: str) -> None:
        await Data.astop_offline_batch_inference_task(task_id=job_id, config=self.config)

    async def rows(self, state: JobState, which: str) -> AsyncIterator[dict[str, Any]]:
        field = {"output": "outputFileUri", "errors": "errorFileUri"}[which]
        async for line in objects.aiter_lines(self.config, str(state.view[field])):
            yield json.loads(line)

    def value(self, row: dict[str, Any]) -> QfResponse | Exception:
        return v1_value(row)

    async def record(self, state: JobState, *, reused: bool = False) -> None:
        view = state.view
        model = str(view.get("endpoint") or view.get("modelId") or view.get("model") or "batch")
        settle_task(self.config, state.task_id, prompt=int(view.get("inputTokenUsage") or 0),
                    completion=state.output_tokens, seconds=state.run_seconds, model=model, reused=reused,
                    rows=state.done)
