"""How many items a paired comparison needs: a sample-size plan from pilot scores.

For paired scores the comparison is a one-sample test of the mean difference ``d = a − b``. With
the standard deviation ``s`` of the pilot's differences, the power of a two-sided level-``alpha``
test on ``n`` items to detect a true difference ``δ`` is (the paired t-test's, by the usual
shifted-t approximation; the permutation test the report uses has the same power at these sizes)
``Φ(δ√n/s − t_{1−α/2, n−1}) + Φ(−δ√n/s − t_{1−α/2, n−1})``. ``n_items`` is the least ``n`` reaching
the requested power. A pilot's ``s`` is itself uncertain, so the plan also gives ``n`` at the
one-sided 80% upper confidence limit of ``s`` (Browne 1995), a prudent budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .._errors import invalid
from ..data import item_scores
from .paired import as_float_array, is_binary, t_quantile


class _Stored(Protocol):
    """What the plan reads of a stored ``EvaluationResult`` (no import of it: result imports the comparison,
    which imports this module)."""

    samples: pd.DataFrame

    @property
    def llm_tags(self) -> list[str]: ...

    @property
    def item_metrics(self) -> list[str]: ...

_NORMAL = NormalDist()
#: one-sided confidence of the upper limit on the pilot's standard deviation used for ``n_items_upper``
SD_UPPER_CONFIDENCE = 0.8
MAX_ITEMS = 10_000_000


def _power(n: int, effect: float, alpha: float) -> float:
    """Two-sided paired test's power on ``n`` items for a standardised difference ``effect`` (δ/s)."""
    if n < 2:
        return 0.0
    crit = t_quantile(1.0 - alpha / 2.0, n - 1) if n <= 1000 else _NORMAL.inv_cdf(1.0 - alpha / 2.0)
    shift = effect * math.sqrt(n)
    return _NORMAL.cdf(shift - crit) + _NORMAL.cdf(-shift - crit)


def _mcnemar_power(n: int, discordant: float, diff: float, alpha: float) -> float:
    """Exact power of McNemar's exact two-sided test on ``n`` pairs: the discordant pairs are
    ``Binomial(n, discordant)``, those won by a among them ``Binomial(k, (discordant + diff) / (2 discordant))``."""
    if n < 1:
        return 0.0
    lf = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])  # log(k!) for k = 0..n
    win = (discordant + diff) / (2.0 * discordant)
    sd = math.sqrt(n * discordant * (1.0 - discordant))
    lo, hi = max(0, int(n * discordant - 8 * sd) - 1), min(n, int(n * discordant + 8 * sd) + 1)
    total = 0.0
    for k in range(max(lo, 1), hi + 1):
        if discordant == 1.0 and k < n:
            continue  # every pair is discordant: all the mass is at k = n
        rest = (n - k) * math.log1p(-discordant) if k < n else 0.0
        p_k = math.exp(lf[n] - lf[k] - lf[n - k] + k * math.log(discordant) + rest)
        j = np.arange(k + 1)
        log_choose = lf[k] - lf[j] - lf[k - j]
        c = int(np.count_nonzero(2.0 * np.cumsum(np.exp(log_choose - k * math.log(2.0))) < alpha)) - 1
        if c < 0:
            continue
        pmf = np.exp(log_choose + j * math.log(win) + (k - j) * math.log1p(-win)) if win < 1.0 else (j == k) * 1.0
        total += p_k * float(pmf[: c + 1].sum() + pmf[k - c:].sum())
    return min(total, 1.0)


def _items_for(power_of: Callable[[int], float], guess: int, power: float) -> int:
    """An ``n >= 2`` whose power reaches ``power`` while ``n - 1``'s does not (bisection from ``guess``)."""
    hi = max(guess, 2)
    while power_of(hi) < power:
        hi *= 2
        if hi > MAX_ITEMS:
            raise invalid("min_difference", f"too small to plan: over {MAX_ITEMS} items would be needed")
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if power_of(mid) < power else (lo, mid)
    return hi


def _chi2_quantile(q: float, df: int) -> float:
    """Wilson–Hilferty approximation of the chi-square quantile (within 1% for df >= 3)."""
    z = _NORMAL.inv_cdf(q)
    k = float(df)
    return k * (1.0 - 2.0 / (9.0 * k) + z * math.sqrt(2.0 / (9.0 * k))) ** 3


@dataclass(frozen=True)
class Plan:
    """A fixed-n plan: ``n_items`` paired items detect ``min_difference`` with ``power`` at ``alpha``."""

    n_items: int
    min_difference: float
    power: float
    alpha: float
    #: standard deviation of the pilot's paired differences, and the pilot's size and mean difference
    sd: float
    n_pilot: int
    pilot_difference: float
    #: ``n_items`` if the true standard deviation is at the pilot's 80% upper confidence limit
    n_items_upper: int
    metric: str | None = None
    models: tuple[str, str] | None = None
    assumptions: list[str] = field(default_factory=list)
    #: pass/fail scores: the pilot's share of items where exactly one model passes (McNemar's test)
    discordant: float | None = None

    def power_at(self, n: int) -> float:
        """The power to detect ``min_difference`` with ``n`` paired items."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise invalid("n", f"must be a whole number of items, got {n!r}")
        if self.discordant is not None:
            return _mcnemar_power(int(n), self.discordant, self.min_difference, self.alpha)
        return _power(int(n), self.min_difference / self.sd, self.alpha)


    @property
    def sentence(self) -> str:
        what = f" on {self.metric}" if self.metric else ""
        pair = f" ({self.models[0]} vs {self.models[1]})" if self.models else ""
        return (f"{self.n_items} paired items detect a difference of {self.min_difference:g}{what}{pair} with "
                f"{self.power:.0%} power at alpha={self.alpha:g} (up to {self.n_items_upper} if the spread is at "
                f"the pilot's {SD_UPPER_CONFIDENCE:.0%} upper limit; pilot: {self.n_pilot} items, sd of the "
                f"differences {self.sd:.3g}, mean difference {self.pilot_difference:+.3g})")

    def __repr__(self) -> str:
        return "\n".join([f"Plan: {self.sentence}", *(f"  - {a}" for a in self.assumptions)])


def _paired_from_result(result: _Stored, metric: str, a: str | None,
                        b: str | None) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, str]]:
    """Per-item means of ``metric`` for models ``a`` and ``b`` of a stored result, paired by item."""
    tags = result.llm_tags or list(dict.fromkeys(str(t) for t in result.samples["llm"]))
    if a is None or b is None:
        if len(tags) != 2:
            raise invalid("a", f"the result has {len(tags)} models {tags}: name a= and b= to plan a pair")
        a = a or next(t for t in tags if t != b)
        b = b or next(t for t in tags if t != a)
    for name, tag in (("a", a), ("b", b)):
        if tag not in tags:
            raise invalid(name, f"{tag!r} is not a model of this result (models: {tags})")
    if metric not in result.samples.columns:
        raise invalid("metric", f"no per-item scores of {metric!r} (per-item metrics: {result.item_metrics})")
    sa, sb = item_scores(result.samples, a, metric), item_scores(result.samples, b, metric)
    keys = sorted(set(sa) & set(sb))
    return (np.array([np.mean(sa[k]) for k in keys]), np.array([np.mean(sb[k]) for k in keys]), (a, b))


def plan_comparison(a_scores: ArrayLike | _Stored, b_scores: ArrayLike | str | None = None, *,
                    min_difference: float, power: float = 0.8, alpha: float = 0.05, a: str | None = None,
                    b: str | None = None) -> Plan:
    """The fixed number of paired items needed to detect ``min_difference`` (a − b) with ``power``.

    ``a_scores``, ``b_scores``: paired pilot scores, one per item; or a stored ``EvaluationResult``
    and the metric's name (models ``a`` and ``b``; defaults: its two models)."""
    metric: str | None = None
    models: tuple[str, str] | None = None
    if hasattr(a_scores, "samples") and hasattr(a_scores, "item_metrics"):
        if not isinstance(b_scores, str):
            raise invalid("b_scores", "with a stored result, pass the metric's name as the second argument")
        metric = b_scores
        x, y, models = _paired_from_result(a_scores, metric, a, b)  # type: ignore[arg-type]
    else:
        if b_scores is None or isinstance(b_scores, str):
            raise invalid("b_scores", "pass the baseline's pilot scores, paired with a_scores item by item")
        x, y = as_float_array(a_scores, "a_scores"), as_float_array(b_scores, "b_scores")
        if x.shape != y.shape:
            raise invalid("b_scores", f"a and b must pair up: {x.size} vs {y.size} scores")
    return _plan(x - y, min_difference=min_difference, power=power, alpha=alpha, metric=metric, models=models,
                 binary=is_binary(x) and is_binary(y))


#: what a plan of a pair the pilot cannot tell apart says (every item scored the same difference)
NO_SPREAD = "no spread to plan from"


def _plan(d: NDArray[np.float64], *, min_difference: float, power: float, alpha: float, metric: str | None,
          models: tuple[str, str] | None, binary: bool) -> Plan:
    if isinstance(min_difference, bool) or not isinstance(min_difference, (int, float)) or not min_difference > 0:
        raise invalid("min_difference", f"must be a positive number, got {min_difference!r}")
    if not 0.0 < alpha < 0.5:
        raise invalid("alpha", f"must be in (0, 0.5), got {alpha}")
    if not alpha < power < 1.0:
        raise invalid("power", f"must be in (alpha, 1), got {power}")
    n = d.size
    if n < 3:
        raise invalid("a_scores", f"a pilot needs at least 3 paired items to estimate the spread, got {n}")
    sd = float(np.std(d, ddof=1))
    if sd <= 1e-12 * max(1.0, abs(float(d.mean()))):
        raise invalid("a_scores", f"the pilot's {n} differences are all {d[0]:g}: {NO_SPREAD} "
                                  "(run a larger or more varied pilot)")
    z = _NORMAL.inv_cdf(1.0 - alpha / 2.0) + _NORMAL.inv_cdf(power)
    notes = ["items are exchangeable with the pilot's (same data set, drawn at random); each is scored once",
             "one comparison: with k models against a baseline, Holm's adjustment needs about alpha/k, "
             f"i.e. more items (plan with alpha={alpha:g}/k)"]
    if binary:
        disc = float(np.mean(d != 0.0))
        if not min_difference < disc:
            raise invalid("min_difference", f"{min_difference:g} cannot be detected: the models disagree on only "
                                            f"{disc:.0%} of the pilot's items (the difference is at most that)")
        k = n * disc  # Wilson's one-sided upper limit of the discordant share
        zu = _NORMAL.inv_cdf(SD_UPPER_CONFIDENCE)
        disc_upper = min(1.0, (k + zu * zu / 2 + zu * math.sqrt(k * (n - k) / n + zu * zu / 4)) / (n + zu * zu))
        notes[:0] = [f"pass/fail scores: McNemar's exact two-sided test at alpha={alpha:g}, its exact power",
                     f"the share of items where exactly one model passes is the pilot's ({disc:.0%} of {n}) and "
                     "does not change with the difference"]
        n_items = _items_for(lambda m: _mcnemar_power(m, disc, min_difference, alpha),
                             math.ceil(z * z * disc / min_difference**2), power)
        upper_items = _items_for(lambda m: _mcnemar_power(m, disc_upper, min_difference, alpha),
                                 math.ceil(z * z * disc_upper / min_difference**2), power)
    else:
        disc = None
        upper = sd * math.sqrt((n - 1) / _chi2_quantile(1.0 - SD_UPPER_CONFIDENCE, n - 1))
        notes[:0] = [f"two-sided paired test of the mean difference at alpha={alpha:g} (the comparison's permutation "
                     "test), power by the shifted-t approximation",
                     f"the spread of the differences is the pilot's (sd {sd:.3g} over {n} items) and does not "
                     "change with the difference"]
        n_items = _items_for(lambda m: _power(m, min_difference / sd, alpha),
                             math.ceil((z * sd / min_difference) ** 2), power)
        upper_items = _items_for(lambda m: _power(m, min_difference / upper, alpha),
                                 math.ceil((z * upper / min_difference) ** 2), power)
    if n < 20:
        notes.append(f"a pilot of {n} items estimates the spread loosely; budget for n_items_upper")
    return Plan(n_items=n_items, min_difference=float(min_difference), power=power, alpha=alpha, sd=sd, n_pilot=n,
                pilot_difference=float(d.mean()), n_items_upper=upper_items, metric=metric, models=models,
                assumptions=notes, discordant=disc)


def items_to_decide(diffs: Sequence[float] | NDArray[np.float64], *, pass_fail: bool = False, power: float = 0.8,
                    alpha: float = 0.05) -> int | None:
    """For an inconclusive comparison: the items a new run would need to detect the difference it
    observed with ``power`` (``None`` when it observed none, or no spread)."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 3 or d.mean() == 0.0:
        return None
    try:
        return _plan(d, min_difference=abs(float(d.mean())), power=power, alpha=alpha, metric=None,
                     models=None, binary=pass_fail).n_items
    except ValueError:
        return None

