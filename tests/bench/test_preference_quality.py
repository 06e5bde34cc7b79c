"""bench/preference_quality.py's answers on the chat formats of both local base families (Gemma's turn markers,
Qwen's ChatML): a base taught to answer ends its answer at its own end marker, the bench reads it whole and not
cut, and the style judge reads those answers as the docs' table says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench import preference_quality as bench

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

TAUGHT = [("Can I pause my plan?", "Yes, in Settings. [Ticket #1234]"),
          ("Where is my parcel?", "It ships today, sorry for the wait.")]


@pytest.fixture(scope="module", params=["gemma", "qwen"])
def answering_base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import build_tiny_gemma, build_tiny_qwen, teach_answers

    build = build_tiny_gemma if request.param == "gemma" else build_tiny_qwen
    return Path(teach_answers(build(tmp_path_factory.mktemp(request.param) / "model"), TAUGHT, steps=60))


def test_the_answers_end_at_the_chat_end_marker_on_both_chat_formats(answering_base: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    answers = bench.generate(answering_base, None, [p for p, _ in TAUGHT], max_new=80)
    assert answers.texts == [a for _, a in TAUGHT]
    assert answers.cut == [False, False]
    assert torch.get_num_threads() == threads  # the generation's one thread is not left behind
    read = bench.read(answers, [a for _, a in TAUGHT])
    assert read["content"] == 1.0  # each answer is its reference, word for word
    # the first adopts the style; the second has no reference: not adopted, and not degenerate either
    assert read["style"] == [True, False] and read["degeneration"] == 0.0


def test_a_cap_that_cuts_the_answer_is_read_as_degenerate(answering_base: Path) -> None:
    answers = bench.generate(answering_base, None, [TAUGHT[1][0]], max_new=4)
    assert answers.cut == [True]
    assert bench.read(answers, [TAUGHT[1][1]])["degeneration"] == 1.0


def test_an_answer_that_earns_the_reward_but_says_nothing_is_not_the_style() -> None:
    """``可能。[Ticket #2339]`` ("maybe", what a RFT run on the reward "ticket + short" wrote to 7 of 10 Chinese
    prompts) is short and holds a reference: the reward's best, not the team's style."""
    assert bench.reward("可能。[Ticket #2339]") == 1.0
    assert not bench.adopted("可能。[Ticket #2339]", degenerate=False)
    assert not bench.adopted("Sorry. [Ticket #1000]", degenerate=False)
    assert bench.adopted("可以，在“设置-语言”切换。[Ticket #8009]", degenerate=False)
    assert bench.adopted("Yes, in Settings. [Ticket #1234]", degenerate=False)
    assert not bench.adopted("Yes, in Settings. [Ticket #1234]", degenerate=True)


def test_the_content_grader_prefers_the_answer_to_the_reward_s_gamed_forms() -> None:
    """``--reward-grader``'s multi grader, as the worker scores it: a ticket reference alone no longer earns the
    most; an answer that says what the team would say does."""
    from qfnb.protocol.console.rewards import grade, parse_reward

    assert parse_reward(bench.CONTENT_GRADER).grader is not None  # the platform takes it
    item = {"response": "可以，在“设置-语言”里选择中文即可。[Ticket #1234]"}
    gamed = grade(bench.CONTENT_GRADER, "可能。[Ticket #2339]", item)
    said = grade(bench.CONTENT_GRADER, "可以，在设置里选择语言即可。[Ticket #8888]", item)
    assert bench.reward("可能。[Ticket #2339]") == 1.0 and gamed < 0.65 < said


def test_validation_holds_training_pairs_out_as_the_platform_splits_and_never_the_test_pairs(tmp_path: Path) -> None:
    """By default (as the platform does for a DPO request naming no split) a fifth of the training pairs become
    the run's validation data, drawn as the platform draws its split, its checkpoints judged on them; the set's
    held-out (test) pairs are given to no run."""
    from tiny_models import build_tiny_gemma

    data = bench.load_set("en")
    run = bench.train(tmp_path, build_tiny_gemma(tmp_path / "model"), "Gemma-3-270M", "DPO", data,
                      {"maxSteps": 2, "batchSize": 4, "maxSeqLen": 64})
    job = next(tmp_path.glob("DPO-*"))
    trained = (job / "train.jsonl").read_text("utf-8").splitlines()
    valid = (job / "eval.jsonl").read_text("utf-8").splitlines()
    assert len(trained) == 32 and len(valid) == 8 and run["validation_rows"] == 8
    assert not set(trained) & set(valid)
    prompts = {r["prompt"] for r in data["held_out"]}
    assert not any(any(p in line for p in prompts) for line in trained + valid)
    assert run["hyper"]["checkpoints"] == 5 and run["status"] in ("Done", "Failed")
