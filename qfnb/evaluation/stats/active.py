"""The fewest labels: a person labels the items where the judge is unsure, and the judge's mean is
corrected with an interval valid at every look.

Active statistical inference (Zrnic & Candès 2024, "Active Statistical Inference", ICML): the judge
scores all ``N`` items (``f``); each label is asked of an item drawn with probability ``π(i)``, higher
where the judge's *doubt* is higher. A draw ``I`` gives ``Z = mean(f) + (y_I − f_I) / (N π(I))``
(the label-minus-judge residual weighted by the inverse of its probability: Horvitz & Thompson
1952; the prediction-powered rectifier of Angelopoulos et al. 2023). Whatever ``π`` is, as long as
it is fixed before the draw, ``E[Z | the past] = mean(y)``: the estimate is unbiased and the
interval valid *however wrong the doubt is*; a wrong doubt only costs labels.

* The design is ``π = s/N + (1 − s) · doubt / Σ doubt``: a uniform share ``s`` keeps every weight
  at most ``1/s`` of uniform's. ``s`` is chosen before each draw among :data:`SHARES` (never below
  the queue's ``floor``) by the smallest estimated variance of ``Z``: an inverse-probability-weighted
  estimate from the draws so far, plus the judge's own forecast (a score ``q`` of the range expects a
  squared error ``q (1 − q)``, the variance that makes ``π ∝ doubt`` optimal when ``doubt =
  sqrt(q (1 − q))``) counted as :data:`FORECAST_DRAWS` draws. So the first draws already follow a
  doubt that agrees with the judge's scores, a doubt that contradicts them starts near uniform, and a
  doubt that does not track the errors the labels find drifts the design back to uniform.
* The draws are with replacement: an item drawn again reuses its label (no one labels twice).
* The interval is a confidence sequence over the draws' ``Z``, valid at every look, so the person may
  stop the moment :meth:`LabelQueue.done` says so: by default (``method="mixture"``) Robbins'
  normal-mixture boundary around the running mean (:func:`~.sequential.mixture_radius`; Waudby-Smith,
  Arbour, Sinha, Kennedy & Ramdas 2024, asymptotically valid), its sd estimated with
  :data:`PRIOR_ITEMS` prior labels at half the label range, times the design's forecast variance over
  uniform draws' (at most 1: :meth:`ActiveDesign.prior_scale`), the running intersection kept. With
  ``method="betting"``, the exact betting sequence of :mod:`.sequential` (Waudby-Smith & Ramdas
  2024) on ``Z`` in ``mean(f) ± B``, ``B = max |y − f| / floor``: valid at any sample size, but those
  loose bounds cost it about three times the labels, so it is not the default.

Doubt, when the caller gives none, comes from what the judge returned (:func:`judge_doubt`): a
score's probability ``p`` (a score on a scale, rescaled to [0, 1]) gives ``sqrt(p (1 − p))``;
repeated judgements give their spread; a pairwise judgement whose two orders disagree is the most
doubtful (:func:`preference_doubt`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import invalid
from ._words import signed
from .calibrate import CalibratedMean
from .paired import as_float_array
from .sequential import BettingSequence, mixture_radius

#: uniform shares the design chooses among (the rest of each draw follows the doubt)
SHARES = (1.0, 0.6, 0.35, 0.2)
#: the smallest uniform share allowed by default: no weight above 1/0.2 = 5 times uniform's
FLOOR = 0.2
#: the share used until :data:`ADAPT_AFTER` labelled draws measure which share is best, where the judge
#: forecasts nothing (every score certain)
START_SHARE = 0.6
ADAPT_AFTER = 12
#: the judge's own forecast of each share's variance counts as this many labelled draws in the choice
FORECAST_DRAWS = 12.0
#: a doubt below this share of the mean doubt counts as this much (no item is left out of the design)
DOUBT_FLOOR = 0.02
#: the mixture sequence's prior on the spread of ``Z``: this many items at the largest sd of a label
#: on its scale (half the range), scaled down by the design's forecast gain over uniform draws, so a
#: few early labels that agree never make a narrow interval
PRIOR_ITEMS = 2.0
METHODS = ("mixture", "betting")
#: draws one ``next`` call may spend on items already labelled before it answers with fewer than ``k``
#: (it never answers with none while an item is unlabelled)
MAX_FREE_DRAWS = 10_000
#: doubt of a pairwise judgement: the two orders disagree, neither order says who wins, both agree
DOUBT_DISAGREE, DOUBT_TIE, DOUBT_AGREE = 1.0, 0.6, 0.25


# -- doubt ---------------------------------------------------------------------------------------------
def probability_doubt(p: ArrayLike) -> NDArray[np.float64]:
    """``sqrt(p (1 − p))``: the spread of a pass/fail label when the judge says ``p``."""
    q = np.clip(as_float_array(p, "judge_scores"), 0.0, 1.0)
    out: NDArray[np.float64] = np.sqrt(q * (1.0 - q))
    return out


def judge_doubt(judge_scores: ArrayLike, bounds: tuple[float, float]) -> tuple[NDArray[np.float64],
                                                                                  NDArray[np.float64]]:
    """Each item's judge score and doubt from what the judge returned: one score per item (a
    probability, or a score on ``bounds`` rescaled to one: ``sqrt(p (1 − p))``), or repeated
    judgements (``(items, repeats)``: their mean, and their spread — the probability's doubt where
    every repeat agrees)."""
    lo, hi = bounds
    raw = np.asarray(judge_scores, dtype=float)
    if raw.ndim == 2:
        if raw.shape[1] == 0 or not np.all(np.isfinite(raw)):
            raise invalid("judge_scores", "repeated judgements need finite scores, at least one per item")
        scores = raw.mean(axis=1)
        spread = raw.std(axis=1) / (hi - lo)
        doubt = np.where(spread > 0, 0.5 * spread + 0.5 * probability_doubt((scores - lo) / (hi - lo)),
                         probability_doubt((scores - lo) / (hi - lo)))
        return scores, doubt
    scores = as_float_array(raw, "judge_scores")
    return scores, probability_doubt((scores - lo) / (hi - lo))


def preference_doubt(preferences: Sequence[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A pairwise judge's :class:`~qfnb.evaluation.evaluators.pairwise.Preference` list (both orders
    asked) -> each item's score in [−1, 1] (``+1`` the first model wins) and doubt: highest where the
    two orders disagree (or the item was not judged: ``None``, a tie), then where neither names a
    winner, lowest where both orders agree."""
    scores = np.array([0.0 if p is None else float(p.value) for p in preferences])
    doubt = np.array([DOUBT_DISAGREE if p is None or p.position_bias else DOUBT_TIE if p.value == 0 else DOUBT_AGREE
                      for p in preferences])
    return scores, doubt


# -- the design ----------------------------------------------------------------------------------------
def design(doubt: NDArray[np.float64], share: ArrayLike) -> NDArray[np.float64]:
    """Draw probabilities ``share/N + (1 − share) · doubt/Σ doubt`` (batched over ``share``'s shape)."""
    n = doubt.shape[-1]
    total = doubt.sum(axis=-1, keepdims=True)
    by_doubt = np.where(total > 0, doubt / np.where(total > 0, total, 1.0), 1.0 / n)
    s = np.asarray(share, dtype=float)[..., None]
    out: NDArray[np.float64] = s / n + (1.0 - s) * by_doubt
    return out


def floored_doubt(doubt: NDArray[np.float64]) -> NDArray[np.float64]:
    """Doubt with a small floor (a share of the mean), so no item's probability is only the uniform share."""
    mean = float(doubt.mean()) if doubt.size else 0.0
    out: NDArray[np.float64] = np.maximum(doubt, DOUBT_FLOOR * mean)
    return out


class ActiveDesign:
    """The draw probabilities of one queue (or of a batch of simulated ones: ``doubt`` ``(..., N)``),
    and what chooses the design's uniform share: for each candidate share ``s``, the running sum of
    ``e² / (N π_then) / (N π_s(item))`` over the labelled draws, an unbiased estimate of the second
    moment of ``Z − mean(f)`` under that share, ``Σ_i e_i² / (N² π_s(i))``.

    ``expected``: the judge's own forecast of each item's ``E[e²]`` (``q (1 − q)`` times the squared
    label range for a score ``q`` of the range), or None. It gives each share a forecast second moment,
    counted as :data:`FORECAST_DRAWS` labelled draws in the choice (so the first draws already follow
    the judge's forecast, and a doubt that contradicts the judge's own scores starts near uniform), and
    scales the interval's prior (:meth:`prior_scale`). Without it (or where it forecasts no error
    anywhere) the share is :data:`START_SHARE` until :data:`ADAPT_AFTER` labelled draws."""

    def __init__(self, doubt: NDArray[np.float64], floor: float, expected: NDArray[np.float64] | None = None) -> None:
        self.n = doubt.shape[-1]
        self.shares = np.array(sorted({max(s, floor) for s in (*SHARES, START_SHARE)}, reverse=True))
        self.start = int(np.flatnonzero(self.shares == max(START_SHARE, floor))[0])
        #: each candidate share's probabilities, ``(..., S, N)``
        self.candidates = design(doubt[..., None, :], self.shares)
        self.sums = np.zeros(self.candidates.shape[:-1])
        self.count = 0
        #: the judge's forecast second moment of ``Z − mean(f)`` per share (the first, 1.0, is uniform), or None
        self.forecast: NDArray[np.float64] | None = None
        if expected is not None:
            ahead = (np.asarray(expected, dtype=float)[..., None, :] / (self.n * self.n * self.candidates)).sum(axis=-1)
            if np.all(ahead[..., 0] > 0):
                self.forecast = ahead

    def choice(self) -> NDArray[np.int64]:
        """Which candidate share the next draw uses (per queue of the batch): the one of least
        estimated variance, the judge's forecast counted as :data:`FORECAST_DRAWS` draws (without a
        forecast, the start share until :data:`ADAPT_AFTER` labelled draws)."""
        if self.forecast is not None:
            out: NDArray[np.int64] = np.argmin(self.sums + FORECAST_DRAWS * self.forecast, axis=-1)
            return out
        if self.count < ADAPT_AFTER:
            return np.full(self.sums.shape[:-1], self.start, dtype=np.int64)
        chosen: NDArray[np.int64] = np.argmin(self.sums, axis=-1)
        return chosen

    def share(self) -> NDArray[np.float64]:
        out: NDArray[np.float64] = self.shares[self.choice()]
        return out

    def probabilities(self) -> NDArray[np.float64]:
        """The next draw's probabilities ``(..., N)``."""
        pick = self.choice()
        out: NDArray[np.float64] = np.take_along_axis(self.candidates, pick[..., None, None], axis=-2)[..., 0, :]
        return out

    def prior_scale(self) -> NDArray[np.float64]:
        """How much of the uniform design's prior spread the next draw's ``Z`` gets: the forecast second
        moment of the share in use over uniform's, at most 1 (1 without a forecast). A design that
        follows a calibrated judge's doubt gets the smaller prior its smaller variance warrants; a
        design the judge forecasts no better than uniform keeps the whole prior."""
        if self.forecast is None:
            return np.ones(self.sums.shape[:-1])
        at = np.take_along_axis(self.forecast, self.choice()[..., None], axis=-1)[..., 0]
        out: NDArray[np.float64] = np.minimum(at / self.forecast[..., 0], 1.0)
        return out

    def observe(self, item: ArrayLike, p_then: ArrayLike, residual: ArrayLike) -> None:
        """A labelled draw (one per queue of the batch): its item, its probability then, ``y − f``."""
        it = np.asarray(item, dtype=np.int64)
        at = np.take_along_axis(self.candidates, np.broadcast_to(it[..., None, None], (*self.sums.shape, 1)),
                                axis=-1)[..., 0]
        e = np.asarray(residual, dtype=float)
        self.sums = self.sums + (e * e / (self.n * np.asarray(p_then, dtype=float)))[..., None] / (self.n * at)
        self.count += 1


def expected_error(scores: NDArray[np.float64], bounds: tuple[float, float]) -> NDArray[np.float64]:
    """The judge's own forecast of ``E[(y − f)²]`` per item: ``q (1 − q) (hi − lo)²`` for a score ``q``
    of the range (a label's largest variance at that mean; exact for a calibrated pass/fail judge)."""
    lo, hi = bounds
    q = np.clip((scores - lo) / (hi - lo), 0.0, 1.0)
    out: NDArray[np.float64] = q * (1.0 - q) * (hi - lo) ** 2
    return out


def mixture_bounds(z: NDArray[np.float64], sums: NDArray[np.float64], t0: int, *, alpha: float,
                   prior: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The mixture sequence's interval after each of the new draws ``z`` (``(..., T)``), given the
    running ``[Σ z, Σ z²]`` of the ``t0`` before them (``sums``: ``(..., 2)``): the running mean
    ± :func:`~.sequential.mixture_radius`, its variance estimated with :data:`PRIOR_ITEMS` prior items
    at variance ``prior`` (broadcast against ``z``: one per draw). Batched over leading dimensions."""
    t = t0 + np.arange(1, z.shape[-1] + 1, dtype=float)
    total = sums[..., :1] + np.cumsum(z, axis=-1)
    squares = sums[..., 1:] + np.cumsum(z * z, axis=-1)
    mean = total / t
    scatter = np.maximum(squares - total * mean, 0.0)
    sd = np.sqrt((PRIOR_ITEMS * np.asarray(prior, dtype=float) + scatter) / (PRIOR_ITEMS + t - 1.0))
    radius = mixture_radius(t, sd, alpha=alpha)
    return mean - radius, mean + radius


def residual_bound(scores: NDArray[np.float64], bounds: tuple[float, float]) -> float:
    """The largest ``|y − f|`` a label in ``bounds`` can give on these judge scores."""
    lo, hi = bounds
    return float(max(np.max(hi - scores), np.max(scores - lo), 1e-12))


class LabelQueue:
    """Which items a person labels next, and the judge's mean corrected by their labels (see the
    module docstring).

    ``judge_scores``: the judge's score of every item (or ``(items, repeats)`` repeated
    judgements); ``uncertainty``: the judge's doubt per item (``None``: derived from the scores, see
    :func:`judge_doubt`); ``bounds``: the lowest and highest label (and score) there can be
    (``None``: ``(0, 1)`` when every score lies in it); ``floor``: the smallest uniform share of the
    design (weights at most ``1/floor``); ``seed``: the draws' seed (a queue replays the same items);
    ``method``: the confidence sequence, ``"mixture"`` (default) or ``"betting"`` (see the module docstring);
    ``forecast``: whether the scores forecast the judge's errors (``q (1 − q)``: :class:`ActiveDesign`);
    False where they are verdicts, not probabilities (a pairwise judge's ``±1``, which is no promise of
    no error).

    ``next(k)`` names the items to label, ``add(index, label)`` records a label, ``estimate()`` is a
    :class:`CalibratedMean` whose interval holds at every look, ``done(width=, null=)`` says when to
    stop. ``state()`` and ``restore(state)`` carry the labels and draws across kernels.
    """

    def __init__(self, judge_scores: ArrayLike, uncertainty: ArrayLike | None = None, confidence: float = 0.95, *,
                 bounds: tuple[float, float] | None = None, floor: float = FLOOR, seed: int = 0,
                 method: str = "mixture", forecast: bool = True) -> None:
        if method not in METHODS:
            raise invalid("method", f"one of {METHODS}, got {method!r}")
        if not 0.0 < confidence < 1.0:
            raise invalid("confidence", f"must be in (0, 1), got {confidence}")
        if not 0.0 < floor <= 1.0:
            raise invalid("floor", f"must be in (0, 1], got {floor}")
        raw = np.asarray(judge_scores, dtype=float)
        if raw.ndim not in (1, 2) or raw.shape[0] < 2:
            raise invalid("judge_scores", f"one score (or one row of repeats) per item, at least 2 items; got shape "
                                          f"{raw.shape}")
        self.bounds = _bounds(raw, bounds)
        scores, derived = judge_doubt(raw, self.bounds)
        if uncertainty is not None:
            derived = as_float_array(uncertainty, "uncertainty")
            if derived.shape != scores.shape:
                raise invalid("uncertainty", f"one value per item: {derived.size} for {scores.size} items")
            if np.any(derived < 0):
                raise invalid("uncertainty", "must be >= 0 (a larger value: the judge is less sure)")
        self.scores = scores
        self.doubt = floored_doubt(derived)
        self.confidence = confidence
        self.floor = floor
        self.seed = seed
        self._design = ActiveDesign(self.doubt, floor, expected_error(scores, self.bounds) if forecast else None)
        self._bound = residual_bound(scores, self.bounds) / floor
        self._mean_judge = float(scores.mean())
        self._rng = np.random.default_rng(seed)
        self.method = method
        self._sequence = BettingSequence(alpha=1.0 - confidence)
        #: the mixture sequence: running sums of Z and its running intersection
        self._sums = np.zeros(2)
        self._kept = (-math.inf, math.inf)
        self.labels: dict[int, float] = {}
        #: a paired queue's two sides (``(a, b)``: a positive mean is ``a`` better), named in verdicts
        self.sides: tuple[str, str] | None = None
        #: every draw so far: (item, its probability then)
        self._draws: list[tuple[int, float]] = []
        self._z: list[float] = []

    @classmethod
    def paired(cls, judge_a: ArrayLike, judge_b: ArrayLike, uncertainty: ArrayLike | None = None,
               confidence: float = 0.95, *, bounds: tuple[float, float] = (0.0, 1.0),
               names: tuple[str, str] = ("a", "b"), **options: Any) -> LabelQueue:
        """A queue for the paired difference of two models judged on the same items (scores on
        ``bounds``): the judge's score of an item is ``(a − b) / (hi − lo)`` in [−1, 1], its doubt
        highest where the two scores are close; a label is the person's preference in [−1, 1]
        (``+1`` ``a``'s answer is better, ``-1`` ``b``'s, ``0`` a tie, or their score difference
        rescaled). ``done(null=0)`` decides which is better."""
        lo, hi = (float(v) for v in bounds)
        if not hi > lo:
            raise invalid("bounds", f"need lo < hi, got {bounds}")
        a, b = as_float_array(judge_a, "judge_a"), as_float_array(judge_b, "judge_b")
        if a.shape != b.shape:
            raise invalid("judge_b", f"a and b must pair up: {a.size} vs {b.size} items")
        for name, v in (("judge_a", a), ("judge_b", b)):
            if v.size and (v.min() < lo or v.max() > hi):
                raise invalid(name, f"a score is outside bounds [{lo:g}, {hi:g}]; pass bounds=(lowest, highest)")
        return cls._of_preferences((a - b) / (hi - lo), uncertainty, confidence, names, options)

    @classmethod
    def of_preferences(cls, preferences: Sequence[Any], confidence: float = 0.95, *,
                       names: tuple[str, str] = ("a", "b"), **options: Any) -> LabelQueue:
        """A queue for a pairwise judge's verdicts (:class:`~qfnb.evaluation.evaluators.pairwise.Preference`,
        both orders asked; ``None`` for an item it did not judge): the judge's score ``+1``/``0``/``-1``,
        its doubt from the two orders (:func:`preference_doubt`); labels are the person's preference in
        [−1, 1]."""
        if len(preferences) < 2:
            raise invalid("preferences", f"at least 2 judged items, got {len(preferences)}")
        scores, doubt = preference_doubt(preferences)
        return cls._of_preferences(scores, doubt, confidence, names, {"forecast": False, **options})

    @classmethod
    def _of_preferences(cls, scores: NDArray[np.float64], uncertainty: ArrayLike | None, confidence: float,
                        names: tuple[str, str], options: Mapping[str, Any]) -> LabelQueue:
        if uncertainty is None:
            uncertainty = probability_doubt((scores + 1.0) / 2.0)
        queue = cls(scores, uncertainty, confidence, bounds=(-1.0, 1.0), **options)
        queue.sides = (str(names[0]), str(names[1]))
        return queue

    # -- sizes ---------------------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return int(self.scores.size)

    @property
    def n_labelled(self) -> int:
        return len(self.labels)

    @property
    def n_draws(self) -> int:
        """Draws whose label is in (an item drawn twice counts twice, labelled once)."""
        return len(self._z)

    # -- asking --------------------------------------------------------------------------------------------
    def next(self, k: int = 1) -> list[int]:
        """Up to ``k`` items to label next, in order (the first is the one to label now); an empty
        list once every item is labelled. Items already named and not yet labelled come first."""
        if k < 1:
            raise invalid("k", f"must be at least 1, got {k}")
        wanted = self._waiting()
        free = 0
        # every item keeps a probability of at least floor / N, so an unlabelled one comes up within
        # about N / (floor x unlabelled) draws: never an empty answer while an item is unlabelled
        while len(wanted) < k and self.n_labelled < self.n_items and (free <= MAX_FREE_DRAWS or not wanted):
            p = self._design.probabilities()
            item = int(self._rng.choice(self.n_items, p=p))
            self._draws.append((item, float(p[item])))
            if item in self.labels:
                free += 1
                self._advance()
            elif item not in wanted:
                wanted.append(item)
        return wanted[:k]

    def _waiting(self) -> list[int]:
        out: list[int] = []
        for item, _ in self._draws[self.n_draws:]:
            if item not in self.labels and item not in out:
                out.append(item)
        return out

    def add(self, index: int, label: float) -> None:
        """Record the person's ``label`` of item ``index`` (within ``bounds``); a label given again
        must be the same."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < self.n_items:
            raise invalid("index", f"an item position in 0..{self.n_items - 1}, got {index!r}")
        value = float(label)
        lo, hi = self.bounds
        if not (math.isfinite(value) and lo <= value <= hi):
            raise invalid("label", f"must lie in [{lo:g}, {hi:g}], got {label!r}")
        known = self.labels.get(int(index))
        if known is not None and known != value:
            raise invalid("label", f"item {index} is already labelled {known:g}; a label is a fact about the item")
        self.labels[int(index)] = value
        self._advance()

    def _advance(self) -> None:
        """Feed the confidence sequence every draw, in order, whose label is in."""
        new: list[float] = []
        priors: list[float] = []
        widest = ((self.bounds[1] - self.bounds[0]) / 2.0) ** 2
        for item, p in self._draws[self.n_draws:]:
            if item not in self.labels:
                break
            residual = self.labels[item] - self.scores[item]
            new.append(self._mean_judge + residual / (self.n_items * p))
            priors.append(widest * float(self._design.prior_scale()))
            self._design.observe(item, p, residual)
        if not new:
            return
        z = np.array(new)
        t0 = len(self._z)
        self._z.extend(new)
        if self.method == "betting":
            x = np.clip((z - self._mean_judge + self._bound) / (2.0 * self._bound), 0.0, 1.0)
            self._sequence.advance(x)
            return
        low, high = mixture_bounds(z, self._sums, t0, alpha=1.0 - self.confidence, prior=np.array(priors))
        self._sums = self._sums + np.array([z.sum(), (z * z).sum()])
        self._kept = (max(self._kept[0], float(low.max())), min(self._kept[1], float(high.min())))

    # -- what it says --------------------------------------------------------------------------------------
    def estimate(self) -> CalibratedMean:
        """The labels' mean over all items: the inverse-probability-weighted estimate with its
        confidence sequence (valid at every look); exact once every item is labelled."""
        lo, hi = self.bounds
        if self.n_labelled == self.n_items:
            exact = float(np.mean([self.labels[i] for i in range(self.n_items)]))
            return self._result(exact, exact, exact)
        if not self._z:
            return self._result(self._mean_judge, lo, hi)
        if self.method == "betting":
            x_lo, x_hi = self._sequence.interval()
            low = self._mean_judge + (2.0 * x_lo - 1.0) * self._bound
            high = self._mean_judge + (2.0 * x_hi - 1.0) * self._bound
        else:
            low, high = self._kept if self._kept[0] <= self._kept[1] else (self._kept[1], self._kept[0])
        return self._result(float(np.mean(self._z)), max(low, lo), min(high, hi))

    def _result(self, estimate: float, low: float, high: float) -> CalibratedMean:
        return CalibratedMean(estimate, low, high, self.confidence, self._mean_judge,
                              self._mean_judge - estimate + 0.0, self.n_items, self.n_labelled, draws=self.n_draws,
                              anytime=True)

    def done(self, width: float | None = None, null: float | None = None) -> bool:
        """True once the interval is at most ``width`` wide, or excludes ``null`` (a decision), or
        every item is labelled. Checking after every label is fine: the interval holds at every look."""
        if width is None and null is None:
            raise invalid("width", "say when to stop: width=the widest interval you accept, and/or null=the value "
                                   "a decision must rule out (0 for a paired difference)")
        if width is not None and not width > 0:
            raise invalid("width", f"must be > 0, got {width}")
        if self.n_labelled == self.n_items:
            return True
        est = self.estimate()
        return bool((width is not None and est.high - est.low <= width)
                    or (null is not None and self.n_draws > 0 and not est.contains(null)))

    def verdict(self, width: float | None = None, null: float | None = None) -> str:
        """One sentence: the estimate, its interval, the labels used, and whether that is enough."""
        est = self.estimate()
        count = f"{self.n_labelled} labels of {self.n_items} items"
        ci = f"{self.confidence:.0%} CI {signed(est.low, 3)}\u2026{signed(est.high, 3)}"
        if self.done(width, null):
            if null is not None and not est.contains(null):
                if self.sides is not None:
                    return f"labels enough: {self.sides[0 if est.low > null else 1]} wins, {ci}; {count}"
                side = "above" if est.low > null else "below"
                return f"labels enough: the mean is {side} {null:g}, {ci}; {count}"
            return f"labels enough: {signed(est.estimate, 3)}, {ci}; {count}"
        return f"not yet known: {signed(est.estimate, 3)}, {ci}; {count}"

    # -- persistence ---------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to continue in another kernel: the draws, the labels, the seed's state."""
        return {"draws": [[i, p] for i, p in self._draws], "labels": {str(i): v for i, v in self.labels.items()},
                "rng": self._rng.bit_generator.state, "n_items": self.n_items}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state` (of a queue over the same items)."""
        if self._draws or self.labels:
            raise invalid("state", "restore into a new queue, before any draw or label")
        if int(state.get("n_items", -1)) != self.n_items:
            raise invalid("state", f"saved for {state.get('n_items')} items, this queue has {self.n_items}")
        self._draws = [(int(i), float(p)) for i, p in state["draws"]]
        self._rng.bit_generator.state = dict(state["rng"])
        for key, value in state["labels"].items():
            self.labels[int(key)] = float(value)
        self._advance()

    def __repr__(self) -> str:
        return f"LabelQueue({self.n_labelled} labels of {self.n_items} items: {self.estimate().sentence})"


def _bounds(raw: NDArray[np.float64], bounds: tuple[float, float] | None) -> tuple[float, float]:
    if bounds is None:
        if np.nanmin(raw) < 0.0 or np.nanmax(raw) > 1.0:
            raise invalid("bounds", "the judge's scores are not all in [0, 1]: pass bounds=(lowest, highest) a "
                                    "label can be")
        return 0.0, 1.0
    lo, hi = (float(v) for v in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise invalid("bounds", f"need finite lo < hi, got {bounds}")
    return lo, hi
