"""Fine-tuning on a 2026 (v2) account: IAM keys, no v1 app keys; the /v2/dataset and
/v2/finetuning calls, then /v2/model (publish) and /v2/service (deploy), only (the console double
:mod:`tests.fakes.cloud_v2_console`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb.dataset import Dataset
from qfnb.model import Model, Service
from qfnb.resources.console.sending.account import MissingConsoleKeysError
from qfnb.resources.inference import ChatCompletion
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig
from tests.fakes.cloud import FakeQianfan
from tests.fakes.cloud_v2_console import ConsoleV2, install_console_v2
from tests.fakes.console_fixtures import FAST

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)]
UPLOAD = "bos:/my-bucket/qfnb/"
#: the account's v2 API key (the fake's default bearer token): the chat calls' key
KEY = "bce-v3/ALTAK-test/secret"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def console(fake: FakeQianfan) -> ConsoleV2:
    return install_console_v2(fake)


@pytest.fixture
def local_file(tmp_path: Path) -> Path:
    path = tmp_path / "local.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def _config(fake: FakeQianfan, **keys: Any) -> Config:
    return Config.from_env({}, base_url=fake.base_url, console_api_base_url=fake.base_url,
                           iam_base_url=fake.base_url, bos_endpoint=fake.base_url + "/bos",
                           bos_upload_path=UPLOAD, transport=fake.transport, **FAST, **keys)


def _trainer(cfg: Config, local_file: Path) -> LLMFinetune:
    return LLMFinetune(train_type="ERNIE-Speed-8K", dataset=Dataset.load(data_file=str(local_file)),
                       train_config=TrainConfig(epoch=1, learning_rate=3e-4), model_not_publish=True,
                       config=cfg)


def test_v2_account_fine_tunes_through_the_v2_calls(fake: FakeQianfan, console: ConsoleV2,
                                                     local_file: Path) -> None:
    cfg = _config(fake, access_key=fake.access_key, secret_key=fake.secret_key)
    assert cfg.api_version == 2
    trainer = _trainer(cfg, local_file).run(progress=False)
    seen = console.seen()
    assert not [p for p, _ in seen if p.startswith("/wenxinworkshop/")]
    put = [p for p, a in seen if p.startswith("/bos/")]
    assert len(put) == 1 and put[0].startswith("/bos/my-bucket/qfnb/")
    ds, ft = "/v2/dataset", "/v2/finetuning"
    assert [s for s in seen if not s[0].startswith("/bos/")] == [
        (ds, "CreateDataset"), (ds, "CreateImportTask"), (ds, "DescribeImportTask"), (ds, "DescribeImportTask"),
        (ds, "PublishDatasetVersion"), (ds, "DescribeDatasetVersion"), (ds, "DescribeDatasetVersion"),
        (ft, "CreateFineTuningJob"), (ft, "CreateFineTuningTask")] + [(ft, "DescribeFineTuningTask")] * 3
    assert [r.params.get("Action") for r in fake.requests].index(None) == 1  # the file is put after CreateDataset
    # the file on the user's BOS is what the import read; the run trains on the published version
    (version_id,) = console.versions
    assert console.versions[version_id]["publishStatus"] == "Published"
    assert console.versions[version_id]["rows"] == len(ROWS)
    task_body = next(r.json for r in fake.requests if r.params.get("Action") == "CreateFineTuningTask")
    assert task_body["datasetConfig"]["sourceType"] == "Platform"
    assert task_body["datasetConfig"]["versions"] == [{"versionId": version_id}]
    job_body = next(r.json for r in fake.requests if r.params.get("Action") == "CreateFineTuningJob")
    assert job_body["model"] == "ERNIE-Speed-8K" and job_body["trainMode"] == "SFT"
    # the documented output: the run's ids, its checkpoints and the platform's decision on them
    out = trainer.output
    assert out["job_id"] in console.jobs and out["task_id"] in console.tasks
    assert out["datasets"][0]["id"] == version_id
    assert out["best_checkpoint"] == 40 and [c["step"] for c in out["checkpoints"]] == [20, 40]
    assert trainer.status == "TrainFinished"


def test_api_key_alone_names_the_missing_iam_keys_and_sends_nothing(fake: FakeQianfan, console: ConsoleV2,
                                                                    local_file: Path) -> None:
    cfg = _config(fake, api_key="bce-v3/ALTAK-test/secret")
    assert cfg.api_version == 2
    with pytest.raises(MissingConsoleKeysError) as err:
        _trainer(cfg, local_file).run(progress=False)
    message = str(err.value)
    assert "QIANFAN_ACCESS_KEY" in message and "QIANFAN_SECRET_KEY" in message
    assert "secret" not in message.replace("SECRET_KEY", "").replace("secret key", "").replace("secret_key", "")
    assert fake.requests == [] and console.objects == {}


def test_no_upload_path_is_refused_before_anything_is_sent(fake: FakeQianfan, console: ConsoleV2,
                                                           local_file: Path) -> None:
    cfg = replace(_config(fake, access_key=fake.access_key, secret_key=fake.secret_key), bos_upload_path=None)
    with pytest.raises(ValidationError, match="QFNB_BOS_UPLOAD_PATH"):
        _trainer(cfg, local_file).run(progress=False)
    assert fake.requests == []


def _published_run(fake: FakeQianfan, console: ConsoleV2, local_file: Path, **keys: Any) -> LLMFinetune:
    cfg = _config(fake, access_key=fake.access_key, secret_key=fake.secret_key, **keys)
    return LLMFinetune(train_type="ERNIE-Speed-8K", dataset=Dataset.load(data_file=str(local_file)),
                       train_config=TrainConfig(epoch=1, learning_rate=3e-4), name="my_sft",
                       deploy_config=DeployConfig(name="svc_sft", endpoint_suffix="ep_sft", hours=2),
                       config=cfg)


def test_v2_account_publishes_and_deploys_through_the_v2_calls(fake: FakeQianfan, console: ConsoleV2,
                                                                local_file: Path) -> None:
    trainer = _published_run(fake, console, local_file, api_key=KEY).run(progress=False)
    seen = [s for s in console.seen() if not s[0].startswith("/bos/")]
    assert not [p for p, _ in console.seen() if p.startswith("/wenxinworkshop/")]
    ft, model, service = "/v2/finetuning", "/v2/model", "/v2/service"
    after_training = seen[seen.index((ft, "CreateFineTuningTask")) + 4:]
    assert after_training == [
        (ft, "DescribeFineTuningTask"),  # the checkpoint to publish: the run's best
        (model, "CreateCustomModelSet"), (model, "CreateCustomModel"),
        (model, "DescribeModel"), (model, "DescribeModel"),
        (service, "CreateService"), (service, "DescribeService"), (service, "DescribeService")]
    body = {r.params.get("Action"): r.json for r in fake.requests}
    (task_id,) = console.tasks
    assert body["CreateCustomModelSet"] == {"modelSetName": "my_sft", "modelType": "Text2Text"}
    (set_id,) = console.model_sets
    assert body["CreateCustomModel"] == {"modelSetId": set_id, "sourceType": "Train",
                                         "trainMeta": {"taskId": task_id, "checkpointStep": 40}}
    (model_id,) = console.models
    create = body["CreateService"]
    assert (create["modelSetId"], create["modelId"], create["name"], create["urlSuffix"]) == (
        set_id, model_id, "svc_sft", "ep_sft")
    assert create["billing"]["reservation"] == {"reservationTimeUnit": "Hour", "reservationLength": 2}
    out = trainer.output
    (service_id,) = console.services
    assert out["model_id"] == set_id and out["model_version_id"] == model_id and out["checkpoint_step"] == 40
    assert out["service_id"] == service_id and out["service_endpoint"] == "ep_sft"
    deployed = out["model"]  # the trainer's output: the published Model, its Service on it
    assert isinstance(deployed, Model) and deployed.model_set_id == set_id and deployed.version_id == model_id
    assert deployed.service is not None and deployed.service.endpoint == "ep_sft"
    assert console.models[model_id]["state"] == "Ready" and console.services[service_id]["runStatus"] == "Serving"

    # the deployed model answers on the v2 chat route, its endpoint as the v2 ``model``
    cfg = _config(fake, access_key=fake.access_key, secret_key=fake.secret_key, api_key=KEY)
    answer = deployed.service.exec({"messages": [{"role": "user", "content": "hi"}]})
    assert answer.body["result"] == "echo[ep_sft]: hi"
    resp = ChatCompletion(endpoint=out["service_endpoint"], config=cfg).do(
        messages=[{"role": "user", "content": "again"}])
    assert resp.body["result"] == "echo[ep_sft]: again"
    chats = [r for r in fake.requests if r.path == "/v2/chat/completions"]
    assert [r.json["model"] for r in chats] == ["ep_sft", "ep_sft"]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in chats)
    assert not [r for r in fake.requests if r.path.startswith(("/wenxinworkshop/", "/rpc/2.0/"))]


def test_v2_model_publishes_and_deploys_on_its_own(fake: FakeQianfan, console: ConsoleV2,
                                                   local_file: Path) -> None:
    """``Model(task_id=..., job_id=...)`` of a finished v2 run: publish() then deploy() are the same v2 calls."""
    trainer = _trainer(_config(fake, access_key=fake.access_key, secret_key=fake.secret_key),
                       local_file).run(progress=False)
    cfg = _config(fake, access_key=fake.access_key, secret_key=fake.secret_key)
    before = len(fake.requests)
    m = Model(task_id=trainer.output["task_id"], job_id=trainer.output["job_id"], config=cfg)
    m.publish("mine", checkpoint="last")
    svc = m.deploy(DeployConfig(endpoint_suffix="ep_mine"), progress=False)
    assert isinstance(svc, Service) and svc.endpoint == "ep_mine"
    actions = [r.params.get("Action") for r in fake.requests[before:]]
    assert actions == ["CreateCustomModelSet", "CreateCustomModel", "DescribeModel", "DescribeModel",
                       "CreateService", "DescribeService", "DescribeService"]
    create = next(r.json for r in fake.requests[before:] if r.params.get("Action") == "CreateCustomModel")
    assert create["trainMeta"] == {"taskId": trainer.output["task_id"]}  # "last": the final adapter, no step
    assert m.model_set_id in console.model_sets and m.version_id in console.models


def test_v2_publish_with_the_api_key_alone_sends_nothing(fake: FakeQianfan, console: ConsoleV2) -> None:
    cfg = _config(fake, api_key="bce-v3/ALTAK-test/secret")
    with pytest.raises(MissingConsoleKeysError):
        Model(task_id="task-1", job_id="job-1", config=cfg).publish("x")
    assert fake.requests == []
