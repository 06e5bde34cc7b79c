"""bench/serving.py's paired rounds: every side measured at each concurrency in every round, and no side
always first (the order turns by one each time)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
import serving


def test_the_sides_order_turns_and_every_round_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    async def measured(side: SimpleNamespace, users: int, tokens: int, tag: str) -> float:
        order.append(side.name)
        return {"bare": 10.0, "relay": 11.0, "platform": 12.0}[side.name] * users

    monkeypatch.setattr(serving, "concurrent", measured)
    sides = [SimpleNamespace(name=n) for n in ("bare", "relay", "platform")]
    runs = serving.paired_aggregates(cast(list[serving.Side], sides), [1, 4], tokens=8, rounds=3)
    blocks = [order[i:i + 3] for i in range(0, len(order), 3)]
    assert len(blocks) == 6 and all(sorted(b) == ["bare", "platform", "relay"] for b in blocks)
    assert [b[0] for b in blocks] == ["bare", "relay", "platform", "bare", "relay", "platform"]
    assert runs["platform"] == {1: [12.0] * 3, 4: [48.0] * 3}


def test_the_interval_holds_the_mean_and_narrows_with_more_rounds() -> None:
    few = [98.0, 101.0, 99.5, 100.5, 97.5]
    mean, low, high = serving.mean_interval(few)
    assert mean == pytest.approx(99.3) and low < 98.0 < mean < 100.5 < high  # wider than the spread's middle
    more = few * 4  # the same spread over 20 rounds
    m2, low2, high2 = serving.mean_interval(more)
    assert m2 == pytest.approx(mean) and high2 - low2 < (high - low) / 2
    assert serving.mean_interval([100.0]) == (100.0, 100.0, 100.0)
