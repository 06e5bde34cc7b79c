"""The platform's trainable models, per train mode: what each supports (``ModelInfo``) and its
default train configs (``DefaultTrainConfigMapping`` and friends, by model then ``PeftType``).

Both come from ``FineTune.V2.supported_models()`` (``DescribeFineTuningSupportModels``), read on
first use and kept for the process (``refresh()`` reads again). The official SDK fills the same
module-level tables the same way; here they are mappings that read when first looked into, so
``from qfnb.trainer.configs import DefaultTrainConfigMapping`` sends nothing. A platform that
cannot be read leaves them empty, with one warning naming why (as officially).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from qfnb._core.errors import QfnbError
from qfnb.protocol.console.enums import FinetuneSupportModelType, TrainMode
from qfnb.resources.console import FineTune

from ..consts import PeftType
from .train_config import HYPERPARAMETERS, TrainConfig, TrainLimit

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.answers import FineTuneSupportedModel, FineTuneSupportedScale

__all__ = ["DPOTrainModelInfoMapping", "DefaultDPOTrainConfigMapping", "DefaultPostPretrainTrainConfigMapping",
           "DefaultTrainConfigMapping", "ModelInfo", "ModelInfoMapping", "PostPreTrainModelInfoMapping",
           "get_default_train_config", "get_model_info", "get_supported_models", "get_trainer_model_list",
           "refresh"]

logger = logging.getLogger("qfnb.trainer")


class ModelInfo(BaseModel):
    """One trainable model of a train mode: the model name to train, the PEFT types it supports
    and each one's parameter limits (``{"epoch": [1, 50], ...}``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = ""
    short_name: str
    base_model_type: str = ""
    support_peft_types: list[PeftType] = []
    common_params_limit: TrainLimit = TrainLimit()
    specific_peft_types_params_limit: dict[str, TrainLimit] | None = None
    model_type: str = FinetuneSupportModelType.Text2Text.value
    deprecated: bool = False


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


#: renamed models the platform answers under their new name (the official SDK's table)
_RENAMED = {"ERNIE-Speed": "ERNIE-Speed-8K", "Qianfan-Chinese-Llama-2-13B": "Qianfan-Chinese-Llama-2-13B-v2"}
_KNOWN = set(HYPERPARAMETERS)


def default_config(params: list[dict[str, Any]], peft: str) -> TrainConfig | None:
    """A ``TrainConfig`` of the ``default`` of each parameter (unknown keys go to ``extras``
    under their wire name); None when the platform's defaults are out of qfnb's bounds."""
    known: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for p in params:
        if not isinstance(p, dict) or "key" not in p or p.get("default") is None:
            continue
        name = _snake(str(p["key"]))
        if name in _KNOWN:
            known[name] = p["default"]
        else:
            extras[str(p["key"])] = p["default"]
    try:
        return TrainConfig(**known, peft_type=peft, extras=extras)
    except PydanticValidationError as exc:
        logger.warning("default train config for %s skipped: %s", peft, exc.errors()[0].get("msg"))
        return None


def _parse(models: list[FineTuneSupportedModel]) -> tuple[dict[str, dict[str, ModelInfo]], dict[str, dict[str, Any]]]:
    """``(infos, defaults)``, each by train mode then model."""
    infos: dict[str, dict[str, ModelInfo]] = {m.value: {} for m in TrainMode}
    defaults: dict[str, dict[str, Any]] = {m.value: {} for m in TrainMode}
    for item in models:
        for mode in item.support_train_mode:
            if not item.model or mode.train_mode not in infos:
                continue
            info = infos[mode.train_mode].setdefault(item.model, ModelInfo(
                model=item.model, short_name=f"model{hashlib.sha256(item.model.encode()).hexdigest()[:8]}",
                base_model_type=item.base_model, specific_peft_types_params_limit={},
                model_type=item.model_type or FinetuneSupportModelType.Text2Text.value))
            for scale in mode.support_parameter_scale:
                _add_scale(info, defaults[mode.train_mode].setdefault(item.model, {}), scale)
    return infos, defaults


def _add_scale(info: ModelInfo, defaults: dict[Any, TrainConfig], scale: FineTuneSupportedScale) -> None:
    peft = scale.parameter_scale
    try:
        peft_type: Any = PeftType(peft)
    except ValueError:
        peft_type = peft  # a PEFT type this version does not name: kept as the platform spells it
    params = scale.hyper_parameters
    if peft_type not in info.support_peft_types:
        info.support_peft_types.append(peft_type)
    assert info.specific_peft_types_params_limit is not None
    info.specific_peft_types_params_limit[peft] = TrainLimit(
        **{_snake(str(p["key"])): p.get("checkValue") for p in params if "key" in p})
    config = default_config(params, peft)
    if config is not None:
        defaults[peft_type] = config


@functools.cache
def _tables() -> tuple[dict[str, dict[str, ModelInfo]], dict[str, dict[str, Any]]]:
    """The parsed answer, read once per process."""
    loaded = _parse(_fetch())
    _alias_renamed(*loaded)
    return loaded


def _fetch() -> list[FineTuneSupportedModel]:
    try:
        return FineTune.V2.supported_models().parsed.result
    except QfnbError as exc:
        logger.warning("could not read the platform's trainable models (%s); the default train configs are "
                       "empty", exc)
        return []


def _alias_renamed(infos: dict[str, dict[str, ModelInfo]], defaults: dict[str, dict[str, Any]]) -> None:
    """Old names answer as the model they were renamed to (``ERNIE-Speed`` → ``ERNIE-Speed-8K``)."""
    for table in itertools.chain(infos.values(), defaults.values()):
        for old, new in _RENAMED.items():
            if new in table and old not in table:
                table[old] = table[new]


class _Table(Mapping[str, Any]):
    """A read-only view of one table of one train mode, read from the platform on first use."""

    def __init__(self, mode: TrainMode, which: int) -> None:
        self._mode, self._which = mode, which

    def _data(self) -> dict[str, Any]:
        return _tables()[self._which][self._mode.value]

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return f"<{self._mode.value} {'model infos' if self._which == 0 else 'default train configs'}: {list(self)}>"


ModelInfoMapping: Mapping[str, ModelInfo] = _Table(TrainMode.SFT, 0)
PostPreTrainModelInfoMapping: Mapping[str, ModelInfo] = _Table(TrainMode.PostPretrain, 0)
DPOTrainModelInfoMapping: Mapping[str, ModelInfo] = _Table(TrainMode.DPO, 0)
DefaultTrainConfigMapping: Mapping[str, dict[PeftType, TrainConfig]] = _Table(TrainMode.SFT, 1)
DefaultPostPretrainTrainConfigMapping: Mapping[str, dict[PeftType, TrainConfig]] = _Table(TrainMode.PostPretrain, 1)
DefaultDPOTrainConfigMapping: Mapping[str, dict[PeftType, TrainConfig]] = _Table(TrainMode.DPO, 1)


def get_supported_models() -> list[dict[str, Any]]:
    """The platform's answer to ``DescribeFineTuningSupportModels`` (read now), as the platform spells it."""
    return [m.model_dump(by_alias=True, exclude_unset=True) for m in _fetch()]


def get_trainer_model_list(train_mode: str | TrainMode) -> Mapping[str, ModelInfo]:
    """The trainable models of ``train_mode`` ("SFT", "PostPretrain", "DPO")."""
    return _Table(TrainMode(train_mode), 0)


def get_model_info(train_mode: str | TrainMode, model: str) -> ModelInfo | None:
    return get_trainer_model_list(train_mode).get(model)


def get_default_train_config(train_mode: str | TrainMode) -> Mapping[str, dict[PeftType, TrainConfig]]:
    """``{model: {PeftType: TrainConfig}}`` of ``train_mode``: the platform's defaults."""
    return _Table(TrainMode(train_mode), 1)


def refresh() -> None:
    """Forget the tables: the next look reads the platform again."""
    _tables.cache_clear()
