"""A stateful test double of the cloud's console API (fine-tune, model, service, dataset, BOS).

``ConsoleCloud(fake)`` registers handlers on a :class:`tests.fakes.cloud.FakeQianfan`. Every
handler checks the bce-auth-v1 signature (``fake.check_iam``). Jobs advance one step per
poll: a fine-tune task is ``Running`` for ``train_polls`` polls then ``Done`` (or ``Failed``
when ``fail_training`` is set); model versions are ``Creating`` once then ``Ready``; services
``Deploying`` once then ``Serving``; dataset import/release take one poll each.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from .cloud import Captured, FakeQianfan, Reply


class ConsoleCloud:
    def __init__(self, fake: FakeQianfan, *, train_polls: int = 3) -> None:
        self.fake = fake
        self.train_polls = train_polls
        self.fail_training: str | None = None
        self.fail_detail_polls = 0  # answer this many task-detail polls with HTTP 500
        #: tokens a task trains on each poll it runs, reported in an ended task's metrics (0: none reported)
        self.trained_per_poll = 0
        #: held-out losses of the checkpoints a task saves when its hyperParameterConfig asks for some
        self.checkpoint_eval_losses = [3.2, 2.9, 3.5, 5.1, 6.8]
        self.seq = itertools.count(100)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.models: dict[int, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.datasets: dict[int, dict[str, Any]] = {}
        self.objects: dict[str, bytes] = {}
        self.v1_tasks: dict[int, dict[str, Any]] = {}
        self.evals: dict[int, dict[str, Any]] = {}
        self._install()

    # ---------------------------------------------------------------- helpers
    def _v1(self, req: Captured, result: Any) -> dict[str, Any]:
        self.fake.check_iam(req)
        return {"log_id": "fake-log", "result": result}

    def _v2(self, req: Captured, result: Any) -> dict[str, Any]:
        self.fake.check_iam(req)
        return {"requestId": "fake-req", "result": result}

    def calls(self, action_or_path: str) -> list[Captured]:
        return [r for r in self.fake.requests
                if r.params.get("Action") == action_or_path or r.path.endswith(action_or_path)]

    def route(self, path: str, action: str | None = None) -> Any:
        return self.fake.route("POST", path, action)

    # ---------------------------------------------------------------- routes
    def _install(self) -> None:
        r = self.route
        ft = "/v2/finetuning"
        r(ft, "CreateFineTuningJob")(self.create_job)
        r(ft, "CreateFineTuningTask")(self.create_task)
        r(ft, "DescribeFineTuningTask")(self.task_detail)
        r(ft, "StopFineTuningTask")(self.stop_task)
        r(ft, "DescribeFineTuningTasks")(lambda q: self._v2(q, {"taskList": [
            t for t in self.tasks.values() if t["jobId"] == (q.json or {}).get("jobId")], "pageInfo": {}}))
        r(ft, "DescribeFineTuningJobs")(lambda q: self._v2(q, {"jobList": list(self.jobs.values()),
                                                              "pageInfo": {"isTruncated": False}}))
        r(ft, "DescribeFineTuningSupportModels")(lambda q: self._v2(q, [{"model": "Fake-Base"}]))
        r("/wenxinworkshop/finetune/createTask")(lambda q: self._v1(q, self._v1_task(q)))
        r("/wenxinworkshop/finetune/createJob")(lambda q: self._v1(q, {"id": next(self.seq), "uuid": "u"}))
        r("/wenxinworkshop/finetune/jobDetail")(lambda q: self._v1(q, {**(q.json or {}),
                                                                        "trainStatus": "FINISH"}))
        r("/wenxinworkshop/finetune/stopJob")(lambda q: self._v1(q, True))
        r("/wenxinworkshop/modelrepo/publishTrainModel")(self.publish)
        r("/wenxinworkshop/modelrepo/modelVersionDetail")(self.version_detail)
        r("/wenxinworkshop/modelrepo/modelDetail")(self.model_detail)
        r("/wenxinworkshop/modelrepo/eval/create")(self.eval_create)
        r("/wenxinworkshop/modelrepo/eval/detail")(self.eval_detail)
        r("/wenxinworkshop/modelrepo/eval/report")(lambda q: self._v1(q, [{"modelName": "m",
                                                                           "effectMetric": {"bleu4": 0.5}}]))
        r("/wenxinworkshop/modelrepo/eval/cancel")(lambda q: self._v1(q, {"result": True}))
        r("/v2/model", "DescribeModelSet")(lambda q: self._v2(q, {"modelSetId": (q.json or {}).get(
            "modelSetId"), "modelIds": ["amv-x"]}))
        r("/v2/model", "DescribeModel")(lambda q: self._v2(q, {"modelId": (q.json or {}).get("modelId")}))
        r("/wenxinworkshop/service/apply")(lambda q: self._v1(q, {"result": True, "serviceId": 164}))
        r("/wenxinworkshop/service/detail")(lambda q: self._v1(q, {"id": (q.json or {}).get("serviceId"),
                                                                    "serviceStatus": "Done"}))
        r("/v2/service", "CreateService")(self.create_service)
        r("/v2/service", "DescribeService")(self.service_detail)
        r("/v2/service", "DescribeServices")(lambda q: self._v2(q, {"serviceList": list(self.services.values())}))
        r("/wenxinworkshop/dataset/create")(self.dataset_create)
        r("/wenxinworkshop/dataset/import")(self.dataset_import)
        r("/wenxinworkshop/dataset/info")(self.dataset_info)
        r("/wenxinworkshop/dataset/release")(self.dataset_release)
        r("/wenxinworkshop/dataset/export")(self.dataset_export)
        r("/wenxinworkshop/dataset/exportRecord")(self.dataset_export_records)
        self.fake.route("PUT", "/bos/*")(self.bos_put)
        self.fake.route("GET", "/bos/*")(self.bos_get)

    # ---------------------------------------------------------------- fine-tune
    def _v1_task(self, req: Captured) -> dict[str, Any]:
        tid = next(self.seq)
        self.v1_tasks[tid] = dict(req.json or {})
        return {"id": tid, "uuid": f"u{tid}", "name": (req.json or {}).get("name")}

    def create_job(self, req: Captured) -> dict[str, Any]:
        job_id = f"job-{next(self.seq)}"
        self.jobs[job_id] = {"jobId": job_id, **(req.json or {})}
        return self._v2(req, {"jobId": job_id})

    def create_task(self, req: Captured) -> Any:
        body = req.json or {}
        if body.get("jobId") not in self.jobs:
            self.fake.check_iam(req)
            return Reply({"requestId": "r", "code": "NotFound", "message": "job not found"}, 404)
        previous = self.tasks.get(str(body.get("incrementTaskId")))
        step = body.get("incrementCheckpointStep")
        if step is not None and (previous is None or step not in [c["step"] for c in previous.get("saved", [])]):
            self.fake.check_iam(req)
            return Reply({"requestId": "r", "code": "InvalidParameter",
                          "message": "incrementCheckpointStep is not a checkpoint of incrementTaskId"}, 400)
        task_id = f"task-{next(self.seq)}"
        self.tasks[task_id] = {"taskId": task_id, "jobId": body["jobId"], "runStatus": "Waiting",
                               "polls": 0, "body": body, "saved": self._checkpoints(body)}
        return self._v2(req, {"jobId": body["jobId"], "taskId": task_id})

    def task_detail(self, req: Captured) -> Any:
        self.fake.check_iam(req)
        if self.fail_detail_polls > 0:
            self.fail_detail_polls -= 1
            return Reply({"requestId": "r", "code": "InternalError", "message": "flaky"}, 500)
        task = self.tasks[(req.json or {})["taskId"]]
        if task["runStatus"] not in ("Done", "Failed", "Stopped"):
            task["polls"] += 1
            total = self.train_polls
            if task["polls"] >= total:
                task["runStatus"] = "Failed" if self.fail_training else "Done"
            else:
                task["runStatus"] = "Running"
        step = min(task["polls"], self.train_polls)
        out = {k: v for k, v in task.items() if k not in ("polls", "body", "saved")}
        out.update({"runProgress": f"{int(100 * step / self.train_polls)}%", "currentStep": step,
                    "totalSteps": self.train_polls,
                    "lossCurve": [[s, 2.0 / s] for s in range(1, step + 1)]})
        if task["runStatus"] == "Failed":
            out["errorMessage"] = self.fail_training
        if task["runStatus"] == "Done":
            out["metrics"] = {"loss": 0.5}
            if task["saved"]:
                out["checkpointList"] = task["saved"]
        if self.trained_per_poll and task["runStatus"] in ("Done", "Failed", "Stopped"):  # a run that ended trained
            out["metrics"] = {**(out.get("metrics") or {}), "trained_tokens": task["polls"] * self.trained_per_poll}
        return self._v2(req, out)

    def _checkpoints(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The ``checkpointList`` a task saves: ``hyperParameterConfig.checkpoints`` entries over 40
        steps, with the held-out losses of :attr:`checkpoint_eval_losses`."""
        count = int((body.get("hyperParameterConfig") or {}).get("checkpoints") or 0)
        steps = [round(40 * i / count) for i in range(1, count + 1)] if count else []
        losses = itertools.cycle(self.checkpoint_eval_losses)
        return [{"step": s, "time": "2026-11-25T10:00:00Z", "trainLoss": round(2.0 / (1 + s / 10), 4),
                 "evalLoss": next(losses)} for s in steps]

    def stop_task(self, req: Captured) -> dict[str, Any]:
        self.tasks[(req.json or {})["taskId"]]["runStatus"] = "Stopped"
        return self._v2(req, True)

    # ---------------------------------------------------------------- models
    def publish(self, req: Captured) -> dict[str, Any]:
        body = req.json or {}
        meta = body.get("versionMeta") or {}
        task = self.tasks.get(meta.get("iterationId"))
        if task is None or task["runStatus"] != "Done" or task["jobId"] != meta.get("taskId"):
            self.fake.check_iam(req)
            return {"log_id": "l", "error_code": 500000, "error_msg": "no finished run to publish"}
        if meta.get("step") is not None and meta["step"] not in [c["step"] for c in task["saved"]]:
            self.fake.check_iam(req)
            return {"log_id": "l", "error_code": 500000, "error_msg": f"no checkpoint at step {meta['step']}"}
        vid = next(self.seq)
        self.models[vid] = {"modelId": 7, "modelIdStr": "am-7", "modelVersionId": vid,
                            "modelVersionIdStr": f"amv-{vid}", "modelName": body.get("modelName"),
                            "state": "Creating"}
        return self._v1(req, {"modelIDStr": "am-7", "modelId": 7, "version": 1, "versionId": vid,
                              "versionIdStr": f"amv-{vid}"})

    def version_detail(self, req: Captured) -> dict[str, Any]:
        m = self.models[int((req.json or {})["modelVersionId"])]
        out = dict(m)
        m["state"] = "Ready"
        return self._v1(req, out)

    def model_detail(self, req: Captured) -> dict[str, Any]:
        return self._v1(req, {"modelId": (req.json or {}).get("modelId"),
                              "modelVersionList": list(self.models.values())})

    def eval_create(self, req: Captured) -> dict[str, Any]:
        eid = next(self.seq)
        self.evals[eid] = {"evaluationId": eid, "state": "Doing", **(req.json or {})}
        return self._v1(req, {"evalId": eid, "evalIdStr": f"ev-{eid}"})

    def eval_detail(self, req: Captured) -> Any:
        """An evaluation by its id or its ``ev-N`` string id. The double runs no manual-mode
        evaluation (the platform's batch run): their detail is an explicit HTTP 500."""
        self.fake.check_iam(req)
        ref = str((req.json or {}).get("id", 0))
        ev = self.evals.get(int(ref.removeprefix("ev-"))) if ref.removeprefix("ev-").isdigit() else None
        if ev is None:
            return self._v1(req, {"state": "Failed"})
        if (ev.get("evalStandardConf") or {}).get("evalMode") == "manual":
            return Reply(b"the double has no platform batch run (manual-mode evaluation)", 500)
        return self._v1(req, dict(ev))

    # ---------------------------------------------------------------- services
    def create_service(self, req: Captured) -> dict[str, Any]:
        body = req.json or {}
        sid = f"svco-{next(self.seq)}"
        self.services[sid] = {"serviceId": sid, "name": body.get("name"), "runStatus": "Deploying",
                              "url": f"{PREFIX_CHAT}/{body.get('urlSuffix')}", "body": body}
        return self._v2(req, {"serviceId": sid, "instanceId": "i"})

    def service_detail(self, req: Captured) -> dict[str, Any]:
        svc = self.services[(req.json or {})["serviceId"]]
        out = {k: v for k, v in svc.items() if k != "body"}
        svc["runStatus"] = "Serving"
        return self._v2(req, out)

    # ---------------------------------------------------------------- datasets
    def dataset_create(self, req: Captured) -> dict[str, Any]:
        did = next(self.seq)
        self.datasets[did] = {"body": req.json or {}, "importStatus": -1, "releaseStatus": 0, "files": []}
        return self._v1(req, {"id": did, "datasetId": f"ds-{did}", "versionId": 1,
                              "storageInfo": {"storageId": "fake-bucket", "storagePath": f"/ds/{did}/"}})

    def dataset_import(self, req: Captured) -> dict[str, Any]:
        body = req.json or {}
        ds = self.datasets[int(body["datasetId"])]
        ds["files"] = body["files"]
        ds["importStatus"] = 1
        return self._v1(req, True)

    def dataset_info(self, req: Captured) -> dict[str, Any]:
        ds = self.datasets[int((req.json or {})["datasetId"])]
        out = {"importStatus": ds["importStatus"], "releaseStatus": ds["releaseStatus"],
               "storage": {"storageId": "fake-bucket", "storagePath": "/ds/"}}
        if ds["importStatus"] == 1:
            ok = all(f.removeprefix("bos:/") in self.objects for f in ds["files"])
            ds["importStatus"] = 2 if ok else 3
        if ds["releaseStatus"] == 1:
            ds["releaseStatus"] = 2
        return self._v1(req, {"name": ds["body"].get("name"), "versionInfo": out})

    def dataset_release(self, req: Captured) -> dict[str, Any]:
        self.datasets[int((req.json or {})["datasetId"])]["releaseStatus"] = 1
        return self._v1(req, True)

    def bos_put(self, req: Captured) -> Any:
        self.fake.check_iam(req)
        self.objects[req.path.removeprefix("/bos/")] = req.raw
        return Reply(b"", 200, {"etag": "fake"})

    def dataset_export(self, req: Captured) -> dict[str, Any]:
        ds = self.datasets[int((req.json or {})["datasetId"])]
        ds["export"] = 1  # finishes on the next exportRecord poll
        return self._v1(req, True)

    def dataset_export_records(self, req: Captured) -> dict[str, Any]:
        ds = self.datasets[int((req.json or {})["datasetId"])]
        if ds.get("export") == 1:
            ds["export"] = 2
            return self._v1(req, [{"status": 1}])
        key = ds["files"][0].removeprefix("bos:/")
        return self._v1(req, [{"status": 2, "downloadUrl": f"{self.fake.base_url}/bos/{key}"}])

    def bos_get(self, req: Captured) -> Any:
        self.fake.check_iam(req)
        data = self.objects.get(req.path.removeprefix("/bos/"))
        return Reply(data, 200) if data is not None else Reply({"code": "NoSuchKey"}, 404)

    def rows_of(self, dataset_id: int) -> list[Any]:
        files = self.datasets[dataset_id]["files"]
        return [json.loads(line) for f in files
                for line in self.objects[f.removeprefix("bos:/")].decode().splitlines() if line]


PREFIX_CHAT = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat"
