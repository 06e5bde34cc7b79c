"""Batch inference on the wire: Qianfan's offline batch tasks (console v2 ``/v2/batchinference``)
and OpenAI's files + batches API, shared by the client and the local platform."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Any

#: console v2 route of offline batch inference
ROUTE = "/v2/batchinference"
CREATE = "CreateBatchInferenceTask"
DESCRIBE = "DescribeBatchInferenceTask"
STOP = "StopBatchInferenceTask"
DESCRIBE_ALL = "DescribeBatchInferenceTasks"
#: the extra header the official SDK sends with ``CreateBatchInferenceTask``
CREATE_HEADERS = {"Referer": "infer"}
#: OpenAI-style routes on the v2 side
FILES = "/v1/files"
BATCHES = "/v1/batches"
FILE_PREFIX = "file-"
#: the cloud's OpenAI-compatible Files + Batch API, bearer auth (cloud.baidu.com/doc/qianfan/s/Oml4r78ea):
#: upload (multipart, ``purpose=batch``), ``/{id}/content`` downloads; batches made, read, listed, ``/{id}/cancel``
V2_FILES = "/v2/files"
V2_BATCHES = "/v2/batches"
#: the ``endpoint`` of a chat batch, and the ``url`` of each of its rows
V2_CHAT_ENDPOINT = "/v2/chat/completions"


class BatchStatus(StrEnum):
    """``runStatus`` of an offline batch-inference task (the platform's values)."""

    QUEUING = "Queuing"
    RUNNING = "Running"
    DONE = "Done"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    EXPIRED = "Expired"


ACTIVE = (BatchStatus.QUEUING.value, BatchStatus.RUNNING.value, BatchStatus.STOPPING.value)
FINAL = (BatchStatus.DONE.value, BatchStatus.STOPPED.value, BatchStatus.FAILED.value, BatchStatus.EXPIRED.value)

#: runStatus -> OpenAI batch ``status``
OPENAI_STATUS = {
    BatchStatus.QUEUING.value: "validating",
    BatchStatus.RUNNING.value: "in_progress",
    BatchStatus.DONE.value: "completed",
    BatchStatus.STOPPING.value: "cancelling",
    BatchStatus.STOPPED.value: "cancelled",
    BatchStatus.FAILED.value: "failed",
    BatchStatus.EXPIRED.value: "expired",
}
#: ``completion_window`` values accepted (OpenAI: "24h"; Qianfan: "24h" or none)
COMPLETION_WINDOWS = {"24h": 86_400.0, "48h": 172_800.0}
#: the chat routes a batch row may name in its ``url``
ROW_URLS = ("/v1/chat/completions", "/v2/chat/completions")
#: OpenAI batch ``status`` -> runStatus (a Files + Batch batch read as a task is)
RUN_STATUS = {**{v: k for k, v in OPENAI_STATUS.items()}, "finalizing": BatchStatus.RUNNING.value}


def multipart(fields: dict[str, str], filename: str, data: bytes, boundary: str) -> tuple[str, bytes]:
    """A ``multipart/form-data`` body of ``fields`` and one ``file`` part (JSONL ``data``): its
    content type and bytes, as ``POST /v2/files`` takes an upload."""
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
             "Content-Type: application/jsonl\r\n\r\n").encode()
    return f"multipart/form-data; boundary={boundary}", b"".join((head, data, f"\r\n--{boundary}--\r\n".encode()))

#: the key of a cluster job's row holding the seconds its worker took over it (its span's duration)
ROW_SECONDS_KEY = "qfnb_seconds"

#: v1 body fields and their names in a v2 (OpenAI-style) chat body or batch row
V1_TO_V2_FIELDS = {"max_output_tokens": "max_completion_tokens", "user_id": "user"}


def v2_names(fields: Mapping[str, Any], omit: Collection[str] = ()) -> dict[str, Any]:
    """``fields`` under their v2 names (``max_output_tokens`` is ``max_completion_tokens``: the cap the
    v2 API reads), ``None`` values and the names in ``omit`` left out."""
    return {V1_TO_V2_FIELDS.get(key, key): value for key, value in fields.items()
            if value is not None and key not in omit}
