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
from .configs import (
    CorpusConfig,
    CorpusConfigItem,
    DatasetConfig,
    DeployConfig,
    ResourceConfig,
    TrainConfig,
    TrainLimit,
)
from .consts import ActionState, FinetuneStatus, PeftType, ServiceStatus, ServiceType
from .event import Event, EventHandler, dispatch_event
from .finetune import Finetune, LLMFinetune
from .pipeline import Pipeline, Trainer
from .post_pretrain import DPO, PostPreTrain

__all__ = [
    "DPO", "ActionState", "AsyncAction", "BaseAction", "CorpusConfig", "CorpusConfigItem", "DatasetConfig",
    "DeployAction", "DeployConfig", "EvaluateAction", "Event", "EventHandler", "Finetune", "FinetuneStatus",
    "LLMFinetune", "LoadDataSetAction", "ModelPublishAction", "PeftType", "Pipeline", "PostPreTrain",
    "ResourceConfig", "RunContext", "ServiceStatus", "ServiceType", "TrainAction", "TrainConfig",
    "TrainFailedError", "TrainLimit", "Trainer", "TrainerStopped", "dispatch_event",
]


def __getattr__(name: str) -> object:
    # ``qfnb.trainer.Model``/``Service`` (official path); imported lazily: qfnb.model imports us
    if name in ("Model", "Service"):
        from . import model  # deferred: keeps importing this module light

        return getattr(model, name)
    raise AttributeError(f"module 'qfnb.trainer' has no attribute {name!r}")
