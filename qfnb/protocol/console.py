"""Console API status enums and response envelopes (v1 ``log_id``/``result``, v2 ``requestId``)."""

from __future__ import annotations

from enum import Enum, StrEnum


class _StrEnum(StrEnum):
    """A string enum that compares, prints and serialises as its value."""


class TrainMode(_StrEnum):
    """Official SDK member names first; the upper-case names are aliases."""

    SFT = "SFT"
    PostPretrain = "PostPretrain"
    DPO = "DPO"
    KTO = "KTO"
    POST_PRETRAIN = "PostPretrain"


class ParameterScale(_StrEnum):
    """Official SDK member names first (``TrainParameterScale.LoRA``); upper-case aliases."""

    FullFineTuning = "FullFineTuning"
    PromptTuning = "PromptTuning"
    LoRA = "LoRA"
    FULL = "FullFineTuning"
    PROMPT_TUNING = "PromptTuning"
    LORA = "LoRA"


class RunStatus(_StrEnum):
    """v2 fine-tuning task ``runStatus``."""

    WAITING = "Waiting"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"
    STOPPED = "Stopped"


class V1TrainStatus(_StrEnum):
    """v1 fine-tuning job ``trainStatus``."""

    QUEUE = "QUEUE"
    RUNNING = "RUNNING"
    FINISH = "FINISH"
    FAIL = "FAIL"
    STOP = "STOP"


V1_TRAIN_STATUS = {
    RunStatus.WAITING: V1TrainStatus.QUEUE,
    RunStatus.RUNNING: V1TrainStatus.RUNNING,
    RunStatus.DONE: V1TrainStatus.FINISH,
    RunStatus.FAILED: V1TrainStatus.FAIL,
    RunStatus.STOPPED: V1TrainStatus.STOP,
}


class ModelVersionState(_StrEnum):
    READY = "Ready"
    CREATING = "Creating"
    FAIL = "Fail"


class ServiceStatus(_StrEnum):
    """Official SDK member names first (``ServiceStatus.Serving``); upper-case aliases."""

    Done = "Done"
    New = "New"
    Deploying = "Deploying"
    Failed = "Failed"
    Stopped = "Stopped"
    Serving = "Serving"
    NEW = "New"
    DEPLOYING = "Deploying"
    SERVING = "Serving"
    DONE = "Done"
    FAILED = "Failed"
    STOPPED = "Stopped"


class EvalState(_StrEnum):
    PENDING = "Pending"
    DOING = "Doing"
    DOING_WITH_MANUAL_BEGIN = "DoingWithManualBegin"
    STOPPING = "Stopping"
    DONE = "Done"
    PARTLY_DONE = "PartlyDone"
    FAILED = "Failed"
    STOPPED = "Stopped"


class ImportStatus(int, Enum):
    NOT_STARTED = -1
    INIT = 0
    RUNNING = 1
    FINISHED = 2
    FAILED = 3
    TERMINATED = 4


class ReleaseStatus(int, Enum):
    NOT_STARTED = 0
    RUNNING = 1
    FINISHED = 2
    FAILED = 3


class ExportStatus(int, Enum):
    """A dataset export (``versionInfo.exportStatus`` and each ``exportRecord``'s ``status``)."""

    NOT_STARTED = -1
    INIT = 0
    RUNNING = 1
    FINISHED = 2
    FAILED = 3
