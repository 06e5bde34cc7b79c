"""Issue 92 §1: a cancel stops a grading worker within seconds. A declarative grader scores a step's samples one
at a time and hears the stop between two (each bounded by ``MAX_SCORED_CHARS``): 2,000 long samples stopped
after 0.2 s end in well under a second (the probe waited 194 s)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from qfnb.local.training.rewards import RewardExchange, RewardSample, RewardsStopped
from qfnb.protocol.console.rewards import RewardSpec

GRADER = {"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
          "evaluation_metric": "rouge_l"}


def test_a_stop_during_grading_ends_it_within_a_second(tmp_path: Path) -> None:
    stop = threading.Event()
    exchange = RewardExchange(tmp_path, RewardSpec(grader=GRADER), stop.is_set)
    long = " ".join(f"w{i}" for i in range(3000))
    samples = [RewardSample("q", long, {"answer": long}) for _ in range(2000)]
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(RewardsStopped):
        exchange.score(samples, step=1)
    assert time.monotonic() - started < 1.5


def test_grading_without_a_stop_scores_every_sample(tmp_path: Path) -> None:
    exchange = RewardExchange(tmp_path, RewardSpec(grader=GRADER))
    got = exchange.score([RewardSample("q", "a b", {"answer": "a b"}), RewardSample("q", "x", {"answer": "a b"})],
                         step=1)
    assert got == [pytest.approx(1.0), 0.0]


def test_a_grader_reads_the_row_s_own_answer_as_item_response(tmp_path: Path) -> None:
    """A prompt/response line's response (kept out of the fields: it is the warm start's answer) is the
    grader's ``{{item.response}}``; a field of that name wins; the client's function never sees it."""
    from qfnb.local.training import rft

    (tmp_path / "train.jsonl").write_text('{"prompt": "Say hi", "response": "hi there", "lang": "en"}\n', "utf-8")
    (prompt,) = rft.load_prompts(tmp_path / "train.jsonl")
    assert prompt.answer == "hi there" and "response" not in prompt.fields
    grader = {**GRADER, "reference": "{{item.response}}"}
    exchange = RewardExchange(tmp_path, RewardSpec(grader=grader))
    sample = RewardSample(prompt.text, "hi there", prompt.fields, prompt.answer)
    assert exchange.score([sample], step=1) == [pytest.approx(1.0)]
    assert "hi there" not in str(sample.to_wire()["fields"])
    own = RewardSample("q", "a b", {"response": "a b"}, "something else")
    assert own.grader_item()["response"] == "a b"
