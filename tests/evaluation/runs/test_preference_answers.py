"""Each held-out pair decided by the answers (:mod:`qfnb.evaluation.runs.preference_answers`): degeneration
before any score, the user's measure (a function or an evaluator), a judge, the resemblance default."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qfnb.evaluation.evaluators.metrics import FunctionEvaluator
from qfnb.evaluation.evaluators.pairwise import PairwiseJudge
from qfnb.evaluation.runs.preference_answers import Answers, judge_answers_of, measure_of, resemblance
from qfnb.protocol.console import degeneration, train_formats


def pair(i: int, chosen: str = "Thanks for writing in; we are on it. [Ticket #{i}]",
         rejected: str = "Not our problem, figure it out yourself.") -> train_formats.Pair:
    return train_formats.Pair(({"role": "user", "content": f"My order {i} is late"},), chosen.format(i=i), rejected)


def answers(texts: list[str], pairs: list[train_formats.Pair]) -> Answers:
    reasons: list[str | None] = ["stop"] * len(texts)
    return Answers(texts, reasons, degeneration.judge_answers(texts, finish_reasons=reasons,
                                                              references=[p.chosen for p in pairs]))


def decide(tuned: list[str], base: list[str], metric: Any = None, judge: Any = None) -> list[Any]:
    held = [pair(i) for i in range(len(tuned))]
    return asyncio.run(judge_answers_of(held, answers(tuned, held), answers(base, held), measure_of(metric), judge))


def has_ticket(prompt: str, answer: str) -> float:
    return float("Ticket #" in answer)


def test_a_degenerate_answer_loses_whatever_the_metric_says() -> None:
    tuned = ["Thanks for writing; order 0 ships today. [Ticket #0]", "[Ticket #1][Ticket #1][Ticket #1][Ticket #1]",
             "Thanks for writing; order 2 ships Monday. [Ticket #2]"]
    base = ["Order 0 ships today, sorry for the wait.", "Order 1 ships today, sorry for the wait.",
            "Order 2 ships Monday, sorry for the wait."]
    out = decide(tuned, base, metric=has_ticket)
    assert [a.outcome for a in out] == [1.0, 0.0, 1.0]
    assert [a.decided_by for a in out] == ["has_ticket", "degeneration", "has_ticket"]
    assert out[1].tuned_degenerate and out[1].tuned_score == 1.0  # the metric liked it; it lost anyway
    both_bad = decide(["ok ok ok ok ok ok"], ["no no no no no no"], metric=has_ticket)
    assert both_bad[0].outcome == 0.5 and both_bad[0].decided_by == "tie"


def test_a_metric_is_a_function_of_two_or_three_arguments_or_an_evaluator() -> None:
    tuned, base = ["Sorry, order 0 ships today. [Ticket #0]"], ["Order 0 ships today, sorry for the wait."]
    seen: list[Any] = []

    def with_pair(prompt: str, answer: str, held: train_formats.Pair) -> float:
        seen.append((prompt, held.chosen))
        return float(held.chosen[-3:] in answer)

    assert decide(tuned, base, metric=with_pair)[0].outcome == 1.0
    assert seen[0] == ("My order 0 is late", "Thanks for writing in; we are on it. [Ticket #0]")
    evaluator = FunctionEvaluator(lambda input, reference, output: float("Ticket" in output), name="ticket")
    judged = decide(tuned, base, metric=evaluator)[0]
    assert (judged.outcome, judged.decided_by, judged.tuned_score, judged.base_score) == (1.0, "ticket", 1.0, 0.0)

    def broken(prompt: str, answer: str) -> Any:
        return "yes"

    with pytest.raises(Exception, match="metric: 'broken' gave 'yes'"):
        decide(tuned, base, metric=broken)


def test_a_judge_decides_what_the_metric_leaves_tied_and_resemblance_decides_alone() -> None:
    def judge(prompt: str) -> str:  # prefers the answer that apologises
        a, b = prompt.split("【回答 A / answer A】")[1].split("【回答 B / answer B】")
        return "Winner: A" if "Sorry" in a else "Winner: B" if "Sorry" in b else "Winner: tie"

    tuned, base = ["Sorry, order 0 ships today, thanks."], ["Order 0 ships today, thanks for waiting."]
    out = decide(tuned, base, metric=has_ticket, judge=PairwiseJudge(judge, tag="apology-judge"))[0]
    assert (out.outcome, out.decided_by, out.judge_outcome) == (1.0, "the judge", 1.0)
    # no metric, no judge: the answer nearer the preferred one wins, in Chinese as in English
    near = decide(["Thanks for writing in; order 0 is on its way. [Ticket #0]"],
                  ["Not our problem: order 0 is with the courier, figure it out."])[0]
    assert (near.outcome, near.decided_by) == (1.0, "resemblance")
    zh = train_formats.Pair(({"role": "user", "content": "订单晚了"},), "非常抱歉,我们马上处理。[工单 #12]",
                            "不关我们的事。")
    assert resemblance(zh, "抱歉,我们马上处理。[工单 #7]") > 0 > resemblance(zh, "这不关我们的事。")
