"""A ``multi`` grader (OpenAI's shape): a RFT reward that reads the content as well as the form, run by the
platform without running user code. Its ``calculate_output`` is arithmetic over the graders' scores, parsed
and worked out, never ``eval``-ed; anything else in it is refused naming the field, on both doors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qfnb.local.training.rewards import RewardError, RewardExchange, RewardSample
from qfnb.protocol.console import rewards
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.openai.graders import check_grader

TICKET = {"type": "string_check", "input": "{{sample.output_text}}", "reference": "[Ticket #", "operation": "like"}
CONTENT = {"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "{{item.response}}",
           "evaluation_metric": "rouge_l"}
STYLE_AND_CONTENT = {"type": "multi", "name": "style and content", "graders": {"ticket": TICKET, "content": CONTENT},
                     "calculate_output": "0.5 * ticket + 0.5 * content"}
ITEM = {"response": "可以，在“设置-语言”里选择中文即可。[Ticket #1234]"}


def test_the_content_grader_ranks_an_answer_above_the_answers_that_gamed_the_form_reward() -> None:
    # measured: RFT with 'a ticket reference and short' learned to write these (round 31)
    gamed = [rewards.grade(STYLE_AND_CONTENT, a, ITEM)
             for a in ("可能。[Ticket #2339]", "感谢您的问题。[Ticket #1899]")]
    answer = rewards.grade(STYLE_AND_CONTENT, "可以，在设置里选择语言即可。[Ticket #8888]", ITEM)
    no_reference = rewards.grade(STYLE_AND_CONTENT, "可以，在“设置-语言”里选择中文即可。", ITEM)
    assert answer > max(gamed) + 0.2 and answer > no_reference + 0.2
    content = rewards.grade(CONTENT, "可以，在设置里选择语言即可。[Ticket #8888]", ITEM)
    assert answer == pytest.approx(0.5 + 0.5 * content)  # the formula, as written


@pytest.mark.parametrize(("formula", "value"), [
    ("0.25 * ticket + 0.75 * content", 0.25 + 0.75 * 0.5),
    ("min(ticket, content) ^ 2", 0.25), ("max(ticket, content) ** 2", 1.0), ("-(-ticket)", 1.0),
    ("sqrt(content) * floor(ticket + 0.5)", 0.5 ** 0.5), ("abs(content - 1) + ceil(0.2)", 1.5),
])
def test_the_formula_is_worked_out_as_written(formula: str, value: float) -> None:
    assert rewards.formula_value(formula, {"ticket": 1.0, "content": 0.5}) == pytest.approx(value)


@pytest.mark.parametrize(("formula", "words"), [
    ("__import__('os').system('id')", "may call only min, max"),
    ("ticket.__class__", "holds Attribute"),
    ("ticket if content else 0", "holds IfExp"),
    ("open('x')", "may call only"),
    ("ticket + style", "names 'style', which is not one of the graders (content, ticket)"),
    ("'1' + ticket", "constants are numbers"),
    ("ticket +", "is not a formula"),
    ("", "is required"),
    ("ticket + " * 40 + "1", "a formula is at most 300"),
])
def test_a_formula_that_is_not_arithmetic_over_the_graders_is_refused_on_both_doors(formula: str,
                                                                                   words: str) -> None:
    grader = {**STYLE_AND_CONTENT, "calculate_output": formula}
    with pytest.raises(rewards.RewardSpecError, match=r"^reward\.calculate_output: ") as caught:
        rewards.parse_reward(grader)
    assert words in str(caught.value)
    with pytest.raises(ProtocolError) as refused:
        check_grader(grader, "method.reinforcement.grader")
    assert refused.value.field == "method.reinforcement.grader.calculate_output" and words in str(refused.value)


def test_the_graders_inside_are_checked_and_named() -> None:
    bad_op = {**STYLE_AND_CONTENT, "graders": {"ticket": {**TICKET, "operation": "regex"}, "content": CONTENT}}
    with pytest.raises(rewards.RewardSpecError, match=r"^reward\.graders\.ticket\.operation: must be one of"):
        rewards.parse_reward(bad_op)
    nested = {**STYLE_AND_CONTENT, "graders": {"inner": STYLE_AND_CONTENT}}
    with pytest.raises(ProtocolError) as refused:
        check_grader(nested)
    assert refused.value.field == "grader.graders.inner.type"
    assert "string_check, text_similarity" in str(refused.value)
    with pytest.raises(rewards.RewardSpecError, match=r"^reward\.graders: must be an object of 1 to 8"):
        rewards.parse_reward({**STYLE_AND_CONTENT, "graders": {}})
    with pytest.raises(rewards.RewardSpecError, match=r"^reward\.graders\.min: a grader's name"):
        rewards.parse_reward({**STYLE_AND_CONTENT, "graders": {"min": TICKET}, "calculate_output": "1"})
    with pytest.raises(rewards.RewardSpecError, match=r"^reward\.graders\.if: a grader's name"):
        rewards.parse_reward({**STYLE_AND_CONTENT, "graders": {"if": TICKET}, "calculate_output": "1"})


def test_the_openai_door_keeps_the_fields_it_runs() -> None:
    kept = check_grader({**STYLE_AND_CONTENT, "graders": {"ticket": {**TICKET, "model": "gpt"}, "content": CONTENT}})
    assert kept == STYLE_AND_CONTENT


def test_a_formula_with_no_value_stops_the_run_with_the_reason_and_never_hangs(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match="has no value"):
        rewards.formula_value("9 ^ 9 ^ 9 ^ 9", {"ticket": 1.0})  # floats: an overflow, not a huge integer
    assert time.perf_counter() - started < 0.5
    exchange = RewardExchange(tmp_path, rewards.parse_reward({**STYLE_AND_CONTENT,
                                                              "calculate_output": "ticket / (content - content)"}))
    with pytest.raises(RewardError, match=r"the multi grader 'style and content': calculate_output .* has no value"):
        exchange.score([RewardSample("q", "a [Ticket #1]", ITEM)], step=1)
