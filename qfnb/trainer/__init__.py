"""``qfnb.trainer``: the fine-tune pipeline (dataset → train → publish → deploy → evaluate)."""

from .actions import (
    BaseAction,
    DeployAction,
    EvaluateAction,
    LoadDataSetAction,
    ModelPublishAction,
    RunContext,
    TrainAction,
    TrainerStopped,
    TrainFailedError,
)
from .configs import DeployConfig, TrainConfig
from .consts import ActionState, FinetuneStatus, ServiceStatus, ServiceType
from .event import Event, EventHandler
from .finetune import Finetune, LLMFinetune
from .pipeline import Pipeline

__all__ = [
    "ActionState", "BaseAction", "DeployAction", "DeployConfig", "EvaluateAction", "Event",
    "EventHandler", "Finetune", "FinetuneStatus", "LLMFinetune", "LoadDataSetAction",
    "ModelPublishAction", "Pipeline", "RunContext", "ServiceStatus", "ServiceType", "TrainAction",
    "TrainConfig", "TrainFailedError", "TrainerStopped",
]
