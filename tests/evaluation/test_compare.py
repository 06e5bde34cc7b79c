"""EvaluationResult.compare: paired comparison table, sentences, flipped items, chart, HTML."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from qfnb.evaluation import BleuEvaluator, EvaluationManager, EvaluationResult, ExactMatchEvaluator, RougeEvaluator
from qfnb.evaluation.results.compare import Comparison

DATA = [{"prompt": f"q{i}", "response": f"the answer to question {i} is {i * 7}"} for i in range(10)]


def base(prompt: str) -> str:
    return "I do not know"


def tuned(prompt: str) -> str:  # right on 7 of 10, close on the others
    i = int(prompt[1:])
    return f"the answer to question {i} is {i * 7}" if i % 4 else f"the answer is {i * 7}"


def worse(prompt: str) -> str:  # right on 2, wrong on the rest
    i = int(prompt[1:])
    return f"the answer to question {i} is {i * 7}" if i < 2 else "I do not know"


@pytest.fixture(scope="module")
def result() -> EvaluationResult:
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator(), RougeEvaluator()])
    return em.eval({"base": base, "tuned": tuned, "worse": worse}, DATA)


def test_two_models_table_and_independent_check(result: EvaluationResult) -> None:
    cmp = result.compare("tuned", "base")
    assert isinstance(cmp, Comparison) and cmp.models == ["tuned"] and cmp.baseline == "base"
    frame = cmp.to_dataframe()
    plain = ["accuracy", "rouge_1", "rouge_2", "rouge_l"]
    # the base answers "I do not know" to every prompt: collapsed, so each metric is also decided degeneration first
    assert list(frame["metric"]) == plain + [f"{m}, degeneration first" for m in plain]
    assert cmp.sentences[0].startswith("Base collapsed: the same answer to 10 of 10 prompts: 'I do not know'")
    first = cmp.row("tuned", "accuracy, degeneration first")
    assert (first.wins, first.ties, first.losses) == (10, 0, 0) and first.verdict == "better"
    frame = frame[frame["metric"].isin(plain)]
    acc = frame.set_index("metric").loc["accuracy"]
    wide = result.samples_df
    a, b = wide["tuned/accuracy"].to_numpy(float), wide["base/accuracy"].to_numpy(float)
    assert acc["kind"] == "pass/fail" and acc["test"] == "McNemar exact"
    assert acc["diff"] == pytest.approx(a.mean() - b.mean())
    assert acc["p_value"] == pytest.approx(sp.binomtest(int(((a == 1) & (b == 0)).sum()),
                                                        int((a != b).sum()), 0.5).pvalue)
    assert (acc["wins"], acc["ties"], acc["losses"]) == (7, 3, 0)
    rl = frame.set_index("metric").loc["rouge_l"]
    d = wide["tuned/rouge_l"].to_numpy(float) - wide["base/rouge_l"].to_numpy(float)
    assert rl["kind"] == "score" and rl["test"] == "paired permutation"
    ref = sp.permutation_test((d, np.zeros_like(d)), lambda x, y, axis: np.mean(x - y, axis=axis),
                              permutation_type="samples", vectorized=True, n_resamples=np.inf).pvalue
    assert rl["p_value"] == pytest.approx(ref)
    assert rl["ci_low"] > 0 and rl["verdict"] == "better"
    # two models only: nothing to adjust
    assert (frame["p_value"] == frame["p_adjusted"]).all()
    assert "Holm" not in cmp.method_note


def test_sentences_say_what_the_numbers_say(result: EvaluationResult) -> None:
    cmp = result.compare("tuned", "base")
    row = cmp.row("tuned", "rouge_l")
    assert row.sentence.startswith(f"tuned beats base on rouge_l by +{row.diff:.2f} (95% CI ")
    assert f"{row.wins}/10 items better" in row.sentence
    worse_cmp = result.compare("worse", "tuned")
    w = worse_cmp.row("worse", "rouge_l")
    assert w.verdict == "worse" and w.sentence.startswith("worse is worse than tuned on rouge_l by \u2212")


def test_identical_models_no_detectable_difference() -> None:
    em = EvaluationManager(local_evaluators=[RougeEvaluator()])
    res = em.eval({"a": tuned, "b": tuned}, DATA)
    row = res.compare("b", "a").row("b", "rouge_l")
    assert row.verdict == "identical" and row.ci is not None and row.ci.contains(0.0)
    assert row.sentence == "b and a score the same on rouge_l on all 10 items"


def test_noise_gives_no_detectable_difference() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for tag in ("a", "b"):
        for i in range(12):
            rows.append({"llm": tag, "index": i, "input": f"q{i}", "reference": "r", "output": "o", "error": None,
                         "score": float(rng.uniform())})
    res = EvaluationResult({"a": {}, "b": {}}, pd.DataFrame(rows), metric_columns=[["score"]])
    row = res.compare("b", "a").row("b", "score")
    assert row.verdict == "no detectable difference"
    assert "no detectable difference" in row.sentence and "spans 0" in row.sentence


def test_several_models_against_a_baseline_are_holm_adjusted(result: EvaluationResult) -> None:
    cmp = result.compare(b="base")
    assert cmp.models == ["tuned", "worse"]
    frame = cmp.to_dataframe()
    for metric, rows in frame.groupby("metric"):
        raw = rows["p_value"].to_list()
        ordered = sorted(raw)
        expected = {ordered[0]: min(1, 2 * ordered[0])}
        expected[ordered[1]] = min(1, max(2 * ordered[0], ordered[1]))
        assert rows["p_adjusted"].to_list() == pytest.approx([expected[p] for p in raw]), metric
    assert "Holm-adjusted for the 2 comparisons with base" in cmp.method_note
    assert "Holm-adjusted for the 2 comparisons with base" in cmp.to_html()
    bonf = result.compare(b="base", correction="bonferroni").to_dataframe()
    assert bonf["p_adjusted"].to_list() == pytest.approx([min(1, 2 * p) for p in bonf["p_value"]])


def test_flipped_items_side_by_side(result: EvaluationResult) -> None:
    cmp = result.compare("tuned", "base")
    flips = cmp.flipped("tuned", "accuracy")
    assert list(flips["index"]) == [1, 2, 3, 5, 6, 7, 9]
    assert list(flips.columns) == ["index", "input", "reference", "base output", "tuned output", "base accuracy",
                                   "tuned accuracy", "change"]
    first = flips.iloc[0]
    assert first["base output"] == "I do not know" and first["tuned output"] == tuned(first["input"])
    assert first["reference"] == DATA[int(first["index"])]["response"]
    by_change = cmp.flipped("tuned", "rouge_l")
    assert by_change["change"].abs().is_monotonic_decreasing and len(by_change) == 10


def test_report_html_and_forest_plot(result: EvaluationResult) -> None:
    cmp = result.compare(b="base")
    fig = cmp.plot()
    assert [ax.get_title(loc="left") for ax in fig.axes] == cmp.metrics
    ax = fig.axes[-1]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["tuned \u2212 base", "worse \u2212 base"]
    assert fig.patch.get_alpha() == 0.0  # transparent: reads on light and dark pages
    html = cmp._repr_html_()
    assert "<img class=\"qfnb-forest\"" in html and "data:image/png;base64," in html
    assert "tuned beats base on rouge_l" in html
    assert "flipped" in html and "I do not know" in html
    assert "Comparison vs base" in repr(cmp)


def test_bad_arguments(result: EvaluationResult) -> None:
    with pytest.raises(ValueError, match="baseline"):
        result.compare("tuned", "nope")
    with pytest.raises(ValueError, match="models"):
        result.compare("nope", "base")
    with pytest.raises(ValueError, match="models"):
        result.compare("base", "base")
    with pytest.raises(ValueError, match="metrics"):
        result.compare("tuned", "base", metrics=["bleu4"])
    with pytest.raises(ValueError, match="confidence"):
        result.compare("tuned", "base", confidence=1.5)
    with pytest.raises(ValueError, match="correction"):
        result.compare(b="base", correction="sidak")


def test_reproducible_with_a_seed(result: EvaluationResult) -> None:
    one = result.compare("tuned", "base", seed=3).to_dataframe()
    pd.testing.assert_frame_equal(one, result.compare("tuned", "base", seed=3).to_dataframe())


def test_platform_result_with_outputs_only_is_scored_per_item() -> None:
    """A rule evaluation on the (local) platform reports outputs but no per-item scores."""
    rows = []
    for tag, fn in (("base_1", base), ("tuned_1", tuned)):
        for i, r in enumerate(DATA):
            rows.append({"llm": tag, "index": i, "input": r["prompt"], "reference": r["response"],
                         "output": fn(r["prompt"]), "error": None})
    res = EvaluationResult({"base_1": {"accuracy": 0.0, "bleu4": 0.01, "rouge_l": 0.1},
                            "tuned_1": {"accuracy": 0.7, "bleu4": 0.8, "rouge_l": 0.9}}, pd.DataFrame(rows),
                           task_id="7", state="Done")
    cmp = res.compare("tuned_1", "base_1")
    plain = ["accuracy", "bleu4", "rouge_l"]  # then each decided degeneration first: base_1 gave one answer to all
    assert cmp.metrics == plain + [f"{m}, degeneration first" for m in plain]
    assert cmp.row("tuned_1", "accuracy").wins == 7


def test_separate_results_combine_into_one_comparison(result: EvaluationResult) -> None:
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator(), RougeEvaluator()])
    one, two = em.eval({"m": tuned}, DATA), em.eval({"m": base}, DATA)
    both = EvaluationResult.combine({"tuned": one, "base": two})
    assert both.llm_tags == ["tuned", "base"] and both.metrics["tuned"] == one.metrics["m"]
    pd.testing.assert_frame_equal(both.compare("tuned", "base").to_dataframe(),
                                  result.compare("tuned", "base").to_dataframe())
    renamed = both.compare("tuned", "base").renamed({"accuracy": "exact_match"})
    assert renamed.metrics[0] == "exact_match" and "tuned exact_match" in renamed.flipped().columns
    with pytest.raises(ValueError, match="not an EvaluationResult"):
        EvaluationResult.combine({"a": one, "b": {}})


def test_items_missing_a_score_are_left_out_and_said_so() -> None:
    def sometimes(prompt: str) -> str:
        if prompt in ("q3", "q4"):
            raise RuntimeError("timeout")
        return tuned(prompt)

    res = EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval({"base": base, "t": sometimes}, DATA)
    row = res.compare("t", "base").row("t", "accuracy")
    assert (row.n, row.excluded) == (8, 2)
    assert row.sentence.endswith("[2 item(s) without a score on both sides left out]")


def test_a_corpus_level_table_figure_is_told_apart_from_the_item_means_compared() -> None:
    """BLEU's table value is corpus BLEU; the comparison pairs sentence BLEU: the report says which
    means it compared, so its sentence never contradicts the table (and a rename follows)."""
    em = EvaluationManager(local_evaluators=[BleuEvaluator(), RougeEvaluator()])
    res = EvaluationResult.combine({"tuned": em.eval({"m": tuned}, DATA), "base": em.eval({"m": base}, DATA)})
    cmp = res.compare("tuned", "base", metrics=["bleu4", "rouge_l"])
    row = cmp.row("tuned", "bleu4")
    corpus = res.metrics["tuned"]["bleu4"]
    assert abs(corpus - row.mean_model) > 1e-3  # the two figures differ here
    (note,) = [n for n in cmp.notes if n.startswith("bleu4:")]
    assert f"tuned {row.mean_model:.4f}, base {row.mean_baseline:.4f}" in note and f"({corpus:.4f}," in note
    assert not [n for n in cmp.notes if n.startswith("rouge_l:")]  # its table value is the item mean
    assert note in str(cmp)
    shown = cmp.renamed({"bleu4": "bleu"})
    assert any(n.startswith("bleu: ") and "the table's bleu is" in n for n in shown.notes)


def test_a_ci_bound_just_above_zero_never_prints_as_zero() -> None:
    """Found by the fine-tune notebook: ``+0.05 (95% CI +0.00…+0.15)`` under "beats" read as a CI
    that touches 0, though its bound was +0.0004; the sentence shows digits until it is not 0."""
    from qfnb.evaluation.stats._words import digits_for, signed

    assert digits_for(0.0475, 0.0004, 0.1458) == 4 and signed(0.0004, 4) == "+0.0004"
    assert digits_for(0.3, 0.2, 0.41) == 2 and digits_for(0.05, 0.01, 0.09) == 3
    assert digits_for(0.3, 0.0, 0.41) == 2  # an exact 0 needs no more digits
    assert digits_for(0.3, 1e-9) == 6  # bounded


def test_a_report_shows_degeneration_first_rows_for_the_model_that_has_them_only() -> None:
    """Two models against one baseline, one of them collapsed: its "degeneration first" rows are in the
    report and the chart, and the other model (no degenerate answer, so no such row) is shown without them."""
    import pandas as pd

    from qfnb.evaluation import EvaluationResult

    ids = list(range(8)) * 3
    fine = [f"The answer to question {i} is in the settings page, section {i}." for i in range(8)]
    other = [f"Question {i}: look in section {i} of settings." for i in range(8)]
    outputs = fine + ["[Ticket #1111] Ticket #1111"] * 8 + other
    samples = pd.DataFrame({"llm": ["base"] * 8 + ["tuned"] * 8 + ["other"] * 8, "index": ids,
                            "input": [f"q{i}" for i in ids], "reference": [f"section {i}" for i in ids],
                            "output": outputs, "error": [None] * 24,
                            "rouge_l": [0.2] * 8 + [0.9] * 8 + [0.3] * 8})
    res = EvaluationResult({m: {"rouge_l": v} for m, v in samples.groupby("llm")["rouge_l"].mean().items()},
                           samples)
    comparison = res.compare(b="base")
    assert any(r.model == "tuned" and r.metric.endswith("degeneration first") for r in comparison.rows)
    assert not any(r.model == "other" and r.metric.endswith("degeneration first") for r in comparison.rows)
    html = comparison._repr_html_()
    assert "degeneration first" in html and "qfnb-forest" in html
