"""A fine-tune's validation split: which training rows are held out for the evaluation loss. Pure.

The cloud's ``datasetConfig.splitRatio`` (v2) and ``trainsetRate`` (v1) give the percentage of the
data held out as a validation set (the official SDK sends ``TrainConfig.trainset_rate``, 20 by
default). The platform draws the held-out rows once, with the run's seed, and writes them to a file
of their own (``eval.jsonl`` beside ``train.jsonl``): the worker trains on ``train_file`` only and
computes the evaluation loss on ``eval_file`` (Contract 4), so held-out rows are never trained on.
"""

from __future__ import annotations

import random
from typing import Any

from qfnb.local.domain.state.values import BodyError

__all__ = ["held_out", "split_percent"]


def split_percent(value: Any, field: str) -> int:
    """The held-out percentage ``value`` names (absent: 0), or a BodyError naming ``field``."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise BodyError(field, f"must be an integer percentage in [0, 100], got {value!r:.40}")
    if not 0 <= value <= 100:
        raise BodyError(field, f"must be in [0, 100], got {value!r}")
    return int(value)


def held_out(n_rows: int, percent: int, seed: int, field: str = "splitRatio") -> list[int]:
    """Indices (ascending) of the rows held out: ``floor(n_rows * percent / 100)`` of them, drawn
    with ``seed``. At least one row is always left to train on (BodyError otherwise)."""
    k = n_rows * percent // 100
    if k and n_rows - k < 1:
        raise BodyError(field, f"{percent}% of {n_rows} rows leaves nothing to train on")
    if not k:
        return []
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    return sorted(order[:k])
