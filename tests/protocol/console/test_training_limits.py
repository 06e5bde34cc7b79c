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
    from qfnb.local.domain.console import check_hyper
    from qfnb.local.domain.values import BodyError

    assert check_hyper({"batchSize": 256}, "hyper")["batchSize"] == 256
    with pytest.raises(BodyError, match="batchSize"):
        check_hyper({"batchSize": 257}, "hyper")
    assert set(LIMITS) >= {"epoch", "learningRate", "batchSize", "maxSteps"}


def test_train_config_types_follow_the_limits() -> None:
    """A bounded hyperparameter's type is the limit's kind (``lora_alpha`` was an int while the
    limits accepted any number >= 1e-3): a float the platform accepts is a valid TrainConfig."""
    from qfnb.trainer.train_config import _camel

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
