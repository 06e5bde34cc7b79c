"""A notebook function as the checkpoints' metric (issue 45): each checkpoint of the finished run
answers the held-out items on the engine through its own adapter, the function scores them, and
the best by it (not by held-out loss) is the one published and deployed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qfnb.dataset import Dataset
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig
from tests.fakes.local_platform import ServedPlatform, served_platform

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(12)]
LOSSES = [3.2, 2.9, 3.5, 5.1, 6.8]  # at steps 2, 4, 5, 7, 9: the lowest held-out loss is step 4's


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "models"))
    with served_platform(tmp_path / "platform") as served:
        served.as_default_backend(monkeypatch)
        yield served


def _tune(metric: Any, deploy: bool = True, replay: bool | None = None) -> LLMFinetune:
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(ROWS), name="helpdesk",
                          replay=replay,
                          deploy_config=DeployConfig(endpoint_suffix="helpdesk_ckpt") if deploy else None,
                          train_config=TrainConfig(epoch=1, batch_size=1, checkpoints=5, trainset_rate=25,
                                                   eval_metric=metric, eval_metric_items=2,
                                                   extras={"stepSeconds": 0.01, "fakeEvalLosses": LOSSES}))
    trainer.run()
    return trainer


def test_a_notebook_function_picks_the_checkpoint_that_is_published_and_deployed(platform: ServedPlatform) -> None:
    seen: list[tuple[Any, str, str]] = []

    def step_seven(input: Any, reference: str, output: str) -> float:  # the engine double names its adapter
        seen.append((input, reference, output))
        return 1.0 if "@step-7:" in output else 0.0

    trainer = _tune(step_seven)
    out = trainer.output
    scored = {c["step"]: (c["metric"], c["metricName"]) for c in out["checkpoints"]}
    assert scored == {2: (0.0, "step_seven"), 4: (0.0, "step_seven"), 5: (0.0, "step_seven"),
                      7: (1.0, "step_seven"), 9: (0.0, "step_seven")}
    assert out["best_checkpoint"] == 7 and out["metric_seconds"] >= 0
    # each checkpoint answered the same two held-out items (rows the run never trained on)
    assert len(seen) == 10 and {(i, r) for i, r, _ in seen} == {(i, r) for i, r, _ in seen[:2]}
    task = out["task_id"]
    engines = platform.registry.engines
    assert {name: len(e.calls) for name, e in engines.items() if name.startswith(task)} == {
        f"{task}@step-{n}": 2 for n in (2, 4, 5, 7, 9)}
    # the best by the metric is published and deployed (the held-out loss alone would pick step 4)
    assert out["model"].step == 7
    (run,) = platform.app.state.platform.store.all("runs")
    step7 = next(Path(c["path"]) for c in run["checkpointList"] if c["step"] == 7)
    reply = out["model"].service.get_res().do(messages=[{"role": "user", "content": "q1"}])
    assert reply["result"].startswith("adapter ") and platform.registry.adapters[out["service_endpoint"]][1] == step7


def test_a_reused_run_is_scored_by_the_new_function(platform: ServedPlatform) -> None:
    first = _tune(lambda i, r, o: float("@step-7:" in o), deploy=False, replay=True)
    again = _tune(lambda i, r, o: float("@step-9:" in o), deploy=False, replay=True)
    assert again.replayed is not None and again.output["task_id"] == first.output["task_id"]  # not trained again
    assert (first.output["best_checkpoint"], again.output["best_checkpoint"]) == (7, 9)
    assert again.output["model"].step == 9


def test_a_failing_metric_names_itself_and_nothing_is_published(platform: ServedPlatform) -> None:
    def broken(input: Any, reference: str, output: str) -> float:
        raise KeyError("score")

    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1, batch_size=1, checkpoints=3, eval_metric=broken,
                                                   extras={"stepSeconds": 0.01}))
    with pytest.raises(Exception, match="metric 'broken' failed: KeyError"):
        trainer.run()
    assert platform.app.state.platform.store.all("versions", lambda v: v.get("runId") is not None) == []
    assert len(platform.app.state.platform.store.all("runs")) == 1  # the training itself is kept


def test_the_function_is_not_sent_nor_saved() -> None:
    def mine(input: Any, reference: str, output: str) -> float:
        return 0.0

    config = TrainConfig(checkpoints=3, eval_metric=mine)
    assert "evalMetric" not in config.hyper_parameters()
    assert config.model_dump(mode="json", exclude_none=True)["eval_metric"] is None
    with pytest.raises(ValueError, match="or a function"):
        TrainConfig(eval_metric="bleu")


def test_an_empty_or_missing_held_out_split_keeps_the_loss_decision(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from qfnb.trainer._action import RunContext
    from qfnb.trainer.steps.checkpoint_metric import CheckpointMetricAction

    empty = tmp_path / "eval.jsonl"
    empty.write_text("\n", encoding="utf-8")
    given = {"task_id": "task-x", "checkpoints": [{"step": 2, "evalLoss": 1.0}], "best_checkpoint": 2}
    action = CheckpointMetricAction(lambda i, r, o: 1.0)
    for held in (str(empty), str(tmp_path / "absent.jsonl"), None):
        assert asyncio.run(action.aexec({**given, "eval_file": held}, RunContext(None, None))) == {
            **given, "eval_file": held}
    assert "has no rows" in caplog.text and "no readable held-out split" in caplog.text


def test_a_hanging_metric_does_not_keep_the_trainer_from_stopping(platform: ServedPlatform) -> None:
    import threading
    import time

    from qfnb.trainer import TrainerStopped

    entered, release = threading.Event(), threading.Event()

    def hangs(input: Any, reference: str, output: str) -> float:
        entered.set()
        release.wait(60)
        return 0.0

    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(ROWS), name="hangs",
                          train_config=TrainConfig(epoch=1, batch_size=1, checkpoints=3, eval_metric=hangs,
                                                   eval_metric_items=1, extras={"stepSeconds": 0.01}))
    try:
        trainer.start()
        assert entered.wait(60), "the metric was never called"
        started = time.monotonic()
        trainer.stop()
        with pytest.raises(TrainerStopped):
            trainer.wait(10)
        assert time.monotonic() - started < 5
    finally:
        release.set()
