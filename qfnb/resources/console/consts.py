"""Console enumerations with the names user code imports (``...console.consts.DeployPoolType``)."""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum

from qfnb.protocol.console import (
    EvalState,
    ImportStatus,
    ModelVersionState,
    ParameterScale,
    ReleaseStatus,
    RunStatus,
    ServiceStatus,
    TrainMode,
)

__all__ = [
    "V2",
    "CreateCustomModelSourceType",
    "CustomModelSetModelType",
    "DataExportDestinationType",
    "DataExportStatus",
    "DataImportStatus",
    "DataProjectType",
    "DataReleaseStatus",
    "DataSetType",
    "DataSourceType",
    "DataStorageType",
    "DataTemplateType",
    "DeployPoolType",
    "ETLTaskStatus",
    "EntityListingType",
    "EvalState",
    "EvaluationResultExportDestinationType",
    "EvaluationResultExportField",
    "EvaluationResultExportRange",
    "EvaluationResultExportTaskStatus",
    "EvaluationTaskStatus",
    "FinetuneCorpusType",
    "FinetuneSupportHyperParameterCheckType",
    "FinetuneSupportHyperParameterType",
    "FinetuneSupportModelType",
    "ImportStatus",
    "ModelCompStrategy",
    "ModelCompTaskStatus",
    "ModelQuantizationWeight",
    "ModelState",
    "ModelTypePreset",
    "ModelTypeUser",
    "ModelVersionState",
    "ParameterScale",
    "PromptFrameworkType",
    "PromptSceneType",
    "PromptScoreStandard",
    "PromptType",
    "ReleaseStatus",
    "RunStatus",
    "ServiceStatus",
    "ServiceType",
    "TrainDatasetSourceType",
    "TrainDatasetType",
    "TrainMode",
    "TrainParameterScale",
    "TrainStatus",
]

TrainParameterScale = ParameterScale


class DeployPoolType(IntEnum):
    PublicResource = 1
    PrivateResource = 2


class DataProjectType(IntEnum):
    Conversation = 20
    GenericText = 401
    QuerySet = 402
    Text2Image = 705


class DataTemplateType(IntEnum):
    NonSortedConversation = 2000
    SortedConversation = 2001
    PromptChosenRejected = 2002
    GenericText = 40100
    QuerySet = 40200
    Text2Image = 70500


#: The project type a template belongs to (template = project × 100 + suffix).
TEMPLATE_PROJECT = {
    DataTemplateType.NonSortedConversation: DataProjectType.Conversation,
    DataTemplateType.SortedConversation: DataProjectType.Conversation,
    DataTemplateType.PromptChosenRejected: DataProjectType.Conversation,
    DataTemplateType.GenericText: DataProjectType.GenericText,
    DataTemplateType.QuerySet: DataProjectType.QuerySet,
    DataTemplateType.Text2Image: DataProjectType.Text2Image,
}


class DataSetType(IntEnum):
    TextOnly = 4
    MultiModel = 7


class DataStorageType(StrEnum):
    PublicBos = "sysBos"
    PrivateBos = "usrBos"


class DataSourceType(IntEnum):
    PrivateBos = 1
    SharedZipUrl = 2


class DataExportDestinationType(IntEnum):
    PlatformBos = 0
    PrivateBos = 1


class ServiceType(StrEnum):
    """Console ``apiType`` of a service."""

    Chat = "chat"
    Completions = "completions"
    Embeddings = "embeddings"
    Text2image = "text2image"
    Image2text = "image2text"


# ---------------------------------------------------------------- the official SDK's other enums
class DataImportStatus(int, Enum):
    NotStarted = -1
    Initialized = 0
    Running = 1
    Finished = 2
    Failed = 3
    Terminated = 4


class DataExportStatus(int, Enum):
    NotStarted = -1
    Initialized = 0
    Running = 1
    Finished = 2
    Failed = 3


class DataReleaseStatus(int, Enum):
    NotStarted = 0
    Running = 1
    Finished = 2
    Failed = 3


class TrainStatus(StrEnum):
    """A v2 fine-tuning task's ``runStatus`` (qfnb's v1 ``trainStatus`` values are
    :class:`qfnb.protocol.console.TrainStatus`)."""

    Finish = "Done"
    Running = "Running"
    Fail = "Failed"
    Stop = "Stopped"
    Waiting = "Waiting"


class ModelState(StrEnum):
    Ready = "Ready"
    Creating = "Creating"
    Fail = "Fail"


class TrainDatasetType(IntEnum):
    Platform = 1
    PrivateBos = 2


class TrainDatasetSourceType(StrEnum):
    Platform = "Platform"
    PrivateBos = "Bos"
    PrivateAfs = "Afs"


class EntityListingType(IntEnum):
    All = 0
    AnnotatedOnly = 1
    NotAnnotatedOnly = 2


class ETLTaskStatus(IntEnum):
    NoTask = 0
    Running = 1
    Finished = 2
    Interrupted = 3
    Failed = 4
    Paused = 5


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


class V2:
    """The v2 console's dataset enums."""

    class DatasetFormat(StrEnum):
        PromptResponse = "PromptResponse"
        Text = "Text"
        DPOPromptChosenRejected = "DPO_PromptChosenRejected"
        KTOPromptChosenRejected = "KTO_PromptChosenRejected"
        PromptSortedResponses = "PromptSortedresponses"
        Prompt = "Prompt"
        PromptImage = "PromptImage"
        PromptImageResponse = "PromptImageResponse"

    class StorageType(StrEnum):
        Bos = "BOS"
        SysStorage = "sysStorage"


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
