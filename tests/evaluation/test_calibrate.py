"""Prediction-powered means: coverage with 20 labels of 500 items and a biased judge (2,000 runs)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from qfnb.errors import ValidationError
from qfnb.evaluation import agreement, calibrated_difference, calibrated_mean

RUNS, N, LABELLED = 2000, 500, 20


def test_calibrated_mean_covers_where_the_judges_own_mean_does_not() -> None:
    rng = np.random.default_rng(2023)
    truth = 3.0  # labels: 1 + 4 * Beta(2, 2), mean 3, on a 1-5 scale
    covered = naive_covered = 0
    for _ in range(RUNS):
        y = 1 + 4 * rng.beta(2, 2, N)
        judge = y + 0.5 + rng.normal(0, 0.6, N)  # biased by +0.5, noisy
        lab = rng.choice(N, LABELLED, replace=False)
        ppi = calibrated_mean(judge, judge[lab], y[lab])
        covered += ppi.contains(truth)
        half = sp.t.ppf(0.975, N - 1) * judge.std(ddof=1) / np.sqrt(N)
        naive_covered += abs(judge.mean() - truth) <= half
    assert 0.93 <= covered / RUNS <= 0.97, f"coverage {covered / RUNS:.1%}"
    assert naive_covered / RUNS < 0.50, f"naive coverage {naive_covered / RUNS:.1%}"


def test_calibrated_difference_covers_the_true_difference() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(RUNS):
        ya, yb = rng.binomial(1, 0.6, N).astype(float), rng.binomial(1, 0.5, N).astype(float)
        ja = np.clip(ya + rng.normal(0.3, 0.4, N), 0, 2)  # a judge kinder to a than to b
        jb = np.clip(yb + rng.normal(0.1, 0.4, N), 0, 2)
        lab = rng.choice(N, LABELLED, replace=False)
        res = calibrated_difference(ja, jb, ja[lab], jb[lab], ya[lab], yb[lab])
        covered += res.contains(0.1)
    assert 0.93 <= covered / RUNS <= 0.97, f"coverage {covered / RUNS:.1%}"


def test_the_estimate_and_its_fields() -> None:
    judge = np.array([4.0, 5.0, 3.0, 4.0, 5.0, 2.0, 4.0, 3.0])
    res = calibrated_mean(judge, judge[:4], [3.0, 4.0, 3.0, 3.0])
    assert res.estimate == pytest.approx(judge.mean() - 0.75)
    assert res.bias == pytest.approx(0.75) and res.naive == pytest.approx(judge.mean())
    assert res.low < res.estimate < res.high and res.n_all == 8 and res.n_labelled == 4
    assert "off by +0.75" in res.sentence


def test_agreement_kappa_and_spearman() -> None:
    k = agreement([1, 1, 0, 0, 1, 0, 1, 1], [1, 1, 0, 0, 1, 0, 0, 1])
    assert k.statistic == "Cohen's kappa" and k.value == pytest.approx(0.75)
    assert k.low is not None and k.high is not None and k.low <= 0.75 <= k.high
    rng = np.random.default_rng(0)
    y = rng.normal(size=20)
    judge = y + rng.normal(0, 0.5, 20)
    r = agreement(judge, y)
    assert r.statistic == "Spearman" and r.value == pytest.approx(sp.spearmanr(judge, y).statistic)
    assert r.low is not None and r.high is not None and r.low < r.value < r.high < 1
    assert "over 20 labelled items" in r.sentence
    assert agreement([1, 1, 1, 1], [1, 0, 1, 0]).value == 0.0  # a constant judge agrees by chance only
    assert agreement([1, 1, 1, 1], [1, 1, 1, 1]).value is None


@pytest.mark.parametrize(("args", "field"), [(([1, 2, 3], [1, 2], [1, 2, 3]), "labels"),
                                             (([1, 2, 3], [1], [1]), "labels"),
                                             (([1.0, float("nan")], [1, 2], [1, 2]), "judge_all")])
def test_bad_input_is_refused(args: tuple[list[float], ...], field: str) -> None:
    with pytest.raises((ValidationError, ValueError), match=field):
        calibrated_mean(*args)
