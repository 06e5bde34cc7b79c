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


def test_renamed_degeneration_first_rows_keep_their_changed_items() -> None:
    """A collapsed model's "degeneration first" rows, renamed, still find their item columns (the fine-tune
    notebook's report once raised KeyError "no metric 'bleu, degeneration first'" under ``{"bleu4": "bleu"}``)."""
    from qfnb.evaluation import EvaluationResult

    ids = list(range(8)) * 2
    fine = [f"The answer to question {i} is in the settings page, section {i}." for i in range(8)]
    samples = pd.DataFrame({"llm": ["base"] * 8 + ["tuned"] * 8, "index": ids,
                            "input": [f"q{i}" for i in ids], "reference": [f"section {i}" for i in ids],
                            "output": fine + ["[Ticket #1111] Ticket #1111"] * 8, "error": [None] * 16,
                            "bleu4": [0.2] * 8 + [0.9] * 8})
    res = EvaluationResult({m: {"bleu4": v} for m, v in samples.groupby("llm")["bleu4"].mean().items()}, samples)
    shown = res.compare(b="base").renamed({"bleu4": "bleu"})
    assert shown.metrics == ["bleu", "bleu, degeneration first"]
    flips = shown.flipped("tuned", "bleu, degeneration first")
    assert len(flips) == 8 and set(flips["tuned bleu, degeneration first"]) == {0.0}  # each lost: degenerate
    html = shown._repr_html_()
    assert "on bleu, degeneration first: 8 item(s) changed" in html
