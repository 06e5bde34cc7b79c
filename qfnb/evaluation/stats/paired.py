"""Paired statistics for comparing models item by item (numpy, no I/O).

* :func:`bootstrap_ci` — a seeded bootstrap CI of the mean of paired differences; ``"percentile"``,
  ``"bca"`` (as ``scipy.stats.bootstrap``) or ``"expanded"`` (the default: the percentile interval
  widened for small samples, Hesterberg 2015, so 8 items do not get a 89% interval called 95%).
* :func:`two_level_ci` — the same with repeats: items resampled, then each item's repeats.
* :func:`mcnemar_exact` — McNemar's exact test for pass/fail metrics (a two-sided binomial test
  on the discordant pairs).
* :func:`sign_flip_test` — the paired permutation test of the mean difference (exact up to
  ``exact_max_n`` items, seeded Monte Carlo beyond).
* :func:`wilson_interval` — the Wilson score interval of a rate (a win rate), honest at small n and
  at 0% or 100%, where a bootstrap of identical outcomes collapses to a point.
* :func:`holm` — Holm's step-down adjustment; :func:`spearman` — rank correlation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

CIMethod = Literal["expanded", "percentile", "bca"]
CI_METHODS: tuple[str, ...] = ("expanded", "percentile", "bca")
_NORMAL = NormalDist()
#: Relative tolerance for "as extreme as observed" (float sums of the same values differ in the last bits).
_REL_TOL = 1e-12


def as_float_array(values: ArrayLike, name: str = "values") -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d sequence of numbers")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def is_binary(values: ArrayLike) -> bool:
    """Whether every value is 0 or 1 (a pass/fail metric)."""
    arr = np.asarray(values, dtype=float)
    return bool(arr.size) and bool(np.all((arr == 0.0) | (arr == 1.0)))


# -- Student's t quantile (numpy only: scipy is not a runtime dependency) --------------------------

def _t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t, by Simpson's rule on the density (|x| small: the tails we need)."""
    if x == 0.0:
        return 0.5
    grid = np.linspace(0.0, abs(x), 4001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    dens = np.exp(log_c - (df + 1) / 2 * np.log1p(grid**2 / df))
    h = grid[1] - grid[0]
    area = h / 3 * (dens[0] + dens[-1] + 4 * dens[1:-1:2].sum() + 2 * dens[2:-1:2].sum())
    return 0.5 + math.copysign(float(area), x)


@lru_cache(maxsize=1024)
def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (bisection, ~1e-10)."""
    if not 0.0 < q < 1.0 or df < 1:
        raise ValueError("t_quantile needs 0 < q < 1 and df >= 1")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


@lru_cache(maxsize=256)
def expanded_alpha(n: int, alpha: float) -> float:
    """The tail mass a percentile interval uses so that it has the width of a t interval
    (Hesterberg's expanded percentile): ``z_{a'/2} = sqrt(n/(n-1)) * t_{alpha/2, n-1}``."""
    if n < 2:
        return alpha
    z = math.sqrt(n / (n - 1)) * t_quantile(1 - alpha / 2, n - 1)
    return 2 * (1 - _NORMAL.cdf(z))


# -- bootstrap ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """A confidence interval and how it was computed."""

    low: float
    high: float
    confidence: float
    method: str
    n_resamples: int
    seed: int
    #: the confidence level of the percentiles actually read (differs from ``confidence`` for "expanded")
    level_used: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _check(confidence: float, n_resamples: int, method: str) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 100:
        raise ValueError(f"n_resamples: must be an integer >= 100, got {n_resamples!r}")
    if method not in CI_METHODS:
        raise ValueError(f"method: choose from {list(CI_METHODS)}, got {method!r}")


def resample_means(diffs: ArrayLike, n_resamples: int, seed: int) -> NDArray[np.float64]:
    """Means of ``n_resamples`` bootstrap resamples of ``diffs`` (the same draws as
    ``scipy.stats.bootstrap`` given ``np.random.default_rng(seed)``)."""
    d = as_float_array(diffs, "diffs")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, (n_resamples, d.size))
    means: NDArray[np.float64] = d[idx].mean(axis=1)
    return means


def _bca_levels(d: NDArray[np.float64], means: NDArray[np.float64], alpha: float) -> tuple[float, float]:
    """BCa percentile levels as scipy computes them (bias from the bootstrap, acceleration from
    the jackknife)."""
    theta = d.mean()
    frac = (np.count_nonzero(means < theta) + np.count_nonzero(means <= theta)) / (2 * means.size)
    if not 0.0 < frac < 1.0:
        return alpha / 2, 1 - alpha / 2
    z0 = _NORMAL.inv_cdf(float(frac))
    n = d.size
    jack = (d.sum() - d) / (n - 1)
    u = (n - 1) * (jack.mean() - jack)
    den = float((u**2).sum())
    acc = float((u**3).sum()) / (6 * den**1.5) if den > 0 else 0.0
    lo, hi = (_NORMAL.cdf(z0 + (z0 + z) / (1 - acc * (z0 + z)))
              for z in map(_NORMAL.inv_cdf, (alpha / 2, 1 - alpha / 2)))
    return lo, hi


def interval_from_means(d: NDArray[np.float64], means: NDArray[np.float64], *, confidence: float,
                        method: str, seed: int, degenerate: bool) -> Interval:
    """The CI read off bootstrap means of ``d`` (shared by the one- and two-level bootstraps);
    ``degenerate``: every resample has the same mean (``d.mean()``), so the interval is a point."""
    alpha = 1 - confidence
    if degenerate:
        v = float(d.mean())
        return Interval(v, v, confidence, method, means.size, seed, confidence)
    if method == "bca":
        lo_q, hi_q = _bca_levels(d, means, alpha)
        used = hi_q - lo_q
    else:
        a = expanded_alpha(d.size, alpha) if method == "expanded" else alpha
        lo_q, hi_q, used = a / 2, 1 - a / 2, 1 - a
    lo, hi = np.percentile(means, [100 * lo_q, 100 * hi_q])
    return Interval(float(lo), float(hi), confidence, method, means.size, seed, float(used))


def bootstrap_ci(diffs: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
                 method: CIMethod = "expanded") -> Interval:
    """Bootstrap CI of the mean of paired differences ``diffs`` (one per item)."""
    _check(confidence, n_resamples, method)
    d = as_float_array(diffs, "diffs")
    if d.size < 2:
        raise ValueError(f"diffs: a confidence interval needs at least 2 paired items, got {d.size}")
    return interval_from_means(d, resample_means(d, n_resamples, seed), confidence=confidence,
                               method=method, seed=seed, degenerate=bool(np.all(d == d[0])))


def paired_bootstrap_ci(a: ArrayLike, b: ArrayLike, **kwargs: object) -> Interval:
    """Bootstrap CI of ``mean(a - b)`` over paired items (see :func:`bootstrap_ci`)."""
    x, y = as_float_array(a, "a"), as_float_array(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must pair up: {x.size} vs {y.size} items")
    return bootstrap_ci(x - y, **kwargs)  # type: ignore[arg-type]


def _padded(rows: Sequence[ArrayLike]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Ragged per-item repeats as a NaN-padded matrix and the count per item."""
    arrays = [np.asarray(r, dtype=float).ravel() for r in rows]
    counts = np.array([a.size for a in arrays], dtype=np.int64)
    if counts.size == 0 or np.any(counts == 0):
        raise ValueError("every item needs at least one repeat")
    mat = np.full((len(arrays), int(counts.max())), np.nan)
    for i, a in enumerate(arrays):
        mat[i, : a.size] = a
    return mat, counts


def _resample_item_means(mat: NDArray[np.float64], counts: NDArray[np.int64], items: NDArray[np.int64],
                         rng: np.random.Generator) -> NDArray[np.float64]:
    """For resampled ``items`` (B, n): each item's mean over its repeats resampled with replacement."""
    reps = mat.shape[1]
    u = rng.random((*items.shape, reps))
    picks = np.floor(u * counts[items][..., None]).astype(np.int64)
    values = mat[items[..., None], picks]
    means: NDArray[np.float64] = values.mean(axis=2)
    return means


def two_level_ci(a_repeats: Sequence[ArrayLike], b_repeats: Sequence[ArrayLike], *, confidence: float = 0.95,
                 n_resamples: int = 10_000, seed: int = 0, method: CIMethod = "expanded") -> Interval:
    """CI of the mean per-item difference when each item was answered several times by each model.

    Items are resampled, then (independently for each model: repeats do not pair up across
    models) each resampled item's repeats, so the interval carries both the item-to-item and the
    run-to-run variance. ``a_repeats[i]`` holds model a's scores of item i over its repeats."""
    _check(confidence, n_resamples, method)
    if len(a_repeats) != len(b_repeats):
        raise ValueError(f"a and b must pair up: {len(a_repeats)} vs {len(b_repeats)} items")
    ma, ca = _padded(a_repeats)
    mb, cb = _padded(b_repeats)
    d = np.nanmean(ma, axis=1) - np.nanmean(mb, axis=1)
    if d.size < 2:
        raise ValueError(f"a confidence interval needs at least 2 paired items, got {d.size}")
    rng = np.random.default_rng(seed)
    items = rng.integers(0, d.size, (n_resamples, d.size))
    diff = _resample_item_means(ma, ca, items, rng) - _resample_item_means(mb, cb, items, rng)
    means: NDArray[np.float64] = diff.mean(axis=1)
    constant = bool(np.all(d == d[0]) and np.all(np.nan_to_num(ma - ma[:, :1]) == 0)
                    and np.all(np.nan_to_num(mb - mb[:, :1]) == 0))
    return interval_from_means(d, means, confidence=confidence, method=method, seed=seed, degenerate=constant)


# -- tests ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test: ``b`` items pass only under a, ``c`` only under b."""

    b: int
    c: int
    p_value: float


def mcnemar_exact(a_pass: ArrayLike, b_pass: ArrayLike) -> McNemar:
    """Two-sided exact McNemar test on paired pass/fail outcomes (values 0/1 or bools)."""
    x, y = np.asarray(a_pass, dtype=float), np.asarray(b_pass, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("a_pass and b_pass must be 1-d and pair up")
    if not (is_binary(x) and is_binary(y)):
        raise ValueError("McNemar's test needs pass/fail (0/1) outcomes")
    b = int(np.count_nonzero((x == 1) & (y == 0)))
    c = int(np.count_nonzero((x == 0) & (y == 1)))
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0)
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return McNemar(b, c, min(1.0, 2 * tail / 2**n))


def sign_flip_test(diffs: ArrayLike, *, n_resamples: int = 20_000, seed: int = 0,
                   exact_max_n: int = 16) -> float:
    """Two-sided paired permutation p-value of ``mean(diffs) == 0`` (each item's sign flipped).

    Exact (all ``2**n`` sign patterns) for ``n <= exact_max_n`` nonzero differences, else
    ``(1 + hits) / (1 + n_resamples)`` over seeded random patterns. Zero differences carry no
    sign and are dropped (they do not change the statistic's null distribution's shape)."""
    d = as_float_array(diffs, "diffs")
    d = d[d != 0.0]
    if d.size == 0:
        return 1.0
    observed = abs(d.sum())
    threshold = observed * (1 - _REL_TOL)
    if d.size <= exact_max_n:
        hits, total = 0, 2**d.size
        codes = np.arange(total, dtype=np.int64)
        for start in range(0, total, 1 << 16):
            chunk = codes[start:start + (1 << 16)]
            signs = 1 - 2 * ((chunk[:, None] >> np.arange(d.size)) & 1)
            hits += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
        return float(hits / total)
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_resamples, 4096):
        m = min(4096, n_resamples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(m, d.size))
        hits += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
    return (1 + hits) / (1 + n_resamples)


def wilson_interval(successes: float, n: int, *, confidence: float = 0.95) -> Interval:
    """Wilson's score interval of the rate ``successes / n`` (``successes`` may count a tie as half)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"successes: must be in [0, n] with n >= 1, got {successes} of {n}")
    z = _NORMAL.inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    rate, z2 = successes / n, z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Interval(max(0.0, centre - half), min(1.0, centre + half), confidence, "wilson", 0, 0, confidence)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return [float(v) for v in out]


def bonferroni(p_values: Sequence[float]) -> list[float]:
    m = len(p_values)
    return [min(1.0, float(p) * m) for p in p_values]


def spearman(x: ArrayLike, y: ArrayLike) -> float | None:
    """Spearman's rank correlation (ties averaged); ``None`` when either side is constant."""
    a, b = as_float_array(x, "x"), as_float_array(y, "y")
    if a.shape != b.shape:
        raise ValueError("x and y must pair up")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])  # ties: their average rank
