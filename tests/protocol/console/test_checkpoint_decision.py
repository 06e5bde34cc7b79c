"""The checkpoint decision (qfnb.protocol.console.checkpoints): where checkpoints go, which is best, when
over-fitting is named and when early stopping ends a run."""

from __future__ import annotations

import pytest

from qfnb.protocol.console import checkpoints as ck


def _saved(*losses: float, metric: list[float] | None = None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [{"step": 8 * (i + 1), "evalLoss": v} for i, v in enumerate(losses)]
    for entry, m in zip(out, metric or [], strict=False):
        entry["metric"] = m
    return out


def test_checkpoints_spread_evenly_and_always_include_the_last_step() -> None:
    assert ck.checkpoint_steps(40, 5) == [8, 16, 24, 32, 40]
    assert ck.checkpoint_steps(9, 5) == [2, 4, 5, 7, 9]
    assert ck.checkpoint_steps(3, 5) == [1, 2, 3]  # never more than there are steps
    assert ck.checkpoint_steps(40, 0) == [] and ck.checkpoint_steps(0, 5) == []


def test_best_is_the_lowest_held_out_loss_or_the_highest_metric() -> None:
    assert ck.best_checkpoint(_saved(3.2, 2.9, 3.5))["step"] == 16
    assert ck.best_checkpoint(_saved(3.0, 2.0, 2.0))["step"] == 16  # a tie: the earlier
    assert ck.best_checkpoint(_saved(3.2, 2.9, 3.5, metric=[0.1, 0.2, 0.6]))["step"] == 24
    assert ck.best_checkpoint([{"step": 8}]) is None and ck.best_checkpoint([]) is None
    assert ck.best_checkpoint(_saved(float("nan"), 4.0))["step"] == 16


def test_over_fitting_is_named_once_the_held_out_loss_clearly_rose() -> None:
    over = ck.overfitting([(4, 3.9), (12, 3.2), (20, 4.4), (40, 6.8)])
    assert over is not None and over.describe() == "over-fitting since step 12: held-out loss 3.2 → 6.8"
    assert over.to_wire()["sinceStep"] == 12 and over.to_wire()["evalLoss"] == 6.8
    assert ck.overfitting([(4, 3.0), (8, 2.0), (12, 2.05)]) is None  # within 5 %: noise, not over-fitting
    assert ck.overfitting([(4, 3.0), (8, 2.0)]) is None  # still falling
    assert ck.overfitting([(4, 3.0)]) is None


def test_patience_counts_checkpoints_after_the_best() -> None:
    assert not ck.patience_spent(_saved(3.0, 2.0, 2.5), 2)
    assert ck.patience_spent(_saved(3.0, 2.0, 2.5, 2.6), 2)
    assert ck.patience_spent(_saved(3.0, 2.0, 2.5), 1)
    assert not ck.patience_spent([{"step": 8}], 1)


def test_choose_names_best_last_or_a_step_and_says_which_steps_exist() -> None:
    saved = _saved(3.2, 2.9, 3.5)
    assert ck.choose(saved, "best")["step"] == 16 and ck.choose(saved, "last")["step"] == 24
    assert ck.choose(saved, 8)["step"] == 8 and ck.choose(saved, "step-24")["step"] == 24
    with pytest.raises(ValueError, match="steps 8, 16, 24"):
        ck.choose(saved, 9)
    with pytest.raises(ValueError, match="'best', 'last' or a step"):
        ck.choose(saved, "worst")
    with pytest.raises(ValueError, match="no checkpoints"):
        ck.choose([], "best")
