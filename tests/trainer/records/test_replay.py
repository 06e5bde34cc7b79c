"""Replaying a fine-tune (``qfnb.trainer.records.replay``) on the local platform's real routes: an identical
finished run is found through the console API and reused (no upload, training, publish or deploy);
``replay=False`` trains again; any change to the recipe trains again; the ledger records the tokens
each run trained on, and a reused run as what the replay saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.record import ledger as ledger_mod
from qfnb.dataset import Dataset
from qfnb.local.engines.call_state import calls
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig
from qfnb.trainer.records.replay import MARK
from tests.fakes.events import RecordingHandler
from tests.fakes.local_platform import ServedPlatform

ROWS = [{"prompt": f"What is {i}+{i}?", "response": str(2 * i)} for i in range(8)]


@pytest.fixture
def local(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "data"))
    ledger_mod._default.clear()
    return local_platform.config()


def _trainer(config: Config, *, steps: int = 4, replay: bool | None = True, handler: Any = None,
             rows: list[dict[str, str]] = ROWS, deploy: bool = True) -> LLMFinetune:
    return LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(rows),
                       train_config=TrainConfig(epoch=1, batch_size=2, learning_rate=1e-3, max_steps=steps, seed=7),
                       deploy_config=DeployConfig() if deploy else None, event_handler=handler, config=config,
                       replay=replay)


def _store(local_platform: ServedPlatform, kind: str) -> list[dict[str, Any]]:
    return local_platform.app.state.platform.store.all(kind)


def test_an_identical_finished_run_is_reused_not_trained_again(local: Config, local_platform: ServedPlatform) -> None:
    from qfnb._core.record.budget import budget, clear_budget

    before = calls.snapshot().get(calls.FINE_TUNE, 0)
    held = budget(tokens=1_000_000)
    try:
        first = _trainer(local).run()
        assert held.spent_tokens == 40  # the run's trained tokens are spent against the budget
        counts = {k: len(_store(local_platform, k)) for k in ("ft_jobs", "runs", "models", "services", "datasets")}
        steps = RecordingHandler()
        second = _trainer(local, handler=steps).run()
        assert held.spent_tokens == 40  # a reused run spends nothing
    finally:
        clear_budget()
    assert first.replayed is None and first.status == "Deployed"
    endpoint, task = first.output["service_endpoint"], first.output["task_id"]
    jobs = _store(local_platform, "ft_jobs")
    assert [MARK in j["description"] for j in jobs] == [True]  # the platform remembers the recipe
    assert second.status == "Deployed"
    assert second.replayed is not None and second.replayed["task_id"] == task
    assert second.output["service_endpoint"] == endpoint and second.output["task_id"] == task
    assert second.output["model"].version_id == first.output["model"].version_id
    assert {k: len(_store(local_platform, k)) for k in counts} == counts  # nothing made on the platform
    assert calls.snapshot().get(calls.FINE_TUNE, 0) - before == 1  # counted at the platform
    said = [e.description for e in steps.events if e.action_class == "TrainAction"]
    assert any(d.startswith(f"reused finished run {task}") and "--fresh" in d for d in said), said
    detail = [e.data for e in steps.events if e.action_class == "TrainAction" and e.action_state == "Running"]
    assert detail and detail[0]["runStatus"] == "Done" and detail[0]["replayed"]["task_id"] == task  # its curve
    reply = second.output["service"].get_res().do(messages=[{"role": "user", "content": "What is 3+3?"}])
    assert reply["result"]

    rows = [r for r in ledger_mod.default_ledger().rows() if r.api == "fine-tune"]
    assert [(r.cache_hit, r.trained_tokens, r.job) for r in rows] == [(False, 40, f"fine-tune {task}"),
                                                                      (True, 40, f"fine-tune {task}")]


def test_replay_off_or_another_recipe_trains_again(local: Config, local_platform: ServedPlatform) -> None:
    first = _trainer(local, deploy=False).run()
    fresh = _trainer(local, deploy=False, replay=False).run()
    assert fresh.replayed is None and fresh.output["task_id"] != first.output["task_id"]
    other_steps = _trainer(local, deploy=False, steps=3).run()
    other_data = _trainer(local, deploy=False, rows=ROWS[:6]).run()
    assert other_steps.replayed is None and other_data.replayed is None
    assert len({t.output["task_id"] for t in (first, fresh, other_steps, other_data)}) == 4
    again = _trainer(local, deploy=False).run()  # the newest finished run of the recipe
    assert again.replayed is not None and again.output["task_id"] == fresh.output["task_id"]
    assert again.output["model"].name == first.output["model"].name  # named after the recipe


def test_plain_sdk_default_trains_every_time_like_the_official_sdk(local: Config) -> None:
    first = _trainer(local, deploy=False, replay=None).run()
    second = _trainer(local, deploy=False, replay=None).run()
    assert second.replayed is None and second.output["task_id"] != first.output["task_id"]
    third = _trainer(local.with_overrides(cache="on"), deploy=False, replay=None).run()
    assert third.replayed is not None
