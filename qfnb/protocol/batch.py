"""Batch inference on the wire: Qianfan's offline batch tasks (console v2 ``/v2/batchinference``)
and OpenAI's files + batches API, shared by the client and the local platform."""

from __future__ import annotations

from enum import StrEnum

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
