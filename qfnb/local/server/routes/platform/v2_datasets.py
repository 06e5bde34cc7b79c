"""The v2 console's data-set actions (``POST /v2/dataset?Action=…``), answered as the cloud documents them.

One version per data set: its version id is the data set's ``ds-…`` id (also its ``datasetId``). The
states are the cloud's strings (``DescribeDatasetVersions``' filter,
https://cloud.baidu.com/doc/qianfan-api/s/9mnzr02r9): ``importStatus`` Created / Importing /
ImportFinished / ImportFailed, ``publishStatus`` Unpublished / Publishing / Published / PublishFailed.
``CreateDataset`` https://cloud.baidu.com/doc/qianfan-api/s/9mnzot7x8; ``CreateImportTask`` (result: the
task id) https://cloud.baidu.com/doc/qianfan-api/s/lmnzqpt7v; ``DescribeImportTask``
https://cloud.baidu.com/doc/qianfan-api/s/Lmnzr4pth; ``DescribeDatasetVersion``
https://cloud.baidu.com/doc/qianfan-api/s/1mnzr9j3b. A file the platform cannot read (a bad line) fails
the import task, which says why (``errorMessage``), as the cloud's does; a request naming no file, or a
missing object, is refused (HTTP 400) with no task.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from qfnb.local.domain.console import dataset_tasks
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state import site
from qfnb.local.domain.state.datasets import import_paths
from qfnb.local.domain.state.values import BodyError, NotFound, iso
from qfnb.protocol.console.enums import ImportStatus, ReleaseStatus

CREATED, IMPORTING, IMPORT_FINISHED, IMPORT_FAILED = "Created", "Importing", "ImportFinished", "ImportFailed"
#: the record's ``importStatus`` (v1 integers) → the v2 name
IMPORT_STATES = {ImportStatus.NOT_STARTED: CREATED, ImportStatus.INIT: CREATED, ImportStatus.RUNNING: IMPORTING,
                 ImportStatus.FINISHED: IMPORT_FINISHED, ImportStatus.FAILED: IMPORT_FAILED,
                 ImportStatus.TERMINATED: IMPORT_FAILED}
#: the record's ``releaseStatus`` → the v2 ``publishStatus``
PUBLISH_STATES = {ReleaseStatus.NOT_STARTED: "Unpublished", ReleaseStatus.RUNNING: "Publishing",
                  ReleaseStatus.FINISHED: "Published", ReleaseStatus.FAILED: "PublishFailed"}
#: the local platform's own ``status`` of an import task (kept beside ``importStatus`` for its older clients)
TASK_STATUS = {IMPORTING: "Running", IMPORT_FINISHED: "Done", IMPORT_FAILED: "Failed"}
TASK_SEP = "-import-"

#: serializes the read-and-write of a record's ``importTasks``
_tasks_lock = threading.Lock()


def _import_state(ds: dict[str, Any]) -> str:
    return IMPORT_STATES.get(ds.get("importStatus", ImportStatus.NOT_STARTED), CREATED)


def _when(ts: float | None) -> str:
    """The cloud's ``2026-05-01 10:00:00`` (UTC here); ``""`` when not yet."""
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def dataset_view(ds: dict[str, Any]) -> dict[str, Any]:
    """A version as ``CreateDataset``, ``DescribeDatasetVersion`` and ``DescribeDatasets`` answer it."""
    return {"datasetId": ds["sid"], "datasetName": ds["name"], "dataFormat": ds.get("dataFormat", "PromptResponse"),
            "storageType": ds.get("storageType", "sysStorage"), "versionId": ds["sid"], "versionNumber": 1,
            "importStatus": _import_state(ds),
            "publishStatus": PUBLISH_STATES.get(ds["releaseStatus"], "Unpublished"),
            "entityCount": ds["entityCount"], "published": ds["releaseStatus"] == ReleaseStatus.FINISHED,
            "createTime": iso(ds["created"])}


def create_dataset(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    fmt = body.get("dataFormat") or "PromptResponse"
    if fmt not in ("PromptResponse", "Prompt"):
        raise BodyError("dataFormat", f"the local platform stores PromptResponse or Prompt datasets, got {fmt!r}")
    return dataset_view(dataset_tasks.create_dataset(p, {"name": body.get("datasetName"), "dataFormat": fmt,
                                                     "storageType": body.get("storageType") or "sysStorage"}))


def describe_dataset_version(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return dataset_view(site.get(p, "datasets", body.get("versionId"), "versionId"))


def _checked_files(p: Platform, files: Any) -> tuple[list[str], float]:
    """``files`` (``bos:/`` URIs of stored objects) and their size in MB; BodyError naming the bad one."""
    size = sum(path.stat().st_size for path in import_paths(p.objects, files))
    return files, round(size / 2**20, 2)


def _put_task(p: Platform, ds_id: int, task: dict[str, Any]) -> dict[str, Any]:
    """Store ``task`` in the record's ``importTasks``, replacing the one with its ``taskId``; a task with
    none is a new one and gets the next (``<versionId>-import-<n>``). Returns it."""
    with _tasks_lock:
        ds = site.get(p, "datasets", ds_id, "versionId")
        tasks = list(ds.get("importTasks") or [])
        if "taskId" not in task:
            task = {"taskId": f"{ds['sid']}{TASK_SEP}{len(tasks) + 1}", **task}
        tasks = [t for t in tasks if t["taskId"] != task["taskId"]]
        p.store.update("datasets", ds_id, importTasks=[*tasks, task])
    return task


def create_import_task(p: Platform, body: dict[str, Any], key: str | None = None) -> str:
    """Import ``files`` into the version; the result is the task id (as the cloud's), whether the import
    finished or failed: ``DescribeImportTask`` says which. A call sent again under its ``Idempotency-Key``
    ``key`` gets its first task while that one finished or still runs, and imports nothing more."""
    ds = site.get(p, "datasets", body.get("versionId"), "versionId")
    files, size_mb = _checked_files(p, body.get("files"))
    if key and (same := _task_of(ds, key)) is not None:
        return str(same["taskId"])
    task = _put_task(p, ds["id"], {"state": IMPORTING, "sizeMB": size_mb, "start": time.time(), "finish": None,
                                   "error": "", **({"key": key} if key else {})})
    try:
        dataset_tasks.import_dataset(p, ds, files, key)
    except BodyError:
        pass  # a bad line: the task failed, and the record says why
    finally:
        after = site.get(p, "datasets", ds["id"], "versionId")
        _put_task(p, ds["id"], task | {"state": _import_state(after), "finish": time.time(),
                                       "error": after.get("importErrorMessage") or ""})
    return str(task["taskId"])


def _task_of(ds: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The task made under ``key`` while it counts: finished, or importing now (not one that failed or that a
    stop cut short, which a call sent again runs anew)."""
    task: dict[str, Any]
    for task in ds.get("importTasks") or []:
        live = task["state"] == IMPORTING and ds["importStatus"] == ImportStatus.RUNNING
        if task.get("key") == key and (task["state"] == IMPORT_FINISHED or live):
            return task
    return None


def describe_import_task(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    task_id = body.get("taskId")
    ds = site.get(p, "datasets", task_id.split(TASK_SEP)[0] if isinstance(task_id, str) else None, "taskId")
    task = next((t for t in ds.get("importTasks") or [] if t["taskId"] == task_id), None)
    if task is None:
        raise NotFound(f"taskId {task_id!r} not found")
    state, error = task["state"], task["error"]
    if state == IMPORTING and ds["importStatus"] != ImportStatus.RUNNING:  # the platform stopped while it ran
        state, error = IMPORT_FAILED, ds.get("importErrorMessage") or "the import stopped unfinished"
    return {"taskId": task_id, "versionId": ds["sid"], "datasetId": ds["sid"], "importStatus": state,
            "progress": "100%" if state == IMPORT_FINISHED else "0%", "sampleCount": ds["entityCount"],
            "sizeMB": task["sizeMB"], "creator": "local", "startTime": _when(task["start"]),
            "finishTime": "" if state == IMPORTING else _when(task["finish"]),
            "errDownloadUrl": "", "errorMessage": error if state == IMPORT_FAILED else "",
            "status": TASK_STATUS.get(state, "Running"), "entityCount": ds["entityCount"]}


def publish_dataset_version(p: Platform, body: dict[str, Any]) -> bool:
    """Publish (at once: ``publishStatus`` Published); refused unless the version's import finished."""
    ds = site.get(p, "datasets", body.get("versionId"), "versionId")
    if (state := _import_state(ds)) != IMPORT_FINISHED:
        raise BodyError("versionId", f"version {ds['sid']} is {state}: only an imported version (ImportFinished) "
                        "can be published")
    p.store.update("datasets", ds["id"], releaseStatus=ReleaseStatus.FINISHED.value)
    return True
