"""Issue 92 §5: an answer's schema check never runs on the event loop. ``uniqueItems`` over objects compares every
pair (2,000 items: 6.4 s in the probe) and ``format: iri`` runs ~0.8 ms a character; the check runs in a thread
within ``CHECK_SECONDS`` (past them the answer is given unchecked), so the loop keeps ticking meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from qfnb.local.engines.base import Delta
from qfnb.local.engines.llama import answer_check

UNIQUE = {"type": "array", "uniqueItems": True}


async def _ticks(stop: asyncio.Event, gaps: list[float]) -> None:
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.02)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


async def _checked_with_ticks(text: str, schema: dict[str, Any]) -> tuple[list[Delta], list[float], float]:
    async def answer(attempt: int) -> AsyncIterator[Delta]:
        yield Delta(text=text, finish_reason="stop", prompt_tokens=1, completion_tokens=1)

    stop, gaps = asyncio.Event(), list[float]()
    ticker = asyncio.create_task(_ticks(stop, gaps))
    started = time.monotonic()
    out = [d async for d in answer_check.checked(answer, lambda ds: answer_check.text_miss(ds[0].text, schema))]
    took = time.monotonic() - started
    stop.set()
    await ticker
    return out, gaps, took


def test_a_slow_unique_items_check_leaves_the_loop_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answer_check, "CHECK_SECONDS", 0.3)
    text = json.dumps([{"k": i, "v": [i, str(i)]} for i in range(1500)])
    out, gaps, took = asyncio.run(_checked_with_ticks(text, UNIQUE))
    assert out and out[-1].text == text
    assert max(gaps) < 0.3, max(gaps)  # the loop ticked all along
    assert took < 2.0, took  # given unchecked past CHECK_SECONDS, not after the whole check


def test_a_quick_check_still_finds_the_miss() -> None:
    out, _, _ = asyncio.run(_checked_with_ticks(json.dumps([{"a": 1}, {"a": 1}]), UNIQUE))
    assert out[-1].schema_miss is not None and "uniqueItems" in out[-1].schema_miss
