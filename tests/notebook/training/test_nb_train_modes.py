"""``%qftrain --mode`` and the launcher's train-mode picker: the mode reaches the trainer (and the forecast),
the picker shows the data format the mode wants, a mode the platform does not have is refused naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from nb_doubles import FakeTrainer, use_trainer

from qfnb.notebook.training.launcher import FinetuneLauncher
from qfnb.notebook.training.run import TrainSpec, default_trainer


def test_qftrain_mode_reaches_the_trainer_and_names_the_run(ip: Any) -> None:
    made = use_trainer(ip, steps=2, step_time=0.001)
    ip.run_line_magic("qftrain", "--dataset prefs.jsonl --steps 2 --mode dpo -o run")
    state = ip.user_ns["run"].wait(30)
    assert made[0].spec.mode == "DPO" and state.title == "Gemma-3-270M ← prefs.jsonl (DPO)"
    with pytest.raises(UsageError, match="--mode: must be one of SFT, PostPretrain, DPO, KTO, RFT, got 'PPO'"):
        ip.run_line_magic("qftrain", "--dataset prefs.jsonl --mode PPO")
    with pytest.raises(UsageError, match="--eval-metric scores SFT answers; a KTO run's checkpoints"):
        ip.run_line_magic("qftrain", "--dataset prefs.jsonl --mode KTO --eval-metric rouge_l")


def test_qftrain_beta_reaches_the_train_config_of_a_preference_run(ip: Any, tmp_path: Path) -> None:
    made = use_trainer(ip, steps=2, step_time=0.001)
    ip.run_line_magic("qftrain", "--dataset prefs.jsonl --steps 2 --mode DPO --beta 0.5 -o run")
    ip.user_ns["run"].wait(30)
    assert made[0].spec.beta == 0.5 and made[0].spec.train_config()["beta"] == 0.5
    with pytest.raises(UsageError, match=r"--beta is DPO's and KTO's .* not SFT's"):
        ip.run_line_magic("qftrain", "--dataset prefs.jsonl --beta 0.5")
    with pytest.raises(UsageError, match="--beta must be"):
        ip.run_line_magic("qftrain", "--dataset prefs.jsonl --mode KTO --beta 0")
    data = tmp_path / "prefs.jsonl"
    data.write_text('[{"prompt": "q", "chosen": "a", "rejected": "b"}]\n', encoding="utf-8")
    trainer = default_trainer(TrainSpec(dataset=str(data), mode="DPO", beta=0.5), None)
    assert trainer.train_config.beta == 0.5


def test_the_real_trainer_checks_the_file_in_the_modes_format(tmp_path: Path) -> None:
    data = tmp_path / "prefs.jsonl"
    data.write_text('[{"prompt": "q", "chosen": "a", "rejected": "b"}]\n', encoding="utf-8")
    trainer = default_trainer(TrainSpec(dataset=str(data), mode="DPO"), None)
    assert trainer.train_action.train_mode == "DPO"
    text = tmp_path / "corpus.jsonl"
    text.write_text('{"text": "plain prose"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus.jsonl line 1.*looks like PostPretrain plain text \(text\) data; "
                                         "DPO wants prompt"):
        default_trainer(TrainSpec(dataset=str(text), mode="DPO"), None)


def test_the_launchers_mode_picker_shows_the_format_and_reaches_the_spec(ip: Any) -> None:
    launcher = FinetuneLauncher(factory=lambda s, h: FakeTrainer(s, h), base_models=("Gemma-3-270M",))
    assert launcher.mode.value == "SFT" and "prompt/response" in launcher.mode_format.value
    launcher.mode.value = "KTO"
    assert "chosen" in launcher.mode_format.value and "rejected" in launcher.mode_format.value
    assert launcher.spec().mode == "KTO" and " --mode KTO" in launcher.command()
    ip.run_line_magic("qftrain", "--mode PostPretrain -o form")  # the mode alone: the form, the mode picked
    assert ip.user_ns["form"].mode.value == "PostPretrain" and ".txt" in ip.user_ns["form"].mode_format.value
