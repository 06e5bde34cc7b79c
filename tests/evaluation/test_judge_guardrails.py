"""Judges with guardrails: no self-judging, both orders, versioned rubric, reference only when allowed."""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats as sp

from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator, LocalJudgeEvaluator, RougeEvaluator
from qfnb.evaluation.evaluators.pairwise import PairwiseJudge, combine, parse_winner
from qfnb.evaluation.evaluators.rubric import Rubric, pairwise_rubric
from qfnb.evaluation.llm import embedded_chat
from qfnb.resources import ChatCompletion

DATA = [{"prompt": f"q{i}", "response": f"the answer is {i}"} for i in range(8)]


def good(prompt: str) -> str:
    return f"the answer is {prompt[1:]}"


def bad(prompt: str) -> str:
    return "no idea"


class Recorder:
    """A judge double: records every prompt, answers with ``reply(prompt)``."""

    def __init__(self, reply: Any) -> None:
        self.prompts: list[str] = []
        self.reply = reply

    def __call__(self, prompt: str, **kwargs: Any) -> str:
        self.prompts.append(prompt)
        return self.reply(prompt)


def test_a_judge_that_is_a_candidate_is_refused_before_any_call() -> None:
    judge = Recorder(lambda p: "评分: 5")
    em = EvaluationManager(local_evaluators=[LocalJudgeEvaluator(judge)])
    with pytest.raises(ValueError, match="also a candidate"):
        em.eval({"judge": judge, "other": bad}, DATA)
    assert judge.prompts == []
    # the same model behind two objects and two tags
    em = EvaluationManager(local_evaluators=[LocalJudgeEvaluator(ChatCompletion(model="ERNIE-Speed-8K"))])
    with pytest.raises(ValueError, match=r"judge.*'tuned'"):
        em.eval({"tuned": ChatCompletion(model="ERNIE-Speed-8K")}, DATA)
    # and in a pairwise comparison
    res = EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval({"base": bad, "tuned": good}, DATA)
    with pytest.raises(ValueError, match="also a candidate"):
        res.compare("tuned", "base", judge=PairwiseJudge(good))


def test_pairwise_judge_preferring_position_a_decides_nothing() -> None:
    judge = Recorder(lambda p: "Winner: A\nReason: it comes first")
    res = EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval({"base": bad, "tuned": good}, DATA)
    cmp = res.compare("tuned", "base", judge=PairwiseJudge(judge, tag="position-a"))
    assert len(judge.prompts) == 16  # 8 pairs x both orders
    row = cmp.row("tuned", "judge:position-a")
    assert (row.n, row.excluded, row.wins, row.ties, row.losses) == (0, 8, 0, 0, 0)
    assert row.verdict == "too few items" and "8 item(s) judged inconsistently" in row.sentence
    assert cmp.items["tuned"]["position_bias"].tolist() == [True] * 8
    assert any("order-consistency 0 of 8 pairs (0%)" in n and "8 of 8 pairs changed verdict with the order" in n
               for n in cmp.notes)
    # the exact-match difference is real (8 flips); the judge's row must not hide that
    assert cmp.row("tuned", "accuracy").verdict == "better"


def test_pairwise_judge_decides_only_on_the_pairs_it_judged_the_same_in_both_orders() -> None:
    """Items 0-4: the judge reads the answers (consistent); 5-6: it picks position A (inconsistent);
    7: an unreadable reply. The row's n, wins and test count only items 0-4."""
    def mixed(prompt: str) -> str:
        ref = prompt.split("【标准答案 / reference answer】\n", 1)[1].split("\n", 1)[0]
        item = int(ref.rsplit(" ", 1)[1])  # "the answer is 3"
        if item == 7:
            return "I cannot decide."
        if item in (5, 6):
            return "Winner: A"
        a = prompt.split("【回答 A / answer A】\n", 1)[1].split("\n", 1)[0]
        return "Winner: A" if a == ref else "Winner: B"

    res = EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval({"base": bad, "tuned": good}, DATA)
    cmp = res.compare("tuned", "base", judge=PairwiseJudge(Recorder(mixed), tag="mixed"))
    row = cmp.row("tuned", "judge:mixed")
    assert (row.n, row.excluded, row.wins, row.ties, row.losses) == (5, 3, 5, 0, 0)
    assert row.p_value == pytest.approx(sp.binomtest(5, 5, 0.5).pvalue)  # the exact sign test on 5 pairs
    note = next(n for n in cmp.notes if "order-consistency" in n)
    assert "order-consistency 5 of 8 pairs (62%)" in note and "2 of 8 pairs changed verdict with the order" in note
    assert "1 had an unreadable reply" in note


def test_pairwise_judge_that_reads_the_answers_decides_in_both_orders() -> None:
    def fair(prompt: str) -> str:  # prefers whichever answer matches the reference it is shown
        ref = prompt.split("【标准答案 / reference answer】\n", 1)[1].split("\n", 1)[0]
        a = prompt.split("【回答 A / answer A】\n", 1)[1].split("\n", 1)[0]
        return "Winner: A" if a == ref else "Winner: B"

    judge = Recorder(fair)
    res = EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval({"base": bad, "tuned": good}, DATA)
    cmp = res.compare("tuned", "base", judge=PairwiseJudge(judge, tag="fair"))
    row = cmp.row("tuned", "judge:fair")
    assert (row.wins, row.ties, row.losses) == (8, 0, 0) and row.verdict == "better"
    assert row.p_value == pytest.approx(sp.binomtest(8, 8, 0.5).pvalue)  # the exact sign test
    assert "judge:fair agrees with accuracy on 8 of 8 items where both pick a winner." in cmp.notes
    # half the prompts show the tuned answer first, half the base answer
    firsts = [p.split("【回答 A / answer A】\n", 1)[1].split("\n", 1)[0] for p in judge.prompts]
    assert sum(f == "no idea" for f in firsts) == 8


def test_verdicts_combine() -> None:
    assert combine("A", "B").value == 1 and combine("B", "A").value == -1
    assert combine("A", "A").value == 0 and combine("A", "A").position_bias
    assert combine("tie", "tie").value == 0 and not combine("tie", "tie").position_bias
    assert combine(None, "B").value == 0
    assert [parse_winner(t) for t in ("Winner: B", "winner：**A**", "胜者: 平局", "B", "I like both")] == [
        "B", "A", "tie", "B", None]


def test_rubric_hash_is_stored_and_tracks_every_field() -> None:
    judge = LocalJudgeEvaluator(Recorder(lambda p: "评分: 4"))
    res = EvaluationManager(local_evaluators=[judge]).eval({"tuned": good}, DATA)
    assert res.judges == [{"metric": "judge_score", "judge": "Recorder", "rubric": "default", "rubric_version": "1",
                           "rubric_hash": judge.rubric.hash, "uses_reference": True, "scale": [0, 5]}]
    other = LocalJudgeEvaluator(Recorder(lambda p: "评分: 4"), criteria="only correctness")
    assert other.rubric.hash != judge.rubric.hash and len(judge.rubric.hash) == 16
    assert LocalJudgeEvaluator(Recorder(str)).rubric.hash == judge.rubric.hash  # same rubric, same hash
    assert pairwise_rubric().hash != pairwise_rubric(uses_reference=False).hash


def test_the_judge_sees_the_reference_only_when_the_rubric_says_so() -> None:
    seen = Recorder(lambda p: "评分: 3")
    EvaluationManager(local_evaluators=[LocalJudgeEvaluator(seen)]).eval({"tuned": good}, DATA[:2])
    refs = [p.split("【标准答案 / reference answer】（没有标准答案时为空）\n", 1)[1].split("\n", 1)[0]
            for p in seen.prompts]
    assert sorted(refs) == ["the answer is 0", "the answer is 1"]
    blind = Recorder(lambda p: "评分: 3")
    judge = LocalJudgeEvaluator(blind, uses_reference=False)
    EvaluationManager(local_evaluators=[judge]).eval({"tuned": bad}, DATA[:2])
    assert blind.prompts and not any("the answer is" in p or "标准答案" in p for p in blind.prompts)
    assert judge.judge_info()["uses_reference"] is False
    pw = Recorder(lambda p: "Winner: tie")
    res = EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval({"base": bad, "tuned": bad}, DATA[:2])
    res.compare("tuned", "base", judge=PairwiseJudge(pw, uses_reference=False))
    assert pw.prompts and not any("the answer is" in p for p in pw.prompts)
    with pytest.raises(ValueError, match="uses_reference"):
        Rubric("r", "{response} vs {reference}", uses_reference=False)
    with pytest.raises(ValueError, match="uses_reference"):
        LocalJudgeEvaluator(bad, evaluation_prompt="grade {response} against {reference}", uses_reference=False)


def test_judge_agreement_with_a_reference_metric() -> None:
    def by_length(prompt: str) -> str:  # a judge that scores longer answers higher
        answer = prompt.split("【待评估的回答 / answer to grade】\n", 1)[1].split("\n", 1)[0]
        return f"评分: {min(5, len(answer) // 3)}"

    res = EvaluationManager(local_evaluators=[RougeEvaluator(), LocalJudgeEvaluator(by_length)]).eval(
        {"tuned": good, "base": bad, "half": lambda p: "the answer" if int(p[1:]) % 2 else good(p)}, DATA)
    table = res.judge_agreement().set_index("metric")
    s = res.samples
    assert table.loc["rouge_l", "spearman"] == pytest.approx(sp.spearmanr(s["judge_score"], s["rouge_l"]).statistic)
    assert table.loc["rouge_l", "n"] == 24
    notes = res.compare("tuned", "base").notes
    assert any(n.startswith("judge_score agrees with rouge_l: Spearman") for n in notes)
    assert any("rubric default v1 #" in n for n in notes)


def test_default_judge_runs_on_the_embedded_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_AK", "cloud-ak")
    monkeypatch.setenv("QIANFAN_SK", "cloud-sk")
    assert ChatCompletion()._base_config.is_configured  # the user's own calls go to the cloud
    judge = LocalJudgeEvaluator()
    assert judge.judge_target.source._base_config.is_configured is False  # the judge: the local platform
    assert embedded_chat("Gemma-3-270M")._base_config.is_configured is False
    assert PairwiseJudge().judge_target.source._base_config.is_configured is False


def test_a_bare_judge_beside_a_v2_key_names_the_embedded_platforms_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a v2 key set, the bare judge asked the local platform for the v2 default model
    (``ernie-4.5-turbo-128k``): "unknown model ... not in the built-in catalog", on every item."""
    from qfnb.protocol.console.model_names import LOCAL_DEFAULT_MODELS, V2_DEFAULT_MODEL

    monkeypatch.setenv("QIANFAN_API_KEY", "bce-v3/ALTAK-abc/def")
    monkeypatch.setattr("qfnb.evaluation.llm.read_runtime", lambda: None)  # no daemon running: none started
    assert ChatCompletion()._default_model() == V2_DEFAULT_MODEL  # the user's own calls: the cloud's default
    for judge in (LocalJudgeEvaluator(), PairwiseJudge()):
        chat = judge.judge_target.source
        assert chat._model == LOCAL_DEFAULT_MODELS["chat"] and chat._base_config.is_configured is False
