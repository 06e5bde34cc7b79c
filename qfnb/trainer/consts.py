"""Trainer enumerations and the status table (reference §5.1)."""

from __future__ import annotations

from enum import StrEnum as _StrEnum

from qfnb.model.consts import ServiceStatus, ServiceType

__all__ = ["ActionState", "FinetuneStatus", "PeftType", "ServiceStatus", "ServiceType", "status_of"]


class PeftType(_StrEnum):
    """How much of the model a fine-tune changes (``TrainConfig(peft_type=...)``)."""

    ALL = "FullFineTuning"
    PTuning = "PromptTuning"
    LoRA = "LoRA"


class ActionState(_StrEnum):
    """Where an action is: every action emits Preceding then Done/Error/Stopped."""

    Preceding = "Preceding"
    Running = "Running"
    Done = "Done"
    Error = "Error"
    Stopped = "Stopped"


class FinetuneStatus(_StrEnum):
    Unknown = "Unknown"
    Created = "Created"
    DatasetLoading = "DatasetLoading"
    DatasetLoaded = "DatasetLoaded"
    DatasetLoadFailed = "DatasetLoadFailed"
    DatasetLoadStopped = "DatasetLoadStopped"
    TrainCreated = "TrainCreated"
    Training = "Training"
    TrainFinished = "TrainFinished"
    TrainFailed = "TrainFailed"
    TrainStopped = "TrainStopped"
    ModelPublishing = "ModelPublishing"
    ModelPublished = "ModelPublished"
    ModelPublishFailed = "ModelPublishFailed"
    Deploying = "Deploying"
    Deployed = "Deployed"
    DeployFailed = "DeployFailed"
    DeployStopped = "DeployStopped"
    EvaluationCreated = "EvaluationCreated"
    EvaluationRunning = "EvaluationRunning"
    EvaluationFinished = "EvaluationFinished"
    EvaluationFailed = "EvaluationFailed"
    EvaluationStopped = "EvaluationStopped"


_S = FinetuneStatus
#: (action class, state) -> trainer status.
STATUS_TABLE: dict[str, dict[ActionState, FinetuneStatus]] = {
    "LoadDataSetAction": dict(zip(ActionState, (_S.DatasetLoading, _S.DatasetLoading, _S.DatasetLoaded,
                                                _S.DatasetLoadFailed, _S.DatasetLoadStopped), strict=True)),
    "TrainAction": dict(zip(ActionState, (_S.TrainCreated, _S.Training, _S.TrainFinished,
                                          _S.TrainFailed, _S.TrainStopped), strict=True)),
    "ModelPublishAction": dict(zip(ActionState, (_S.ModelPublishing, _S.ModelPublishing,
                                                 _S.ModelPublished, _S.ModelPublishFailed,
                                                 _S.ModelPublishFailed), strict=True)),
    "DeployAction": dict(zip(ActionState, (_S.Created, _S.Deploying, _S.Deployed, _S.DeployFailed,
                                           _S.DeployStopped), strict=True)),
    "EvaluateAction": dict(zip(ActionState, (_S.EvaluationCreated, _S.EvaluationRunning,
                                             _S.EvaluationFinished, _S.EvaluationFailed,
                                             _S.EvaluationStopped), strict=True)),
}


def status_of(action_class: str | None, state: ActionState | str | None) -> FinetuneStatus:
    """The trainer status for the current action and its state (``Unknown`` otherwise)."""
    try:  # no state is no ActionState: Unknown too
        return STATUS_TABLE.get(action_class or "", {}).get(ActionState(state or ""), FinetuneStatus.Unknown)
    except ValueError:
        return FinetuneStatus.Unknown
