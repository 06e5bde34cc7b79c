"""The console's dataset enums, by the official SDK's names (``qfnb.resources.console.consts``
re-exports them): projects and templates, storage, import/export/release status, ETL tasks and the
v2 dataset formats."""

from __future__ import annotations

from enum import Enum, IntEnum, StrEnum


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
TEMPLATE_PROJECT = {template: DataProjectType(template // 100) for template in DataTemplateType}


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
