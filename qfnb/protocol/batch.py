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
#: task ids look like the platform's (``infer-…``)
TASK_PREFIX = "infer-"
FILE_PREFIX = "file-"


class RunStatus(StrEnum):
    """``runStatus`` of an offline batch-inference task (the platform's values)."""

    QUEUING = "Queuing"
    RUNNING = "Running"
    DONE = "Done"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    EXPIRED = "Expired"


ACTIVE = (RunStatus.QUEUING.value, RunStatus.RUNNING.value, RunStatus.STOPPING.value)
FINAL = (RunStatus.DONE.value, RunStatus.STOPPED.value, RunStatus.FAILED.value, RunStatus.EXPIRED.value)

#: runStatus -> OpenAI batch ``status``
OPENAI_STATUS = {
    RunStatus.QUEUING.value: "validating",
    RunStatus.RUNNING.value: "in_progress",
    RunStatus.DONE.value: "completed",
    RunStatus.STOPPING.value: "cancelling",
    RunStatus.STOPPED.value: "cancelled",
    RunStatus.FAILED.value: "failed",
    RunStatus.EXPIRED.value: "expired",
}
#: ``completion_window`` values accepted (OpenAI: "24h"; Qianfan: "24h" or none)
COMPLETION_WINDOWS = {"24h": 86_400.0, "48h": 172_800.0}
#: the chat routes a batch row may name in its ``url``
ROW_URLS = ("/v1/chat/completions", "/v2/chat/completions")
