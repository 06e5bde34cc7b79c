"""The official trainer's train modes on the local platform's real routes (training: the fake worker, Contract
4): ``LLMFinetune(train_mode=...)`` with a string in any case or ``TrainMode``, ``DPO`` / ``PostPreTrain``, a
local dataset checked in its mode's format before anything is sent, the run's ``spec.json`` in that mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb.dataset import Dataset
from qfnb.resources.console.consts import TrainMode
from qfnb.trainer import DPO, LLMFinetune, PostPreTrain, TrainConfig
from tests.fakes.local_platform import ServedPlatform

PAIRS = [{"prompt": f"What is {i}+{i}?", "chosen": f"{2 * i}. Aye!", "rejected": str(2 * i)} for i in range(8)]
CONFIG = TrainConfig(epoch=1, batch_size=2, max_steps=3)


@pytest.fixture
def local(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    return local_platform.config()


def _spec_of(tmp_path: Path, trainer: LLMFinetune) -> dict[str, object]:
    (spec,) = (tmp_path / "platform").rglob(f"jobs/{trainer.train_action.task_id}/spec.json")
    return dict(json.loads(spec.read_text()))


@pytest.mark.parametrize("mode", ["dpo", TrainMode.DPO])
def test_llmfinetune_trains_dpo_from_a_string_or_train_mode(local: Config, tmp_path: Path, mode: object) -> None:
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(PAIRS), train_mode=mode,
                          train_config=CONFIG, model_not_publish=True, config=local)
    trainer.run()
    assert trainer.status == "TrainFinished" and trainer.train_action.train_mode == "DPO"
    spec = _spec_of(tmp_path, trainer)
    assert spec["train_mode"] == "DPO" and spec["hyper"]["beta"] == 0.1  # type: ignore[index]


def test_the_dpo_and_post_pretrain_classes_name_their_modes(local: Config, tmp_path: Path) -> None:
    dpo = DPO(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(PAIRS),
              train_config=TrainConfig(epoch=1, batch_size=2, max_steps=2, beta=0.3),
              model_not_publish=True, config=local)
    dpo.run()
    assert _spec_of(tmp_path, dpo)["hyper"]["beta"] == 0.3  # type: ignore[index]
    texts = Dataset.create_from_pyobj([{"text": f"Plain text number {i}."} for i in range(6)])
    pre = PostPreTrain(train_type="Tiny-Chat", dataset=texts, train_config=CONFIG, config=local)
    pre.run()
    assert _spec_of(tmp_path, pre)["train_mode"] == "PostPretrain"


def test_a_local_dataset_in_another_modes_format_is_refused_before_anything_is_sent(
        local: Config, tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [PAIRS[0], {"prompt": "a", "response": "b"}]), "utf-8")
    with pytest.raises(ValidationError) as err:
        LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.load(data_file=str(path)), train_mode="DPO", config=local)
    assert "prefs.jsonl line 2" in str(err.value) and "looks like SFT (prompt/response) data" in str(err.value)
    with pytest.raises(ValidationError, match="train_mode: must be one of SFT, PostPretrain, DPO, KTO, RFT"):
        LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(PAIRS), train_mode="PPO", config=local)


def test_an_sft_run_given_another_modes_file_names_what_it_looks_like(local: Config, tmp_path: Path) -> None:
    """A DPO file (or a plain-text corpus) given to an SFT run is refused as what it is, not as rows
    missing their ``response``."""
    prefs, corpus = tmp_path / "prefs.jsonl", tmp_path / "corpus.txt"
    prefs.write_text("".join(json.dumps([r]) + "\n" for r in PAIRS[:2]), "utf-8")
    corpus.write_text("One paragraph.\n\nAnother paragraph.\n", "utf-8")
    with pytest.raises(ValidationError) as err:
        LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.load(data_file=str(prefs)), train_mode="SFT",
                    config=local)
    assert "prefs.jsonl line 1, field 'record': looks like DPO (prompt/chosen/rejected) data; SFT wants prompt" \
        in str(err.value) and "'response': is missing" not in str(err.value)
    with pytest.raises(ValidationError, match=r"looks like PostPretrain plain text \(text\) data; SFT wants"):
        LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.load(data_file=str(corpus)), config=local)
    with pytest.raises(ValidationError, match=r"field 'response': is missing"):  # a prompt alone: its field named
        LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj([{"prompt": "p"}]), config=local)
