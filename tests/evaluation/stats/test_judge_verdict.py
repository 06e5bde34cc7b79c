"""A judge checked against the user's labels says in words whether it can be used, and which labels it used.

The teacher's afternoon: a 0.5B judge gave 5/5 to answers she graded 0, and failed calls dropped 6 of her
20 labels without a word. These are the planted cases: a judge that tracks her closely, one that tracks
loosely, one that disagrees, and labels lost to failed calls and failed answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from qfnb.evaluation.stats.judge_check import Use, check_judge, verdict_frame


def _result(judge: list[float | None], *, errors: dict[int, str] | None = None) -> SimpleNamespace:
    """A result of one model ("m") whose judge scored item i with ``judge[i]`` (None: the call failed)."""
    rows = [{"llm": "m", "index": i, "judge_score": np.nan if s is None else s,
             "error": (errors or {}).get(i, "")} for i, s in enumerate(judge)]
    return SimpleNamespace(judges=[{"metric": "judge_score", "judge": "tiny-judge", "scale": [0, 5]}],
                           llm_tags=["m"], samples=pd.DataFrame(rows))


def test_a_judge_that_disagrees_is_called_unusable_and_dropped_labels_are_counted() -> None:
    mine = {i: (5.0 if i % 2 else 0.0) for i in range(20)}  # her grades: every other answer is wrong
    judge: list[float | None] = [5.0 if i % 3 else 4.0 for i in range(40)]  # generous whatever the answer
    for i in (1, 4, 7, 10, 13, 16):  # six judge calls failed, on labelled items
        judge[i] = None
    check = check_judge(_result(judge), {"m": mine}, metric="judge_score")
    verdict = check.verdicts["m"]
    assert verdict.use == Use.NOT_AT_ALL
    use = check.labels_used["m"]
    assert (use.given, len(use.used)) == (20, 14)
    assert use.dropped == {"the judge's call failed or gave no score": [1, 4, 7, 10, 13, 16]}
    text = check.sentences
    assert (verdict.tag, verdict.judge, verdict.metric) == ("m", "tiny-judge", "judge_score")
    assert text[0] == verdict.sentence and text[0].startswith("verdict: judge tiny-judge on judge_score for m "
                                                              "should not be used: "), text
    assert text[1:] == check.notes and not any(n.startswith("verdict") for n in check.notes)
    assert "14 of your 20 labels used; 6 dropped because the judge's call failed" in text[1], text
    assert any("Spearman" in line and "over 14 labelled items" in line for line in text), text


def test_a_close_judge_is_usable_per_item_and_a_loose_one_only_through_the_mean() -> None:
    mine = {i: float(i % 6) for i in range(24)}
    close = check_judge(_result([float(i % 6) for i in range(40)]), {"m": mine}, metric="judge_score")
    assert close.verdicts["m"].use == Use.PER_ITEM, close.sentences
    rng = np.random.default_rng(3)
    loose = [min(5.0, max(0.0, (i % 6) + float(rng.normal(0, 1.6)))) for i in range(40)]
    check = check_judge(_result(loose), {"m": mine}, metric="judge_score")
    agr = check.agreement["m"]
    assert agr.low is not None and 0 < agr.low < 0.6, agr  # surely positive, too loose for single scores
    assert check.verdicts["m"].use == Use.MEAN_ONLY
    assert "only through the calibrated mean" in check.sentences[0]


def test_labels_lost_to_failed_answers_and_unknown_items_are_named_and_too_few_left_is_a_verdict() -> None:
    judge: list[float | None] = [None if i < 6 else 3.0 for i in range(10)]
    mine = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 1.0, 5: 2.0, 6: 3.0, 99: 4.0}
    check = check_judge(_result(judge, errors={0: "timeout", 1: "timeout"}), {"m": mine}, metric="judge_score")
    use = check.labels_used["m"]
    assert use.used == [6]
    assert use.dropped == {"the model's answer failed": [0, 1],
                           "the judge's call failed or gave no score": [2, 3, 4, 5],
                           "they are not items of this result": [99]}
    assert check.verdicts["m"].use == Use.NOT_AT_ALL
    assert "only 1 usable label(s), at least 4 are needed" in check.sentences[0]
    assert "m" not in check.agreement and "m" not in check.means


def test_fewer_labels_than_an_agreement_needs_is_still_the_users_error() -> None:
    with pytest.raises(ValueError, match=r"labels.*2 labelled item\(s\); at least 4"):
        check_judge(_result([3.0] * 10), {"m": {0: 1.0, 1: 2.0}}, metric="judge_score")


def test_the_verdicts_are_data_a_table_carries() -> None:
    """Each verdict's use is a :class:`Use` (not a sentence to parse), tabulated one row per model."""
    mine = {i: float(i % 6) for i in range(24)}
    result = _result([float(i % 6) for i in range(40)])
    result.llm_tags = ["m", "n"]
    result.samples = pd.concat([result.samples, result.samples.assign(llm="n", judge_score=5.0)])
    check = check_judge(result, {"m": mine, "n": mine}, metric="judge_score")
    frame = verdict_frame(list(check.verdicts.values()))
    assert list(frame.columns) == ["model", "judge", "metric", "use", "reason"]
    assert frame[["model", "judge", "metric"]].values.tolist() == [["m", "tiny-judge", "judge_score"],
                                                                    ["n", "tiny-judge", "judge_score"]]
    assert list(frame["use"]) == [Use.PER_ITEM, Use.NOT_AT_ALL]
    assert frame["use"].cat.categories.tolist() == [Use.PER_ITEM, Use.MEAN_ONLY, Use.NOT_AT_ALL]
    assert frame["use"].cat.ordered and frame.sort_values("use")["model"].tolist() == ["m", "n"]
    assert frame["reason"].iloc[1] == check.verdicts["n"].reason
    assert check.verdicts["n"].sentence.startswith("verdict: judge tiny-judge on judge_score for n should not be used")
    assert verdict_frame([]).columns.tolist() == list(frame.columns)
