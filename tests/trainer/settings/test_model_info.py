"""The platform's trainable models and their default train configs (``qfnb.trainer.settings.model_info``),
read from ``DescribeFineTuningSupportModels`` once per process, under the official SDK's table names."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from qfnb.protocol.wires.qianfan.answers import FineTuneSupportedModelsAnswer
from qfnb.trainer import PeftType, TrainAction
from qfnb.trainer.settings import model_info as mi
from tests.fakes.local_platform import ServedPlatform


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    mi.refresh()


def _param(key: str, default: Any, check: Any) -> dict[str, Any]:
    return {"key": key, "type": "int", "checkType": "range", "checkValue": check, "default": default}


SUPPORTED = [{"model": "ERNIE-Speed-8K", "modelType": "text2text", "supportTrainMode": [
    {"trainMode": "SFT", "supportParameterScale": [
        {"parameterScale": "FullFineTuning", "supportHyperParameterConfig": [
            _param("epoch", 1, [1, 50]), _param("learningRate", 3e-05, [1e-06, 4e-05]),
            _param("customKey", 7, [1, 9])]},
        {"parameterScale": "LoRA", "supportHyperParameterConfig": [
            _param("epoch", 2, [1, 50]), _param("loraRank", 8, [2, 64])]}]},
    {"trainMode": "PostPretrain", "supportParameterScale": [
        {"parameterScale": "FullFineTuning", "supportHyperParameterConfig": [_param("maxSeqLen", 4096, [512])]}]}]}]


def test_default_train_configs_are_the_platform_defaults_per_model_and_peft(monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.trainer.configs import DefaultPostPretrainTrainConfigMapping, DefaultTrainConfigMapping, ModelInfoMapping

    answer = FineTuneSupportedModelsAnswer.model_validate({"result": SUPPORTED})
    monkeypatch.setattr(mi, "_fetch", lambda: answer.result)
    assert mi.get_supported_models() == SUPPORTED  # the official function keeps the platform's spelling
    sft = DefaultTrainConfigMapping["ERNIE-Speed-8K"]
    assert set(sft) == {PeftType.ALL, PeftType.LoRA}
    full = sft[PeftType.ALL]
    assert (full.epoch, full.learning_rate, full.peft_type, full.extras) == (1, 3e-05, "FullFineTuning",
                                                                             {"customKey": 7})
    assert sft[PeftType.LoRA].lora_rank == 8
    assert "ERNIE-Speed" in DefaultTrainConfigMapping  # the renamed model answers under its old name
    assert DefaultPostPretrainTrainConfigMapping["ERNIE-Speed-8K"][PeftType.ALL].max_seq_len == 4096
    info = ModelInfoMapping["ERNIE-Speed-8K"]
    assert info.support_peft_types == [PeftType.ALL, PeftType.LoRA]
    assert info.specific_peft_types_params_limit is not None
    assert info.specific_peft_types_params_limit["LoRA"]["lora_rank"] == [2, 64]
    action = TrainAction("ERNIE-Speed-8K")
    assert action.get_default_train_config(peft_type="LoRA").epoch == 2
    assert action.get_default_train_config().peft_type == "FullFineTuning"  # the first, as officially
    assert TrainAction("Unlisted").get_default_train_config().epoch is None  # the platform decides


def test_the_tables_are_read_from_the_platform_once(local_platform: ServedPlatform, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    local_platform.set_env(monkeypatch)
    from qfnb.trainer.configs import DefaultTrainConfigMapping

    names = list(DefaultTrainConfigMapping)
    assert names and all(PeftType.LoRA in DefaultTrainConfigMapping[n] for n in names)
    calls: list[int] = []
    monkeypatch.setattr(mi, "_parse", lambda models: calls.append(1) or ({}, {}))
    assert list(DefaultTrainConfigMapping) == names and calls == []  # kept for the process
    mi.refresh()
    monkeypatch.undo()
    monkeypatch.setenv("QIANFAN_CONSOLE_API_BASE_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("QIANFAN_ACCESS_KEY", "a")
    monkeypatch.setenv("QIANFAN_SECRET_KEY", "b")
    monkeypatch.setenv("QIANFAN_LLM_API_RETRY_COUNT", "0")
    caplog.set_level(logging.WARNING, logger="qfnb.trainer")
    assert dict(mi.get_default_train_config("SFT")) == {}
    assert "could not read the platform's trainable models" in caplog.text
