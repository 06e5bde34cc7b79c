"""Issue 92 §1: a RFT grader is bounded. A 2 MiB grader (stored with the job, returned whole by every listing)
and a template naming more fields than the cap are refused naming the field, on the console's reward and
OpenAI's grader alike; a similarity metric compares at most ``MAX_SCORED_CHARS`` of each text, so rouge_l
(quadratic) on a 100,000-character reference takes milliseconds, not minutes."""

from __future__ import annotations

import time

import pytest

from qfnb.protocol.console import rewards
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.openai.graders import check_grader

SIMILAR = {"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
           "evaluation_metric": "rouge_l"}


def test_a_two_mib_grader_is_refused_on_both_doors() -> None:
    big = {**SIMILAR, "name": "n" * (2 << 20)}
    with pytest.raises(rewards.RewardSpecError, match=r"^reward: is \d+ bytes as JSON; a grader is at most 4096"):
        rewards.parse_reward(big)
    with pytest.raises(ProtocolError, match=r"^method.reinforcement.grader: is \d+ bytes as JSON"):
        check_grader(big, "method.reinforcement.grader")


def test_a_template_naming_too_many_fields_is_refused() -> None:
    many = {**SIMILAR, "reference": "{{item.answer}}" * 9}
    with pytest.raises(rewards.RewardSpecError, match=r"^reward.reference: names more than 8"):
        rewards.parse_reward(many)
    with pytest.raises(ProtocolError, match=r"^grader.reference: names more than 8"):
        check_grader(many)
    assert rewards.parse_reward({**SIMILAR, "reference": "{{item.answer}}" * 8}).grader is not None


@pytest.mark.parametrize("metric", ["rouge_l", "fuzzy_match", "bleu"])
def test_a_long_reference_is_scored_in_milliseconds(metric: str) -> None:
    words = " ".join(f"word{i % 997}" for i in range(20_000))  # ~170,000 characters
    grader = {**SIMILAR, "evaluation_metric": metric}
    rewards.grade(grader, "warm", {"answer": "up"})  # the metric's library loaded (seconds, once)
    started = time.perf_counter()
    score = rewards.grade(grader, words[:5000], {"answer": words})
    elapsed = time.perf_counter() - started
    assert 0.0 < score <= 1.0 + 1e-9
    assert elapsed < 1.0, elapsed  # the whole texts: rouge_l's table alone would be 4e8 cells


def test_the_cut_is_the_same_for_both_texts() -> None:
    text = "a b c " * 2000
    grader = {**SIMILAR, "evaluation_metric": "rouge_l"}
    assert rewards.grade(grader, text, {"answer": text}) == pytest.approx(1.0)
