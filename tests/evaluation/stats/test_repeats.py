"""repeats=N: each item asked N times; stability report; comparisons with the repeat variance."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator, RougeEvaluator
from qfnb.evaluation.stats import paired as st

DATA = [{"prompt": f"q{i}", "response": f"answer {i}"} for i in range(8)]


class Flaky:
    """Right on items 0-5 every time; on items 6 and 7 right only on its odd-numbered calls for them."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.kwargs: list[dict[str, Any]] = []

    def __call__(self, prompt: str, **kwargs: Any) -> str:
        self.calls[prompt] += 1
        self.kwargs.append(kwargs)
        i = int(prompt[1:])
        if i < 6 or self.calls[prompt] % 2:
            return f"answer {i}"
        return f"answer {i} maybe {self.calls[prompt]}"


def never(prompt: str) -> str:
    return "no"


def test_repeats_ask_every_item_n_times_with_the_users_temperature() -> None:
    flaky = Flaky()
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    res = em.eval({"flaky": flaky}, DATA, repeats=3, temperature=0.8)
    assert flaky.calls == Counter({f"q{i}": 3 for i in range(8)})
    assert all(k == {"temperature": 0.8} for k in flaky.kwargs)
    assert res.repeats == 3 and len(res.samples) == 24
    assert sorted(res.samples["repeat"].unique()) == [0, 1, 2]
    wide = res.samples_df
    assert len(wide) == 8  # one row per item: the mean over repeats
    assert wide["flaky/accuracy"].tolist() == pytest.approx([1, 1, 1, 1, 1, 1, 2 / 3, 2 / 3])
    assert res.metrics["flaky"]["accuracy"] == pytest.approx((6 * 3 + 2 * 2) / 24)


def test_stability_report() -> None:
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    res = em.eval({"flaky": Flaky(), "never": never}, DATA, repeats=3)
    stab = res.stability(seed=1)
    row = stab.summary.set_index("model").loc["flaky"]
    assert row["items"] == 8 and row["inconsistent_items"] == 2
    # runs: repeat 0 and 2 all right (calls 1, 3 are odd), repeat 1 wrong on items 6, 7
    assert (row["run_min"], row["run_max"]) == pytest.approx((6 / 8, 1.0))
    assert row["agreement"] == pytest.approx((6 * 1 + 2 * (2 / 3)) / 8)
    # the CI with the repeat variance, independently: items then repeats resampled
    reps = [res.samples[(res.samples["llm"] == "flaky") & (res.samples["index"] == i)]["accuracy"].to_numpy(float)
            for i in range(8)]
    ci = st.two_level_ci(reps, [[0.0]] * 8, seed=1)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert row["ci_low"] < row["mean"] < row["ci_high"] <= 1.0
    steady = stab.summary.set_index("model").loc["never"]
    assert steady["inconsistent_items"] == 0 and steady["run_sd"] == 0 and steady["agreement"] == 1.0
    bad = stab.inconsistent("flaky")
    assert list(bad["index"]) == [6, 7]
    assert list(bad.loc[0, ["answer_1", "answer_2", "answer_3"]]) == ["answer 6", "answer 6 maybe 2", "answer 6"]
    assert "flaky on accuracy" in repr(stab) and "2 of 8 items inconsistent" in repr(stab)
    assert "Stability over 3 repeats" in stab._repr_html_()


def test_score_tolerance_decides_inconsistency() -> None:
    em = EvaluationManager(local_evaluators=[RougeEvaluator()])
    res = em.eval({"flaky": Flaky()}, DATA, repeats=2)
    assert res.stability(metrics=["rouge_l"]).summary["inconsistent_items"].tolist() == [2]
    assert res.stability(metrics=["rouge_l"], tolerance=0.5).summary["inconsistent_items"].tolist() == [0]


def test_compare_with_repeats_uses_the_two_level_ci() -> None:
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    res = em.eval({"never": never, "flaky": Flaky()}, DATA, repeats=3)
    row = res.compare("flaky", "never").row("flaky", "accuracy")
    assert row.repeats == 3 and row.kind == "score" and row.test == "paired permutation"
    reps = [res.samples[(res.samples["llm"] == tag)].groupby("index")["accuracy"].apply(
        lambda s: s.to_numpy(float)).tolist() for tag in ("flaky", "never")]
    ci = st.two_level_ci(reps[0], reps[1], seed=0)
    assert (row.ci.low, row.ci.high) == pytest.approx((ci.low, ci.high))
    assert row.diff == pytest.approx(float(np.mean([r.mean() for r in reps[0]])))
    assert "3 repeats each" in row.sentence


def test_bad_repeats_and_a_result_without_repeats() -> None:
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="repeats"):
            em.eval({"never": never}, DATA, repeats=bad)
    with pytest.raises(ValueError, match="repeats"):
        em.eval({"never": never}, DATA).stability()
