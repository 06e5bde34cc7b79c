"""Each magic's typed arguments (:mod:`qfnb.notebook.arguments`): one frozen field per option of its
parser (a group of generated options as one typed sub-object), built once from the parsed line."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from qfnb.notebook._ipython import magic_parser
from qfnb.notebook.arguments import BatchArgs, ChatArgs, EvalArgs, ImageArgs, TrainArgs
from qfnb.notebook.data.batch import BatchMagics
from qfnb.notebook.magic_options import ImageOptions, TrainOptions
from qfnb.notebook.magics import QfnbMagics
from qfnb.notebook.sampling import SamplingOptions

GROUPS = (SamplingOptions, ImageOptions, TrainOptions)

MAGICS: list[tuple[Any, type[Any]]] = [
    (QfnbMagics.qfchat, ChatArgs),
    (QfnbMagics.qftrain, TrainArgs),
    (QfnbMagics.qfeval, EvalArgs),
    (QfnbMagics.qfimage, ImageArgs),
    (BatchMagics.qfbatch, BatchArgs),
]


def _options(cls: type[Any]) -> set[str]:
    """The option ``dest`` s a typed-arguments class reads, its groups' flattened."""
    names: set[str] = set()
    for f in dataclasses.fields(cls):
        group = next((g for g in GROUPS if f.type == g.__name__ or f.type is g), None)
        names |= {g.name for g in dataclasses.fields(group)} if group is not None else {f.name}
    return names


@pytest.mark.parametrize(("magic", "cls"), MAGICS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_option_of_a_magic_is_one_typed_field(magic: Any, cls: type[Any]) -> None:
    dests = {action.dest for action in magic_parser(magic)._actions if action.dest != "help"}
    assert _options(cls) == dests


@pytest.mark.parametrize(("magic", "cls"), MAGICS, ids=lambda v: getattr(v, "__name__", ""))
def test_the_typed_arguments_are_frozen_and_slotted(magic: Any, cls: type[Any]) -> None:
    args = cls.of(magic_parser(magic).parse_args([]))
    assert not hasattr(args, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        args.output = "x"


def test_a_parsed_chat_line_is_typed_once() -> None:
    ns = magic_parser(QfnbMagics.qfchat).parse_args(["-m", "a,b", "-m", "c", "-t", "0.5", "--max-tokens", "9",
                                                     "--mcp", "npx server", "-o", "out", "--continue"])
    args = ChatArgs.of(ns)
    assert args.model == ("a,b", "c") and args.mcp == ("npx server",) and args.output == "out" and args.carry
    assert args.sampling == SamplingOptions(temperature=0.5, max_output_tokens=9)
    assert args.max_steps == 5 and args.command == ()


def test_a_train_line_s_hyperparameters_are_one_group() -> None:
    args = TrainArgs.of(magic_parser(QfnbMagics.qftrain).parse_args(["--epochs", "2", "--lr", "0.001"]))
    assert args.hyper == TrainOptions(epochs=2, lr=0.001)
    assert args.recipe
    assert not TrainArgs.of(magic_parser(QfnbMagics.qftrain).parse_args(["-o", "form"])).recipe


def test_a_train_line_s_target_reaches_the_trainer_and_a_bad_one_names_the_option(tmp_path: Any) -> None:
    from IPython.core.error import UsageError

    from qfnb.notebook.training.run import TrainSpec, default_trainer

    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n', encoding="utf-8")
    line = ["--base", "Tiny-Chat", "--dataset", str(data), "--target", "ray://127.0.0.1:8265"]
    parse = magic_parser(QfnbMagics.qftrain).parse_args
    spec = TrainSpec.from_args(TrainArgs.of(parse([*line, "--ray-workers", "2"])), eval_metric=None)
    assert (str(spec.target), spec.ray_workers) == ("ray://127.0.0.1:8265", 2)  # parsed once, at the line
    trainer = default_trainer(spec, None)  # what %qftrain runs: the target goes to the platform with the task
    assert str(trainer.target) == "ray://127.0.0.1:8265" and trainer.ray_workers == 2
    assert trainer.train_action.train_extras == {"target": "ray://127.0.0.1:8265", "rayTrainWorkers": 2}
    one = default_trainer(TrainSpec.from_args(TrainArgs.of(parse(line)), eval_metric=None), None)
    assert one.train_action.train_extras == {"target": "ray://127.0.0.1:8265", "rayTrainWorkers": 1}  # the default
    with pytest.raises(UsageError, match=r"--target.*malformed"):
        TrainSpec.from_args(TrainArgs.of(parse([*line[:-1], "ray://head"])), eval_metric=None)
    with pytest.raises(UsageError, match=r"--ray-workers must be at least 1, got 0"):
        TrainSpec.from_args(TrainArgs.of(parse([*line, "--ray-workers", "0"])), eval_metric=None)
