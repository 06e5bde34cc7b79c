"""A fine-tune's trained-token row counts under the cell that launched it, not the cell running
when the training ends (``%qftrain`` and ``LLMFinetune.start`` run in the background)."""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.record import ledger as ledger_mod
from qfnb.notebook.training.run import TrainSpec, launch
from qfnb.trainer import LLMFinetune
from qfnb.trainer.steps.accounting import record_training

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py

DETAIL = {"taskId": "task-7", "model": "Fake-Base", "metrics": {"trained_tokens": 640}}


class HeldTrainer:
    """Trains once ``release`` is set, then records its usage as the real trainer does."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.status = "Done"
        self.output: dict[str, Any] = {}

    async def arun(self) -> HeldTrainer:
        await asyncio.to_thread(self.release.wait, 10)
        record_training(DETAIL, "Fake-Base", Config(), reused=False)
        return self

    def stop(self) -> None:
        self.release.set()


def _training_rows() -> list[ledger_mod.UsageRow]:
    return [r for r in ledger_mod.default_ledger().rows() if r.api == "fine-tune"]


@pytest.fixture(autouse=True)
def _no_cell() -> Any:
    yield
    ledger_mod.set_cell(None)


def test_qftrain_usage_lands_under_the_launching_cell() -> None:
    held = HeldTrainer()
    ledger_mod.set_cell(4)  # the %qftrain cell
    dash = launch(TrainSpec(dataset="rows.jsonl", base="Fake-Base"), lambda spec, handler: held, show=False)
    ledger_mod.set_cell(9)  # the user runs other cells while it trains
    held.release.set()
    for _ in range(200):
        if _training_rows():
            break
        threading.Event().wait(0.05)
    assert [(r.cell, r.trained_tokens) for r in _training_rows()] == [(4, 640)]
    assert dash is not None


def test_a_started_finetune_counts_under_the_cell_that_started_it() -> None:
    held = HeldTrainer()
    trainer = types.SimpleNamespace(_future=None, id="t", arun=held.arun)
    ledger_mod.set_cell(3)
    LLMFinetune.start(trainer)  # type: ignore[arg-type]  # the real start() on a trainer double
    ledger_mod.set_cell(11)
    held.release.set()
    trainer._future.result(10)
    assert [(r.cell, r.trained_tokens) for r in _training_rows()] == [(3, 640)]
    assert ledger_mod.current_cell() == 11  # the pin stays inside the training's own context
