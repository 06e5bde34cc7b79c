"""bench/label_savings.py at a small scale: an informative doubt about halves the labels, a wrong one
costs little, and the interval stays valid under a look after every label (the bench's 400 runs give
the figures in docs/evaluation.md)."""

from __future__ import annotations

import numpy as np

from bench.label_savings import labels_for, real, report, simulate, simulated


def test_the_bench_scenarios_meet_their_targets_at_a_small_scale() -> None:
    informative, _, wrong, _ = simulated()
    good = report(informative, 80, 0.05, seed=3)
    assert good["ratio"] <= 0.6 and good["coverage"] >= 0.93 and good["excluded"] <= 0.06, good
    bad = report(wrong, 80, 0.1, seed=4)
    assert bad["ratio"] <= 1.35 and bad["excluded"] <= 0.06, bad


def test_the_real_judge_is_a_lexical_one_over_the_shipped_help_desk() -> None:
    sc = real()
    assert sc.scores.size == 44 * 28 and sc.labels.sum() == 44  # one answering article per question
    assert sc.scores.mean() > sc.truth  # the uncalibrated judge is biased: what the labels correct
    runs = simulate(sc, sc.doubt, 20, 200, seed=1)
    widths = runs.high - runs.low
    assert np.all(np.diff(widths, axis=1) <= 1e-12)  # the running intersection only shrinks
    got, at = labels_for(runs, 2.0)
    assert np.all(at == 0) and np.all(got == 1)
