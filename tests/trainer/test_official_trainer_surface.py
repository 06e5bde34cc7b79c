"""The trainer as the official SDK's tests use it: ``Pipeline.actions`` as a dict with a settable
``current_action``, the platform's per-model default train configs (``DefaultTrainConfigMapping``
and friends), and the official pipeline file (``Finetune.load(file=...)`` / ``save(file)``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.errors import ValidationError
from qfnb.protocol.wires.qianfan.answers import FineTuneSupportedModelsAnswer
from qfnb.trainer import Finetune, PeftType, Pipeline, TrainAction
from qfnb.trainer import model_info as mi
from qfnb.trainer.base import BaseAction
from tests.fakes.console_cloud import ConsoleCloud
from tests.fakes.local_platform import ServedPlatform

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)]


class Step(BaseAction):
    def exec(self, input: Any = None, **kwargs: Any) -> Any:
        return {**(input or {}), self.id: True}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    mi.refresh()


def test_pipeline_actions_are_a_dict_by_id_and_a_resume_starts_at_current_action() -> None:
    ppl = Pipeline([Step(id="a"), Step(id="b"), Step(id="c")])
    assert list(ppl.actions) == ["a", "b", "c"] and ppl.seq == ["a", "b", "c"]
    assert [k for k, v in ppl.actions.items() if v.id == "b"] == ["b"]
    assert [s.id for s in ppl] == ["a", "b", "c"] and len(ppl) == 3 and ppl[1] is ppl.actions["b"]
    assert ppl.current_action == "a"
    ppl.current_action = "b"
    assert ppl.exec({"x": 1}) == {"x": 1, "b": True, "c": True}  # "a" did not run
    assert ppl.actions["a"].state is None and ppl.current_action == "c"
    with pytest.raises(KeyError, match="no action 'zz'"):
        ppl.current_action = "zz"
    with pytest.raises(ValueError, match="distinct ids"):
        Pipeline([Step(id="a"), Step(id="a")])


def test_a_train_action_given_a_run_re_attaches_to_it(cloud: ConsoleCloud, cfg: Config) -> None:
    first = Finetune(train_type="Fake-Base", dataset=ROWS, config=cfg).run()
    (task_id,) = cloud.tasks
    trainer = Finetune(train_type="Fake-Base", dataset=ROWS, config=cfg)
    train_key = next(k for k, a in trainer.ppl.actions.items() if isinstance(a, TrainAction))
    action = trainer.ppl.actions[train_key]
    assert isinstance(action, TrainAction)
    action.task_id, action.job_id = task_id, first.train_action.job_id
    trainer.ppl.current_action = train_key
    trainer.resume()
    assert list(cloud.tasks) == [task_id] and len(cloud.calls("dataset/create")) == 1  # nothing made twice
    assert trainer.result[0]["model_id"] and trainer.result[0]["task_id"] == task_id
    with pytest.raises(ValidationError, match="platform id"):
        action.task_id = 1.5  # type: ignore[assignment]


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


def _official_file(path: Path, dataset_id: Any) -> Path:
    path.write_text(json.dumps({
        "actions": [
            {"type": "LoadDataSetAction", "datasets": {"sourceType": "Platform",
                                                       "versions": [{"versionId": dataset_id}]}},
            {"type": "TrainAction", "init_params": {
                "train_mode": "SFT", "train_type": "Fake-Base", "is_incr": False, "job_name": "hipytrainer",
                "train_config": {"peft_type": "FullFineTuning", "trainset_rate": 20, "epoch": 1,
                                 "learning_rate": 0.00002, "max_seq_len": 4096}}},
            {"type": "ModelPublishAction"}],
        "case_init_params": {"case_type": "Finetune"}}))
    return path


def test_finetune_loads_and_saves_the_official_pipeline_file(cloud: ConsoleCloud, cfg: Config, tmp_path: Path) -> None:
    ds = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "ds"}, config=cfg)
    trainer = Finetune.load(file=_official_file(tmp_path / "ppl.json", ds.qianfan_dataset_id), config=cfg)
    assert [type(a).__name__ for a in trainer.ppl] == ["LoadDataSetAction", "TrainAction", "ModelPublishAction"]
    assert trainer.train_config.learning_rate == 2e-05 and trainer.name == "hipytrainer"
    assert Finetune.load(trainer.id).id == trainer.id  # saved under its id, as officially
    trainer.run()
    sent = cloud.calls("CreateFineTuningTask")[0].json
    assert sent["parameterScale"] == "FullFineTuning" and sent["hyperParameterConfig"]["learningRate"] == 2e-05
    out = trainer.save(tmp_path / "done.json")
    saved = json.loads((tmp_path / "done.json").read_text())
    assert out is trainer and saved["case_init_params"] == {"case_type": "Finetune"}
    assert saved["actions"][1]["task_id"] == trainer.train_action.task_id
    again = Finetune.load(file=tmp_path / "done.json", config=cfg)
    assert again.status == "ModelPublished" and again.output["model_version_id"] == trainer.output["model_version_id"]
    again.run()  # every step finished: nothing is sent again
    assert len(cloud.calls("CreateFineTuningTask")) == 1


def test_a_bad_pipeline_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"actions": [{"type": "MysteryAction"}]}))
    with pytest.raises(ValidationError, match="unknown type 'MysteryAction'"):
        Finetune.load(file=bad)
    bad.write_text(json.dumps({"actions": [], "case_init_params": {"case_type": "PostPreTrain"}}))
    with pytest.raises(ValidationError, match="PostPreTrain pipeline"):
        Finetune.load(file=bad)
    with pytest.raises(ValidationError, match="one of them"):
        Finetune.load()
