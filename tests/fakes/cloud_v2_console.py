"""The 2026 console's data-set and fine-tuning ``Action=`` calls, on a :class:`FakeQianfan`.

``console = install_console_v2(fake)`` registers ``POST /v2/dataset?Action=...``,
``POST /v2/finetuning?Action=...`` and the user's BOS (``PUT /bos/<bucket>/<key>``, for a config
whose ``bos_endpoint`` is ``fake.base_url + "/bos"``). Every handler checks the bce-auth-v1
signature (``fake.check_iam``) and answers ``{"requestId", "result"}`` as Baidu's page for the call
documents. State advances over polls: an import is ``Importing`` once, then ``ImportFinished``; a
publish ``Publishing`` once, then ``Published``; a training task ``Running`` for ``train_polls``
polls, then ``Done`` with its ``checkpointList`` (and ``metrics``); a published model (``CreateCustomModel``)
``Creating`` once, then ``Ready``; a service (``CreateService``) ``Deploying`` once, then ``Serving``. It
also registers ``POST /v2/model?Action=...``, ``POST /v2/service?Action=...`` and a stricter
``POST /v2/chat/completions`` that answers only a serving service's endpoint as ``model`` (the base
double's echo, ``echo[<model>]: <text>``) and ``invalid_model`` (HTTP 401, as
:mod:`tests.fakes.cloud_v2` records it) for anything else. Only this module's routes exist on the
fake: a v1 call (``/wenxinworkshop/...``) answers 404.
"""

from __future__ import annotations

import itertools
from typing import Any

from .cloud import Captured, FakeQianfan, Reply

DS, FT, MODEL, SERVICE = "/v2/dataset", "/v2/finetuning", "/v2/model", "/v2/service"
#: where a created service answers (its ``url``; the last segment is its endpoint)
#: the console's train modes (2026: RFT beside the official SDK's four)
TRAIN_MODES = ("SFT", "PostPretrain", "DPO", "KTO", "RFT")
SERVICE_URL = "https://qianfan.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"


class ConsoleV2:
    """The state behind the handlers (data sets, objects, jobs, tasks), for assertions."""

    def __init__(self, fake: FakeQianfan, train_polls: int = 3) -> None:
        self.fake = fake
        self.train_polls = train_polls
        self.seq = itertools.count(1)
        self.objects: dict[str, bytes] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.imports: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.model_sets: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}

    def seen(self) -> list[tuple[str, str | None]]:
        """``(path, Action)`` of every request the fake got, in order."""
        return [(r.path, r.params.get("Action")) for r in self.fake.requests]

    def _ok(self, req: Captured, result: Any) -> dict[str, Any]:
        self.fake.check_iam(req)
        return {"requestId": f"req-{next(self.seq)}", "result": result}

    def _bad(self, req: Captured, code: str, message: str, status: int = 400) -> Reply:
        self.fake.check_iam(req)
        return Reply({"requestId": f"req-{next(self.seq)}", "code": code, "message": message}, status)

    # ---- data sets -------------------------------------------------------------------------
    def create_dataset(self, req: Captured) -> Any:
        """``CreateDataset``: a data set, with its version 1.
        https://cloud.baidu.com/doc/qianfan-api/s/9mnzot7x8"""
        body = req.json or {}
        if not body.get("datasetName") or not body.get("dataFormat"):
            return self._bad(req, "InvalidParameter", "datasetName and dataFormat are required")
        n = next(self.seq)
        version = {"datasetId": f"dg-{n}", "versionId": f"ds-{n}", "versionNumber": 1,
                   "datasetName": body["datasetName"], "dataFormat": body["dataFormat"],
                   "storageType": body.get("storageType", "sysStorage"), "importStatus": "Created",
                   "publishStatus": "Unpublished", "polls": 0, "rows": 0}
        self.versions[version["versionId"]] = version
        return self._ok(req, self._view(version))

    def create_import_task(self, req: Captured) -> Any:
        """``CreateImportTask``: import the user's BOS files into a version; result: the task id.
        https://cloud.baidu.com/doc/qianfan-api/s/lmnzqpt7v"""
        body = req.json or {}
        version = self.versions.get(str(body.get("versionId")))
        files = body.get("files") or []
        if version is None:
            return self._bad(req, "NotFound", "no such dataset version", 404)
        missing = [f for f in files if f.removeprefix("bos:/") not in self.objects]
        if not files or missing:
            return self._bad(req, "InvalidParameter", f"no such BOS object: {missing}")
        task_id = f"task-{next(self.seq)}"
        rows = sum(len(self.objects[f.removeprefix("bos:/")].splitlines()) for f in files)
        self.imports[task_id] = {"versionId": version["versionId"], "polls": 0, "rows": rows}
        version["importStatus"] = "Importing"
        return self._ok(req, task_id)

    def describe_import_task(self, req: Captured) -> Any:
        """``DescribeImportTask``: ``importStatus`` Importing → ImportFinished.
        https://cloud.baidu.com/doc/qianfan-api/s/Lmnzr4pth"""
        task = self.imports.get(str((req.json or {}).get("taskId")))
        if task is None:
            return self._bad(req, "NotFound", "no such import task", 404)
        task["polls"] += 1
        version = self.versions[task["versionId"]]
        if task["polls"] > 1:
            version["importStatus"], version["rows"] = "ImportFinished", task["rows"]
        done = version["importStatus"] == "ImportFinished"
        return self._ok(req, {"versionId": task["versionId"], "importStatus": version["importStatus"],
                              "progress": "100%" if done else "50%", "sampleCount": version["rows"],
                              "sizeMB": 0.01, "creator": "fake", "startTime": "2026-05-01 10:00:00",
                              "finishTime": "2026-05-01 10:00:05" if done else "", "errDownloadUrl": ""})

    def publish_dataset_version(self, req: Captured) -> Any:
        """``PublishDatasetVersion``: a fine-tune trains on published versions only
        (``CreateFineTuningTask``, https://cloud.baidu.com/doc/qianfan-api/s/1mo1a2ttv)."""
        version = self.versions.get(str((req.json or {}).get("versionId")))
        if version is None or version["importStatus"] != "ImportFinished":
            return self._bad(req, "InvalidParameter", "only an imported version can be published")
        version["publishStatus"] = "Publishing"
        return self._ok(req, True)

    def describe_dataset_version(self, req: Captured) -> Any:
        """``DescribeDatasetVersion``; the publish states are those of ``DescribeDatasetVersions``'
        filter (https://cloud.baidu.com/doc/qianfan-api/s/9mnzr02r9).
        https://cloud.baidu.com/doc/qianfan-api/s/1mnzr9j3b"""
        version = self.versions.get(str((req.json or {}).get("versionId")))
        if version is None:
            return self._bad(req, "NotFound", "no such dataset version", 404)
        if version["publishStatus"] == "Publishing":
            version["polls"] += 1
            if version["polls"] > 1:
                version["publishStatus"] = "Published"
        return self._ok(req, self._view(version))

    @staticmethod
    def _view(version: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in version.items() if k not in ("polls", "rows")} | {"entityCount": version["rows"]}

    def bos_put(self, req: Captured) -> Any:
        """The user's BOS ``PutObject`` (bce-auth-v1 signed)."""
        self.fake.check_iam(req)
        self.objects[req.path.removeprefix("/bos/")] = req.raw
        return Reply(b"", 200, {"etag": "fake"})

    # ---- fine-tuning -----------------------------------------------------------------------
    def create_job(self, req: Captured) -> Any:
        """``CreateFineTuningJob`` (``name``, ``model``, ``trainMode``): result ``{"jobId"}``.
        https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Mlt73m1g4"""
        body = req.json or {}
        if not body.get("name") or not body.get("model") or body.get("trainMode") not in TRAIN_MODES:
            return self._bad(req, "InvalidParameter", "name, model and trainMode are required")
        job_id = f"job-{next(self.seq)}"
        self.jobs[job_id] = {"jobId": job_id, "jobName": body["name"], "model": body["model"],
                             "trainMode": body["trainMode"], "description": body.get("description")}
        return self._ok(req, {"jobId": job_id})

    def create_task(self, req: Captured) -> Any:
        """``CreateFineTuningTask`` (``jobId``, ``parameterScale``, ``hyperParameterConfig``,
        ``datasetConfig`` of published versions): result ``{"jobId", "taskId"}``.
        https://cloud.baidu.com/doc/qianfan-api/s/1mo1a2ttv"""
        body = req.json or {}
        if body.get("jobId") not in self.jobs:
            return self._bad(req, "NotFound", "job not found", 404)
        config = body.get("datasetConfig") or {}
        for v in config.get("versions") or []:
            if config.get("sourceType") == "Platform" and (
                    self.versions.get(str(v.get("versionId")), {}).get("publishStatus") != "Published"):
                return self._bad(req, "InvalidParameter", f"dataset version {v.get('versionId')} is not published")
        task_id = f"task-{next(self.seq)}"
        self.tasks[task_id] = {"taskId": task_id, "jobId": body["jobId"], "runStatus": "Waiting", "polls": 0,
                               "parameterScale": body.get("parameterScale")}
        return self._ok(req, {"jobId": body["jobId"], "taskId": task_id})

    def describe_task(self, req: Captured) -> Any:
        """``DescribeFineTuningTask``: ``runStatus`` Waiting → Running → Done (``runProgress``
        while running; ``metrics`` and ``checkpointList`` once done).
        https://cloud.baidu.com/doc/qianfan-api/s/lmo1afnju"""
        task = self.tasks.get(str((req.json or {}).get("taskId")))
        if task is None:
            return self._bad(req, "NotFound", "task not found", 404)
        if task["runStatus"] in ("Waiting", "Running"):
            task["polls"] += 1
            task["runStatus"] = "Done" if task["polls"] >= self.train_polls else "Running"
        job = self.jobs[task["jobId"]]
        out = {"taskId": task["taskId"], "jobId": job["jobId"], "jobName": job["jobName"],
               "jobDescription": job["description"], "model": job["model"], "trainMode": job["trainMode"],
               "parameterScale": task["parameterScale"], "runStatus": task["runStatus"],
               "vdlLink": f"https://console.bce.baidu.com/qianfan/visualdl/{task['taskId']}"}
        if task["runStatus"] == "Running":
            out["runProgress"] = f"{100 * task['polls'] // self.train_polls}%"
        if task["runStatus"] == "Done":
            out["metrics"] = {"BLEU-4": 0.31, "ROUGE-1": 0.52}
            out["checkpointList"] = [{"step": s, "time": "2026-05-01T10:00:00Z", "trainLoss": 1.0 / s,
                                      "evalLoss": loss} for s, loss in ((20, 1.2), (40, 0.9))]
        return self._ok(req, out)

    def stop_task(self, req: Captured) -> Any:
        """``StopFineTuningTask``. https://cloud.baidu.com/doc/WENXINWORKSHOP/s/zlt73o1hv"""
        task = self.tasks.get(str((req.json or {}).get("taskId")))
        if task is None:
            return self._bad(req, "NotFound", "task not found", 404)
        task["runStatus"] = "Stopped"
        return self._ok(req, True)

    def describe_jobs(self, req: Captured) -> Any:
        """``DescribeFineTuningJobs`` with ``marker``/``maxKeys`` paging.
        https://cloud.baidu.com/doc/qianfan-api/s/Dmo1adln5 (its tasks' twin)"""
        body = req.json or {}
        ids = sorted(self.jobs)
        start = ids.index(body["marker"]) + 1 if body.get("marker") in ids else 0
        page = ids[start:start + int(body.get("maxKeys") or 10)]
        truncated = start + len(page) < len(ids)
        return self._ok(req, {"jobList": [self.jobs[i] for i in page], "pageInfo": {
            "marker": body.get("marker") or "", "isTruncated": truncated,
            "nextMarker": page[-1] if truncated else "", "maxKeys": int(body.get("maxKeys") or 10)}})

    # ---- models ----------------------------------------------------------------------------
    def create_model_set(self, req: Captured) -> Any:
        """``CreateCustomModelSet`` (``modelSetName``, ``modelType``): result ``{"modelSetId"}``, the
        ``modelSetId`` that ``CreateCustomModel`` requires (its page:
        https://cloud.baidu.com/doc/qianfan-api/s/Mmnijpuh3, 方式一)."""
        body = req.json or {}
        if not body.get("modelSetName") or not body.get("modelType"):
            return self._bad(req, "InvalidParameter", "modelSetName and modelType are required")
        set_id = f"am-{next(self.seq)}"
        self.model_sets[set_id] = {"modelSetId": set_id, "modelSetName": body["modelSetName"],
                                   "modelType": body["modelType"], "modelIds": []}
        return self._ok(req, {"modelSetId": set_id})

    def create_model(self, req: Captured) -> Any:
        """``CreateCustomModel`` (``modelSetId``, ``sourceType`` Train, ``trainMeta`` ``{"taskId",
        "checkpointStep"?}`` of a finished task): result ``{"modelSetId", "modelId"}``.
        https://cloud.baidu.com/doc/qianfan-api/s/Mmnijpuh3"""
        body = req.json or {}
        model_set = self.model_sets.get(str(body.get("modelSetId")))
        if model_set is None:
            return self._bad(req, "NotFound", "no such model set", 404)
        meta = body.get("trainMeta") or {}
        task = self.tasks.get(str(meta.get("taskId")))
        if body.get("sourceType") != "Train" or task is None or task["runStatus"] != "Done":
            return self._bad(req, "InvalidParameter", "sourceType Train needs trainMeta.taskId of a finished task")
        model_id = f"amv-{next(self.seq)}"
        version = str(len(model_set["modelIds"]) + 1)
        self.models[model_id] = {"modelId": model_id, "modelSetId": model_set["modelSetId"],
                                 "modelSetName": model_set["modelSetName"], "version": version,
                                 "state": "Creating", "sourceType": "Train", "polls": 0,
                                 "sourceInfo": {"taskId": task["taskId"], "checkpointStep": meta.get("checkpointStep")}}
        model_set["modelIds"].append(model_id)
        return self._ok(req, {"modelSetId": model_set["modelSetId"], "modelId": model_id})

    def describe_model(self, req: Captured) -> Any:
        """``DescribeModel`` (``modelId``): ``state`` Creating → Ready.
        https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Zlxeg0nn2"""
        model = self.models.get(str((req.json or {}).get("modelId")))
        if model is None:
            return self._bad(req, "NotFound", "no such model", 404)
        model["polls"] += 1
        if model["polls"] > 1:
            model["state"] = "Ready"
        return self._ok(req, {k: v for k, v in model.items() if k != "polls"})

    # ---- services --------------------------------------------------------------------------
    def create_service(self, req: Captured) -> Any:
        """``CreateService`` (``modelSetId``, ``modelId`` of a Ready model, ``name``, ``urlSuffix``,
        ``resourceConfig``, ``billing``): result ``{"serviceId", "instanceId"}``. The CloudTrail event
        list names it "创建服务/购买资源" (https://cloud.baidu.com/doc/BCT/s/Um9wk28h2)."""
        body = req.json or {}
        model = self.models.get(str(body.get("modelId")))
        if model is None or model["modelSetId"] != body.get("modelSetId"):
            return self._bad(req, "NotFound", "no such model in that model set", 404)
        if model["state"] != "Ready":
            return self._bad(req, "InvalidParameter", f"model {model['modelId']} is {model['state']}")
        if not body.get("name") or not body.get("urlSuffix") or not body.get("resourceConfig"):
            return self._bad(req, "InvalidParameter", "name, urlSuffix and resourceConfig are required")
        service_id = f"svco-{next(self.seq)}"
        self.services[service_id] = {
            "serviceId": service_id, "name": body["name"], "modelSetId": model["modelSetId"],
            "modelId": model["modelId"], "url": SERVICE_URL + body["urlSuffix"], "endpoint": body["urlSuffix"],
            "serviceType": "chat", "runStatus": "Deploying", "chargeStatus": "Charging",
            "resourceConfig": body["resourceConfig"], "polls": 0}
        return self._ok(req, {"serviceId": service_id, "instanceId": f"i-{service_id}"})

    def describe_service(self, req: Captured) -> Any:
        """``DescribeService`` (``serviceId``): ``runStatus`` Deploying → Serving, with ``url`` and
        ``endpoint``. https://cloud.baidu.com/doc/WENXINWORKSHOP/s/alub6czdo"""
        service = self.services.get(str((req.json or {}).get("serviceId")))
        if service is None:
            return self._bad(req, "NotFound", "no such service", 404)
        service["polls"] += 1
        if service["polls"] > 1:
            service["runStatus"] = "Serving"
        return self._ok(req, {k: v for k, v in service.items() if k != "polls"})

    def chat(self, req: Captured) -> Any:
        """``POST /v2/chat/completions`` (https://cloud.baidu.com/doc/qianfan-api/s/3m7of64lb) with a
        serving service's endpoint as ``model``: the base double's answer; any other model: ``invalid_model``."""
        model = (req.json or {}).get("model")
        if not any(s["endpoint"] == model and s["runStatus"] == "Serving" for s in self.services.values()):
            return Reply({"error": {"code": "invalid_model", "type": "invalid_request_error",
                                    "message": "The model does not exist or you do not have access to it."},
                          "id": "as-fake"}, 401)
        return self.fake._chat_v2(req)


def install_console_v2(fake: FakeQianfan, *, train_polls: int = 3) -> ConsoleV2:
    """Register the 2026 console's data-set, fine-tuning, model and service handlers (and the user's BOS,
    and the v2 chat route for the services deployed) on ``fake``."""
    console = ConsoleV2(fake, train_polls)
    for path, action, handler in (
            (DS, "CreateDataset", console.create_dataset),
            (DS, "CreateImportTask", console.create_import_task),
            (DS, "DescribeImportTask", console.describe_import_task),
            (DS, "PublishDatasetVersion", console.publish_dataset_version),
            (DS, "DescribeDatasetVersion", console.describe_dataset_version),
            (FT, "CreateFineTuningJob", console.create_job),
            (FT, "CreateFineTuningTask", console.create_task),
            (FT, "DescribeFineTuningTask", console.describe_task),
            (FT, "StopFineTuningTask", console.stop_task),
            (FT, "DescribeFineTuningJobs", console.describe_jobs),
            (MODEL, "CreateCustomModelSet", console.create_model_set),
            (MODEL, "CreateCustomModel", console.create_model),
            (MODEL, "DescribeModel", console.describe_model),
            (SERVICE, "CreateService", console.create_service),
            (SERVICE, "DescribeService", console.describe_service)):
        fake.route("POST", path, action)(handler)
    fake.route("PUT", "/bos/*")(console.bos_put)
    fake.route("POST", "/v2/chat/completions")(console.chat)
    return console
