"""The tour's comparison sentence must be true (issue 23): the checker that the fine-tune notebook's
run applies, tried here on a report made the way ``%qfeval … --compare`` makes it, and on
sentences it must catch."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from sentence_check import false_claims

from qfnb.evaluation import EvaluationResult


@pytest.fixture()
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("qfnb")
    yield shell
    InteractiveShell.clear_instance()


def result() -> EvaluationResult:
    ids = list(range(8)) * 3
    rouge = [0.1, 0.2, 0.15, 0.05, 0.3, 0.2, 0.1, 0.25] + [1.0] * 7 + [0.5] + [0.1, 0.2, 0.15, 0.05, 0.3, 0.2,
                                                                              0.1, 0.3]
    samples = pd.DataFrame({"llm": ["base"] * 8 + ["tuned"] * 8 + ["same"] * 8, "index": ids,
                            "input": [f"q{i}" for i in ids], "reference": ["r"] * 24, "output": ["o"] * 24,
                            "error": [None] * 24, "rouge_l": rouge})
    means = samples.groupby("llm")["rouge_l"].mean().to_dict()
    return EvaluationResult({m: {"rouge_l": v} for m, v in means.items()}, samples)


def test_a_true_report_passes_and_false_sentences_are_caught(ip: InteractiveShell) -> None:
    ip.user_ns["res"] = result()
    report = repr(ip.run_line_magic("qfeval", "res --compare base"))
    assert "tuned beats base on rouge_l by +0.77" in report and "same vs base on rouge_l" in report, report
    assert false_claims(report) == []
    assert false_claims(report.replace("by +0.77", "by +0.55"))  # a difference the table contradicts
    lied = report.replace("tuned beats base on rouge_l by +0.77 (95% CI +0.",
                          "tuned beats base on rouge_l by +0.77 (95% CI -0.")
    assert any("CI does not support" in p for p in false_claims(lied))
    assert false_claims("Evaluation — 1 model(s)\n   rouge_l\nm  0.5000") == ["no comparison sentence in the report"]


def test_a_corpus_level_metric_is_compared_on_the_item_means_the_report_names(ip: InteractiveShell) -> None:
    """BLEU's table figure is corpus BLEU, not the mean of the item scores the comparison pairs (the
    real fine-tune notebook once read "+0.26" beside a table showing +0.17): the report names the
    item means it compared, under the shown metric name, and its sentences hold against them."""
    res = result()
    res.samples["bleu4"] = res.samples["rouge_l"] / 2
    for tag, corpus in (("base", 0.02), ("tuned", 0.19), ("same", 0.03)):  # not the item means
        res.metrics[tag]["bleu4"] = corpus
    ip.user_ns["res"] = res
    report = repr(ip.run_line_magic("qfeval", "res --compare base"))
    assert "bleu4: compared item by item, on the mean of per-item scores (tuned " in report, report
    assert false_claims(report) == []
