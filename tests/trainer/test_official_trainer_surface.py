"""The trainer as the official SDK's tests use it: ``Pipeline.actions`` as a dict with a settable
``current_action``, a train action re-attached to its run, and the official pipeline file
(``Finetune.load(file=...)`` / ``save(file)``); the per-model default train configs: settings/test_model_info.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.errors import ValidationError
from qfnb.trainer import Finetune, Pipeline, TrainAction
from qfnb.trainer.base import BaseAction
from qfnb.trainer.settings import model_info as mi
from tests.fakes.console_cloud import ConsoleCloud

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
