"""``qfnb._core.http.recording.train_hold``: a hold made without the base's name (a v2 task's create names only its
job) settles at the price of the base its ended run reports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qfnb._core.config import Config
from qfnb._core.http.recording import train_hold
from qfnb._core.record.prices import shipped
from qfnb.usage import budget

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py: own ledger, no budget


def test_a_hold_without_its_base_settles_at_the_price_its_run_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    table = replace(shipped(), training={"priced-base": 30.0})  # ¥30 per table unit of trained tokens
    monkeypatch.setattr(train_hold, "prices", lambda: table)
    cloud = Config.from_env({}, base_url="http://h.test", access_token="24.tok")
    held = budget(tokens=10**6, yuan=10**6)
    hold = train_hold.hold_training(2_000, "", cloud, what="a v2 task")
    assert hold is not None and held.reserved_yuan == 0  # no base named: no price to hold
    train_hold.keep(cloud, "task-1", hold)
    assert train_hold.settle_training(cloud, "task-1", base="priced-base", tokens=1_000, seconds=1.0)
    assert held.spent_tokens == 1_000 and held.spent_yuan == pytest.approx(1_000 * 30.0 / table.per_tokens)
    assert held.reserved_tokens == 0
