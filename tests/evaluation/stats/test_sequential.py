"""SequentialComparison: valid under peeking after every item, and as fast as the plan says.

Simulations are seeded and vectorised (``decision_times`` is the same wealth computation the class
runs, over many runs at once); each has at least 2,000 runs and takes seconds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qfnb.errors import ValidationError
from qfnb.evaluation import SequentialComparison, plan_comparison
from qfnb.evaluation.stats.sequential import decision_times, hedged, wealth_paths

RUNS = 2000
ALPHA = 0.05


def pass_fail(rng: np.random.Generator, shape: tuple[int, int], diff: float, discordant: float = 0.2) -> np.ndarray:
    """Paired pass/fail differences: a alone passes with ``discordant + diff/2``, b alone with
    ``discordant − diff/2`` (so the mean difference is ``diff``)."""
    u = rng.random(shape)
    return np.where(u < discordant + diff / 2, 1.0, np.where(u < 2 * discordant, -1.0, 0.0))


def scores(rng: np.random.Generator, shape: tuple[int, int], diff: float) -> np.ndarray:
    """Paired [0, 1] scores (an item's difficulty shared by both models, then noise, clipped)."""
    p = rng.beta(2, 2, shape)
    a = np.clip(p + diff / 2 + rng.normal(0, 0.2, shape), 0, 1)
    b = np.clip(p - diff / 2 + rng.normal(0, 0.2, shape), 0, 1)
    return a - b


def to_unit(d: np.ndarray) -> np.ndarray:
    return (d + 1.0) / 2.0  # scores in [0, 1]: differences in [-1, 1]


@pytest.mark.parametrize("kind", ["pass_fail", "scores"])
@pytest.mark.parametrize("min_difference", [None, 0.1])
def test_type_one_error_checked_after_every_item_up_to_1000(kind: str, min_difference: float | None) -> None:
    rng = np.random.default_rng(20261125)
    d = pass_fail(rng, (RUNS, 1000), 0.0) if kind == "pass_fail" else scores(rng, (RUNS, 1000), 0.0)
    first, _ = decision_times(to_unit(d), alpha=ALPHA, floor=(min_difference or 0.0) / 2)
    rate = float(np.mean(first > 0))
    assert rate <= 0.055, f"false decisions in {rate:.1%} of {RUNS} runs"


def _planned(kind: str, diff: float) -> tuple[int, float]:
    """The plan's fixed n from a large pilot drawn at ``diff`` (so the pilot's sd and mean
    difference are the truth's; clipping makes the scores' true difference a little below ``diff``)."""
    rng = np.random.default_rng(7)
    d = (pass_fail if kind == "pass_fail" else scores)(rng, (1, 200_000), diff)[0]
    truth = diff if kind == "pass_fail" else float(d.mean())
    return plan_comparison(d, np.zeros_like(d), min_difference=truth).n_items, truth


def _stops(kind: str, diff: float, n_max: int, seed: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = (pass_fail if kind == "pass_fail" else scores)(rng, (RUNS, n_max), diff)
    first, a_wins = decision_times(to_unit(d), alpha=ALPHA, floor=floor)
    stop = np.where(first > 0, first, np.iinfo(np.int64).max)
    return stop, a_wins


@pytest.mark.parametrize(("kind", "diff"), [("pass_fail", 0.1), ("scores", 0.06)])
def test_power_and_stopping_at_the_planned_difference(kind: str, diff: float) -> None:
    n_fixed, truth = _planned(kind, diff)
    # the sequential test is allowed twice the fixed n before it must have decided
    stop, a_wins = _stops(kind, diff, 2 * n_fixed, seed=11, floor=truth / 2)
    power = float(np.mean((stop <= 2 * n_fixed) & a_wins))
    assert power >= 0.80, f"decided for a in {power:.1%} of runs within {2 * n_fixed} items"
    assert float(np.median(stop)) <= n_fixed, f"median stop {np.median(stop)} > fixed n {n_fixed}"
    # twice the planned difference: decided in at most half the fixed n (median)
    stop2, a_wins2 = _stops(kind, 2 * diff, n_fixed, seed=12, floor=truth / 2)
    assert float(np.median(stop2)) <= 0.5 * n_fixed, f"median stop {np.median(stop2)} > {0.5 * n_fixed}"
    assert float(np.mean(a_wins2)) >= 0.95


def test_the_class_decides_as_the_simulation_does() -> None:
    rng = np.random.default_rng(3)
    a = (rng.random(400) < 0.65).astype(float)
    b = (rng.random(400) < 0.45).astype(float)
    first, a_wins = decision_times(to_unit(a - b)[None, :], alpha=ALPHA, floor=0.05)
    one_by_one = SequentialComparison(min_difference=0.1)
    for x, y in zip(a, b, strict=True):
        one_by_one.add(x, y)
    at_once = SequentialComparison(min_difference=0.1).add(a, b)
    assert first[0] > 0 and bool(a_wins[0])
    for s in (one_by_one, at_once):
        assert s.decided and s.winner == "a" and s.decided_at == int(first[0])
        assert s.n_items == 400 and s.p_value <= ALPHA
        assert s.ci.low > 0 and s.ci.contains(s.estimate)
    assert one_by_one.p_value == pytest.approx(at_once.p_value, rel=1e-9)
    assert "decided after" in at_once.verdict and "a is better" in at_once.verdict


def test_b_wins_and_confidence_sequence_only_shrinks() -> None:
    rng = np.random.default_rng(5)
    s = SequentialComparison(bounds=(1, 5))
    widths = []
    for _ in range(60):
        s.add(rng.uniform(1, 3, 10), rng.uniform(2.5, 5, 10))
        widths.append(s.ci.high - s.ci.low)
    assert s.decided and s.winner == "b"
    assert all(w2 <= w1 + 1e-12 for w1, w2 in itertools.pairwise(widths))
    assert s.ci.high < 0 and s.ci.contains(-1.75)  # the true difference: 2 - 3.75


def test_no_difference_of_the_planned_size_is_a_decision() -> None:
    rng = np.random.default_rng(9)
    p = rng.random(3000)
    s = SequentialComparison(min_difference=0.2).add(np.clip(p + rng.normal(0, 0.02, 3000), 0, 1),
                                                      np.clip(p + rng.normal(0, 0.02, 3000), 0, 1))
    assert s.decided and s.winner is None and s.decided_at is not None and s.decided_at < 3000
    assert s.ci.low > -0.2 and s.ci.high < 0.2
    assert "no difference of 0.2 or more" in s.verdict


@pytest.mark.parametrize("floor", [0.0, 0.05])
def test_the_confidence_sequence_holds_the_truth_at_every_item(floor: float) -> None:
    """The true difference (0.1) is never ruled out over 1,000 items in >= 95% of 2,000 runs: its
    hedged wealth, the quantity the sequence is read from, stays below 1/alpha."""
    rng = np.random.default_rng(17)
    x = to_unit(pass_fail(rng, (RUNS, 1000), 0.1))
    up, down, _ = wealth_paths(x, (0.1 + 1.0) / 2.0, floor=floor)
    ruled_out = float(np.mean((hedged(up, down) >= np.log(1 / ALPHA)).any(axis=1)))
    assert ruled_out <= 0.05, f"truth ruled out in {ruled_out:.1%} of runs"


@pytest.mark.parametrize(("kwargs", "field"), [({"alpha": 1.5}, "alpha"), ({"bounds": (1, 1)}, "bounds"),
                                               ({"min_difference": 2.0}, "min_difference")])
def test_bad_settings_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        SequentialComparison(**kwargs)  # type: ignore[arg-type]


def test_scores_outside_the_bounds_and_unpaired_are_refused() -> None:
    s = SequentialComparison()
    with pytest.raises(ValidationError, match=r"outside bounds \[0, 1\].*bounds="):
        s.add(4.0, 3.0)
    with pytest.raises(ValidationError, match="pair up"):
        s.add([0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match="NaN"):
        s.add(float("nan"), 0.2)
    assert s.n_items == 0 and s.verdict == "no items yet" and s.p_value == 1.0
