"""``qfnb.trainer``: the fine-tune pipeline (dataset → train → publish → deploy → evaluate).
May import ``qfnb.evaluation``, ``qfnb.model``, ``qfnb.dataset``, ``qfnb.resources``, ``qfnb._core``
and ``qfnb.protocol``; never ``agents``, ``notebook`` or ``qfnb.local``."""

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
from .model import Model, Service  # the official path of qfnb.model's classes
from .pipeline import Pipeline, Trainer
from .post_pretrain import DPO, PostPreTrain

__all__ = [
    "DPO", "ActionState", "AsyncAction", "BaseAction", "CorpusConfig", "CorpusConfigItem", "DatasetConfig",
    "DeployAction", "DeployConfig", "EvaluateAction", "Event", "EventHandler", "Finetune", "FinetuneStatus",
    "LLMFinetune", "LoadDataSetAction", "Model", "ModelPublishAction", "PeftType", "Pipeline", "PostPreTrain",
    "ResourceConfig", "RunContext", "Service", "ServiceStatus", "ServiceType", "TrainAction", "TrainConfig",
    "TrainFailedError", "TrainLimit", "Trainer", "TrainerStopped", "dispatch_event",
]
