"""plan_comparison: the planned n achieves the stated power (2,000 seeded simulated runs each)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from qfnb.errors import ValidationError
from qfnb.evaluation import EvaluationResult, plan_comparison
from qfnb.evaluation.stats.plan import items_to_decide

RUNS = 2000


def _pass_fail(rng: np.random.Generator, shape: tuple[int, ...], diff: float) -> tuple[np.ndarray, np.ndarray]:
    """Paired pass/fail outcomes: a alone passes with 0.2 + diff/2, b alone with 0.2 − diff/2."""
    u = rng.random(shape)
    both = (u >= 0.4) & (u < 0.7)
    a = (u < 0.2 + diff / 2) | both
    b = ((u >= 0.2 + diff / 2) & (u < 0.4)) | both
    return a.astype(float), b.astype(float)


def _scores(rng: np.random.Generator, shape: tuple[int, ...], diff: float) -> tuple[np.ndarray, np.ndarray]:
    p = rng.beta(2, 2, shape)
    return (np.clip(p + diff / 2 + rng.normal(0, 0.2, shape), 0, 1),
            np.clip(p - diff / 2 + rng.normal(0, 0.2, shape), 0, 1))


def _mcnemar_rejects(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """McNemar's exact two-sided test per run (rows), as qfnb's comparison runs it."""
    n10 = np.sum((a == 1) & (b == 0), axis=1)
    n01 = np.sum((a == 0) & (b == 1), axis=1)
    n = n10 + n01
    p = np.minimum(1.0, 2 * sp.binom.cdf(np.minimum(n10, n01), n, 0.5))
    return (n > 0) & (p < alpha)


@pytest.mark.parametrize("kind", ["pass_fail", "scores"])
@pytest.mark.parametrize(("diff", "power"), [(0.1, 0.8), (0.06, 0.9)])
def test_planned_n_achieves_the_stated_power(kind: str, diff: float, power: float) -> None:
    rng = np.random.default_rng(44)
    make = _pass_fail if kind == "pass_fail" else _scores
    pilot_a, pilot_b = make(rng, (20_000,), diff)  # a large pilot: its spread is the truth's
    truth = float(np.mean(pilot_a - pilot_b))
    plan = plan_comparison(pilot_a, pilot_b, min_difference=truth, power=power)
    a, b = make(rng, (RUNS, plan.n_items), diff)
    # the test the comparison runs: McNemar's exact test; for scores the t-test (the permutation test's power)
    rejects = (_mcnemar_rejects(a, b, 0.05) if kind == "pass_fail"
               else sp.ttest_1samp(a - b, 0.0, axis=1).pvalue < 0.05)
    achieved = float(np.mean(rejects & ((a - b).mean(axis=1) > 0)))
    assert abs(achieved - power) <= 0.05, f"n={plan.n_items}: power {achieved:.1%}, planned {power:.0%}"
    assert plan.power_at(plan.n_items) >= power > plan.power_at(plan.n_items - 1)


def test_plan_fields_and_assumptions() -> None:
    rng = np.random.default_rng(1)
    a, b = _scores(rng, (30,), 0.1)
    plan = plan_comparison(a, b, min_difference=0.05)
    assert plan.n_pilot == 30 and plan.sd == pytest.approx(float(np.std(a - b, ddof=1)))
    assert plan.n_items_upper > plan.n_items > 30
    assert plan.power_at(10 * plan.n_items) > 0.99 and plan.power_at(2) < 0.1
    assert any("permutation" in s for s in plan.assumptions)
    assert str(plan.n_items) in repr(plan) and "80% power" in plan.sentence


def test_plan_from_a_stored_result() -> None:
    rng = np.random.default_rng(2)
    a, b = _scores(rng, (12,), 0.2)
    rows = [{"llm": tag, "index": i, "input": f"q{i}", "reference": "r", "output": "o", "error": None,
             "rouge_l": float(v)} for tag, vals in (("tuned", a), ("base", b)) for i, v in enumerate(vals)]
    res = EvaluationResult({"tuned": {}, "base": {}}, pd.DataFrame(rows), metric_columns=[["rouge_l"]])
    plan = plan_comparison(res, "rouge_l", min_difference=0.1)
    direct = plan_comparison(a, b, min_difference=0.1)
    assert plan.n_items == direct.n_items and plan.metric == "rouge_l" and plan.models == ("tuned", "base")
    flipped = plan_comparison(res, "rouge_l", min_difference=0.1, a="base", b="tuned")
    assert flipped.models == ("base", "tuned") and flipped.pilot_difference == pytest.approx(-plan.pilot_difference)
    with pytest.raises(ValidationError, match="metric"):
        plan_comparison(res, "bleu", min_difference=0.1)
    with pytest.raises(ValidationError, match="'other' is not a model"):
        plan_comparison(res, "rouge_l", min_difference=0.1, a="other", b="base")


@pytest.mark.parametrize(("a", "b", "kwargs", "field"), [
    ([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], {"min_difference": 0.0}, "min_difference"),
    ([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], {"min_difference": 0.1, "power": 1.0}, "power"),
    ([0.1, 0.2], [0.1, 0.1], {"min_difference": 0.1}, "at least 3"),
    ([0.5, 0.5, 0.5], [0.1, 0.1, 0.1], {"min_difference": 0.1}, "no spread"),
    ([0.1, 0.2, 0.3], [0.1, 0.1], {"min_difference": 0.1}, "pair up"),
])
def test_bad_plans_are_refused(a: list[float], b: list[float], kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        plan_comparison(a, b, **kwargs)


def test_items_to_decide_an_inconclusive_comparison() -> None:
    d = np.array([0.2, -0.1, 0.15, 0.0, 0.3, -0.2, 0.1, 0.05, -0.05, 0.25])
    n = items_to_decide(d)
    assert n is not None and n > d.size
    assert items_to_decide(np.zeros(10)) is None and items_to_decide([0.1, 0.2]) is None


def test_an_inconclusive_comparison_says_how_many_items_would_decide_it() -> None:
    a = [0.62, 0.40, 0.55, 0.71, 0.30, 0.52, 0.44, 0.66, 0.58, 0.49]
    b = [0.50, 0.45, 0.50, 0.60, 0.35, 0.47, 0.46, 0.55, 0.60, 0.42]
    rows = [{"llm": tag, "index": i, "input": f"q{i}", "reference": "r", "output": "o", "error": None,
             "rouge_l": v} for tag, vals in (("base", b), ("tuned", a)) for i, v in enumerate(vals)]
    res = EvaluationResult({"base": {}, "tuned": {}}, pd.DataFrame(rows), metric_columns=[["rouge_l"]])
    row = res.compare("tuned", "base").row("tuned", "rouge_l")
    expected = items_to_decide(np.subtract(a, b))
    assert row.verdict in ("inconclusive", "no detectable difference")
    assert row.items_needed == expected and expected is not None and expected > 10
    assert f"needs about {expected} paired items to be detected with 80% power" in row.sentence
    table = res.compare("tuned", "base").to_dataframe()
    assert table[table["metric"] == "rouge_l"]["items_needed"].tolist() == [expected]


def test_every_pair_discordant() -> None:
    a = np.array([1.0, 1, 0, 1, 0, 1, 1, 0, 1, 1])
    plan = plan_comparison(a, 1 - a, min_difference=0.3)
    assert plan.discordant == 1.0 and plan.power_at(plan.n_items) >= 0.8 > plan.power_at(plan.n_items - 1)
