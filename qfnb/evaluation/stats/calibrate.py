"""A judge checked against the user's own labels: agreement with a CI, and prediction-powered means.

Prediction-powered inference (Angelopoulos, Bates, Fannjiang, Jordan & Zrnic 2023, *Science*): the
judge scores every item (``f``), the user labels a random few (``y``). The judge's mean is biased by
however it differs from the user; the labelled items measure that bias. The estimate
``mean(f over all) + mean(y − f over the labelled)`` is unbiased for the labels' mean, and its
variance ``var(f)/N + var(y − f)/n`` is small when the judge tracks the labels (even with an
offset). The interval uses Student's t with Welch–Satterthwaite degrees of freedom, as 20 labels
are few for a normal quantile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import invalid
from .paired import as_float_array, is_binary, spearman, t_quantile

#: resamples of the bootstrap CI of Cohen's kappa
KAPPA_RESAMPLES = 2000


@dataclass(frozen=True)
class CalibratedMean:
    """A prediction-powered estimate with its CI, beside the judge's uncorrected mean."""

    estimate: float
    low: float
    high: float
    confidence: float
    #: the judge's own mean over every item, and how far it is from the labels on the labelled ones
    naive: float
    bias: float
    n_all: int
    n_labelled: int
    #: a label queue's (:mod:`.active`): the labelled draws (an item drawn twice counts twice), and
    #: whether the interval is a confidence sequence (valid at every look) rather than fixed-n
    draws: int | None = None
    anytime: bool = False

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low

    @property
    def sentence(self) -> str:
        if self.anytime:
            return (f"{self.estimate:.3g} ({self.confidence:.0%} confidence sequence {self.low:.3g}\u2026"
                    f"{self.high:.3g}, valid at every look; the judge's own mean {self.naive:.3g} is off by "
                    f"{self.bias + 0.0:+.3g}; "
                    f"{self.n_labelled} labels of {self.n_all} items, asked where the judge is unsure)")
        return (f"{self.estimate:.3g} ({self.confidence:.0%} CI {self.low:.3g}\u2026{self.high:.3g}; the judge's own "
                f"mean {self.naive:.3g} is off by {self.bias + 0.0:+.3g} on the {self.n_labelled} labelled items; "
                f"prediction-powered over {self.n_all} items)")


def _welch_df(v1: float, n1: int, v2: float, n2: int) -> int:
    """Welch–Satterthwaite degrees of freedom of ``v1/n1 + v2/n2``."""
    a, b = v1 / n1, v2 / n2
    if a + b == 0.0:
        return max(n2 - 1, 1)
    den = (a * a / (n1 - 1) if n1 > 1 else 0.0) + (b * b / (n2 - 1) if n2 > 1 else 0.0)
    return max(1, int((a + b) ** 2 / den)) if den > 0 else max(n2 - 1, 1)


def calibrated_mean(judge_all: ArrayLike, judge_labelled: ArrayLike, labels: ArrayLike, *,
                    alpha: float = 0.05) -> CalibratedMean:
    """The prediction-powered mean of ``labels`` over all items.

    ``judge_all``: the judge's score on every item; ``judge_labelled``, ``labels``: the judge's score
    and the user's label on the items the user labelled (a random subset)."""
    if not 0.0 < alpha < 1.0:
        raise invalid("alpha", f"must be in (0, 1), got {alpha}")
    f = as_float_array(judge_all, "judge_all")
    fl, y = as_float_array(judge_labelled, "judge_labelled"), as_float_array(labels, "labels")
    if fl.shape != y.shape:
        raise invalid("labels", f"one label per judged labelled item: {y.size} labels, {fl.size} judge scores")
    if y.size < 2:
        raise invalid("labels", f"at least 2 labelled items are needed, got {y.size}")
    if f.size < 2:
        raise invalid("judge_all", f"at least 2 judged items are needed, got {f.size}")
    rect = y - fl
    v_f, v_r = float(np.var(f, ddof=1)), float(np.var(rect, ddof=1))
    est = float(f.mean() + rect.mean())
    se = math.sqrt(v_f / f.size + v_r / y.size)
    half = t_quantile(1.0 - alpha / 2.0, _welch_df(v_f, f.size, v_r, y.size)) * se
    return CalibratedMean(est, est - half, est + half, 1.0 - alpha, float(f.mean()), float(-rect.mean()) + 0.0, f.size,
                          y.size)


def calibrated_difference(judge_a_all: ArrayLike, judge_b_all: ArrayLike, judge_a_labelled: ArrayLike,
                          judge_b_labelled: ArrayLike, labels_a: ArrayLike, labels_b: ArrayLike, *,
                          alpha: float = 0.05) -> CalibratedMean:
    """The prediction-powered mean of the paired difference a − b (same items on both sides)."""
    pairs = {}
    for name, (x, z) in {"judge_all": (judge_a_all, judge_b_all), "judge_labelled": (judge_a_labelled,
                                                                                       judge_b_labelled),
                         "labels": (labels_a, labels_b)}.items():
        a, b = as_float_array(x, f"{name} (a)"), as_float_array(z, f"{name} (b)")
        if a.shape != b.shape:
            raise invalid(name, f"a and b must pair up: {a.size} vs {b.size} items")
        pairs[name] = a - b
    return calibrated_mean(pairs["judge_all"], pairs["judge_labelled"], pairs["labels"], alpha=alpha)


@dataclass(frozen=True)
class Agreement:
    """How well the judge agrees with the user's labels: Cohen's kappa (pass/fail) or
    Spearman's rank correlation (scores), with a CI."""

    statistic: str
    value: float | None
    low: float | None
    high: float | None
    n: int
    confidence: float

    @property
    def sentence(self) -> str:
        if self.value is None or self.low is None or self.high is None:
            return f"{self.statistic} undefined over {self.n} labelled items (a side is constant)"
        return (f"{self.statistic} {self.value:.2f} ({self.confidence:.0%} CI {self.low:.2f}\u2026{self.high:.2f}) "
                f"over {self.n} labelled items")


def _kappa(x: NDArray[np.float64], y: NDArray[np.float64]) -> float | None:
    cats = np.union1d(x, y)
    p_o = float(np.mean(x == y))
    p_e = float(sum(np.mean(x == c) * np.mean(y == c) for c in cats))
    return None if p_e == 1.0 else (p_o - p_e) / (1.0 - p_e)


def agreement(judge_labelled: ArrayLike, labels: ArrayLike, *, alpha: float = 0.05, seed: int = 0) -> Agreement:
    """Cohen's kappa when judge and labels are both pass/fail, with a seeded bootstrap CI; else
    Spearman's rho with the Fisher-z CI and Bonett & Wright's (2000) standard error."""
    f, y = as_float_array(judge_labelled, "judge_labelled"), as_float_array(labels, "labels")
    if f.shape != y.shape:
        raise invalid("labels", f"one label per judged item: {y.size} labels, {f.size} judge scores")
    if y.size < 4:
        raise invalid("labels", f"agreement needs at least 4 labelled items, got {y.size}")
    level = 1.0 - alpha
    if is_binary(y) and is_binary(f):
        k = _kappa(f, y)
        if k is None:
            return Agreement("Cohen's kappa", None, None, None, y.size, level)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, y.size, (KAPPA_RESAMPLES, y.size))
        boot = [v for v in (_kappa(f[i], y[i]) for i in idx) if v is not None]
        lo, hi = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        return Agreement("Cohen's kappa", k, float(lo), float(hi), y.size, level)
    r = spearman(f, y)
    if r is None:
        return Agreement("Spearman", None, None, None, y.size, level)
    z = math.atanh(max(min(r, 0.999999), -0.999999))
    se = math.sqrt((1 + r * r / 2) / max(y.size - 3, 1))
    crit = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return Agreement("Spearman", r, math.tanh(z - crit * se), math.tanh(z + crit * se), y.size, level)
