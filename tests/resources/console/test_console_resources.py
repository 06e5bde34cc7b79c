"""Console resources against the cloud double: signed requests, v1/v2 body shapes, validation."""

from __future__ import annotations

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb.protocol.wires.qianfan.signing import parse_authorization, verify
from qfnb.resources.console import Data, FineTune, Model, Service
from tests.fakes.console_cloud import ConsoleCloud


def _assert_signed(cloud: ConsoleCloud, req: object) -> None:
    auth = parse_authorization(req.headers["authorization"])  # type: ignore[attr-defined]
    assert auth.access_key == "test_access_key"
    assert {"host", "x-bce-date", "content-type"} <= set(auth.signed_headers)
    verify(req.method, req.path, req.params, req.headers, "test_secret_key")  # type: ignore[attr-defined]


def test_v1_finetune_seed_flow(cloud: ConsoleCloud, cfg: Config) -> None:
    resp = FineTune.create_task(name="task_name", description="task_desc", config=cfg)
    task_id = resp["result"]["id"]
    req = cloud.calls("/finetune/createTask")[0]
    assert req.json == {"name": "task_name", "description": "task_desc"}
    _assert_signed(cloud, req)
    job = FineTune.create_job({"taskId": task_id, "baseTrainType": "ERNIE-Bot-turbo", "trainMode": "SFT",
                               "trainConfig": {"epoch": 4}, "trainset": [{"type": 1, "id": 1234}]},
                              config=cfg)
    assert isinstance(job["result"]["id"], int)
    assert cloud.calls("/finetune/createJob")[0].json["trainConfig"] == {"epoch": 4}
    detail = FineTune.get_job(task_id, job["result"]["id"], config=cfg)
    assert detail["result"]["trainStatus"] == "FINISH"
    assert FineTune.stop_job(task_id, job["result"]["id"], config=cfg)["result"] is True


def test_v2_finetune_body_shapes(cloud: ConsoleCloud, cfg: Config) -> None:
    job = FineTune.V2.create_job(name="j", model="Fake-Base", train_mode="SFT", config=cfg)
    job_id = job["result"]["jobId"]
    req = cloud.calls("CreateFineTuningJob")[0]
    assert req.path == "/v2/finetuning" and req.params == {"Action": "CreateFineTuningJob"}
    assert req.json == {"name": "j", "model": "Fake-Base", "trainMode": "SFT"}
    _assert_signed(cloud, req)
    ds_conf = {"sourceType": "Platform", "versions": [{"versionId": 12}], "splitRatio": 20}
    task = FineTune.V2.create_task(job_id=job_id, params_scale="LoRA", hyper_params={"epoch": 1},
                                   dataset_config=ds_conf, config=cfg)
    body = cloud.calls("CreateFineTuningTask")[0].json
    assert body == {"jobId": job_id, "parameterScale": "LoRA", "hyperParameterConfig": {"epoch": 1},
                    "datasetConfig": ds_conf}
    detail = FineTune.V2.task_detail(task_id=task["result"]["taskId"], config=cfg)
    assert detail["result"]["runStatus"] == "Running"
    assert detail.body["requestId"] == "fake-req"
    assert FineTune.V2.stop_task(task_id=task["result"]["taskId"], config=cfg)["result"] is True
    assert FineTune.V2.task_list(job_id=job_id, config=cfg)["result"]["taskList"][0]["runStatus"] == "Stopped"
    assert FineTune.V2.job_list(config=cfg)["result"]["jobList"][0]["jobId"] == job_id
    assert FineTune.V2.supported_models(config=cfg)["result"][0]["model"] == "Fake-Base"


async def test_async_twins_send_the_same_request(cloud: ConsoleCloud, cfg: Config) -> None:
    resp = await FineTune.V2.acreate_job(name="j", model="m", train_mode="SFT", config=cfg)
    assert resp["result"]["jobId"].startswith("job-")
    await Service.V2.aservice_list(config=cfg)
    assert cloud.calls("DescribeServices")[0].json == {}


@pytest.mark.parametrize("call, field", [
    (lambda c: FineTune.create_task(name="", config=c), "name"),
    (lambda c: FineTune.create_job({"epoch": 1}, config=c), "job.taskId"),
    (lambda c: FineTune.V2.create_job(name="n", model="m", train_mode="RLHF", config=c), "train_mode"),
    (lambda c: FineTune.V2.create_task(job_id="j", params_scale="LoRA", dataset_config={
        "sourceType": "Platform", "versions": [], "splitRatio": 20}, config=c), "dataset_config.versions"),
    (lambda c: FineTune.V2.create_task(job_id="j", params_scale="LoRA", dataset_config={
        "sourceType": "Platform", "versions": [{"versionId": 1}], "splitRatio": 120}, config=c),
     "dataset_config.splitRatio"),
    (lambda c: FineTune.V2.create_task(job_id="j", params_scale="Huge", config=c), "params_scale"),
    (lambda c: Model.publish(is_new=True, version_meta={"taskId": 1}, model_name="x", config=c),
     "version_meta.iterationId"),
    (lambda c: Model.publish(is_new=True, version_meta={"taskId": 1, "iterationId": 2}, config=c), "model_name"),
    (lambda c: Service.create(model_id=1, model_version_id=2, name="s", uri="u", replicas=0, config=c),
     "replicas"),
    (lambda c: Service.list(api_type_filter=["chats"], config=c), "api_type_filter"),
    (lambda c: Data.create_bare_dataset(name="d", template_type=2000, project_type=401, config=c),
     "template_type"),
    (lambda c: Data.create_data_import_task(1, True, 1, "http://x", config=c), "file_url"),
    (lambda c: Model.get_evaluation_info(eval_id=None, config=c), "eval_id"),
])
def test_bad_arguments_fail_before_sending(cloud: ConsoleCloud, cfg: Config, call: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        call(cfg)  # type: ignore[operator]
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert [r for r in cloud.fake.requests if r.path != "/oauth/2.0/token"] == []


def test_model_and_evaluation_calls(cloud: ConsoleCloud, cfg: Config) -> None:
    job = FineTune.V2.create_job(name="j", model="m", train_mode="SFT", config=cfg)["result"]["jobId"]
    task = FineTune.V2.create_task(job_id=job, params_scale="LoRA", dataset_config={
        "sourceType": "Platform", "versions": [{"versionId": 1}], "splitRatio": 0}, config=cfg)["result"]["taskId"]
    cloud.tasks[task]["runStatus"] = "Done"
    g = Model.publish(is_new=True, model_name="sdk_test_1", version_meta={"taskId": job, "iterationId": task},
                      config=cfg)
    assert g["result"]["modelId"] == 7
    assert cloud.calls("publishTrainModel")[0].json == {
        "isNewModel": True, "versionMeta": {"taskId": job, "iterationId": task}, "modelName": "sdk_test_1"}
    vid = g["result"]["versionId"]
    assert Model.detail(model_version_id=vid, config=cfg)["result"]["state"] == "Creating"
    assert Model.list(model_id=7, config=cfg)["result"]["modelVersionList"][0]["modelName"] == "sdk_test_1"
    t = Model.create_evaluation_task("test_name_only_rule", [{"modelId": 7, "modelVersionId": vid}], 14666,
                                     {"evalMode": "rule", "scoreModes": ["similarity", "accuracy"]},
                                     dataset_name="CMMLU_STEM", config=cfg)
    body = cloud.calls("eval/create")[0].json
    assert body["versionEvalInfo"] == [{"modelId": 7, "modelVersionId": vid}]
    assert body["evalStandardConf"]["evalMode"] == "rule" and body["datasetName"] == "CMMLU_STEM"
    assert body["computeResourceConf"] == {"vmType": 1, "vmNumber": 8}
    eid = t["result"]["evalId"]
    assert Model.get_evaluation_info(eval_id=eid, config=cfg)["result"]["state"] == "Doing"
    assert Model.get_evaluation_result(eval_id=eid, config=cfg)["result"][0]["effectMetric"]["bleu4"] == 0.5
    assert Model.stop_evaluation_task(eval_id=eid, config=cfg)["result"]["result"] is True
    assert Model.V2.describe_model_set(model_set_id="am-7", config=cfg)["result"]["modelIds"] == ["amv-x"]


def test_service_calls(cloud: ConsoleCloud, cfg: Config) -> None:
    g = Service.create(model_id=123, model_version_id=456, name="sdk_test", uri="svc_uri", replicas=1,
                       pool_type=2, config=cfg)
    assert g["result"]["serviceId"] == 164
    assert cloud.calls("service/apply")[0].json == {"modelId": 123, "modelVersionId": 456, "name": "sdk_test",
                                                     "uri": "svc_uri", "replicas": 1, "poolType": 2}
    assert Service.get(id=2047, config=cfg)["result"]["id"] == 2047
    created = Service.V2.create_service(model_set_id="am-7", model_id="amv-1", name="s", url_suffix="ep1",
                                        config=cfg)
    body = cloud.calls("CreateService")[0].json
    assert body["urlSuffix"] == "ep1" and body["resourceConfig"]["replicasCount"] == 1
    assert body["billing"]["paymentTiming"] == "Prepaid"
    detail = Service.V2.service_detail(service_id=created["result"]["serviceId"], config=cfg)
    assert detail["result"]["url"].endswith("/ep1")
    listing = Service.list(api_type_filter=["chat"], config=cfg)
    assert "common" in listing["result"]
    assert cloud.calls("service/list")[0].json == {"apiTypefilter": ["chat"]}


def test_data_calls(cloud: ConsoleCloud, cfg: Config) -> None:
    r = Data.create_bare_dataset(name="d", template_type=2000, storage_path="x", config=cfg)
    assert cloud.calls("dataset/create")[0].json == {
        "name": "d", "versionId": 1, "projectType": 20, "templateType": 2000, "dataType": 4,
        "storageType": "sysBos", "rawStoragePath": "x/"}
    did = r["result"]["id"]
    assert Data.create_data_import_task(did, True, 1, "bos:/b/k", config=cfg)["result"] is True
    assert cloud.calls("dataset/import")[0].json == {"datasetId": did, "annotated": True, "importFrom": 1,
                                                      "files": ["bos:/b/k"]}
    assert Data.release_dataset(did, config=cfg)["result"] is True
    info = Data.get_dataset_info(did, config=cfg)["result"]["versionInfo"]
    assert info["releaseStatus"] == 1


def test_wrong_secret_is_rejected_by_signature_check(cloud: ConsoleCloud, make_config: object) -> None:
    from qfnb._core.errors import QfnbError

    bad = make_config("iam", secret_key="wrong")  # type: ignore[operator]
    with pytest.raises(QfnbError) as info:
        FineTune.V2.task_list(job_id="j", config=bad)
    assert "wrong" not in str(info.value)


def test_config_keywords_reach_the_config_and_the_rest_the_body(cloud: ConsoleCloud, make_config: object) -> None:
    """Official SDK style ``FineTune.create_task(..., secret_key=...)``: the key signs, it is not sent."""
    from qfnb._core.errors import QfnbError

    bad = make_config("iam", secret_key="wrong")  # type: ignore[operator]
    FineTune.create_task(name="t", config=bad, secret_key="test_secret_key", labels=["x"])
    req = cloud.calls("/finetune/createTask")[0]
    assert req.json == {"name": "t", "labels": ["x"]}
    _assert_signed(cloud, req)
    with pytest.raises(QfnbError):
        FineTune.create_task(name="t", config=bad, labels=["x"])
