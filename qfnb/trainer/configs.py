"""``TrainConfig`` and ``DeployConfig``: validated at construction, serializable to JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qfnb._core.errors import ValidationError as QfValidationError
from qfnb.resources.console.consts import DeployPoolType

from .consts import ServiceType

logger = logging.getLogger(__name__)

_PEFT = {"lora": "LoRA", "fullfinetuning": "FullFineTuning", "full": "FullFineTuning",
         "all": "FullFineTuning", "prompttuning": "PromptTuning", "ptuning": "PromptTuning"}
#: snake_case fields sent as camelCase ``hyperParameterConfig`` keys (``packing`` → ``Packing``).
_HYPER = ("epoch", "batch_size", "learning_rate", "max_seq_len", "logging_steps", "warmup_ratio",
          "weight_decay", "lora_rank", "lora_all_linear", "scheduler_name", "lora_alpha",
          "lora_dropout", "lora_target_modules", "max_steps", "seed")


def _camel(name: str) -> str:
    if name == "packing":
        return "Packing"
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _official_input(cls: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """As the official pydantic models take them: ``None`` means the default, and an unknown
    field is ignored (with one warning naming it, where the official SDK says nothing)."""
    known = set(cls.model_fields)
    unknown = sorted(k for k in data if k not in known)
    if unknown:
        logger.warning("%s: ignoring unknown field(s) %s", cls.__name__, ", ".join(unknown))
    return {k: v for k, v in data.items() if k in known and v is not None}


def _raise_first(exc: ValidationError) -> None:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "config"
    raise QfValidationError(field, err["msg"]) from None


class TrainConfig(BaseModel):
    """Hyper-parameters of a fine-tune run; ``None`` leaves the platform default."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    epoch: int | None = Field(None, ge=1, le=50)
    learning_rate: float | None = Field(None, gt=0, le=1)
    batch_size: int | None = Field(None, ge=1, le=1024)
    max_seq_len: int | None = Field(None, ge=8, le=131072)
    logging_steps: int | None = Field(None, ge=1)
    warmup_ratio: float | None = Field(None, ge=0, le=1)
    weight_decay: float | None = Field(None, ge=0, le=1)
    lora_rank: int | None = Field(None, ge=1, le=256)
    lora_alpha: int | None = Field(None, ge=1, le=512)
    lora_dropout: float | None = Field(None, ge=0, lt=1)
    lora_all_linear: str | None = None
    lora_target_modules: list[str] | None = None
    scheduler_name: str | None = None
    max_steps: int | None = Field(None, ge=1)
    seed: int | None = None
    packing: bool | None = None
    peft_type: str = "LoRA"
    trainset_rate: int = Field(20, ge=0, le=100)
    resource_config: dict[str, Any] | None = None
    extras: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**_official_input(type(self), data))
        except ValidationError as exc:
            _raise_first(exc)

    @field_validator("peft_type")
    @classmethod
    def _peft(cls, value: str) -> str:
        key = str(getattr(value, "value", value)).replace("-", "").replace("_", "").lower()
        if key not in _PEFT:
            raise ValueError(f"must be one of LoRA, FullFineTuning, PromptTuning (got {value!r})")
        return _PEFT[key]

    def hyper_parameters(self) -> dict[str, Any]:
        """The ``hyperParameterConfig`` body (camelCase; unset fields omitted; extras merged)."""
        out = {_camel(k): getattr(self, k) for k in (*_HYPER, "packing") if getattr(self, k) is not None}
        out.update(self.extras)
        return out

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """From a .json or .yaml file of snake_case fields."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise QfValidationError("train_config", f"{p.name} must hold a mapping of fields")
        return cls(**data)


class DeployConfig(BaseModel):
    """How to deploy a model as a service."""

    model_config = ConfigDict(extra="ignore", use_enum_values=False)

    name: str = ""
    endpoint_suffix: str = ""
    endpoint_prefix: str = ""
    description: str = ""
    replicas: int = Field(1, ge=1, le=100)
    pool_type: DeployPoolType = DeployPoolType.PrivateResource
    service_type: ServiceType = ServiceType.Chat
    hours: int = Field(1, ge=1)
    #: prepaid months; when set it wins over ``hours`` (as in the official SDK)
    months: int | None = Field(None, ge=1)
    resource_type: str = "GPU-I-2"
    qps: float | None = Field(None, gt=0)
    extras: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**_official_input(type(self), data))
        except ValidationError as exc:
            _raise_first(exc)

    @field_validator("endpoint_suffix", "endpoint_prefix")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if value and not all(c.isalnum() or c in "_-" for c in value):
            raise ValueError("may contain only letters, digits, '_' and '-'")
        return value
