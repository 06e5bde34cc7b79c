"""qfnb.model.Model / Service against the cloud double."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.model import DeployConfig, Model, Service, ServiceType
from qfnb.resources import ChatCompletion
from qfnb.resources.console import FineTune
from tests.fakes.console_cloud import ConsoleCloud


def _finished_run(cloud: ConsoleCloud, cfg: Config) -> tuple[str, str]:
    job = FineTune.V2.create_job(name="j", model="m", train_mode="SFT", config=cfg)["result"]["jobId"]
    task = FineTune.V2.create_task(job_id=job, params_scale="LoRA", dataset_config={
        "sourceType": "Platform", "versions": [{"versionId": 1}], "splitRatio": 0}, config=cfg)["result"]["taskId"]
    cloud.tasks[task]["runStatus"] = "Done"
    return job, task


def test_publish_deploy_and_use(cloud: ConsoleCloud, cfg: Config) -> None:
    job, task = _finished_run(cloud, cfg)
    m = Model(task_id=task, job_id=job, config=cfg).publish("my_model")
    assert m.version_id is not None and m.id == 7 and m.name == "my_model"
    assert len(cloud.calls("modelVersionDetail")) == 2  # Creating, then Ready
    svc = m.deploy(DeployConfig(name="svc", endpoint_suffix="ep_x", replicas=1, service_type=ServiceType.Chat))
    assert svc.endpoint == "ep_x" and m.service is svc
    create = cloud.calls("CreateService")[0].json
    assert create["modelSetId"] == "am-7" and create["modelId"] == f"amv-{m.version_id}"
    chat = svc.get_res()
    assert isinstance(chat, ChatCompletion)
    resp = chat.do(messages=[{"role": "user", "content": "hello"}])
    assert resp["result"]
    assert cloud.fake.calls("/chat/ep_x"), "the service's endpoint was called"
    out = m.batch_inference(Dataset.create_from_pyobj([{"prompt": "a"}, {"prompt": "b"}]))
    df = out.to_pandas()
    assert list(df["prompt"]) == ["a", "b"] and df["llm_output"].notna().all()
    assert len(cloud.fake.calls("/chat/ep_x")) == 3


def test_dumps_roundtrip_has_no_credentials(cloud: ConsoleCloud, cfg: Config) -> None:
    svc = Service(id="svco-1", endpoint="ep", config=cfg, deploy_config=DeployConfig(hours=2))
    m = Model(id=7, version_id=9, task_id="task-1", job_id="job-1", name="n", config=cfg, service=svc)
    blob = m.dumps()
    for secret in (b"test_secret_key", b"test_access_key", b"test_sk"):
        assert secret not in blob
    back = Model.loads(blob)
    assert (back.id, back.version_id, back.task_id, back.service.endpoint) == (7, 9, "task-1", "ep")  # type: ignore[union-attr]
    assert back.service.deploy_config.hours == 2  # type: ignore[union-attr]
    assert Service.loads(svc.dumps()).endpoint == "ep"
    assert "secret" not in repr(m) and "secret" not in repr(svc)


def test_auto_complete_info_and_errors(cloud: ConsoleCloud, cfg: Config) -> None:
    job, task = _finished_run(cloud, cfg)
    published = Model(task_id=task, job_id=job, config=cfg).publish("x")
    m = Model(version_id=published.version_id, config=cfg).auto_complete_info()
    assert m.id == 7 and m.name == "x" and m.model_set_id == "am-7"
    with pytest.raises(ValueError, match="deploy"):
        Model(version_id=1, config=cfg).chat_target()
    with pytest.raises(ValueError, match="id"):
        Service()
    with pytest.raises(ValueError, match="deploy_config"):
        m.deploy({"replicas": 1})  # type: ignore[arg-type]


def test_seed_000_deploy_by_version_id(cloud: ConsoleCloud, cfg: Config) -> None:
    """Seed 000 as written (qianfan -> qfnb): Model(version_id=...) -> deploy -> get_res().do()."""
    from qfnb import ChatCompletion as QfChat
    from qfnb.model.consts import ServiceType as SeedServiceType
    from qfnb.resources.console.consts import DeployPoolType
    from qfnb.trainer.configs import DeployConfig as SeedDeployConfig

    job, task = _finished_run(cloud, cfg)
    vid = Model(task_id=task, job_id=job, config=cfg).publish().version_id
    m = Model(version_id=vid, config=cfg)
    sft_svc: Service = m.deploy(SeedDeployConfig(
        name="your_service_name", endpoint_suffix="your_sdk_suffix", replicas=1,
        pool_type=DeployPoolType.PrivateResource, service_type=SeedServiceType.Chat, hours=1))
    chat_comp: QfChat = sft_svc.get_res()
    sft_chat_resp = chat_comp.do(messages=[{"content": "your problem", "role": "user"}])
    assert isinstance(sft_chat_resp["result"], str)
    body = cloud.calls("CreateService")[0].json
    assert body["billing"]["reservation"] == {"reservationTimeUnit": "Hour", "reservationLength": 1}
    assert body["modelSetId"] == "am-7" and body["urlSuffix"] == "your_sdk_suffix"


def test_status_is_a_method_and_the_official_property_is_deprecated(cloud: ConsoleCloud, cfg: Config) -> None:
    from qfnb.model import ServiceStatus

    job, task = _finished_run(cloud, cfg)
    svc = Model(task_id=task, job_id=job, config=cfg).deploy(DeployConfig(name="s", endpoint_suffix="ep_s"))
    before = len(cloud.calls("DescribeService"))
    assert svc.get_status() is ServiceStatus.Deployed
    assert len(cloud.calls("DescribeService")) == before + 1
    with pytest.warns(DeprecationWarning, match=r"get_status\(\)"):
        assert svc.status is ServiceStatus.Deployed


def test_redeploying_an_endpoint_forgets_its_cached_answers(cloud: ConsoleCloud, cfg: Config, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb._core.record import cache as cache_mod

    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path))
    cache_mod._default.clear()
    job, task = _finished_run(cloud, cfg)
    m = Model(task_id=task, job_id=job, config=cfg).publish("my_model")
    first = m.deploy(DeployConfig(name="svc", endpoint_suffix="ep_x", replicas=1, service_type=ServiceType.Chat))
    chat = ChatCompletion(endpoint=first.endpoint, config=cfg.with_overrides(cache=True))
    ask = [{"role": "user", "content": "hello"}]
    chat.do(messages=ask)
    chat.do(messages=ask)
    assert len(cloud.fake.calls("/chat/ep_x")) == 1  # the second answer came from the cache
    m.deploy(DeployConfig(name="svc2", endpoint_suffix="ep_x", replicas=1, service_type=ServiceType.Chat))
    chat.do(messages=ask)
    assert len(cloud.fake.calls("/chat/ep_x")) == 2  # a new deployment of the endpoint is asked again
