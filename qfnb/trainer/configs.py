"""The trainer's configs: ``TrainConfig``, ``DeployConfig``, the dataset, corpus and resource
configs, and the platform's per-model tables (``DefaultTrainConfigMapping`` ...)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qfnb.model.configs import DeployConfig

from .settings.model_info import (
    DefaultDPOTrainConfigMapping,
    DefaultPostPretrainTrainConfigMapping,
    DefaultTrainConfigMapping,
    DPOTrainModelInfoMapping,
    ModelInfo,
    ModelInfoMapping,
    PostPreTrainModelInfoMapping,
    get_default_train_config,
    get_model_info,
    get_trainer_model_list,
)
from .settings.train_config import TrainConfig, TrainLimit

__all__ = ["CorpusConfig", "CorpusConfigItem", "DPOTrainModelInfoMapping", "DatasetConfig",
           "DefaultDPOTrainConfigMapping", "DefaultPostPretrainTrainConfigMapping", "DefaultTrainConfigMapping",
           "DeployConfig", "ModelInfo", "ModelInfoMapping", "PostPreTrainModelInfoMapping", "ResourceConfig",
           "TrainConfig", "TrainLimit", "get_default_train_config", "get_model_info", "get_trainer_model_list"]


class _WireModel(BaseModel):
    """A config sent as a camelCase body (``to_wire()``); fields take either spelling."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class ResourceConfig(_WireModel):
    """Where the training runs: ``resourceConfig`` (a resource pool, node count, idle nodes)."""

    resource_id: str | None = Field(None, alias="resourceId")
    node_num: int | None = Field(None, alias="nodeNum")
    idle_resource: bool | None = Field(None, alias="idleResource")

    def to_wire(self) -> dict[str, Any]:
        extras = self.model_extra or {}
        return {**{k: v for k, v in super().to_wire().items() if k not in extras}, **extras.get("extras", {})}


class CorpusConfigItem(_WireModel):
    """One general corpus mixed into the training data (type, proportion, labels)."""

    corpus_proportion: Any = Field(None, alias="proportion")
    corpus_type: int | None = Field(None, alias="corpusType")
    corpus_labels: list[str] | None = Field(None, alias="labels")

    @field_validator("corpus_type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        return getattr(value, "value", value)


class CorpusConfig(_WireModel):
    """``corpusConfig``: general corpora mixed into a fine-tune's data."""

    copy_data: bool | None = Field(None, alias="copyData")
    corpus_configs: list[CorpusConfigItem] = Field(default_factory=list, alias="config")


class DatasetConfig(BaseModel):
    """Several datasets for one fine-tune, each with its sampling rate, plus the split and
    corpus options (``Finetune(dataset=DatasetConfig(...))``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    datasets: list[Any]
    sampling_rates: list[float] | None = None
    eval_split_ratio: float | None = None
    corpus_proportion: float | None = None
    corpus_type: Any = None
    corpus_labels: list[str] | None = None
    sampling_rate: float | None = None
    source_type: str | None = None

