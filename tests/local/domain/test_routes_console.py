"""Console lifecycle on the local platform: datasets, fine-tuning, publish, deploy, evaluation, restart."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from platform_doubles import FakeRegistry
from platform_helpers import Signer, client_for, console, make_settings, token, wait_for

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.store import Store
from qfnb.local.domain.training.jobs import RESTART_MESSAGE
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

ROWS = [{"prompt": f"question {i}", "response": [[f"answer {i}"]]} for i in range(8)]


def upload_dataset(client: Any, rows: list[dict[str, Any]] = ROWS) -> int:
    data = "\n".join(json.dumps(r) for r in rows).encode()
    put = client.put("/bos/my-bucket/data/train.jsonl", content=data, auth=Signer())
    assert put.status_code == 200
    ds = console(client, "/wenxinworkshop/dataset/create", {"name": "qa", "projectType": 20, "templateType": 2000,
                                                            "dataType": 4})["result"]
    assert ds["datasetId"].startswith("ds-")
    imp = console(client, "/wenxinworkshop/dataset/import", {"datasetId": ds["id"], "annotated": True, "importFrom": 1,
                                                             "files": ["bos:/my-bucket/data/train.jsonl"]})
    assert imp["result"] is True
    info = console(client, "/wenxinworkshop/dataset/info", {"datasetId": ds["id"]})["result"]
    assert info["versionInfo"]["importStatus"] == 2 and info["versionInfo"]["entityCount"] == len(rows)
    return int(ds["id"])


def start_job(client: Any, ds: int, **config: Any) -> tuple[int, int]:
    task = console(client, "/wenxinworkshop/finetune/createTask", {"name": "t", "baseTrainType": "Tiny-Chat",
                                                                   "trainType": "tiny-chat"})["result"]
    job = console(client, "/wenxinworkshop/finetune/createJob", {
        "taskId": task["id"], "baseTrainType": "Tiny-Chat", "trainType": "tiny-chat", "trainMode": "SFT",
        "peftType": "LoRA", "trainConfig": {"epoch": 1, "batchSize": 2, "learningRate": 0.001, **config},
        "trainset": [{"type": 1, "id": ds}], "trainsetRate": 20})
    assert "result" in job, job
    return int(task["id"]), int(job["result"]["id"])


def detail(client: Any, task: int, job: int) -> dict[str, Any]:
    return console(client, "/wenxinworkshop/finetune/jobDetail", {"taskId": task, "jobId": job})["result"]


def test_v1_lifecycle_train_publish_deploy_chat(client) -> None:
    ds = upload_dataset(client)
    task, job = start_job(client, ds)
    done = wait_for(lambda: (d := detail(client, task, job))["trainStatus"] == "FINISH" and d)
    # trainsetRate 20: 1 of the 8 rows is held out for the evaluation loss, 7 train (3 steps of 2)
    assert done["progress"] == 100 and done["totalSteps"] == 3 and done["currentStep"] == 3
    assert [p[0] for p in done["lossCurve"]] == [1, 2, 3] and done["lossCurve"][0][1] == 5.0
    # with a split the run keeps 5 checkpoints by default: here one per step, each scored on the held-out row
    assert [p[0] for p in done["evalLossCurve"]] == [1, 2, 3]
    assert [c["step"] for c in done["checkpointList"]] == [1, 2, 3] and done["bestCheckpoint"] == 3
    spec = json.loads((Path(client.app.state.platform.settings.data_dir) / "jobs").joinpath(
        client.app.state.platform.store.get("runs", job)["sid"], "spec.json").read_text())
    assert spec["base_model"] == "Tiny-Chat" and spec["hyper"]["batchSize"] == 2
    pub = console(client, "/wenxinworkshop/modelrepo/publishTrainModel",
                  {"isNewModel": True, "modelName": "mine", "versionMeta": {"taskId": task, "iterationId": job}})
    model_id, version_id = pub["result"]["modelId"], pub["result"]["versionId"]
    listing = console(client, "/wenxinworkshop/modelrepo/modelDetail", {"modelId": model_id})["result"]
    assert listing["modelVersionList"][0]["modelName"] == "mine"
    vd = console(client, "/wenxinworkshop/modelrepo/modelVersionDetail", {"modelVersionId": version_id})["result"]
    assert vd["state"] == "Ready" and vd["modelVersionIdStr"].startswith("amv-")
    svc = console(client, "/wenxinworkshop/service/apply", {"modelId": model_id, "modelVersionId": version_id,
                                                            "name": "svc", "uri": "mysvc", "replicas": 1,
                                                            "poolType": 2})["result"]
    sid = svc["serviceId"]
    wait_for(lambda: console(client, "/wenxinworkshop/service/detail",
                             {"serviceId": sid})["result"]["serviceStatus"] == "Serving")
    answer = client.post(MODEL_API_PREFIX + "/chat/mysvc", params={"access_token": token(client)},
                         json={"messages": [{"role": "user", "content": "hi"}]}).json()
    assert answer["result"] == "adapter mysvc: hi"
    listing = console(client, "/wenxinworkshop/service/list", {})["result"]
    assert [s["name"] for s in listing["custom"]] == ["svc"]
    assert "mysvc" not in {c["name"] for c in listing["common"]}


def test_job_validation_errors(client) -> None:
    ds = upload_dataset(client)
    task = console(client, "/wenxinworkshop/finetune/createTask", {"name": "t", "baseTrainType": "Llama-2",
                                                                   "trainType": "Llama-2-70B-Chat"})
    assert task["error_code"] == 336003 and "Tiny-Chat" in task["error_msg"]
    tid = console(client, "/wenxinworkshop/finetune/createTask",
                  {"name": "t", "trainType": "tiny-chat"})["result"]["id"]
    bad = console(client, "/wenxinworkshop/finetune/createJob", {"taskId": tid, "trainConfig": {"epoch": 0},
                                                                 "trainset": [{"type": 1, "id": ds}]})
    assert bad["error_code"] == 336003 and bad["error_msg"].startswith("trainConfig.epoch")
    missing = console(client, "/wenxinworkshop/finetune/createJob",
                      {"taskId": tid, "trainset": [{"type": 1, "id": 999}]})
    assert "999" in missing["error_msg"]
    assert console(client, "/wenxinworkshop/finetune/jobDetail", {"taskId": tid, "jobId": 42})["error_code"] == 336003


def test_stop_job(client) -> None:
    ds = upload_dataset(client)
    task, job = start_job(client, ds, stepSeconds=0.2, maxSteps=200)
    wait_for(lambda: detail(client, task, job)["currentStep"] >= 1)
    assert console(client, "/wenxinworkshop/finetune/stopJob", {"taskId": task, "jobId": job})["result"] is True
    final = wait_for(lambda: (d := detail(client, task, job))["trainStatus"] == "STOP" and d)
    assert final["currentStep"] < 200


def test_failed_worker_reports_error(client) -> None:
    ds = upload_dataset(client)
    task, job = start_job(client, ds, failAt=2)
    final = wait_for(lambda: (d := detail(client, task, job))["trainStatus"] == "FAIL" and d)
    assert final["errorMessage"] == "simulated failure"
    pub = console(client, "/wenxinworkshop/modelrepo/publishTrainModel",
                  {"isNewModel": True, "modelName": "m", "versionMeta": {"taskId": task, "iterationId": job}})
    assert pub["error_code"] == 336003 and "not Done" in pub["error_msg"]


def test_v2_finetuning_flow(client) -> None:
    ds = upload_dataset(client)
    job = console(client, "/v2/finetuning", {"name": "j", "model": "tiny-chat", "trainMode": "SFT"},
                  Action="CreateFineTuningJob")["result"]["jobId"]
    assert job.startswith("job-")
    created = console(client, "/v2/finetuning", {"jobId": job, "parameterScale": "LoRA",
                                                 "hyperParameterConfig": {"epoch": 1, "batchSize": 4},
                                                 "datasetConfig": {"sourceType": "Platform",
                                                                   "versions": [{"versionId": ds}], "splitRatio": 20}},
                      Action="CreateFineTuningTask")["result"]
    task = created["taskId"]
    final = wait_for(lambda: (d := console(client, "/v2/finetuning", {"taskId": task},
                                           Action="DescribeFineTuningTask")["result"])["runStatus"] == "Done" and d)
    assert final["runProgress"] == "100%" and final["jobId"] == job and final["lossCurve"]
    tasks = console(client, "/v2/finetuning", {"jobId": job}, Action="DescribeFineTuningTasks")["result"]
    assert [t["taskId"] for t in tasks["taskList"]] == [task]
    jobs = console(client, "/v2/finetuning", {}, Action="DescribeFineTuningJobs")["result"]
    assert jobs["jobList"][0]["jobId"] == job
    models = console(client, "/v2/finetuning", {}, Action="DescribeFineTuningSupportModels")["result"]
    assert {m["model"] for m in models} == {"Tiny-Chat", "Other-Chat"}
    # the platform's vocabulary, which the official trainer validates field by field (it dropped "text")
    assert {m["modelType"] for m in models} == {"text2text"}
    params = models[0]["supportTrainMode"][0]["supportParameterScale"][0]["supportHyperParameterConfig"]
    assert next(x for x in params if x["key"] == "learningRate")["name"] == "Learning rate"
    assert all(x["description"] and x["type"] in ("int", "float") for x in params)
    # publish with v1 naming over v2 ids, then the v2 model and service APIs
    pub = console(client, "/wenxinworkshop/modelrepo/publishTrainModel",
                  {"isNewModel": True, "modelName": "m2", "versionMeta": {"taskId": job, "iterationId": task}})
    mset = console(client, "/v2/model", {"modelSetId": pub["result"]["modelIDStr"]}, Action="DescribeModelSet")
    model_id = mset["result"]["modelIds"][0]
    assert console(client, "/v2/model", {"modelId": model_id}, Action="DescribeModel")["result"][
        "sourceInfo"]["trainTaskId"] == task
    svc = console(client, "/v2/service", {"modelSetId": mset["result"]["modelSetId"], "modelId": model_id,
                                          "name": "s2", "urlSuffix": "v2svc",
                                          "resourceConfig": {"type": "GPU-I-2", "replicasCount": 1}},
                  Action="CreateService")["result"]["serviceId"]
    wait_for(lambda: console(client, "/v2/service", {"serviceId": svc},
                             Action="DescribeService")["result"]["runStatus"] == "Serving")
    services = console(client, "/v2/service", {}, Action="DescribeServices")["result"]["serviceList"]
    assert services[0]["url"].endswith("/chat/v2svc")


def test_v2_errors_are_http_4xx(client) -> None:
    resp = client.post("/v2/finetuning", params={"Action": "DescribeFineTuningTask"}, json={"taskId": "task-x"},
                       auth=Signer())
    assert resp.status_code == 404 and set(resp.json()) == {"requestId", "code", "message"}
    bad = client.post("/v2/finetuning", params={"Action": "CreateFineTuningJob"}, json={"model": "tiny-chat"},
                      auth=Signer())
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameter" and "name" in bad.json()["message"]
    unknown = client.post("/v2/finetuning", params={"Action": "Nope"}, json={}, auth=Signer())
    assert unknown.status_code == 400


@pytest.mark.parametrize("key", ["%2e%2e/escape.txt", "a/%2E%2E/%2e%2e/escape.txt", "a/%2e/b", "%2Fetc%2Fpasswd"])
def test_object_path_traversal_rejected(client, key: str) -> None:
    resp = client.put(f"/bos/bucket/{key}", content=b"x", auth=Signer())
    assert resp.status_code == 400 and resp.headers["X-Bce-Error-Code"] == "InvalidObjectName"
    root = Path(client.app.state.platform.settings.data_dir)
    assert not (root / "escape.txt").exists() and not (root / "objects" / "escape.txt").exists()


def test_object_store_rejects_unsafe_keys(tmp_path: Path) -> None:
    from qfnb.local.domain.state.datasets import ObjectStore

    store = ObjectStore(tmp_path)
    for bucket, key in [("b", "/etc/passwd"), ("b", "a/../../x"), ("..", "x"), ("b", "x\0y"), ("b", "a\\..\\x")]:
        with pytest.raises(ValueError):
            store.path(bucket, key)
    assert store.put("b", "k/v.txt", b"ok").read_bytes() == b"ok"


def test_object_get_roundtrip_and_auth(client) -> None:
    assert client.put("/bos/b/k.txt", content=b"hello", auth=Signer()).status_code == 200
    assert client.get("/bos/b/k.txt", auth=Signer()).content == b"hello"
    assert client.put("/bos/b/k.txt", content=b"x").status_code == 403


def test_dataset_export_records_and_download(client) -> None:
    ds = upload_dataset(client, [*ROWS[:2], {"prompt": "hi", "response": "hello"}])
    info = console(client, "/wenxinworkshop/dataset/info", {"datasetId": ds})["result"]["versionInfo"]
    assert (info["exportStatus"], info["exportRecordCount"]) == (-1, 0)
    assert console(client, "/wenxinworkshop/dataset/exportRecord", {"datasetId": ds})["result"] == []
    assert console(client, "/wenxinworkshop/dataset/export", {"datasetId": ds, "exportFormat": 0, "exportType": 1,
                                                              "exportTo": 0})["result"] is True
    records = console(client, "/wenxinworkshop/dataset/exportRecord", {"datasetId": ds})["result"]
    assert len(records) == 1 and records[0]["status"] == 2 and records[0]["finishTime"].endswith("Z")
    url = records[0]["downloadUrl"]
    assert "/bos/qfnb-exports/" in url and "bucket" not in records[0]
    unsigned = url.split("?", 1)[0]
    assert client.get(unsigned).status_code in (401, 403)  # the object store is signed, downloads too
    # the record's URL is a pre-signed link (a plain GET reads it, as the official SDK does) to a zip
    # archive of one JSON-lines file, as the cloud's exports are
    got = client.get(url)
    assert got.status_code == 200 and got.content == client.get(unsigned, auth=Signer()).content
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        assert archive.namelist() == ["export-1.jsonl"]
        text = archive.read("export-1.jsonl").decode("utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines == [[{"prompt": "question 0", "response": [["answer 0"]]}],
                     [{"prompt": "question 1", "response": [["answer 1"]]}],
                     [{"prompt": "hi", "response": [["hello"]]}]]
    info = console(client, "/wenxinworkshop/dataset/info", {"datasetId": ds})["result"]["versionInfo"]
    assert (info["exportStatus"], info["exportRecordCount"]) == (2, 1)
    bad = console(client, "/wenxinworkshop/dataset/export", {"datasetId": ds, "exportTo": 1})
    assert "exportTo" in bad["error_msg"]


def test_restart_mid_training_marks_failed_and_keeps_the_rest(tmp_path: Path) -> None:
    with client_for(tmp_path) as c:
        ds = upload_dataset(c)
        task, job = start_job(c, ds, stepSeconds=0.5, maxSteps=400)
        wait_for(lambda: detail(c, task, job)["currentStep"] >= 1)
        pid = c.app.state.platform.store.get("runs", job)["pid"]
        # simulate a crash: the server vanishes without a shutdown; its worker dies with it
        supervisor = c.app.state.platform.supervisor
        supervisor.shutdown = lambda timeout=0: None  # type: ignore[method-assign]
        supervisor._stopping.set()
        supervisor._release()  # a dead process holds no file lock
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2])
    with client_for(tmp_path) as c:
        final = detail(c, task, job)
        assert final["trainStatus"] == "FAIL" and final["errorMessage"] == RESTART_MESSAGE
        assert final["currentStep"] >= 1 and final["lossCurve"]
        info = console(c, "/wenxinworkshop/dataset/info", {"datasetId": ds})["result"]
        assert info["versionInfo"]["entityCount"] == len(ROWS)


def test_restart_adopts_a_live_worker(tmp_path: Path) -> None:
    store = Store(tmp_path / "platform.sqlite3")
    job_dir = tmp_path / "jobs" / "task-live"
    job_dir.mkdir(parents=True)
    (job_dir / "train.jsonl").write_text(json.dumps({"prompt": "q", "response": "a"}) + "\n")
    spec = {"base_model": "Tiny-Chat", "train_file": str(job_dir / "train.jsonl"),
            "hyper": {"epoch": 1, "batchSize": 1, "maxSteps": 6, "stepSeconds": 0.1}, "seed": 1}
    (job_dir / "spec.json").write_text(json.dumps(spec))
    import subprocess

    worker = Path(__file__).parents[1] / "fake_worker.py"
    proc = subprocess.Popen([sys.executable, str(worker), str(job_dir)])
    run = store.insert("runs", {"containerId": 1, "status": "Running", "job_dir": str(job_dir), "pid": proc.pid,
                                "baseModel": "Tiny-Chat", "lossCurve": []}, sid="task-live")
    store.close()
    platform = Platform(make_settings(tmp_path), FakeRegistry())
    platform.startup()
    try:
        done = wait_for(lambda: (r := platform.store.get("runs", run["id"]))["status"] == "Done" and r)
        assert done["currentStep"] == 6 and done["adapter_dir"].endswith("adapter")
    finally:
        proc.wait()
        platform.shutdown()


def test_services_survive_restart(tmp_path: Path) -> None:
    with client_for(tmp_path) as c:
        ds = upload_dataset(c)
        task, job = start_job(c, ds)
        wait_for(lambda: detail(c, task, job)["trainStatus"] == "FINISH")
        pub = console(c, "/wenxinworkshop/modelrepo/publishTrainModel",
                      {"isNewModel": True, "modelName": "m", "versionMeta": {"taskId": task, "iterationId": job}})
        sid = console(c, "/wenxinworkshop/service/apply", {"modelId": pub["result"]["modelId"],
                                                           "modelVersionId": pub["result"]["versionId"],
                                                           "name": "s", "uri": "kept"})["result"]["serviceId"]
        wait_for(lambda: console(c, "/wenxinworkshop/service/detail",
                                 {"serviceId": sid})["result"]["serviceStatus"] == "Serving")
    with client_for(tmp_path, FakeRegistry()) as c:
        wait_for(lambda: console(c, "/wenxinworkshop/service/detail",
                                 {"serviceId": sid})["result"]["serviceStatus"] == "Serving")
        answer = c.post(MODEL_API_PREFIX + "/chat/kept", params={"access_token": token(c)},
                        json={"messages": [{"role": "user", "content": "hi"}]}).json()
        assert answer["result"] == "adapter kept: hi"


def test_evaluation_runs_and_reports(client) -> None:
    rows = [{"prompt": "x", "response": [["Tiny-Chat: x"]]}, {"prompt": "y", "response": [["something else"]]}]
    ds = upload_dataset(client, rows)
    presets = [m for m in client.app.state.platform.store.all("models") if m.get("presetOf") == "Tiny-Chat"]
    version = client.app.state.platform.store.all("versions", lambda v: v["modelId"] == presets[0]["id"])[0]
    ev = console(client, "/wenxinworkshop/modelrepo/eval/create", {
        "name": "e", "versionEvalInfo": [{"modelId": presets[0]["id"], "modelVersionId": version["id"]}],
        "datasetId": ds, "evalStandardConf": {"evalMode": "rule", "scoreModes": ["similarity", "accuracy"]}})
    eid = ev["result"]["evalId"]
    final = wait_for(lambda: (d := console(client, "/wenxinworkshop/modelrepo/eval/detail", {"id": eid})["result"])[
        "state"] not in ("Pending", "Doing") and d, timeout=90)
    assert final["state"] == "Done", final["errorMessage"]
    report = console(client, "/wenxinworkshop/modelrepo/eval/report", {"id": eid})["result"]
    metric = report[0]["effectMetric"]
    assert metric["accuracy"] == 0.5  # "tiny-chat: x" matches "Tiny-Chat: x" after normalisation
    assert 0.0 < metric["similarity"] <= 1.0 and 0.0 <= metric["rouge_l"] <= 1.0 and "bleu4" in metric
    assert report[0]["modelName"] == "Tiny-Chat"
    bad = console(client, "/wenxinworkshop/modelrepo/eval/create", {
        "name": "e", "versionEvalInfo": [{"modelId": 1, "modelVersionId": 999}], "datasetId": ds})
    assert "versionEvalInfo[0].modelVersionId" in bad["error_msg"]


def test_v2_dataset_basics_feed_a_v2_task(client) -> None:
    rows = "\n".join(json.dumps({"prompt": f"p{i}", "response": [[f"r{i}"]]}) for i in range(4))
    assert client.put("/bos/b/v2.jsonl", content=rows.encode(), auth=Signer()).status_code == 200
    ds = console(client, "/v2/dataset", {"datasetName": "d2", "dataFormat": "PromptResponse",
                                         "storageType": "sysStorage"}, Action="CreateDataset")["result"]
    version = ds["versionId"]
    assert ds["importStatus"] == "Created" and ds["publishStatus"] == "Unpublished"
    task = console(client, "/v2/dataset", {"versionId": version, "files": ["bos:/b/v2.jsonl"]},
                   Action="CreateImportTask")["result"]  # the task id, as the cloud answers it
    status = console(client, "/v2/dataset", {"taskId": task}, Action="DescribeImportTask")["result"]
    assert status["importStatus"] == "ImportFinished" and status["sampleCount"] == 4
    assert status["status"] == "Done" and status["entityCount"] == 4  # the local platform's own fields stay
    assert console(client, "/v2/dataset", {"versionId": version}, Action="PublishDatasetVersion")["result"] is True
    listed = console(client, "/v2/dataset", {}, Action="DescribeDatasets")["result"]["datasets"]
    assert listed[0]["published"] is True and listed[0]["publishStatus"] == "Published"
    assert listed[0]["importStatus"] == "ImportFinished"
    job = console(client, "/v2/finetuning", {"name": "j", "model": "tiny-chat"}, Action="CreateFineTuningJob")
    created = console(client, "/v2/finetuning", {"jobId": job["result"]["jobId"],
                                                 "datasetConfig": {"versions": [{"versionId": version}]}},
                      Action="CreateFineTuningTask")
    assert created["result"]["taskId"].startswith("task-")
    bad = client.post("/v2/dataset", params={"Action": "CreateImportTask"},
                      json={"versionId": version, "files": ["bos:/b/missing.jsonl"]}, auth=Signer())
    assert bad.status_code == 400 and "files[0]" in bad.json()["message"]


def test_evaluation_interrupted_by_restart_runs_again(tmp_path: Path) -> None:
    with client_for(tmp_path) as c:
        ds = upload_dataset(c, [{"prompt": "x", "response": [["Tiny-Chat: x"]]}])
        version = c.app.state.platform.store.all("versions", lambda v: v.get("baseModel") == "Tiny-Chat")[0]
    store = Store(tmp_path / "platform.sqlite3")  # as if the server died while this evaluation was Doing
    ev = store.insert("evaluations", {"name": "e", "units": [{"modelId": version["modelId"],
                                                               "modelVersionId": version["id"]}],
                                      "datasetId": ds, "datasetName": "qa", "evalMode": "rule", "conf": {},
                                      "scoreModes": ["accuracy"], "state": "Doing"})
    store.close()
    with client_for(tmp_path) as c:
        final = wait_for(lambda: (d := console(c, "/wenxinworkshop/modelrepo/eval/detail", {"id": ev["id"]})[
            "result"])["state"] not in ("Pending", "Doing") and d, timeout=90)
        assert final["state"] == "Done", final["errorMessage"]
        report = console(c, "/wenxinworkshop/modelrepo/eval/report", {"id": ev["id"]})["result"]
        assert report[0]["effectMetric"]["accuracy"] == 1.0


def test_evaluation_resumes_from_its_saved_answers_after_a_restart(tmp_path: Path) -> None:
    rows = [{"prompt": p, "response": [[f"Tiny-Chat: {p}"]]} for p in ("a", "b", "c")]
    with client_for(tmp_path) as c:
        ds = upload_dataset(c, rows)
        version = c.app.state.platform.store.all("versions", lambda v: v.get("baseModel") == "Tiny-Chat")[0]
    store = Store(tmp_path / "platform.sqlite3")  # the daemon died after answering two of three rows
    ev = store.insert("evaluations", {"name": "e", "units": [{"modelId": version["modelId"],
                                                               "modelVersionId": version["id"]}],
                                      "datasetId": ds, "datasetName": "qa", "evalMode": "rule", "conf": {},
                                      "scoreModes": ["accuracy"], "state": "Doing",
                                      "answers": {str(version["id"]): ["Tiny-Chat: a", "wrong"]}})
    store.close()
    registry = FakeRegistry()
    with client_for(tmp_path, registry) as c:
        final = wait_for(lambda: (d := console(c, "/wenxinworkshop/modelrepo/eval/detail", {"id": ev["id"]})[
            "result"])["state"] not in ("Pending", "Doing") and d, timeout=60)
        assert final["state"] == "Done", final["errorMessage"]
        report = console(c, "/wenxinworkshop/modelrepo/eval/report", {"id": ev["id"]})["result"]
    assert [s["prediction"] for s in report[0]["samples"]] == ["Tiny-Chat: a", "wrong", "tiny-chat: c"]
    assert len(registry.engines["tiny-chat"].calls) == 1  # only the unanswered row ran again


def test_second_server_on_the_same_data_dir_defers_to_the_supervisor(tmp_path: Path) -> None:
    with client_for(tmp_path) as first, client_for(tmp_path) as second:
        assert first.app.state.platform.supervisor.owner and not second.app.state.platform.supervisor.owner
        ds = upload_dataset(second)
        task, job = start_job(second, ds)  # queued by the second server, run by the first's supervisor
        done = wait_for(lambda: (d := detail(first, task, job))["trainStatus"] == "FINISH" and d)
        assert done["currentStep"] == done["totalSteps"] == 3  # 7 rows train (trainsetRate 20 holds 1 out)
        task2, job2 = start_job(second, ds, stepSeconds=0.2, maxSteps=300)
        wait_for(lambda: detail(second, task2, job2)["currentStep"] >= 1)
        assert console(second, "/wenxinworkshop/finetune/stopJob", {"taskId": task2, "jobId": job2})["result"]
        assert wait_for(lambda: detail(first, task2, job2)["trainStatus"] == "STOP")
        pub = console(first, "/wenxinworkshop/modelrepo/publishTrainModel",
                      {"isNewModel": True, "modelName": "m", "versionMeta": {"taskId": task, "iterationId": job}})
        sid = console(first, "/wenxinworkshop/service/apply", {"modelId": pub["result"]["modelId"],
                                                               "modelVersionId": pub["result"]["versionId"],
                                                               "name": "s", "uri": "shared"})["result"]["serviceId"]
        wait_for(lambda: console(first, "/wenxinworkshop/service/detail",
                                 {"serviceId": sid})["result"]["serviceStatus"] == "Serving")
        answer = second.post(MODEL_API_PREFIX + "/chat/shared", params={"access_token": token(second)},
                             json={"messages": [{"role": "user", "content": "hi"}]}).json()
        assert answer["result"] == "adapter shared: hi"


def test_create_task_without_train_type_takes_the_base_model_from_the_job(client) -> None:
    """Seed 002: ``FineTune.create_task(name=..., description=...)``, then a job naming the cloud
    base model, which the local platform trains on its first trainable model."""
    ds = upload_dataset(client)
    tid = console(client, "/wenxinworkshop/finetune/createTask", {"name": "task_name",
                                                                  "description": "task_desc"})["result"]["id"]
    job = console(client, "/wenxinworkshop/finetune/createJob", {
        "taskId": tid, "baseTrainType": "ERNIE-Bot-turbo", "trainType": "ERNIE-Bot-turbo-0725", "trainMode": "SFT",
        "peftType": "LoRA", "trainConfig": {"epoch": 1}, "trainset": [{"type": 1, "id": ds}], "trainsetRate": 20})
    assert "result" in job, job
    detail = console(client, "/wenxinworkshop/finetune/jobDetail", {"taskId": tid, "jobId": job["result"]["id"]})
    assert detail["result"]["trainType"] == "Tiny-Chat"
    no_base = console(client, "/wenxinworkshop/finetune/createTask", {"name": "t2"})["result"]["id"]
    missing = console(client, "/wenxinworkshop/finetune/createJob", {"taskId": no_base,
                                                                     "trainset": [{"type": 1, "id": ds}]})
    assert missing["error_code"] == 336003 and "trainType" in missing["error_msg"]
