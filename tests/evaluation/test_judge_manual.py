"""LLM-as-judge (grades the output, not the reference; robust score parsing) and manual scoring."""

from __future__ import annotations

import pytest

from qfnb.evaluation import LocalJudgeEvaluator, ManualEvaluator, parse_judge_score
from qfnb.evaluation.base import Sample
from qfnb.protocol import ProtocolError


@pytest.mark.parametrize(("reply", "expected"), [
    ("评分: 4\n原因: 基本正确", 4.0),
    ("评分：5 原因：完全一致", 5.0),
    ('{"reason": "ok", "score": "3"}', 3.0),
    ("Score = 2.5 because it is partly right", 2.5),
    ("I would rate this 4/5.", 4.0),
    ("综合来看给3分。", 3.0),
    ("4", 4.0),
    ("评分: 9\n", None),  # out of range
    ("no number here", None),
    ("The answer mentions 1999 and 2024 but no score", None),
])
def test_parse_judge_score(reply: str, expected: float | None) -> None:
    assert parse_judge_score(reply, max_score=5) == expected


class RecordingJudge:
    """A test-double judge: gives 5 if the graded answer contains 'Paris', else 1."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        answer = prompt.split("【待评估的回答 / answer to grade】")[1].split("【标准答案")[0]
        return "评分: 5\n原因: 正确" if "Paris" in answer else "评分: 1\n原因: 错误"


async def test_judge_grades_the_output_not_the_reference() -> None:
    judge = RecordingJudge()
    ev = LocalJudgeEvaluator(judge, metric_name="judge")
    got = await ev.aevaluate_many([
        Sample(0, "m", "Capital of France?", "Paris", "It is Paris."),
        Sample(1, "m", "Capital of France?", "Paris", "It is Lyon."),
    ])
    assert [g["judge"] for g in got] == [5.0, 1.0]  # judging the reference would give 5 twice
    assert got[1]["judge_judgement"].startswith("评分: 1")
    assert "It is Lyon." in judge.prompts[1] and "Capital of France?" in judge.prompts[1]


async def test_judge_handles_failures_and_unparsable_replies() -> None:
    calls = iter(["I cannot decide", RuntimeError("judge down")])

    def flaky(prompt: str) -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    ev = LocalJudgeEvaluator(flaky, concurrency=1)
    got = await ev.aevaluate_many([Sample(0, "m", "q", "r", "a"), Sample(1, "m", "q", "r", "b")])
    assert got[0] == {"judge_score": None, "judge_score_judgement": "I cannot decide"}
    assert got[1]["judge_score"] is None and "judge down" in got[1]["judge_score_judgement"]


def test_judge_prompt_keeps_literal_braces() -> None:
    ev = LocalJudgeEvaluator(lambda p: "4", evaluation_prompt='JSON {"a": 1} Q={prompt} A={response}')
    assert ev.build_prompt("x {y}", "ref", "out {z}") == 'JSON {"a": 1} Q=x {y} A=out {z}'


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"prompt_max_score": 0}, "prompt_max_score"),
    ({"evaluation_prompt": "no placeholder"}, "evaluation_prompt"),
    ({"metric_name": ""}, "metric_name"),
])
def test_judge_rejects_bad_config(kwargs: dict, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        LocalJudgeEvaluator(lambda p: "1", **kwargs)
    assert info.value.field == field


async def test_manual_with_scorer() -> None:
    ev = ManualEvaluator(lambda i, r, o: 3 if o == r else 1, dimensions=["quality"])
    got = await ev.aevaluate_many([Sample(0, "m", "q", "a", "a"), Sample(1, "m", "q", "a", "b")])
    assert got == [{"quality": 3.0}, {"quality": 1.0}]


async def test_manual_scorer_out_of_range_is_rejected() -> None:
    ev = ManualEvaluator(lambda i, r, o: 7, max_score=5)
    with pytest.raises(ProtocolError, match="outside"):
        await ev.aevaluate_many([Sample(0, "m", "q", "a", "a")])


async def test_manual_queue_and_submit() -> None:
    ev = ManualEvaluator(dimensions=["满意度", "fluency"])
    got = await ev.aevaluate_many([Sample(0, "m1", "q", "r", "o1"), Sample(0, "m2", "q", "r", "o2")])
    assert got == [{"满意度": None, "fluency": None}] * 2
    assert [i.id for i in ev.pending()] == ["m1:0", "m2:0"]
    ev.submit("m1:0", 满意度=4, fluency=5)
    assert [i.id for i in ev.pending()] == ["m2:0"]
    assert ev.score_of("m1", 0) == {"满意度": 4.0, "fluency": 5.0}
    with pytest.raises(ProtocolError, match="name the dimension"):
        ev.submit("m2:0", 3)
    with pytest.raises(ProtocolError, match="unknown dimension"):
        ev.submit("m2:0", style=3)
    with pytest.raises(ProtocolError, match="no queued item"):
        ev.submit("nope:1", 满意度=3)


def test_manual_rejects_bad_config() -> None:
    with pytest.raises(ProtocolError, match="dimension"):
        ManualEvaluator(dimensions=[])
    with pytest.raises(ProtocolError, match="duplicate"):
        ManualEvaluator(dimensions=["a", "a"])
    with pytest.raises(ProtocolError, match="max_score"):
        ManualEvaluator(min_score=5, max_score=5)
