"""The console's enums, each defined once: the platform's status values and the official SDK's
enums, which ``qfnb.resources.console.consts``, ``qfnb.model.consts`` and ``qfnb.trainer`` re-export
under the names user code imports."""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum


class TrainMode(StrEnum):
    """Official SDK member names first; the upper-case names are aliases."""

    SFT = "SFT"
    PostPretrain = "PostPretrain"
    DPO = "DPO"
    KTO = "KTO"
    RFT = "RFT"  # reinforcement fine-tuning with a reward you write (the 2026 console's)
    POST_PRETRAIN = "PostPretrain"


class ParameterScale(StrEnum):
    """Official SDK member names first (``TrainParameterScale.LoRA``); upper-case aliases."""

    FullFineTuning = "FullFineTuning"
    PromptTuning = "PromptTuning"
    LoRA = "LoRA"
    FULL = "FullFineTuning"
    PROMPT_TUNING = "PromptTuning"
    LORA = "LoRA"


class RunStatus(StrEnum):
    """v2 fine-tuning task ``runStatus``."""

    WAITING = "Waiting"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"
    STOPPED = "Stopped"


class V1TrainStatus(StrEnum):
    """v1 fine-tuning job ``trainStatus``."""

    QUEUE = "QUEUE"
    RUNNING = "RUNNING"
    FINISH = "FINISH"
    FAIL = "FAIL"
    STOP = "STOP"


#: a v2 ``runStatus`` as v1's ``trainStatus`` (the two enums list the same states in the same order)
V1_TRAIN_STATUS = dict(zip(RunStatus, V1TrainStatus, strict=True))


class ModelVersionState(StrEnum):
    READY = "Ready"
    CREATING = "Creating"
    FAIL = "Fail"


class ServiceStatus(StrEnum):
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


class EvalState(StrEnum):
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


# ---- the official SDK's console enums (``qfnb.resources.console.consts``) ----------------------------
class DeployPoolType(IntEnum):
    PublicResource = 1
    PrivateResource = 2


class ServiceType(StrEnum):
    """Console ``apiType`` of a service (``qfnb.resources.console.consts.ServiceType``)."""

    Chat = "chat"
    Completions = "completions"
    Embeddings = "embeddings"
    Text2image = "text2image"
    Image2text = "image2text"


class TrainStatus(StrEnum):
    """A v2 fine-tuning task's ``runStatus``, by the official SDK's member names (the v1
    ``trainStatus`` values are :class:`V1TrainStatus`)."""

    Finish = "Done"
    Running = "Running"
    Fail = "Failed"
    Stop = "Stopped"
    Waiting = "Waiting"


class ModelState(StrEnum):
    Ready = "Ready"
    Creating = "Creating"
    Fail = "Fail"


class EvaluationTaskStatus(StrEnum):
    Pending = "Pending"
    Doing = "Doing"
    DoingWithManualBegin = "DoingWithManualBegin"
    Stopping = "Stopping"
    Done = "Done"
    PartlyDone = "PartlyDone"
    Failed = "Failed"
    Stopped = "Stopped"


class EvaluationResultExportDestinationType(StrEnum):
    PublicBos = "local"
    PrivateBos = "storage"


class EvaluationResultExportRange(StrEnum):
    Total = "total"
    Part = "part"


class EvaluationResultExportField(StrEnum):
    Prompt = "prompt"
    Prediction = "prediction"
    Completion = "completion"
    Metrics = "metrics"


class EvaluationResultExportTaskStatus(StrEnum):
    Pending = "Pending"
    Uploading = "Uploading"
    Fail = "Fail"
    Done = "Done"


class FinetuneSupportModelType(StrEnum):
    Text2Text = "text2text"
    Text2Image = "text2image"
    ImageUnderstanding = "imageUnderstanding"


class FinetuneSupportHyperParameterType(StrEnum):
    Int = "int"
    Float = "float"
    Boolean = "boolean"
    String = "string"


class FinetuneSupportHyperParameterCheckType(StrEnum):
    Range = "range"
    Choice = "choice"
    MultipleChoice = "mult_choice"


class ModelTypePreset(IntEnum):
    TextGC = 0
    ImageGC = 1
    VectorModel = 4
    Image2Text = 5
    IndustryModel = 6


class ModelTypeUser(IntEnum):
    LargeLanguageModel = 0
    Text2Image = 1
    IndustrySearchModel = 2
    TextRepresentationModel = 3
    VectorModel = 4
    Image2Text = 5


class CustomModelSetModelType(StrEnum):
    Text2Text = "Text2Text"
    Text2Image = "Text2Image"
    TextRepresentation = "TextRepresentation"
    ImageUnderstanding = "ImageUnderstanding"
    Industry = "Industry"


class CreateCustomModelSourceType(StrEnum):
    Train = "Train"
    Import = "Import"


class FinetuneCorpusType(IntEnum):
    QianfanCommon = 1
    YiyanCommon = 2
    YiyanVertical = 3


class ModelCompStrategy(StrEnum):
    Quantization = "Quantization"
    Sparsity = "Sparsity"


class ModelQuantizationWeight(StrEnum):
    INT8PTQ = "INT8-PTQ"
    W8A16C16 = "W8A16C16"
    W4A16C16 = "W4A16C16"


class ModelCompTaskStatus(StrEnum):
    Creating = "creating"
    Running = "running"
    Succeeded = "succeeded"
    Failed = "failed"
    Stopping = "stopping"
    Stopped = "stopped"


class PromptSceneType(int, Enum):
    Text2Text = 1
    Text2Image = 2


class PromptFrameworkType(int, Enum):
    NotUse = 0
    Basic = 1
    CRISPE = 2
    Fewshot = 3


class PromptType(int, Enum):
    Preset = 1
    User = 2


class PromptScoreStandard(int, Enum):
    Semantic = 1
    Regex = 2
    Exact = 3


class ModelServiceStatus(StrEnum):
    """A deployed model's service (``qfnb.model.consts.ServiceStatus``, the official name there)."""

    Unknown = "Unknown"
    Created = "Created"
    Deploying = "Deploying"
    Deployed = "Deployed"
    DeployFailed = "DeployFailed"
    DeployStopped = "DeployStopped"


class ModelServiceType(StrEnum):
    """What a deployed service behaves like (``qfnb.model.consts.ServiceType``; ``Service.get_res()``)."""

    Chat = "Chat"
    Completion = "Completion"
    Embedding = "Embedding"
    Text2Image = "Text2Image"
