"""``TrainConfig`` (the hyper-parameters of a fine-tune run) and ``TrainLimit`` (bounds of them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationInfo, field_serializer, field_validator

from qfnb._core.errors import ValidationError as QfValidationError
from qfnb.model.configs import ConfigModel
from qfnb.protocol.console.checkpoints import METRICS
from qfnb.protocol.console.training import LIMITS, hyper_problem

__all__ = ["TrainConfig", "TrainLimit"]

logger = logging.getLogger("qfnb.trainer")

_PEFT = {"lora": "LoRA", "fullfinetuning": "FullFineTuning", "full": "FullFineTuning",
         "all": "FullFineTuning", "prompttuning": "PromptTuning", "ptuning": "PromptTuning"}


def _camel(name: str) -> str:
    if name == "packing":
        return "Packing"
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


class TrainConfig(ConfigModel):
    """Hyper-parameters of a fine-tune run; ``None`` leaves the platform default."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    # bounds: qfnb.protocol.console.training.LIMITS, the table the platform enforces too (_limits below)
    epoch: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    max_seq_len: int | None = None
    logging_steps: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    lora_rank: int | None = None
    lora_alpha: int | float | None = None  # any number >= 1e-3 (LIMITS); an int is sent as given
    lora_dropout: float | None = None
    lora_all_linear: str | None = None
    lora_target_modules: list[str] | None = None
    scheduler_name: str | None = None
    max_steps: int | None = None
    #: without ``max_steps``: whole epochs are added until the run takes at least this many steps (the
    #: platform's default: 20 for PostPretrain, whose small corpus packs into few steps; 0 otherwise)
    min_steps: int | None = None
    seed: int | None = None
    #: LoRA checkpoints saved evenly over the run, each scored on the held-out split (the platform's
    #: default: 5 when there is one); ``early_stop`` ends the run after ``early_stop_patience``
    #: checkpoints without improvement; ``eval_metric`` ("rouge_l", "exact_match", or your own
    #: ``fn(input, reference, output) -> float``, scored on the engine after the run:
    #: qfnb.trainer.steps.checkpoint_metric) also scores ``eval_metric_items`` held-out answers per
    #: checkpoint and then picks the best
    checkpoints: int | None = None
    early_stop: bool | None = None
    early_stop_patience: int | None = None
    eval_metric: str | Callable[..., Any] | None = None
    eval_metric_items: int | None = None
    #: reinforcement fine-tuning (train_mode="RFT"): completions sampled per prompt, their most new
    #: tokens, the sampling temperature, the weight of the KL penalty to the base (qfnb.local.training.rft)
    group_size: int | None = None
    max_new_tokens: int | None = None
    temperature: float | None = None
    kl_coef: float | None = None
    #: RFT against a reward the base rarely earns: extra groups drawn for a prompt whose answers' rewards all
    #: tie (at most this many), SFT steps on the data's preferred answers (``chosen``) before GRPO
    tie_resamples: int | None = None
    warm_start_steps: int | None = None
    #: RFT against a gamed reward (the platform's default: on): a sampled answer the degeneration check flags
    #: (a repeat, a bare marker, cut at ``max_new_tokens``) earns less than its group's lowest reward
    floor_degenerate: bool | None = None
    packing: bool | None = None
    #: DPO and KTO (``train_mode``): how far the tuned model may move from the base (default 0.1); KTO's
    #: weights of its good and bad answers' losses (default 1.0)
    beta: float | None = None
    desirable_weight: float | None = None
    undesirable_weight: float | None = None
    #: against a collapsing DPO/KTO run (the platform's measured defaults when unset:
    #: qfnb.protocol.console.train_modes.defaults_for): the weight of the preferred answers' NLL added to the
    #: loss (RPO), the reward margin beyond which a pair is no longer pushed (0: none), the training batches'
    #: mean reward margin that ends the run (0: never), log-ratios per answer token instead of summed
    rpo_alpha: float | None = None
    max_reward_margin: float | None = None
    margin_stop: float | None = None
    length_normalize: bool | None = None
    peft_type: str = "LoRA"
    trainset_rate: int = Field(20, ge=0, le=100)
    resource_config: dict[str, Any] | None = None
    extras: dict[str, Any] = Field(default_factory=dict)

    @field_validator("resource_config", mode="before")
    @classmethod
    def _resource(cls, value: Any) -> Any:
        return value.to_wire() if callable(getattr(value, "to_wire", None)) else value  # a ResourceConfig

    def validate_config(self, train_limit: TrainLimit) -> bool:
        """True when every field ``train_limit`` bounds is set and within its bound: a
        ``(low, high)`` tuple, or a list of allowed values (as the official SDK checks)."""
        for name, bound in train_limit.items():
            name = name.removesuffix("_limit")
            value = getattr(self, name, None)
            if value is None:
                logger.warning("TrainConfig.validate_config: %s is not set", name)
                return False
            if isinstance(bound, tuple) and len(bound) == 2 and not bound[0] <= value <= bound[1]:
                logger.warning("TrainConfig.validate_config: %s=%r is outside %s", name, value, bound)
                return False
            if isinstance(bound, list) and value not in bound:
                logger.warning("TrainConfig.validate_config: %s=%r is not one of %s", name, value, bound)
                return False
        return True

    def __init__(self, **data: Any) -> None:  # keeps the keyword-only, validated signature for type checkers
        super().__init__(**data)

    @field_validator("*")
    @classmethod
    def _limits(cls, value: Any, info: ValidationInfo) -> Any:
        wire = _camel(info.field_name or "")
        if value is not None and wire in LIMITS:
            problem = hyper_problem(wire, value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("eval_metric")
    @classmethod
    def _metric(cls, value: str | Callable[..., Any] | None) -> str | Callable[..., Any] | None:
        if value is not None and not callable(value) and value not in METRICS:
            raise ValueError(f"must be one of {', '.join(METRICS)} or a function (input, reference, output) -> "
                             f"float, got {value!r}")
        return value

    @field_serializer("eval_metric")
    def _metric_out(self, value: str | Callable[..., Any] | None) -> str | None:
        return None if callable(value) else value  # a notebook function is not saved: it scores this run

    @field_validator("peft_type")
    @classmethod
    def _peft(cls, value: str) -> str:
        key = str(getattr(value, "value", value)).replace("-", "").replace("_", "").lower()
        if key not in _PEFT:
            raise ValueError(f"must be one of LoRA, FullFineTuning, PromptTuning (got {value!r})")
        return _PEFT[key]

    def hyper_parameters(self) -> dict[str, Any]:
        """The ``hyperParameterConfig`` body (camelCase; unset fields omitted; extras merged)."""
        out = {_camel(k): getattr(self, k) for k in HYPERPARAMETERS
               if getattr(self, k) is not None and not callable(getattr(self, k))}  # a function is scored here
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


#: the fields sent as camelCase ``hyperParameterConfig`` keys (``packing`` → ``Packing``): all but these
_NOT_HYPER = frozenset({"peft_type", "trainset_rate", "resource_config", "extras"})
HYPERPARAMETERS = tuple(name for name in TrainConfig.model_fields if name not in _NOT_HYPER)


class TrainLimit(dict[str, Any]):
    """Bounds of train-config fields: ``TrainLimit(epoch=(1, 10), max_seq_len=[4096, 8192])``;
    each bound is also an attribute. ``specific | common`` fills what ``specific`` leaves unset."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.__dict__.update(kwargs)

    def __or__(self, other: Any) -> TrainLimit:  # type: ignore[override]
        if not isinstance(other, TrainLimit):
            return NotImplemented
        return TrainLimit(**{**{k: v for k, v in other.items()}, **{k: v for k, v in self.items() if v is not None}})
