"""qfnb's 2026 (v2) data-set path (:mod:`qfnb.dataset.remote._platform_v2`, made for the cloud) against the local
platform's ``/v2/dataset`` actions, over a socket: they answer in the cloud's shapes (``importStatus``
Importing / ImportFinished / ImportFailed, ``publishStatus`` Published, the task id as ``CreateImportTask``'s
result), so that client works there unchanged, and a failed import says it failed, and why."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb._core.config import Config
from qfnb._core.runtime import sync
from qfnb.dataset import Dataset
from qfnb.dataset.remote._platform_v2 import DatasetV2Error, upload_v2
from qfnb.dataset.remote._upload import Upload
from qfnb.local.domain.console.dataset_tasks import INTERRUPTED
from qfnb.protocol.console.data_enums import DataTemplateType
from qfnb.protocol.console.enums import ImportStatus
from qfnb.resources.console import Data
from qfnb.resources.console.sending.account import console_v2
from tests.fakes.local_platform import ServedPlatform

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(3)]


def _v2(served: ServedPlatform) -> Config:
    """The platform as a 2026 account sees it: IAM keys, no v1 app keys, a BOS directory to stage files in."""
    cfg = served.config(ak=None, sk=None, bos_upload_path="bos:/my-bucket/qfnb/")
    assert console_v2(cfg)  # qfnb takes its /v2/dataset path
    return cfg


def _record(served: ServedPlatform, name: str) -> dict[str, Any]:
    (rec,) = served.app.state.platform.store.all("datasets", lambda d: d["name"] == name)
    return dict(rec)


def test_the_v2_client_creates_uploads_imports_publishes_and_reads_back(local_platform: ServedPlatform) -> None:
    cfg = _v2(local_platform)
    saved = Dataset.create_from_pyobj(ROWS).save(
        qianfan_dataset_create_args={"name": "v2-set", "template_type": DataTemplateType.NonSortedConversation},
        config=cfg)
    version = str(saved.qianfan_dataset_id)
    assert version.startswith("ds-")
    staged = list((local_platform.app.state.platform.settings.data_dir / "objects" / "my-bucket" / "qfnb").iterdir())
    assert len(staged) == 1 and staged[0].suffix == ".jsonl"  # put on the platform's BOS, where bos_upload_path says

    info = Data.V2.describe_dataset_version(version, config=cfg).body["result"]
    assert info["versionId"] == version and info["importStatus"] == "ImportFinished"
    assert info["publishStatus"] == "Published" and info["entityCount"] == len(ROWS)
    assert info["published"] is True and info["dataFormat"] == "PromptResponse"  # the local fields stay
    (task,) = _record(local_platform, "v2-set")["importTasks"]
    detail = Data.V2.describe_import_task(task["taskId"], config=cfg).body["result"]
    assert detail["importStatus"] == "ImportFinished" and detail["progress"] == "100%"
    assert detail["sampleCount"] == len(ROWS) and detail["versionId"] == version
    assert detail["errDownloadUrl"] == "" and detail["finishTime"] >= detail["startTime"] != ""

    # the rows read back, through the platform's own API (its v1 export of the same data set)
    rec = _record(local_platform, "v2-set")
    back = Dataset.load(qianfan_dataset_id=rec["id"], config=local_platform.config())
    assert [(r["prompt"], r["response"]) for r in back.list()] == [(r["prompt"], [[r["response"]]]) for r in ROWS]


def test_a_failed_import_is_importfailed_with_why_not_running(local_platform: ServedPlatform) -> None:
    cfg = _v2(local_platform)
    body = b'{"prompt": "q", "response": [["a"]]}\nnot json\n'
    with pytest.raises(DatasetV2Error, match=r"importStatus is ImportFailed .*files\[0\]"):
        sync.run(upload_v2(body, 2, version_id=None, create_args={"name": "bad-set"}, release=True, cfg=cfg,
                           upload=Upload()))
    rec = _record(local_platform, "bad-set")
    (task,) = rec["importTasks"]
    detail = Data.V2.describe_import_task(task["taskId"], config=cfg).body["result"]
    assert detail["importStatus"] == "ImportFailed" and detail["status"] == "Failed"
    assert "files[0]" in detail["errorMessage"] and detail["errorMessage"] == rec["importErrorMessage"]
    assert detail["sampleCount"] == 0 and detail["finishTime"] != ""
    version = Data.V2.describe_dataset_version(rec["sid"], config=cfg).body["result"]
    assert version["importStatus"] == "ImportFailed" and version["publishStatus"] == "Unpublished"
    with pytest.raises(Exception, match="only an imported version"):  # as the cloud: a failed version is not published
        Data.V2.publish_dataset_version(rec["sid"], config=cfg)

    # a good file into the same version: a second task, finished; the first still says it failed
    sync.run(upload_v2(b'{"prompt": "q", "response": [["a"]]}\n', 1, version_id=rec["sid"], create_args=None,
                       release=True, cfg=cfg, upload=Upload()))
    first, second = _record(local_platform, "bad-set")["importTasks"]
    assert Data.V2.describe_import_task(second["taskId"], config=cfg).body["result"]["importStatus"] == \
        "ImportFinished"
    assert Data.V2.describe_import_task(first["taskId"], config=cfg).body["result"]["importStatus"] == "ImportFailed"


def test_an_import_the_platform_stopped_under_is_importfailed(local_platform: ServedPlatform) -> None:
    """A task left Importing by a stop (the restart marks the record failed, :data:`INTERRUPTED`) reads failed."""
    cfg = _v2(local_platform)
    version = Data.V2.create_dataset("cut", "PromptResponse", config=cfg).body["result"]["versionId"]
    store = local_platform.app.state.platform.store
    rec = store.get("datasets", version)
    store.update("datasets", rec["id"], importStatus=ImportStatus.FAILED.value, importErrorMessage=INTERRUPTED,
                 importTasks=[{"taskId": f"{version}-import-1", "state": "Importing", "sizeMB": 0.0,
                               "start": rec["created"], "finish": None, "error": ""}])
    detail = Data.V2.describe_import_task(f"{version}-import-1", config=cfg).body["result"]
    assert detail["importStatus"] == "ImportFailed" and detail["errorMessage"] == INTERRUPTED
    with pytest.raises(Exception, match="not found"):
        Data.V2.describe_import_task(f"{version}-import-2", config=cfg)
