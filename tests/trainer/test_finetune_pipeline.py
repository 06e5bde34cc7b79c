"""The fine-tune pipeline against the cloud double (fast polling)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.model import Model, Service
from qfnb.trainer import (
    ActionState,
    DeployConfig,
    Event,
    EventHandler,
    LLMFinetune,
    TrainConfig,
    TrainerStopped,
    TrainFailedError,
)
from qfnb.trainer.actions import POLL_RETRIES
from tests.fakes.console_cloud import ConsoleCloud
from tests.fakes.events import RecordingHandler

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QIANFAN_DISABLE_CACHE", raising=False)
    return tmp_path / "cache"


def _trainer(cfg: Config, handler: EventHandler | None = None, **kw: object) -> LLMFinetune:
    return LLMFinetune(train_type="Fake-Base", dataset=Dataset.create_from_pyobj(ROWS),
                       train_config=TrainConfig(epoch=1, learning_rate=3e-4, lora_rank=8),
                       event_handler=handler, config=cfg, **kw)  # type: ignore[arg-type]


def test_full_pipeline_events_and_output(cloud: ConsoleCloud, cfg: Config, _cache: Path) -> None:
    rec = RecordingHandler()
    trainer = _trainer(cfg, rec, deploy_config=DeployConfig(endpoint_suffix="myep", replicas=1))
    assert trainer.status == "Created"
    trainer.run()
    trail = rec.trail()
    assert trail[:3] == [("LoadDataSetAction", "Preceding"), ("LoadDataSetAction", "Running"),
                         ("LoadDataSetAction", "Done")]
    train = [s for a, s in trail if a == "TrainAction"]
    assert train[0] == "Preceding" and train[-1] == "Done" and train.count("Running") == cloud.train_polls
    order = [a for a, s in trail if s == "Done"]
    assert order == ["LoadDataSetAction", "TrainAction", "ModelPublishAction", "DeployAction"]
    running = [e.data for e in rec.events if e.action_class == "TrainAction" and e.action_state == "Running"]
    assert running[-1]["runStatus"] == "Done" and running[-1]["lossCurve"][0] == [1, 2.0]
    assert rec.threads == {"qfnb-loop"}  # Contract 5: dispatched on qfnb's loop thread
    assert trainer.status == "Deployed"
    # wire: v2 job + task with camelCase hyper-parameters and the uploaded dataset
    body = cloud.calls("CreateFineTuningTask")[0].json
    assert body["hyperParameterConfig"] == {"epoch": 1, "learningRate": 3e-4, "loraRank": 8}
    assert body["parameterScale"] == "LoRA"
    assert body["datasetConfig"]["sourceType"] == "Platform"
    publish = cloud.calls("publishTrainModel")[0].json
    assert publish["versionMeta"] == {"taskId": body["jobId"], "iterationId": trainer.train_action.task_id}
    out = trainer.output
    model = out["model"]
    assert isinstance(model, Model) and model.version_id is not None
    assert isinstance(model.service, Service) and model.service.endpoint == "myep"
    assert out["service_endpoint"] == "myep"
    assert isinstance(out["service"], Service) and out["service"].endpoint == "myep"  # as the official output
    # persisted record: statuses and ids, no secrets
    text = (_cache / "pipeline" / f"{trainer.id}.json").read_text()
    saved = json.loads(text)
    assert saved["status"] == "Deployed" and saved["actions"][1]["extra"]["task_id"]
    for secret in ("test_secret_key", "test_access_key", "test_sk", "test_ak"):
        assert secret not in text
    assert LLMFinetune.list()[0]["id"] == trainer.id


def test_failing_job_emits_error_and_raises(cloud: ConsoleCloud, cfg: Config) -> None:
    cloud.fail_training = "CUDA out of memory"
    rec = RecordingHandler()
    trainer = _trainer(cfg, rec)
    with pytest.raises(TrainFailedError, match="CUDA out of memory"):
        trainer.run()
    assert rec.trail()[-1] == ("TrainAction", "Error")
    assert "CUDA out of memory" in rec.events[-1].description
    assert trainer.status == "TrainFailed"
    assert cloud.calls("publishTrainModel") == []


def test_resume_after_crash_reattaches_to_the_task(cloud: ConsoleCloud, cfg: Config) -> None:
    cloud.train_polls = 6
    first = _trainer(cfg)

    class Crash(EventHandler):
        def dispatch(self, event: Event) -> None:
            if event.action_class == "TrainAction" and event.action_state == "Running" and \
                    event.data.get("currentStep") == 2:
                first.stop()  # simulate the kernel dying mid-training: stop without cleanup
                first._ctx.stop_flag.set()

    first._ctx.handler = Crash()
    first.train_action.on_stop = _no_stop  # type: ignore[method-assign]
    with pytest.raises(TrainerStopped):
        first.run()
    assert len(cloud.calls("CreateFineTuningTask")) == 1
    assert first.status == "TrainStopped"
    # a fresh process: rebuild from disk and resume
    again = LLMFinetune.load(first.id, config=cfg)
    assert again.train_action.task_id == first.train_action.task_id
    rec = RecordingHandler()
    again.event_handler = rec
    again._ctx.handler = rec
    again.resume()
    assert len(cloud.calls("CreateFineTuningTask")) == 1
    assert len(cloud.calls("CreateFineTuningJob")) == 1
    assert len(cloud.calls("dataset/create")) == 1
    assert again.status == "ModelPublished"
    assert rec.trail()[0] == ("TrainAction", "Preceding")
    assert isinstance(again.output["model"], Model)


async def _no_stop(ctx: object) -> None:
    return None


def test_stop_cancels_the_platform_task(cloud: ConsoleCloud, cfg: Config) -> None:
    cloud.train_polls = 1000
    rec = RecordingHandler()
    trainer = _trainer(cfg, rec)
    started = threading.Event()

    class Once(EventHandler):
        def dispatch(self, event: Event) -> None:
            rec.dispatch(event)
            if event.action_state == "Running" and event.action_class == "TrainAction":
                started.set()

    trainer._ctx.handler = Once()
    trainer.start()
    assert started.wait(10)
    assert trainer.running
    assert trainer.status == "Training"
    trainer.stop()
    with pytest.raises(TrainerStopped):
        trainer.wait(10)
    assert rec.trail()[-1] == ("TrainAction", "Stopped")
    assert len(cloud.calls("StopFineTuningTask")) == 1
    assert cloud.tasks[trainer.train_action.task_id]["runStatus"] == "Stopped"


def test_flaky_polls_are_retried(cloud: ConsoleCloud, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qfnb.trainer.actions.POLL_BACKOFF_S", 0.01)
    cloud.fail_detail_polls = POLL_RETRIES
    trainer = _trainer(cfg, model_not_publish=True)
    trainer.run()
    assert trainer.status == "TrainFinished"


async def test_arun_keeps_the_event_loop_free(cloud: ConsoleCloud, cfg: Config) -> None:
    import asyncio

    cloud.train_polls = 5
    trainer = _trainer(cfg, model_not_publish=True)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await trainer.arun()
    task.cancel()
    assert trainer.status == "TrainFinished" and ticks > 3


def test_bad_configs_fail_early(cfg: Config) -> None:
    with pytest.raises(ValueError, match="epoch"):
        TrainConfig(epoch=0)
    with pytest.raises(ValueError, match="peft_type"):
        TrainConfig(peft_type="QLoRA-X")
    with pytest.raises(ValueError, match="lora_dropout"):
        TrainConfig(lora_dropout=1.5)
    with pytest.raises(ValueError, match="train_type"):
        LLMFinetune(dataset=Dataset.create_from_pyobj(ROWS))
    with pytest.raises(ValueError, match="evaluators"):
        LLMFinetune(train_type="x", dataset="ds-1", eval_dataset=Dataset.create_from_pyobj(ROWS))
    with pytest.raises(ValueError, match="endpoint_suffix"):
        DeployConfig(endpoint_suffix="bad/suffix")
    assert ActionState("Running") is ActionState.Running
    with pytest.raises(ValueError, match="row 1, field 'response'"):
        LLMFinetune(train_type="x", dataset=[{"prompt": "a", "response": "b"}, {"prompt": "c"}])


def test_evaluate_step_runs_after_deploy(cloud: ConsoleCloud, cfg: Config) -> None:
    from qfnb.evaluation import ExactMatchEvaluator

    rec = RecordingHandler()
    trainer = _trainer(cfg, rec, deploy_config=DeployConfig(endpoint_suffix="ev_ep"),
                       eval_dataset=Dataset.create_from_pyobj(ROWS[:2]), evaluators=[ExactMatchEvaluator()])
    trainer.run()
    assert trainer.status == "EvaluationFinished"
    assert [a for a, s in rec.trail() if s == "Done"][-1] == "EvaluateAction"
    result = trainer.output["eval_result"]
    assert len(result.metrics) == 1
    (metrics,) = result.metrics.values()
    assert "accuracy" in metrics
    assert len(cloud.fake.calls("/chat/ev_ep")) == 2  # each eval prompt went to the deployed service
    assert trainer.output["eval_res"]
    with pytest.raises(ValueError, match="evaluators"):
        LLMFinetune.load(trainer.id, config=cfg)
    again = LLMFinetune.load(trainer.id, config=cfg, eval_dataset=Dataset.create_from_pyobj(ROWS[:2]),
                             evaluators=[ExactMatchEvaluator()])
    assert again.status == "EvaluationFinished" and again.output["model"].service.endpoint == "ev_ep"
