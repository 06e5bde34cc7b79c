"""``LLMFinetune(..., target="ray://...")`` on the local platform's real routes: the target goes to the
platform as the task's ``target``, the run's spec names it and the jobs supervisor runs the Ray job's
follower (``qfnb.local.cluster.ray_follow``; here the fast worker double stands for it, as it stands
for the local worker in ``test_local_platform_e2e.py``); the trained model is published and served as
a local run's. A bad target is refused before anything is queued. The Ray side itself:
``tests/local/cluster/test_ray_follow.py`` (fake Jobs API) and ``test_ray_finetune_real.py``."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import QfnbError, ValidationError
from qfnb.dataset import Dataset
from qfnb.local.cluster import ray_follow
from qfnb.local.domain.training import jobs
from qfnb.model import Model
from qfnb.trainer import LLMFinetune, TrainConfig
from tests.fakes.local_platform import ServedPlatform

ROWS = [{"prompt": f"What is {i}+{i}?", "response": str(2 * i)} for i in range(8)]
TARGET = "ray://127.0.0.1:8265"
FAKE_WORKER = Path(__file__).resolve().parents[1] / "local" / "fake_worker.py"


@pytest.fixture
def local(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    return replace(local_platform.config(), embedded=True)  # as resolve_config points at the local platform


def _runs(platform: ServedPlatform) -> list[dict[str, Any]]:
    return platform.app.state.platform.store.all("runs")  # type: ignore[no-any-return]


def test_a_ray_target_reaches_the_platform_and_its_follower_runs_the_training(
        local: Config, local_platform: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    heads: list[str] = []
    monkeypatch.setattr(ray_follow, "check", lambda target: heads.append(str(target)))  # the head answers
    monkeypatch.setattr(jobs, "follower_command", lambda target: (sys.executable, str(FAKE_WORKER)))
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1, batch_size=2, max_steps=4), config=local, target=TARGET,
                          ray_workers=2)
    trainer.run()
    assert trainer.status == "ModelPublished"
    assert heads == [TARGET]  # checked by the platform before the run was queued
    (run,) = _runs(local_platform)
    assert run["target"] == TARGET and run["status"] == "Done"
    spec = json.loads((Path(run["job_dir"]) / "spec.json").read_text())
    assert (spec["target"], spec["ray_workers"]) == (TARGET, 2)  # the follower's --workers
    model = trainer.output["model"]
    assert isinstance(model, Model)


def test_an_unreachable_head_is_refused_before_anything_is_queued(local: Config,
                                                                 local_platform: ServedPlatform) -> None:
    pytest.importorskip("ray.job_submission")
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1, batch_size=2, max_steps=4), config=local,
                          target="ray://127.0.0.1:9", model_not_publish=True)
    with pytest.raises(QfnbError, match=r"target.*no Ray head answers at ray://127\.0\.0\.1:9"):
        trainer.run()
    assert _runs(local_platform) == []


def test_targets_are_checked_when_the_trainer_is_made(local: Config) -> None:
    data = Dataset.create_from_pyobj(ROWS)
    with pytest.raises(ValidationError, match=r"target.*malformed"):
        LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target="ray://head")
    cloud = replace(local, embedded=False)  # Qianfan credentials: the cloud trains, not a Ray cluster
    with pytest.raises(ValidationError, match=r"target.*run by qfnb.s local platform.*unset them"):
        LLMFinetune(train_type="Tiny-Chat", dataset=data, config=cloud, target=TARGET)
    with pytest.raises(ValidationError, match="'local' runs on the embedded platform"):
        LLMFinetune(train_type="Tiny-Chat", dataset=data, config=cloud, target="local")
    assert str(LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target="local").target) == "local"


def test_ray_workers_are_checked_when_the_trainer_is_made(local: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    data = Dataset.create_from_pyobj(ROWS)
    assert LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target=TARGET).ray_workers == 1
    monkeypatch.setenv("QFNB_RAY_TRAIN_WORKERS", "3")
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target=TARGET)
    assert trainer.ray_workers == 3
    two = LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target=TARGET, ray_workers=2)
    assert two.ray_workers == 2
    assert LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target="local").ray_workers is None
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValidationError, match=r"ray_workers.*whole number of Ray Train workers, at least 1"):
            LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target=TARGET, ray_workers=bad)
    with pytest.raises(ValidationError, match=r"ray_workers.*needs a cluster target"):
        LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target="local", ray_workers=2)
    monkeypatch.setenv("QFNB_RAY_TRAIN_WORKERS", "two")
    with pytest.raises(ValidationError, match=r"QFNB_RAY_TRAIN_WORKERS.*got 'two'"):
        LLMFinetune(train_type="Tiny-Chat", dataset=data, config=local, target=TARGET)


def test_the_platform_checks_ray_train_workers_before_it_reaches_the_head() -> None:
    from qfnb.local.domain.state.values import BodyError
    from qfnb.local.server.routes.platform import v2 as routes_v2

    ray = routes_v2._cluster_target(TARGET)
    assert ray is not None and routes_v2._cluster_target("local") is None and routes_v2._cluster_target(None) is None
    assert routes_v2._workers(None, ray) == 1 and routes_v2._workers(4, ray) == 4
    assert routes_v2._workers(None, None) is None
    for bad in (0, "2", 2.0, True):
        with pytest.raises(BodyError, match="rayTrainWorkers"):
            routes_v2._workers(bad, ray)
    with pytest.raises(BodyError, match=r"rayTrainWorkers.*needs a cluster target"):
        routes_v2._workers(2, None)
    for bad_target in ("ray://head", "qianfan", 3):
        with pytest.raises(BodyError, match="target"):
            routes_v2._cluster_target(bad_target)
