"""Anytime-valid paired comparison: a betting confidence sequence, valid when checked after every item.

Scores lie in known bounds ``[lo, hi]``, so each paired difference ``d = a − b`` lies in ``[−R, R]``
(``R = hi − lo``) and ``x = (d / R + 1) / 2`` in ``[0, 1]``. For a candidate mean ``m`` of ``x``,
two gamblers bet, each on the items seen so far only, that the mean is above / below ``m``: their
wealth ``K±(m) = Π (1 ± λ±ᵢ (xᵢ − m))`` is a nonnegative martingale when the mean is ``m``, so by
Ville's inequality ``P(sup_t ½(K⁺ + K⁻) ≥ 1/α) ≤ α`` — however often one looks (the hedged capital
process of Waudby-Smith & Ramdas 2024, "Estimating means of bounded random variables by betting";
Howard et al. 2021 for time-uniform boundaries). The always-valid p-value of "no difference" is
``1 / max_t K_t(½)``; the confidence sequence is every ``m`` whose wealth never reached ``1/α``.

The bet is the approximate Kelly bet ``λ = g / (σ̂² + g²)`` for the gap ``g`` between the running mean
(shrunk towards ``m``) and ``m``, never below the planned ``min_difference`` when one is given
(aGRAPA, Waudby-Smith & Ramdas §5.3), and at most ``c / m`` so wealth stays positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import invalid
from ._words import digits_for, format_p, signed
from .paired import as_float_array

#: truncation of the bet (``λ ≤ c / m``): wealth keeps at least ``1 − c`` of itself on any one item
BET_CAP = 0.8
#: the running mean used for the bet counts as many items more, all at the candidate mean
SHRINK_ITEMS = 10.0
#: grid of candidate means in [0, 1] (odd, so ½ — "no difference" — is on it)
GRID_POINTS = 2001
_CHUNK = 256


@dataclass(frozen=True)
class Wealth:
    """Log wealth of the two gamblers after the items seen (per candidate mean) and the running
    sums their bets are made from."""

    n: int
    total: NDArray[np.float64]
    squares: NDArray[np.float64]
    log_up: NDArray[np.float64]
    log_down: NDArray[np.float64]


def start(shape: tuple[int, ...] = ()) -> Wealth:
    """Nothing seen yet (``shape``: the batch of candidate means or of simulated runs)."""
    zero = np.zeros(shape)
    return Wealth(0, zero, zero.copy(), zero.copy(), zero.copy())


def wealth_paths(x: NDArray[np.float64], m: ArrayLike, *, floor: float,
                 carry: Wealth | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64], Wealth]:
    """Both gamblers' log wealth after each of the new items ``x`` (``(..., T)`` in [0, 1]) for the
    candidate mean(s) ``m`` (broadcast against ``x[..., :1]``); ``floor``: the smallest gap bet on
    (the planned difference in ``x`` units, or 0). Returns the two ``(..., T)`` paths and the carry."""
    mm = np.asarray(m, dtype=float)
    shape = np.broadcast_shapes(x.shape[:-1], mm.shape[:-1] if mm.ndim else ())
    carry = carry or start(shape)
    t_prev = carry.n + np.arange(x.shape[-1], dtype=float)  # items seen before each new one
    cum = np.cumsum(x, axis=-1)
    cum2 = np.cumsum(x * x, axis=-1)
    total_prev = carry.total[..., None] + np.concatenate([np.zeros_like(cum[..., :1]), cum[..., :-1]], axis=-1)
    squares_prev = carry.squares[..., None] + np.concatenate([np.zeros_like(cum2[..., :1]), cum2[..., :-1]],
                                                              axis=-1)
    spread = squares_prev - total_prev**2 / np.maximum(t_prev, 1.0)
    var = (0.25 + np.maximum(spread, 0.0)) / (t_prev + 1.0)  # a prior item at the widest variance
    mean = (SHRINK_ITEMS * mm + total_prev) / (SHRINK_ITEMS + t_prev)
    gap_up = np.maximum(mean - mm, floor)
    gap_down = np.maximum(mm - mean, floor)
    lam_up = np.minimum(gap_up / (var + gap_up**2), BET_CAP / mm)
    lam_down = np.minimum(gap_down / (var + gap_down**2), BET_CAP / (1.0 - mm))
    up = carry.log_up[..., None] + np.cumsum(np.log1p(lam_up * (x - mm)), axis=-1)
    down = carry.log_down[..., None] + np.cumsum(np.log1p(-lam_down * (x - mm)), axis=-1)
    full = (*shape, x.shape[-1])
    up, down = np.broadcast_to(up, full), np.broadcast_to(down, full)
    after = Wealth(carry.n + x.shape[-1], np.broadcast_to(carry.total + cum[..., -1], shape).copy(),
                   np.broadcast_to(carry.squares + cum2[..., -1], shape).copy(), up[..., -1].copy(),
                   down[..., -1].copy())
    return up, down, after


def hedged(log_up: NDArray[np.float64], log_down: NDArray[np.float64]) -> NDArray[np.float64]:
    """Log of the hedged wealth ``½ K⁺ + ½ K⁻``."""
    out: NDArray[np.float64] = np.logaddexp(log_up, log_down) - math.log(2.0)
    return out


def decision_times(x: NDArray[np.float64], *, alpha: float, floor: float = 0.0) -> tuple[NDArray[np.int64],
                                                                                     NDArray[np.bool_]]:
    """For simulated runs ``x`` (``(runs, T)`` in [0, 1]): the item count at which "no difference"
    is first rejected (0 where it never is) and whether ``a`` won then — what
    :class:`SequentialComparison` says after each item, vectorised for simulation."""
    up, down, _ = wealth_paths(x, 0.5, floor=floor)
    hit = hedged(up, down) >= math.log(1.0 / alpha)
    at = hit.argmax(axis=-1)
    first: NDArray[np.int64] = np.where(hit.any(axis=-1), at + 1, 0)
    a_wins: NDArray[np.bool_] = np.take_along_axis(up > down, at[..., None], axis=-1)[..., 0] & (first > 0)
    return first, a_wins


class BettingSequence:
    """The candidate means of ``x`` in [0, 1] on a grid, each with its gamblers' wealth: a candidate is
    ruled out for good once its hedged wealth reaches ``1/alpha``. What :class:`SequentialComparison`
    and the label queue (:mod:`.active`) both stand on; ``floor``: the smallest gap bet on, ``extra``:
    candidates added to the grid."""

    def __init__(self, *, alpha: float, floor: float = 0.0, extra: tuple[float, ...] = (),
                 points: int = GRID_POINTS) -> None:
        self.alpha = alpha
        self.floor = floor
        self.grid = np.unique(np.concatenate([np.linspace(0.0, 1.0, points)[1:-1], np.asarray(extra, dtype=float)]))
        self._wealth = start(self.grid.shape)
        #: each candidate's largest log wealth so far
        self.best = np.full(self.grid.shape, -np.inf)

    @property
    def n(self) -> int:
        return self._wealth.n

    def advance(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                                      NDArray[np.float64]]:
        """Add the items ``x`` (in order); returns the running best hedged log wealth and the two
        gamblers' log wealth, ``(grid, len(x))`` each, for decisions made item by item."""
        up, down, self._wealth = wealth_paths(x[None, :], self.grid[:, None], floor=self.floor, carry=self._wealth)
        log_k = np.maximum.accumulate(np.maximum(hedged(up, down), self.best[:, None]), axis=1)
        if x.size:
            self.best = log_k[:, -1].copy()
        return log_k, up, down

    def interval(self) -> tuple[float, float]:
        """The candidates not ruled out, as ``(low, high)`` in [0, 1] (conservative by one grid step)."""
        kept = np.flatnonzero(self.best < math.log(1.0 / self.alpha))
        if kept.size == 0:  # every candidate ruled out (probability <= alpha): the least ruled-out one
            kept = np.array([int(np.argmin(self.best))])
        lo_i, hi_i = max(int(kept[0]) - 1, 0), min(int(kept[-1]) + 1, self.grid.size - 1)
        return (0.0 if lo_i == 0 else float(self.grid[lo_i]),
                1.0 if hi_i == self.grid.size - 1 else float(self.grid[hi_i]))


@dataclass(frozen=True)
class ConfidenceSequence:
    """The range of mean differences (a − b) not yet ruled out; it only ever shrinks."""

    low: float
    high: float
    confidence: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


class SequentialComparison:
    """Paired items of two models (``a`` − ``b``) added one at a time; decided once the betting
    confidence sequence excludes 0 (a winner) or, with ``min_difference``, lies within
    ``(−min_difference, +min_difference)`` (no difference that large). Valid at level ``alpha``
    however often it is checked, so the evaluation may stop as soon as :attr:`decided`.

    ``bounds``: the lowest and highest score the metric can give (``(0, 1)`` for rouge, accuracy,
    similarity of nonnegative vectors; a judge's scale otherwise). A score outside them is refused.
    """

    def __init__(self, *, alpha: float = 0.05, min_difference: float | None = None,
                 bounds: tuple[float, float] = (0.0, 1.0)) -> None:
        if not 0.0 < alpha < 1.0:
            raise invalid("alpha", f"must be in (0, 1), got {alpha}")
        lo, hi = (float(v) for v in bounds)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise invalid("bounds", f"need finite lo < hi, got {bounds}")
        self.alpha = alpha
        self.bounds = (lo, hi)
        self._range = hi - lo
        if min_difference is not None and not 0.0 < min_difference < self._range:
            raise invalid("min_difference", f"must be in (0, {self._range:g}) for scores in [{lo:g}, {hi:g}], "
                                            f"got {min_difference}")
        self.min_difference = min_difference
        self._floor = 0.0 if min_difference is None else min_difference / (2.0 * self._range)
        extra = tuple(0.5 + s * self._floor for s in (-1.0, 1.0)) if self._floor else ()
        self._sequence = BettingSequence(alpha=alpha, floor=self._floor, extra=extra)
        self._grid = self._sequence.grid
        self._null = int(np.searchsorted(self._grid, 0.5))
        self._diffs: list[float] = []
        self.decided_at: int | None = None
        self._winner: str | None = None

    # -- adding items ------------------------------------------------------------------------------
    def add(self, a: ArrayLike, b: ArrayLike) -> SequentialComparison:
        """Add paired scores (two numbers, or two equal-length sequences in item order)."""
        x = np.atleast_1d(as_float_array(np.atleast_1d(np.asarray(a, dtype=float)), "a"))
        y = np.atleast_1d(as_float_array(np.atleast_1d(np.asarray(b, dtype=float)), "b"))
        if x.shape != y.shape:
            raise invalid("b", f"a and b must pair up: {x.size} vs {y.size} scores")
        lo, hi = self.bounds
        for name, v in (("a", x), ("b", y)):
            if v.size and (v.min() < lo or v.max() > hi):
                raise invalid(name, f"score {float(v[(v < lo) | (v > hi)][0]):g} is outside bounds [{lo:g}, {hi:g}]; "
                                    "pass bounds=(lowest, highest) the metric can give")
        d = x - y
        for begin in range(0, d.size, _CHUNK):
            self._advance(d[begin:begin + _CHUNK])
        return self

    def _advance(self, d: NDArray[np.float64]) -> None:
        scaled = np.clip((d / self._range + 1.0) / 2.0, 0.0, 1.0)
        log_k, up, down = self._sequence.advance(scaled)
        if self.decided_at is None:
            self._decide(log_k, up[self._null] > down[self._null])
        self._diffs.extend(float(v) for v in d)

    def _decide(self, log_k: NDArray[np.float64], up_wins: NDArray[np.bool_]) -> None:
        threshold = math.log(1.0 / self.alpha)
        won = log_k[self._null] >= threshold
        inside = np.zeros_like(won)
        if self.min_difference is not None:
            far = np.abs(self._grid - 0.5) >= self._floor - 1e-12
            inside = np.all(log_k[far] >= threshold, axis=0) & ~won
        hit = won | inside
        if hit.any():
            t = int(hit.argmax())
            self.decided_at = len(self._diffs) + t + 1
            self._winner = ("a" if up_wins[t] else "b") if won[t] else None

    # -- what it says --------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self._diffs)

    @property
    def decided(self) -> bool:
        return self.decided_at is not None

    @property
    def winner(self) -> str | None:
        """``"a"``, ``"b"``, or ``None`` (undecided, or decided that no difference reaches ``min_difference``)."""
        return self._winner

    @property
    def estimate(self) -> float:
        """Mean difference a − b over the items added (NaN before any)."""
        return float(np.mean(self._diffs)) if self._diffs else float("nan")

    @property
    def p_value(self) -> float:
        """Always-valid p-value of "no difference": ``1 / max_t K_t``, valid at any stopping time."""
        return float(min(1.0, math.exp(-self._sequence.best[self._null]))) if self._diffs else 1.0

    @property
    def ci(self) -> ConfidenceSequence:
        """The confidence sequence at ``1 − alpha`` now (conservative by one grid step)."""
        low, high = ((2.0 * v - 1.0) * self._range for v in self._sequence.interval())
        return ConfidenceSequence(float(low), float(high), 1.0 - self.alpha)

    @property
    def verdict(self) -> str:
        """One sentence: who won after how many items, or why it is not decided yet."""
        cs = self.ci
        dg = digits_for(self.estimate, cs.low, cs.high) if self._diffs else 2
        interval = f"{1 - self.alpha:.0%} confidence sequence {signed(cs.low, dg)}\u2026{signed(cs.high, dg)}"
        p = f"always-valid p={format_p(self.p_value)}"
        if not self.decided:
            return f"not decided after {self.n_items} items (mean difference {signed(self.estimate, dg)}, " \
                   f"{interval}, {p})" if self._diffs else "no items yet"
        if self._winner is None:
            return (f"decided after {self.decided_at} items: no difference of {self.min_difference:g} or more "
                    f"({interval})")
        return f"decided after {self.decided_at} items: {self._winner} is better ({interval}, {p})"

    def __repr__(self) -> str:
        return f"SequentialComparison({self.verdict})"


# -- an asymptotic confidence sequence (for weighted means whose bounds are loose) ------------------------
#: the look at which the normal-mixture boundary is tightest (``ρ`` is tuned to it); it is valid at every look
TUNED_FOR = 100


def mixture_radius(t: ArrayLike, sd: ArrayLike, *, alpha: float, tuned_for: float = TUNED_FOR) -> NDArray[np.float64]:
    """Half-width of the two-sided asymptotic confidence sequence of a mean after ``t`` items whose
    standard deviation is estimated as ``sd``: Robbins' normal-mixture boundary,
    ``sd · sqrt(2 (t ρ² + 1) / (t² ρ²) · log(sqrt(t ρ² + 1) / α))`` (Waudby-Smith, Arbour, Sinha,
    Kennedy & Ramdas 2024, "Time-uniform central limit theory and asymptotic confidence sequences",
    *Ann. Statist.*, Thm 2.2), ``ρ`` tuned to be tightest at ``tuned_for`` items. Valid at every look
    as ``t`` grows (the martingale CLT's coupling); its price against a fixed-n interval is stated by
    :func:`anytime_price`. Unlike the betting sequence it never pays for loose bounds."""
    tt = np.maximum(np.asarray(t, dtype=float), 1.0)
    log_a = math.log(1.0 / alpha)
    rho2 = (2.0 * log_a + math.log(2.0 * log_a + 1.0)) / tuned_for
    out: NDArray[np.float64] = np.asarray(sd, dtype=float) * np.sqrt(
        2.0 * (tt * rho2 + 1.0) / (tt * tt * rho2) * np.log(np.sqrt(tt * rho2 + 1.0) / alpha))
    return out


def anytime_price(t: float, *, alpha: float, tuned_for: float = TUNED_FOR) -> float:
    """How many times wider the mixture boundary is than the fixed-n normal interval at ``t`` items
    (the price of being valid at every look); squared, the price in items."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return float(mixture_radius(t, 1.0, alpha=alpha, tuned_for=tuned_for) * math.sqrt(t) / z)
