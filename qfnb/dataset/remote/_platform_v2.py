"""A data set on a 2026 (v2) account, made with the console's ``/v2/dataset`` calls.

Upload = ``CreateDataset`` (platform storage; version 1 comes with it) → signed BOS ``PUT`` of the
jsonl into the user's bucket (``bos_upload_path``, or the ``sup_storage_*`` staging bucket) →
``CreateImportTask`` of that object → poll ``DescribeImportTask`` until ``ImportFinished`` →
``PublishDatasetVersion`` → poll ``DescribeDatasetVersion`` until ``Published`` (a fine-tune
trains on published versions only). Each call is bce-auth-v1 signed with the IAM keys. Pages:
``CreateDataset`` https://cloud.baidu.com/doc/qianfan-api/s/9mnzot7x8, ``CreateImportTask``
https://cloud.baidu.com/doc/qianfan-api/s/lmnzqpt7v (files: the user's BOS objects),
``DescribeImportTask`` https://cloud.baidu.com/doc/qianfan-api/s/Lmnzr4pth, ``DescribeDatasetVersion``
https://cloud.baidu.com/doc/qianfan-api/s/1mnzr9j3b, the publish states
https://cloud.baidu.com/doc/qianfan-api/s/9mnzr02r9 (``DescribeDatasetVersions``' filter).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.runtime.poll import apoll_until
from qfnb.protocol.console.data_enums import DataTemplateType
from qfnb.resources.bos import BosHelper, parse_bos_path
from qfnb.resources.console import Data
from qfnb.resources.console.sending.account import require_iam_keys

from ._upload import Upload, put_object

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config


logger = logging.getLogger("qfnb.dataset")

#: the v2 ``dataFormat`` of each v1 template (CreateDataset's documented values)
DATA_FORMATS = {
    DataTemplateType.NonSortedConversation: "PromptResponse",
    DataTemplateType.SortedConversation: "PromptSortedresponses",
    DataTemplateType.PromptChosenRejected: "DPO_PromptChosenRejected",
    DataTemplateType.GenericText: "Text",
    DataTemplateType.QuerySet: "Prompt",
}
IMPORT_DONE, IMPORT_FAILED = "ImportFinished", "ImportFailed"
PUBLISHED, PUBLISH_FAILED = "Published", "PublishFailed"
#: Give up waiting for an import/publish after this long.
WAIT_LIMIT_S = 3600.0


class DatasetV2Error(QfnbError):
    """The console failed to import or publish a v2 data-set version."""


def staging(cfg: Config, upload: Upload) -> tuple[str, str, str]:
    """The user's BOS ``(bucket, prefix, region)`` the file is put in for ``CreateImportTask``:
    the ``sup_storage_*`` bucket when given, else ``bos_upload_path``; refused when neither is set."""
    if upload.bucket:
        return upload.bucket, upload.path.strip("/"), upload.region
    if not cfg.bos_upload_path:
        raise ValidationError("bos_upload_path", "a v2 account imports data-set files from its own BOS only: set "
                              "QFNB_BOS_UPLOAD_PATH (or bos_upload_path=) to bos:/<your bucket>/<dir>/")
    bucket, prefix = parse_bos_path(cfg.bos_upload_path)
    return bucket, prefix.strip("/"), ""


def _result(resp: Any) -> Any:
    body = resp.body if isinstance(resp.body, dict) else {}
    return body.get("result")


async def upload_v2(body: bytes, rows: int, *, version_id: str | None, create_args: Mapping[str, Any] | None,
                    release: bool, cfg: Config, upload: Upload) -> str:
    """Put ``body`` (the platform's jsonl, already validated) in a v2 data-set version; returns its id."""
    require_iam_keys(cfg, "uploading a data set")
    bucket, prefix, region = staging(cfg, upload)  # both checked before anything is sent
    if version_id is None:
        args = dict(create_args or {})
        template = DataTemplateType(int(args.get("template_type", DataTemplateType.NonSortedConversation)))
        if template not in DATA_FORMATS:
            raise ValidationError("template_type", f"no v2 data format for {template.name}")
        created = _result(await Data.V2.acreate_dataset(str(args["name"]), DATA_FORMATS[template], config=cfg)) or {}
        version_id = created.get("versionId")
        if not version_id:
            raise DatasetV2Error("CreateDataset returned no versionId")
        logger.info("created data set %s (version %s)", created.get("datasetId"), version_id)
    key = f"{prefix}/qfnb_{uuid.uuid4().hex}.jsonl".lstrip("/")
    await put_object(BosHelper(region or None, upload.ak, upload.sk, config=cfg), bucket, key, body)
    task = _result(await Data.V2.acreate_import_task(version_id, [f"bos:/{bucket}/{key}"], config=cfg))
    if not task:
        raise DatasetV2Error(f"CreateImportTask returned no task id for version {version_id}")
    await _wait(lambda: Data.V2.adescribe_import_task(str(task), config=cfg), "importStatus", IMPORT_DONE,
                IMPORT_FAILED, cfg.import_status_polling_interval, f"the import into {version_id}")
    if release:
        await Data.V2.apublish_dataset_version(version_id, config=cfg)
        await _wait(lambda: Data.V2.adescribe_dataset_version(version_id, config=cfg), "publishStatus",
                    PUBLISHED, PUBLISH_FAILED, cfg.release_status_polling_interval, f"the publishing of {version_id}")
    logger.info("data set version %s filled (%d rows)%s", version_id, rows, " and published" if release else "")
    return version_id


async def publish_if_needed(version_id: str, cfg: Config) -> None:
    """Publish a v2 data-set version unless it is (a fine-tune takes published versions only)."""
    info = _result(await Data.V2.adescribe_dataset_version(version_id, config=cfg)) or {}
    if info.get("publishStatus") == PUBLISHED:
        return
    if info.get("publishStatus") != "Publishing":
        await Data.V2.apublish_dataset_version(version_id, config=cfg)
    await _wait(lambda: Data.V2.adescribe_dataset_version(version_id, config=cfg), "publishStatus",
                PUBLISHED, PUBLISH_FAILED, cfg.release_status_polling_interval, f"the publishing of {version_id}")


async def _wait(fetch: Any, key: str, done: str, failed: str, interval: float, what: str) -> dict[str, Any]:
    async def state() -> dict[str, Any]:
        return dict(_result(await fetch()) or {})

    def ended(info: dict[str, Any]) -> bool:
        if info.get(key) == failed:
            detail = info.get("errDownloadUrl") or info.get("errorMessage") or ""
            raise DatasetV2Error(f"{what}: {key} is {failed} {detail}".strip())
        return bool(info.get(key) == done)

    return await apoll_until(state, ended, interval=interval, timeout=WAIT_LIMIT_S, what=what)
