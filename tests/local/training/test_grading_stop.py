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
