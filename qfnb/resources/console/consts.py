"""Console enumerations with the names user code imports (``...console.consts.DeployPoolType``)."""

from __future__ import annotations

from enum import IntEnum, StrEnum

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
    "DataExportDestinationType", "DataProjectType", "DataSetType", "DataSourceType",
    "DataStorageType", "DataTemplateType", "DeployPoolType", "EvalState", "ImportStatus",
    "ModelVersionState", "ParameterScale", "ReleaseStatus", "RunStatus", "ServiceStatus",
    "ServiceType", "TrainMode", "TrainParameterScale",
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
