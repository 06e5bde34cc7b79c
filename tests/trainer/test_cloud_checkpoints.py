"""Checkpoints on the cloud path, against the console double: the same options map to the platform's
fields (``hyperParameterConfig.checkpoints``/``earlyStop``, ``datasetConfig.splitRatio``), the
task detail's ``checkpointList`` is read and judged as locally, the best checkpoint is published
(``versionMeta.step``) and an incremental run continues from one (``incrementCheckpointStep``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig
from tests.fakes.console_cloud import ConsoleCloud

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(10)]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))


def _trainer(cfg: Config, train_config: TrainConfig, **kw: object) -> LLMFinetune:
    return LLMFinetune(train_type="Fake-Base", dataset=Dataset.create_from_pyobj(ROWS), train_config=train_config,
                       config=cfg, **kw)  # type: ignore[arg-type]


def test_checkpoint_options_map_to_the_platforms_fields_and_the_best_is_published(cloud: ConsoleCloud,
                                                                                  cfg: Config) -> None:
    trainer = _trainer(cfg, TrainConfig(epoch=1, max_steps=40, checkpoints=5, early_stop=True, early_stop_patience=3,
                                        trainset_rate=20), deploy_config=DeployConfig(endpoint_suffix="faq"))
    trainer.run()
    body = cloud.calls("CreateFineTuningTask")[0].json
    assert body["hyperParameterConfig"] == {"epoch": 1, "maxSteps": 40, "checkpoints": 5, "earlyStop": True,
                                            "earlyStopPatience": 3}
    assert body["datasetConfig"]["splitRatio"] == 20
    out = trainer.output
    # the platform's checkpointList, read and judged as on the local platform
    assert [c["step"] for c in out["checkpoints"]] == [8, 16, 24, 32, 40]
    assert out["best_checkpoint"] == 16  # the lowest held-out loss (2.9), not the last step
    assert out["overfitting"] == "over-fitting since step 16: held-out loss 2.9 → 6.8"
    publish = cloud.calls("publishTrainModel")[0].json
    assert publish["versionMeta"]["step"] == 16  # DeployConfig's default checkpoint: the best
    assert out["service_endpoint"] == "faq"

    # a chosen step, and "last" (the run's final adapter: no step)
    for which, step in ((24, 24), ("last", None)):
        again = _trainer(cfg, TrainConfig(epoch=1, checkpoints=5, trainset_rate=20),
                         deploy_config=DeployConfig(checkpoint=which))
        again.run()
        assert cloud.calls("publishTrainModel")[-1].json["versionMeta"].get("step") == step

    # an incremental run from the best checkpoint: incrementTaskId + incrementCheckpointStep
    task_id = trainer.train_action.task_id
    more = _trainer(cfg, TrainConfig(epoch=1), previous_task_id=task_id, increment_checkpoint_step=16)
    more.run()
    continued = cloud.calls("CreateFineTuningTask")[-1].json
    assert continued["incrementTaskId"] == task_id and continued["incrementCheckpointStep"] == 16


def test_a_step_the_run_did_not_save_is_refused_before_publishing(cloud: ConsoleCloud, cfg: Config) -> None:
    trainer = _trainer(cfg, TrainConfig(epoch=1, checkpoints=5, trainset_rate=20),
                       deploy_config=DeployConfig(checkpoint=12))
    with pytest.raises(Exception, match="no checkpoint at step 12; the task has checkpoints at steps 8, 16, 24"):
        trainer.run()
    assert not cloud.calls("publishTrainModel")
    with pytest.raises(ValueError, match="increment_checkpoint_step"):
        _trainer(cfg, TrainConfig(epoch=1), increment_checkpoint_step=16)
