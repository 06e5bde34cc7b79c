"""Issue 92 §3 through ``%qftrain``: the forecast it checked against the budget before launch is what
its run holds against the budget until it ends (``TrainAction.forecast_tokens``; its hold, refusal and
settling: tests/trainer/spend/test_training_budget.py)."""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

import pytest

from qfnb.notebook.training.run import TrainSpec, launch

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py


class ActionSeen:
    """A trainer whose training step records the forecast it holds when the run starts."""

    def __init__(self) -> None:
        self.train_action = types.SimpleNamespace(forecast_tokens=None)
        self.held: int | None = None
        self.ran = threading.Event()
        self.status = "Done"
        self.output: dict[str, Any] = {}

    async def arun(self) -> ActionSeen:
        self.held = self.train_action.forecast_tokens
        self.ran.set()
        await asyncio.sleep(0)
        return self

    def stop(self) -> None:
        pass


def test_qftrain_hands_its_forecast_to_the_run_it_launches() -> None:
    seen = ActionSeen()
    factory: Any = lambda spec, handler: seen  # noqa: E731
    launch(TrainSpec(dataset="rows.jsonl", base="Fake-Base"), factory, show=False, forecast_tokens=1_234)
    assert seen.ran.wait(10)
    assert seen.held == 1_234
