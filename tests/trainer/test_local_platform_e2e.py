"""End to end on the local platform's real routes (qfnb.local.server.app) over HTTP.

The heavy parts are the local platform's own test doubles (engines: ``FakeRegistry``;
training: ``fake_worker.py``, Contract 4), so this runs in seconds; the client, console
resources, Dataset upload (signed BOS PUT), trainer pipeline, publish, deploy and the
deployed service's chat all go through the platform's wire protocol.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.model import Model
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig, TrainFailedError
from tests.fakes.events import RecordingHandler
from tests.fakes.local_platform import ServedPlatform

ROWS = [{"prompt": f"What is {i}+{i}?", "response": str(2 * i)} for i in range(8)]


@pytest.fixture
def local(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    return local_platform.config()


def test_finetune_publish_deploy_chat(local: Config) -> None:
    steps = RecordingHandler()
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1, batch_size=2, learning_rate=1e-3, max_steps=4),
                          deploy_config=DeployConfig(endpoint_suffix="tuned_e2e"), event_handler=steps,
                          config=local)
    trainer.run()
    assert trainer.status == "Deployed"
    running = [e.data for e in steps.events if e.action_class == "TrainAction" and e.action_state == "Running"]
    assert running[-1]["runStatus"] == "Done"
    assert running[-1].get("totalSteps") == 4  # Contract 3 extra fields
    model = trainer.output["model"]
    assert isinstance(model, Model) and model.service is not None
    assert model.service.endpoint == "tuned_e2e"
    reply = model.service.get_res().do(messages=[{"role": "user", "content": "What is 3+3?"}])
    assert isinstance(reply["result"], str) and reply["result"]


def test_failing_training_raises(local: Config) -> None:
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1, batch_size=2, max_steps=4,
                                                   extras={"failAt": 2}),
                          config=local)
    with pytest.raises(TrainFailedError):
        trainer.run()
    assert trainer.status == "TrainFailed"


def test_unknown_base_model_is_a_clear_platform_error(local: Config) -> None:
    from qfnb._core.errors import QfnbError

    trainer = LLMFinetune(train_type="Llama-2-70B-Chat", dataset=Dataset.create_from_pyobj(ROWS), config=local)
    with pytest.raises(QfnbError, match="Tiny-Chat"):
        trainer.run()


def test_seed_002_v1_flow_on_the_local_platform(local: Config) -> None:
    """Seeds 001/002 (training & service, v1 API) with local model names."""
    import time

    from qfnb.resources import FineTune, Service
    from qfnb.resources import Model as ModelAPI

    ds = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "seed_ds"}, config=local)
    resp = FineTune.create_task(name="task_name", description="task_desc", base_train_type="Tiny-Chat",
                                train_type="Tiny-Chat", config=local)
    task_id = resp["result"]["id"]
    create_job_resp = FineTune.create_job({
        "taskId": task_id, "baseTrainType": "Tiny-Chat", "trainType": "Tiny-Chat", "trainMode": "SFT",
        "peftType": "LoRA", "trainConfig": {"epoch": 1, "learningRate": 0.001, "batchSize": 2, "maxSeqLen": 128,
                                            "maxSteps": 3},
        "trainset": [{"type": 1, "id": ds.qianfan_dataset_id}], "trainsetRate": 20}, config=local)
    job_id = create_job_resp["result"]["id"]
    deadline = time.monotonic() + 60
    while (job := FineTune.get_job(task_id, job_id, config=local))["result"]["trainStatus"] != "FINISH":
        assert job["result"]["trainStatus"] in ("QUEUE", "RUNNING") and time.monotonic() < deadline
        time.sleep(0.05)
    g = ModelAPI.publish(is_new=True, model_name="sdk_test_1",
                         version_meta={"taskId": task_id, "iterationId": job_id}, config=local)
    model_id, version_id = g["result"]["modelId"], g["result"]["versionId"]
    versions = ModelAPI.list(model_id=model_id, config=local)["result"]["modelVersionList"]
    assert versions[0]["modelName"] == "sdk_test_1"
    assert ModelAPI.detail(model_version_id=version_id, config=local)["result"]["modelName"] == "sdk_test_1"
    svc = Service.create(model_id=model_id, model_version_id=version_id, name="sdk_test", uri="svc_uri",
                         replicas=1, pool_type=2, config=local)
    service_id = svc["result"]["serviceId"]
    assert Service.get(id=service_id, config=local)["result"]["id"] == service_id
    assert FineTune.stop_job(task_id, job_id, config=local)["result"] in (True, False)
