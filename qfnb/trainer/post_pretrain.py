"""``PostPreTrain`` (continued pre-training on plain text) and ``DPO`` (preference training):
the fine-tune pipeline with the official SDK's other train modes."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.console.enums import TrainMode

from .finetune import LLMFinetune

__all__ = ["DPO", "PostPreTrain"]


class PostPreTrain(LLMFinetune):
    """Continued pre-training of ``train_type`` on a plain-text dataset (``text`` rows; load → train; the
    result is a training run, not a published model). ``LLMFinetune(previous_trainer=it)``
    fine-tunes on from it."""

    def __init__(self, train_type: str = "", dataset: Any = None, train_config: Any = None,
                 event_handler: Any = None, name: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("model_not_publish", True)
        super().__init__(train_type, dataset, train_config,
                         event_handler=event_handler, name=name, train_mode=TrainMode.PostPretrain, **kwargs)


class DPO(LLMFinetune):
    """Preference training (DPO) of ``train_type`` on a dataset of prompts with a preferred and a
    rejected answer (or ranked answers); otherwise as :class:`LLMFinetune`."""

    def __init__(self, train_type: str = "", dataset: Any = None, train_config: Any = None,
                 event_handler: Any = None, name: str = "", **kwargs: Any) -> None:
        super().__init__(train_type, dataset, train_config,
                         event_handler=event_handler, name=name, train_mode=TrainMode.DPO, **kwargs)
