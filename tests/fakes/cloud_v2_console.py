"""The 2026 console's data-set and fine-tuning ``Action=`` calls, on a :class:`FakeQianfan`.

``console = install_console_v2(fake)`` registers ``POST /v2/dataset?Action=...``,
``POST /v2/finetuning?Action=...`` and the user's BOS (``PUT /bos/<bucket>/<key>``, for a config
whose ``bos_endpoint`` is ``fake.base_url + "/bos"``). Every handler checks the bce-auth-v1
signature (``fake.check_iam``) and answers ``{"requestId", "result"}`` as Baidu's page for the call
documents. State advances over polls: an import is ``Importing`` once, then ``ImportFinished``; a
publish ``Publishing`` once, then ``Published``; a training task ``Running`` for ``train_polls``
polls, then ``Done`` with its ``checkpointList`` (and ``metrics``). Only this module's routes
exist on the fake: a v1 call (``/wenxinworkshop/...``) answers 404.
"""

from __future__ import annotations

import itertools
from typing import Any

from .cloud import Captured, FakeQianfan, Reply

DS, FT = "/v2/dataset", "/v2/finetuning"


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
        if not body.get("name") or not body.get("model") or body.get("trainMode") not in ("SFT", "PostPretrain"):
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


def install_console_v2(fake: FakeQianfan, *, train_polls: int = 3) -> ConsoleV2:
    """Register the 2026 console's data-set and fine-tuning handlers (and the user's BOS) on ``fake``."""
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
            (FT, "DescribeFineTuningJobs", console.describe_jobs)):
        fake.route("POST", path, action)(handler)
    fake.route("PUT", "/bos/*")(console.bos_put)
    return console
