"""``qfnb.trainer``: the fine-tune pipeline (dataset → train → publish → deploy → evaluate)."""

from ._action import AsyncAction, BaseAction, RunContext, TrainerStopped
from .actions import (
    DeployAction,
    EvaluateAction,
    LoadDataSetAction,
    ModelPublishAction,
    TrainAction,
    TrainFailedError,
)
from .configs import DeployConfig, TrainConfig
from .consts import ActionState, FinetuneStatus, ServiceStatus, ServiceType
from .event import Event, EventHandler, dispatch_event
from .finetune import Finetune, LLMFinetune
from .pipeline import Pipeline, Trainer

__all__ = [
    "ActionState", "AsyncAction", "BaseAction", "DeployAction", "DeployConfig", "EvaluateAction", "Event",
    "EventHandler", "Finetune", "FinetuneStatus", "LLMFinetune", "LoadDataSetAction",
    "ModelPublishAction", "Pipeline", "RunContext", "ServiceStatus", "ServiceType", "TrainAction",
    "TrainConfig", "TrainFailedError", "Trainer", "TrainerStopped", "dispatch_event",
]


def __getattr__(name: str) -> object:
    # ``qfnb.trainer.Model``/``Service`` (official path); imported lazily: qfnb.model imports us
    if name in ("Model", "Service"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'qfnb.trainer' has no attribute {name!r}")
