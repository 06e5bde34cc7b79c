"""LabelQueue: unbiased and valid at every look (also when its doubt is wrong), fewer labels when the
doubt is right, when to stop, and a queue that continues in another kernel. Seeded, small, seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qfnb.errors import ValidationError
from qfnb.evaluation import CalibratedMean, LabelQueue
from qfnb.evaluation.evaluators.pairwise import combine
from qfnb.evaluation.stats.active import judge_doubt, preference_doubt, probability_doubt

N = 80


def population(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A judge's probabilities, its informative doubt and pass/fail labels: 85 % easy items it gets
    right 99 % of the time, 15 % it hesitates on (the label a coin flip at its probability)."""
    rng = np.random.default_rng(seed)
    hard = rng.random(N) < 0.15
    p = np.where(hard, rng.uniform(0.35, 0.65, N), np.where(rng.random(N) < 0.6, 0.99, 0.01))
    y = (rng.random(N) < p).astype(float)
    return p, probability_doubt(p), y


def label_until(queue: LabelQueue, labels: np.ndarray, *, width: float | None = None, steps: int = 10_000,
                truth: float | None = None) -> bool:
    """Label the queue's items one by one (looking after each label) until done; returns whether the
    interval ever excluded ``truth``."""
    excluded = False
    for _ in range(steps):
        if width is not None and queue.done(width=width):
            break
        items = queue.next(1)
        if not items:
            break
        queue.add(items[0], labels[items[0]])
        if truth is not None:
            excluded |= not queue.estimate().contains(truth)
    return excluded


def test_the_estimate_is_unbiased_and_its_interval_holds_at_every_look() -> None:
    p, doubt, y = population()
    estimates, ever_out = [], 0
    runs = 300
    for seed in range(runs):
        queue = LabelQueue(p, doubt, seed=seed)
        ever_out += label_until(queue, y, steps=25, truth=float(y.mean()))
        estimates.append(queue.estimate().estimate)
    bias = float(np.mean(estimates) - y.mean())
    se = float(np.std(estimates) / np.sqrt(runs))
    assert abs(bias) < 3 * se + 1e-3, f"bias {bias:+.4f} (se {se:.4f})"
    assert ever_out / runs <= 0.07, f"interval excluded the truth in {ever_out / runs:.1%} of runs"


@pytest.mark.parametrize("doubt_kind", ["reversed", "shuffled"])
def test_a_wrong_doubt_keeps_the_interval_valid(doubt_kind: str) -> None:
    p, doubt, y = population(5)
    wrong = doubt.max() - doubt + 0.01 if doubt_kind == "reversed" else np.random.default_rng(1).permutation(doubt)
    runs, ever_out, covered = 200, 0, 0
    for seed in range(runs):
        queue = LabelQueue(p, wrong, seed=seed)
        ever_out += label_until(queue, y, steps=40, truth=float(y.mean()))
        covered += queue.estimate().contains(float(y.mean()))
    assert ever_out / runs <= 0.07 and covered / runs >= 0.93


def test_an_informative_doubt_needs_fewer_labels_than_random_labelling() -> None:
    p, doubt, y = population(11)
    needed: dict[str, list[int]] = {"active": [], "random": []}
    for seed in range(40):
        for kind, unc in (("active", doubt), ("random", np.ones(N))):
            queue = LabelQueue(p, unc, seed=seed)
            label_until(queue, y, width=0.2)
            needed[kind].append(queue.n_labelled)
    active, random = np.median(needed["active"]), np.median(needed["random"])
    assert active <= 0.8 * random, f"active {active} labels, random {random}"


def test_the_judges_forecast_sets_the_first_design_and_the_prior() -> None:
    """A doubt that follows the judge's own probabilities starts at the most active share with a smaller
    prior; a doubt that contradicts them starts at uniform draws with the whole prior."""
    p, doubt, _ = population()
    follows = LabelQueue(p, doubt)._design
    assert float(follows.share()) == pytest.approx(0.2) and float(follows.prior_scale()) < 0.8
    contradicts = LabelQueue(p, doubt.max() - doubt + 0.01)._design
    assert float(contradicts.share()) == 1.0 and float(contradicts.prior_scale()) == 1.0
    certain = LabelQueue(np.where(p > 0.5, 1.0, 0.0), doubt)._design  # forecasts no error anywhere
    assert certain.forecast is None and float(certain.share()) == pytest.approx(0.6)
    # a pairwise judge's +1 / -1 is a verdict, not a probability: it forecasts nothing
    verdicts = [combine("A", "B"), combine("A", "A"), combine("tie", "tie"), combine("B", "A")] * 5
    assert LabelQueue.of_preferences(verdicts)._design.forecast is None


def test_a_wrong_doubt_still_labels_to_the_end_and_never_answers_empty_before() -> None:
    """Draws are with replacement, so late draws mostly hit labelled items; ``next`` keeps drawing (every
    item has probability >= floor / N) and names an item until every one is labelled, then the mean is exact."""
    p, doubt, y = population(7)
    queue = LabelQueue(p, doubt.max() - doubt + 0.01, seed=4)
    for _ in range(N):
        items = queue.next(1)
        assert len(items) == 1, f"empty answer with {N - queue.n_labelled} items unlabelled"
        queue.add(items[0], y[items[0]])
    assert queue.n_labelled == N and queue.next(1) == [] and queue.done(width=1e-9)
    assert queue.n_draws >= N and queue.estimate().estimate == pytest.approx(y.mean())


def test_done_by_width_by_null_and_when_every_item_is_labelled() -> None:
    p, doubt, y = population()
    queue = LabelQueue(p, doubt)
    with pytest.raises(ValidationError, match="width"):
        queue.done()
    assert not queue.done(width=0.3) and not queue.done(null=0.0)
    first = queue.estimate()
    assert isinstance(first, CalibratedMean) and (first.low, first.high) == (0.0, 1.0) and first.anytime
    label_until(queue, y, width=0.3)
    est = queue.estimate()
    assert est.high - est.low <= 0.3 and queue.done(width=0.3)
    assert est.n_labelled == queue.n_labelled < N and est.draws is not None and est.draws >= est.n_labelled
    assert queue.done(null=-0.5) and "labels enough: the mean is above -0.5" in queue.verdict(null=-0.5)
    assert queue.verdict(width=0.01).startswith("not yet known")
    label_until(queue, y)  # every item: the mean is known exactly
    assert queue.next(3) == [] and queue.done(width=1e-9)
    exact = queue.estimate()
    assert exact.estimate == exact.low == exact.high == pytest.approx(y.mean())


def test_next_names_the_waiting_items_first_and_a_repeat_draw_is_free() -> None:
    p, doubt, y = population()
    queue = LabelQueue(p, doubt, seed=2)
    batch = queue.next(5)
    assert len(set(batch)) == 5 and queue.next(5) == batch  # nothing labelled: the same items again
    queue.add(batch[0], y[batch[0]])
    assert queue.next(4) == batch[1:]
    with pytest.raises(ValidationError, match="label"):
        queue.add(batch[0], 1 - y[batch[0]])  # a label is a fact about the item
    with pytest.raises(ValidationError, match="label"):
        queue.add(batch[1], 2.0)
    with pytest.raises(ValidationError, match="index"):
        queue.add(N, 1.0)


def test_state_and_restore_continue_where_the_kernel_stopped() -> None:
    p, doubt, y = population()
    one = LabelQueue(p, doubt, seed=4)
    for _ in range(15):
        item = one.next(1)[0]
        one.add(item, y[item])
    saved = json.loads(json.dumps(one.state()))  # what the store keeps: JSON
    two = LabelQueue(p, doubt, seed=4)
    two.restore(saved)
    assert two.estimate() == one.estimate() and two.n_labelled == one.n_labelled
    for _ in range(10):
        item = one.next(1)[0]
        assert two.next(1)[0] == item
        one.add(item, y[item])
        two.add(item, y[item])
    a, b = one.estimate(), two.estimate()  # the same numbers (summed in another order)
    assert (b.estimate, b.low, b.high) == pytest.approx((a.estimate, a.low, a.high)) and b.n_labelled == a.n_labelled
    with pytest.raises(ValidationError, match="state"):
        LabelQueue(p[:-1], doubt[:-1]).restore(saved)


def test_doubt_is_derived_from_what_the_judge_returns() -> None:
    scores, doubt = judge_doubt(np.array([0.0, 2.5, 5.0, 4.0]), (0.0, 5.0))
    assert list(scores) == [0.0, 2.5, 5.0, 4.0]
    assert doubt[1] == pytest.approx(0.5) and doubt[0] == doubt[2] == 0.0 and 0 < doubt[3] < 0.5
    repeats, spread = judge_doubt(np.array([[5.0, 5.0], [0.0, 5.0], [3.0, 3.0]]), (0.0, 5.0))
    assert list(repeats) == [5.0, 2.5, 3.0] and spread[1] > spread[2] > spread[0]
    prefs = [combine("A", "B"), combine("A", "A"), combine("tie", "tie"), combine(None, "A")]
    values, pdoubt = preference_doubt(prefs)
    assert list(values) == [1.0, 0.0, 0.0, 0.0]  # model first wins both orders; disagreement; ties
    assert pdoubt[1] > pdoubt[2] > pdoubt[0]  # orders disagree > no winner named > both orders agree
    queue = LabelQueue([0.99, 0.5, 0.01, 0.5])
    assert queue.doubt[1] > queue.doubt[0]


def test_a_paired_queue_decides_which_model_is_better() -> None:
    rng = np.random.default_rng(8)
    n = 200
    quality_a, quality_b = rng.uniform(0, 5, n), rng.uniform(0, 5, n)
    truth = np.sign(quality_a - quality_b + 1.5)  # the person prefers a on most items
    judge_a = np.clip(np.round(quality_a + rng.normal(0, 1, n)), 0, 5)
    judge_b = np.clip(np.round(quality_b + rng.normal(0, 1, n)), 0, 5)
    queue = LabelQueue.paired(judge_a, judge_b, bounds=(0, 5), names=("tuned", "base"), seed=1)
    assert queue.bounds == (-1.0, 1.0) and queue.doubt[np.argmin(abs(judge_a - judge_b))] == queue.doubt.max()
    for _ in range(n * 3):
        if queue.done(null=0.0):
            break
        item = queue.next(1)[0]
        queue.add(item, truth[item])
    said = queue.verdict(null=0.0)
    assert said.startswith("labels enough: tuned wins, 95% CI") and queue.n_labelled < n, said
    assert queue.estimate().contains(float(truth.mean()))


def test_preferences_make_a_queue_and_bad_input_names_its_field() -> None:
    prefs = [combine("A", "B"), combine("B", "A"), combine("A", "A")]
    queue = LabelQueue.of_preferences(prefs, names=("tuned", "base"))
    assert list(queue.scores) == [1.0, -1.0, 0.0] and queue.sides == ("tuned", "base")
    with pytest.raises(ValidationError, match="bounds"):
        LabelQueue([0.0, 3.0, 5.0])
    with pytest.raises(ValidationError, match="uncertainty"):
        LabelQueue([0.2, 0.4], [1.0])
    with pytest.raises(ValidationError, match="confidence"):
        LabelQueue([0.2, 0.4], confidence=1.5)
    with pytest.raises(ValidationError, match="judge_b"):
        LabelQueue.paired([1, 2], [1, 2, 3], bounds=(0, 5))
    with pytest.raises(ValidationError, match="method"):
        LabelQueue([0.2, 0.4], method="bayes")


def test_the_betting_sequence_is_the_exact_alternative() -> None:
    p, doubt, y = population()
    queue = LabelQueue(p, doubt, method="betting", seed=3)
    label_until(queue, y, steps=60)
    est = queue.estimate()
    assert est.low < est.high and est.contains(float(y.mean())) and est.anytime
