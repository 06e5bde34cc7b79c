"""A fine-tune's validation split: which training rows are held out for the evaluation loss. Pure.

The cloud's ``datasetConfig.splitRatio`` (v2) and ``trainsetRate`` (v1) give the percentage of the
data held out as a validation set (the official SDK sends ``TrainConfig.trainset_rate``, 20 by
default). The platform draws the held-out rows once, with the run's seed, and writes them to a file
of their own (``eval.jsonl`` beside ``train.jsonl``): the worker trains on ``train_file`` only and
computes the evaluation loss on ``eval_file`` (Contract 4), so held-out rows are never trained on.

A mode that collapses first on prompts it did not train on (``ModeRow.split_by_default``: DPO, KTO, RFT)
gets :data:`DEFAULT_SPLIT_PERCENT` held out when a request names no split and gives no held-out data, from
:data:`DEFAULT_SPLIT_MIN_ROWS` rows up: its checkpoints are then judged by their answers to new prompts,
and a run stops at a collapse and serves the last checkpoint that still answered. A split of 0 named
outright trains on every row.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from typing import Any

from qfnb.local.domain.state.values import BodyError
from qfnb.protocol.console.train_modes import ModeRow

__all__ = ["DEFAULT_SPLIT_MIN_ROWS", "DEFAULT_SPLIT_PERCENT", "held_out", "held_rows", "split_for", "split_percent"]

#: the share held out where a collapse-prone mode's request names none (the official SDK's ``trainset_rate``)
DEFAULT_SPLIT_PERCENT = 20
#: fewer rows than this are all trained on (a run reads its final answers to training prompts instead):
#: 20 % of 20 is the fewest held-out prompts, 4, on which "one answer to most of them" can be told
DEFAULT_SPLIT_MIN_ROWS = 20


def split_percent(value: Any, field: str) -> int:
    """The held-out percentage ``value`` names (absent: 0), or a BodyError naming ``field``."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise BodyError(field, f"must be an integer percentage in [0, 100], got {value!r:.40}")
    if not 0 <= value <= 100:
        raise BodyError(field, f"must be in [0, 100], got {value!r}")
    return int(value)


def split_for(mode: ModeRow, n_rows: int, value: Any, field: str) -> tuple[int, bool]:
    """The percentage of ``n_rows`` held out for a run of ``mode`` whose request gave ``value`` in ``field``
    (and no held-out data), and whether it is the platform's default (no split named)."""
    if value is None and mode.split_by_default and n_rows >= DEFAULT_SPLIT_MIN_ROWS:
        return DEFAULT_SPLIT_PERCENT, True
    return split_percent(value, field), False


def held_rows(rows: Iterable[dict[str, Any]], percent: int, seed: int, field: str = "splitRatio") -> set[int]:
    """Indices of the ``rows`` held out: :func:`held_out` drawn over their prompts, so every row asking one prompt
    (a KTO pair's good and bad answer, SFT's several answers to one question) is on the same side and a held-out
    prompt is one the run never trained on. A row without a prompt (plain text) is a prompt of its own."""
    if not percent:
        return set()
    keys: dict[bytes, int] = {}
    groups = []
    for n, row in enumerate(rows):
        prompt = row.get("prompt")
        key = (hashlib.blake2b(json.dumps(prompt, sort_keys=True, ensure_ascii=False).encode(), digest_size=16).digest()
               if prompt else n.to_bytes(8, "big") + b"#row")
        groups.append(keys.setdefault(key, len(keys)))
    picked = set(held_out(len(keys), percent, seed, field))
    return {n for n, group in enumerate(groups) if group in picked}


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
