"""One table of training limits: the notebook, the trainer and the local platform agree on it."""

from __future__ import annotations

import typing

import pytest

from qfnb._core.errors import ValidationError
from qfnb.notebook.training.run import TrainSpec
from qfnb.protocol.console.training import LIMITS, hyper_problem
from qfnb.trainer.configs import TrainConfig


@pytest.mark.parametrize(("wire", "snake", "option", "ok", "bad"), [
    ("batchSize", "batch_size", "batch_size", 256, 257),
    ("maxSteps", "max_steps", "steps", 10**7, 10**7 + 1),
    ("epoch", "epoch", "epochs", 100, 0),
    ("learningRate", "learning_rate", "lr", 1.0, 0.0),
])
def test_every_layer_draws_the_same_line(wire: str, snake: str, option: str, ok: float, bad: float) -> None:
    assert hyper_problem(wire, ok) is None and hyper_problem(wire, bad) is not None
    TrainConfig(**{snake: ok})
    with pytest.raises(ValidationError, match=snake):
        TrainConfig(**{snake: bad})
    TrainSpec(dataset="d.jsonl", **{option: ok})
    with pytest.raises(ValueError, match="must be in"):
        TrainSpec(dataset="d.jsonl", **{option: bad})


def test_platform_checks_the_same_table() -> None:
    from qfnb.local.domain.state.values import BodyError
    from qfnb.local.domain.training.fine_tunes import check_hyper

    assert check_hyper({"batchSize": 256}, "hyper")["batchSize"] == 256
    with pytest.raises(BodyError, match="batchSize"):
        check_hyper({"batchSize": 257}, "hyper")
    assert set(LIMITS) >= {"epoch", "learningRate", "batchSize", "maxSteps"}


def test_train_config_types_follow_the_limits() -> None:
    """A bounded hyperparameter's type is the limit's kind (``lora_alpha`` was an int while the
    limits accepted any number >= 1e-3): a float the platform accepts is a valid TrainConfig."""
    from qfnb.trainer.settings.train_config import _camel

    bounded = {name: LIMITS[_camel(name)] for name in TrainConfig.model_fields if _camel(name) in LIMITS}
    assert {"epoch", "learning_rate", "lora_alpha", "lora_dropout"} <= set(bounded)
    for name, limit in bounded.items():
        kinds = set(typing.get_args(TrainConfig.model_fields[name].annotation)) - {type(None)}
        assert (float in kinds) == (limit.kind is float) and (int in kinds or float in kinds), name
    assert TrainConfig(lora_alpha=0.5).hyper_parameters() == {"loraAlpha": 0.5}
    assert TrainConfig(lora_alpha=32).hyper_parameters() == {"loraAlpha": 32}  # an int stays one on the wire
    with pytest.raises(ValidationError, match="lora_alpha"):
        TrainConfig(lora_alpha=0.0001)


def test_qftrain_options_are_generated_from_the_limits() -> None:
    """``%qftrain``'s options (tools/spec/training.py) take their type and range from LIMITS, the
    help says that range, and each sets a real TrainConfig field."""
    from qfnb.notebook.magic_options import TRAIN_CONFIG_FIELDS, TRAIN_HYPER, TRAIN_OPTIONS

    for option in TRAIN_OPTIONS:
        limit = LIMITS[TRAIN_HYPER[option.field]]
        assert option.type is limit.kind and limit.describe() in option.help, option
        assert TRAIN_CONFIG_FIELDS[option.field] in TrainConfig.model_fields
    spec = TrainSpec(dataset="d.jsonl", epochs=2, lr=0.01, lora_rank=8, eval_split=10)
    assert TrainConfig(**spec.train_config()).hyper_parameters() == {"epoch": 2, "learningRate": 0.01, "loraRank": 8}
    with pytest.raises(ValueError, match=r"^--lora-rank must be in \[1, 1024\], got 0$"):
        TrainSpec(dataset="d.jsonl", lora_rank=0)


def test_the_magics_help_says_the_generated_ranges() -> None:
    """``%qftrain?`` and ``%qfimage?`` show each generated option's range, the rule it is checked against."""
    from qfnb.notebook.magics import QfnbMagics

    train_help = " ".join((QfnbMagics.qftrain.__doc__ or "").split())
    image_help = " ".join((QfnbMagics.qfimage.__doc__ or "").split())
    assert f"--lora-rank LORA_RANK LoRA rank, in {LIMITS['loraRank'].describe()} (loraRank)." in train_help
    assert "-n N How many images, in [1, 4] (n)." in image_help


def test_the_anti_collapse_knobs_are_bounded_at_every_door() -> None:
    """``rpoAlpha``, ``maxRewardMargin``, ``marginStop``, ``tieResamples``, ``warmStartSteps`` and the flag
    ``lengthNormalize``: the table, TrainConfig, the console and the OpenAI door refuse the same values,
    naming the field."""
    from qfnb.local.domain.state.values import BodyError
    from qfnb.local.domain.training import openai_fine_tuning as fine_tuning
    from qfnb.local.domain.training.fine_tunes import check_hyper

    bad = {"rpoAlpha": -0.1, "maxRewardMargin": 1001, "marginStop": -1, "tieResamples": 17, "warmStartSteps": 1.5,
           "lengthNormalize": "yes"}
    for wire, value in bad.items():
        assert hyper_problem(wire, value) is not None, wire
        with pytest.raises(BodyError, match=rf"^hyperParameterConfig\.{wire}: must be"):
            check_hyper({wire: value}, "hyperParameterConfig", "DPO")
    assert hyper_problem("lengthNormalize", True) is None and hyper_problem("rpoAlpha", 0) is None
    for snake, value in (("rpo_alpha", -0.1), ("max_reward_margin", 1001.0), ("tie_resamples", 17),
                         ("length_normalize", "maybe")):
        with pytest.raises(ValidationError, match=snake):
            TrainConfig(**{snake: value})
    sent = TrainConfig(rpo_alpha=0.5, length_normalize=True, warm_start_steps=4).hyper_parameters()
    assert sent == {"rpoAlpha": 0.5, "lengthNormalize": True, "warmStartSteps": 4}
    with pytest.raises(BodyError) as refused:
        fine_tuning._hyper("dpo", {"rpo_alpha": 200}, "method.dpo.hyperparameters", 42)
    assert refused.value.field == "method.dpo.hyperparameters.rpo_alpha" and "must be in [0, 100]" in str(refused.value)
    with pytest.raises(BodyError, match=r"tie_resamples.*is not a dpo hyperparameter"):
        fine_tuning._hyper("dpo", {"tie_resamples": 2}, "method.dpo.hyperparameters", 42)
    assert fine_tuning._hyper("reinforcement", {"tie_resamples": 3}, "h", 42)["tieResamples"] == 3


def test_a_run_that_sets_nothing_gets_its_modes_measured_defaults() -> None:
    """The console fills in the per-mode (and per-base) defaults: a DPO run gets the anti-collapse terms and
    its own learning rate; an OpenAI ``learning_rate_multiplier`` scales the method's default."""
    from qfnb.local.domain.training import openai_fine_tuning as fine_tuning
    from qfnb.local.domain.training.fine_tunes import check_hyper
    from qfnb.protocol.console.train_modes import defaults_for
    from qfnb.protocol.console.training import DEFAULTS

    dpo = check_hyper(None, "hyperParameterConfig", "DPO", "Gemma-3-270M")
    assert dpo == defaults_for("DPO", "Gemma-3-270M")
    measured = {"learningRate": 2e-4, "epoch": 2, "beta": 0.1, "rpoAlpha": 1.0, "maxRewardMargin": 5.0}
    assert {k: dpo[k] for k in measured} == measured
    assert "desirableWeight" not in dpo and "desirableWeight" in defaults_for("KTO")
    assert "groupSize" in defaults_for("RFT") and "beta" not in defaults_for("RFT")
    assert check_hyper(None, "h", "SFT") == DEFAULTS  # SFT unchanged
    doubled = fine_tuning._hyper("dpo", {"learning_rate_multiplier": 2}, "h", 42, "Gemma-3-270M")
    assert doubled["learningRate"] == pytest.approx(2 * float(dpo["learningRate"]))


def test_a_bases_own_defaults_lie_over_its_modes_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row's ``per_base`` entry (the lower-cased start of a base's name) wins over the row's defaults for that
    base only, through every door's ``defaults_for``."""
    import dataclasses

    from qfnb.protocol.console.train_modes import MODE_TABLE, defaults_for

    row = dataclasses.replace(MODE_TABLE["DPO"], per_base={"gemma-3-270m": {"beta": 0.25}})
    monkeypatch.setitem(MODE_TABLE, "DPO", row)
    assert defaults_for("dpo", "Gemma-3-270M-it")["beta"] == 0.25
    assert defaults_for("DPO", "tiny-chat")["beta"] == 0.1 and defaults_for("DPO")["beta"] == 0.1
    # measured: KTO learns at 2e-4 (at 5e-4 Gemma-3-270M's Chinese run collapsed), DPO keeps 5e-4
    assert defaults_for("KTO", "Gemma-3-270M")["learningRate"] == 2e-4 == defaults_for("KTO")["learningRate"]
    assert defaults_for("DPO", "Qwen2.5-Coder-0.5B-Instruct")["learningRate"] == 5e-4


def test_gemmas_dpo_learns_slower_for_two_epochs() -> None:
    """Measured (round 37): Gemma-3-270M's Chinese DPO collapsed at 5e-4 and ran on past its answers after one
    epoch at 2e-4; its own row is 2e-4 over 2 epochs, and the Qwen bases keep the mode's 5e-4 and 1 epoch."""
    from qfnb.protocol.console.train_modes import defaults_for

    gemma = defaults_for("DPO", "Gemma-3-270M")
    assert (gemma["learningRate"], gemma["epoch"]) == (2e-4, 2)
    qwen = defaults_for("DPO", "Qwen2.5-Coder-1.5B-Instruct")
    assert (qwen["learningRate"], qwen["epoch"]) == (5e-4, 1)
    assert defaults_for("KTO", "Gemma-3-270M")["epoch"] == 1  # another mode's row is its own


def test_gemmas_rft_warms_up_twice_as_long() -> None:
    """Measured (round 38): after the mode's 10 warm-start steps Gemma-3-270M sampled one apology for most
    prompts and its Chinese RFT collapsed by step 3 (seeds 7 and 11); its row warms up for 20, the Qwen bases 10."""
    from qfnb.protocol.console.train_modes import defaults_for

    assert defaults_for("RFT", "Gemma-3-270M")["warmStartSteps"] == 20
    assert defaults_for("RFT", "Qwen2.5-Coder-0.5B-Instruct")["warmStartSteps"] == 10
    assert defaults_for("RFT", "Gemma-3-270M")["learningRate"] == defaults_for("RFT")["learningRate"] == 5e-4


def test_rfts_degenerate_floor_is_a_flag_at_every_door() -> None:
    """``floorDegenerate`` (RFT: a degenerate sampled answer earns its group's lowest reward): on in the mode
    table's defaults, a true/false flag that the table, TrainConfig, the console and the OpenAI door check alike."""
    from qfnb.local.domain.state.values import BodyError
    from qfnb.local.domain.training import openai_fine_tuning as fine_tuning
    from qfnb.local.domain.training.fine_tunes import check_hyper
    from qfnb.local.training.spec import SpecError, parse_hyper
    from qfnb.protocol.console.train_modes import defaults_for

    assert defaults_for("RFT")["floorDegenerate"] is True and "floorDegenerate" not in defaults_for("DPO")
    assert hyper_problem("floorDegenerate", "yes") is not None and hyper_problem("floorDegenerate", False) is None
    with pytest.raises(BodyError, match=r"^hyperParameterConfig\.floorDegenerate: must be true or false"):
        check_hyper({"floorDegenerate": 1}, "hyperParameterConfig", "RFT")
    with pytest.raises(SpecError, match="floorDegenerate"):
        parse_hyper({"floorDegenerate": "no"})
    assert parse_hyper({"floorDegenerate": False}).floor_degenerate is False
    with pytest.raises(ValidationError, match="floor_degenerate"):
        TrainConfig(floor_degenerate="maybe")
    assert TrainConfig(floor_degenerate=False).hyper_parameters() == {"floorDegenerate": False}
    assert fine_tuning._hyper("reinforcement", {"floor_degenerate": False}, "h", 42)["floorDegenerate"] is False
    assert fine_tuning._hyper("reinforcement", {}, "h", 42)["floorDegenerate"] is True
    with pytest.raises(BodyError) as refused:
        fine_tuning._hyper("reinforcement", {"floor_degenerate": "off"}, "method.reinforcement.hyperparameters", 42)
    assert refused.value.field == "method.reinforcement.hyperparameters.floor_degenerate"
    with pytest.raises(BodyError, match=r"floor_degenerate.*is not a dpo hyperparameter"):
        fine_tuning._hyper("dpo", {"floor_degenerate": True}, "method.dpo.hyperparameters", 42)
