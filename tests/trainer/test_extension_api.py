"""The trainer extension API of the official SDK (seed 004), against the cloud double:
a user's action written the official way (sync ``exec``) inside a qfnb ``Pipeline``."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.runtime import sync
from qfnb.dataset import Dataset
from qfnb.errors import ValidationError
from qfnb.trainer import (
    ActionState,
    Event,
    EventHandler,
    LLMFinetune,
    LoadDataSetAction,
    Pipeline,
    TrainAction,
    TrainConfig,
    dispatch_event,
)
from qfnb.trainer.base import BaseAction, Executable, ExecuteSerializable, Serializable
from tests.fakes.console_cloud import ConsoleCloud
from tests.fakes.events import RecordingHandler

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)]


class Stamp(BaseAction):
    """Written as seed 004 documents it: official constructor, sync exec, action_event."""

    def __init__(self, id: str | None = None, name: str | None = None,
                 event_handler: EventHandler | None = None, **kwargs: Any) -> None:
        super().__init__(id, name, event_handler, **kwargs)
        self.seen: list[Any] = []
        self.thread = ""

    def exec(self, input: Any = None, **kwargs: Any) -> Any:
        self.thread = threading.current_thread().name
        self.seen.append((input, kwargs))
        self.action_event(ActionState.Running, "stamping", {"tag": self.kwargs.get("tag")})
        return {**(input or {}), "stamped_by": self.name}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))


def test_event_and_dispatch_take_the_official_arguments() -> None:
    rec = RecordingHandler()
    ev = Event("a1", ActionState.Running, "desc", {"x": 1})
    assert (ev.action_id, ev.action_state, ev.description, ev.data) == ("a1", ActionState.Running, "desc", {"x": 1})
    assert Event(action_id="a1", state="Running", description="desc", data={"x": 1}) == ev
    dispatch_event(event_handler=rec, event=Event(action_id=None, state=ActionState.Done))
    dispatch_event(None, ev)  # no handler: nothing happens
    assert [e.action_state for e in rec.events] == [ActionState.Done]
    with pytest.raises(TypeError, match="state"):
        Event("a1")
    assert issubclass(BaseAction, ExecuteSerializable) and issubclass(ExecuteSerializable, Executable)
    assert issubclass(ExecuteSerializable, Serializable)
    with pytest.raises(TypeError):  # exec is abstract, as in the official SDK
        BaseAction()  # type: ignore[abstract]


def test_a_seed_style_action_runs_inside_a_qfnb_pipeline(cloud: ConsoleCloud, cfg: Config) -> None:
    """Built-in async actions and a user's sync action in one pipeline: the user's exec gets
    the training output and the pipeline's kwargs, runs on a worker thread (not qfnb's loop),
    and its events reach the pipeline's handler."""
    rec = RecordingHandler()
    ds = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "ext_ds"}, config=cfg)
    stamp = Stamp(name="stamper", tag="t1")
    ppl = Pipeline([LoadDataSetAction(dataset=Dataset(id=ds.qianfan_dataset_id)),
                    TrainAction(train_type="Fake-Base", train_config=TrainConfig(epoch=1)), stamp],
                   event_handler=rec)
    out = ppl.exec(config=cfg, flavour="x")
    assert out["stamped_by"] == "stamper" and out["task_id"] and out["job_id"]
    assert out["datasets"] == [{"id": ds.qianfan_dataset_id, "name": "ext_ds", "type": 1}]
    (given, kwargs), = stamp.seen
    assert given["task_id"] == out["task_id"] and kwargs == {"flavour": "x"}
    assert stamp.thread and stamp.thread != "qfnb-loop"
    assert rec.states(stamp.id) == ["Preceding", "Running", "Done"]
    running = next(e for e in rec.events if e.action_id == stamp.id and e.action_state == "Running")
    assert running.data == {"tag": "t1"} and running.action_class == "Stamp"
    assert ppl.status == "Unknown" and stamp.state is ActionState.Done
    assert cloud.calls("CreateFineTuningTask")[0].json["datasetConfig"]["versions"] == [
        {"versionId": ds.qianfan_dataset_id}]


def test_pipelines_nest_and_both_handlers_hear_the_inner_steps() -> None:
    outer_rec, inner_rec = RecordingHandler(), RecordingHandler()
    a, b, c = Stamp(name="a"), Stamp(name="b"), Stamp(name="c")
    inner = Pipeline([b, c], event_handler=inner_rec)
    outer = Pipeline([a, inner], event_handler=outer_rec)
    assert outer.exec({"start": 1}) == {"start": 1, "stamped_by": "c"}
    assert c.seen[0][0] == {"start": 1, "stamped_by": "b"}
    assert outer_rec.states(b.id) == inner_rec.states(b.id) == ["Preceding", "Running", "Done"]
    assert outer_rec.states(inner.id) == ["Preceding", "Done"] and inner_rec.states(a.id) == []
    assert inner["b"] is b and inner[b.id] is b and outer[1] is inner  # by name, id or position


def test_a_slow_sync_action_does_not_block_qfnb_loop() -> None:
    started, release = threading.Event(), threading.Event()

    class Slow(BaseAction):
        def exec(self, input: Any = None, **kwargs: Any) -> Any:
            started.set()
            release.wait(10)
            return {"done": True}

    ppl = Pipeline([Slow()])
    runner = threading.Thread(target=lambda: box.append(ppl.exec()))
    box: list[Any] = []
    runner.start()
    try:
        assert started.wait(5)
        assert sync.run(asyncio.sleep(0, result="loop is free"), timeout=2) == "loop is free"
    finally:
        release.set()
        runner.join(10)
    assert box == [{"done": True}]


def test_load_dataset_action_alone_with_dataset_id(cloud: ConsoleCloud, cfg: Config) -> None:
    """Seed 004's sample: ``LoadDataSetAction(dataset=Dataset(id=1)).exec()``."""
    ds = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "test_dataset"},
                                              config=cfg)
    rec = RecordingHandler()
    load = LoadDataSetAction(dataset=Dataset(id=ds.qianfan_dataset_id), event_handler=rec)
    assert load.exec(config=cfg) == {"datasets": [{"id": ds.qianfan_dataset_id, "name": "test_dataset",
                                                   "type": 1}]}
    assert rec.states(load.id) == ["Preceding", "Done"]


def test_llmfinetune_kwargs_result_log_save_and_handlers(cloud: ConsoleCloud, cfg: Config, _cache: None,
                                                         caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.trainer.steps import load_action

    monkeypatch.setattr(load_action, "_WARNED", set())
    caplog.set_level(logging.WARNING, logger="qfnb.trainer")
    trainer = LLMFinetune(train_type="Fake-Base", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1), config=cfg, peft_type="FullFineTuning",
                          unknown_option=1)
    LLMFinetune(train_type="Fake-Base", dataset=ROWS, config=cfg, unknown_option=2)
    warned = [r.getMessage() for r in caplog.records]
    assert sum("unknown_option" in m for m in warned) == 1  # once per process and name
    # the official options qfnb honours: a BOS dataset, and continuing a previous run
    bos = LLMFinetune(train_type="Fake-Base", config=cfg, dataset_bos_path="bos:/b/p")
    assert bos.actions[0].dataset == "bos:/b/p"
    with pytest.raises(ValidationError, match="dataset_bos_path"):
        LLMFinetune(train_type="Fake-Base", dataset=ROWS, config=cfg, dataset_bos_path="bos:/b/p")
    incr = LLMFinetune(dataset=ROWS, config=cfg, previous_task_id="t-1")
    assert incr.train_action.increment_task_id == "t-1"
    assert trainer.result == [None]
    assert [type(a).__name__ for a in trainer.actions] == ["LoadDataSetAction", "TrainAction",
                                                           "ModelPublishAction"]
    rec = RecordingHandler()
    trainer.register_event_handler(rec)
    trainer.run()
    assert cloud.calls("CreateFineTuningTask")[0].json["parameterScale"] == "FullFineTuning"
    (result,) = trainer.result
    assert result["model_version_id"] is not None and result["task_id"]
    log = trainer.get_log()
    assert log[0]["state"] == "Preceding" and log[-1] == {**log[-1], "action_class": "ModelPublishAction",
                                                          "state": "Done"}
    assert len(rec.events) == len(log)
    path = trainer.save()
    assert path is trainer and LLMFinetune.load(trainer.id).status == trainer.status


def test_failure_is_kept_in_result(cloud: ConsoleCloud, cfg: Config) -> None:
    cloud.fail_training = "boom"
    trainer = LLMFinetune(train_type="Fake-Base", dataset=ROWS, config=cfg)
    with pytest.raises(Exception, match="boom"):
        trainer.run()
    assert isinstance(trainer.result[0], Exception)
