"""A comparison shown under the metric names the user asked for says them everywhere: the table, the
changed items, and the judge's agreement notes (a report once said "agrees with accuracy" under a
table of exact_match)."""

from __future__ import annotations

import pandas as pd

from qfnb.evaluation.results.compare import Comparison


def test_renamed_renames_the_judge_notes_too() -> None:
    notes = ["judge:j agrees with accuracy on 6 of 6 items where both pick a winner.",
             "judge_score agrees with accuracy: Spearman 0.81 over 10 answers",
             "judge:j agrees with accuracy_strict on 2 of 3 items where both pick a winner.",
             "accuracy is what exact_match is called in the evaluator"]
    items = {"tuned": pd.DataFrame({"index": [0], "model/accuracy": [1.0], "baseline/accuracy": [0.0]})}
    shown = Comparison("base", ["tuned"], [], items, {}, notes).renamed({"accuracy": "exact_match"})
    assert shown.notes == ["judge:j agrees with exact_match on 6 of 6 items where both pick a winner.",
                           "judge_score agrees with exact_match: Spearman 0.81 over 10 answers",
                           notes[2], notes[3]]
    assert list(shown.items["tuned"].columns) == ["index", "model/exact_match", "baseline/exact_match"]
