"""Moving datasets to and from the platform (reference §3.4, Contract 6).

Save = validate → ``dataset/create`` → signed BOS ``PUT`` of the jsonl (through
:class:`qfnb.resources.bos.BosHelper`) → ``dataset/import`` → poll ``importStatus`` →
``dataset/release`` → poll ``releaseStatus``; on a 2026 (v2) account the ``/v2/dataset`` calls
instead (:mod:`._platform_v2`).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from qfnb._core.config import resolve_config
from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.http.client import get_client
from qfnb._core.runtime.poll import apoll_until
from qfnb.protocol.console.enums import ImportStatus, ReleaseStatus
from qfnb.resources.bos import BosHelper
from qfnb.resources.console import Data
from qfnb.resources.console.consts import DataSourceType, DataTemplateType
from qfnb.resources.console.sending.account import console_v2

from ..rows._io import frame_from_obj, normalize_items, platform_lines
from ..schema import QianfanNonSortedConversation, Schema, schema_for_template
from ._platform_v2 import publish_if_needed, upload_v2
from ._upload import Upload, put_object

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

    from ..view import DatasetView

logger = logging.getLogger("qfnb.dataset")

_CREATE_KEYS = {"name", "template_type", "storage_type", "storage_id", "storage_path",
                "data_set_type", "project_type", "description"}
#: Give up waiting for an import/release after this long.
WAIT_LIMIT_S = 3600.0


class DatasetPlatformError(QfnbError):
    """The platform failed to import, release or export a dataset."""


async def version_info(dataset_id: int | str, cfg: Config | None) -> dict[str, Any]:
    resp = await Data.aget_dataset_info(dataset_id, config=cfg)
    result = resp.body.get("result") or {}
    return dict(result.get("versionInfo") or {})


async def _wait(dataset_id: int | str, key: str, done: int, failed: set[int], interval: float,
                cfg: Config) -> dict[str, Any]:
    def ended(info: dict[str, Any]) -> bool:
        status = info.get(key)
        if status in failed:
            detail = info.get("releaseErrCode") or info.get("importErrorMessage") or ""
            raise DatasetPlatformError(f"dataset {dataset_id}: {key} is {status} (failed) {detail}".strip())
        return bool(status == done)

    return await apoll_until(lambda: version_info(dataset_id, cfg), ended, interval=interval, timeout=WAIT_LIMIT_S,
                             what=f"dataset {dataset_id}'s {key}")


def _check_create_args(args: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(args, Mapping):
        raise ValidationError("qianfan_dataset_create_args", "must be a dict")
    unknown = set(args) - _CREATE_KEYS
    if unknown:
        raise ValidationError(f"qianfan_dataset_create_args.{sorted(unknown)[0]}",
                              f"unknown key; allowed: {sorted(_CREATE_KEYS)}")
    if not args.get("name"):
        raise ValidationError("qianfan_dataset_create_args.name", "is required")
    out = dict(args)
    out.setdefault("template_type", DataTemplateType.NonSortedConversation)
    return out


async def upload_dataset(ds: DatasetView, *, dataset_id: int | str | None,
                         create_args: Mapping[str, Any] | None, schema: Schema | None,
                         release: bool, config: Config | None, upload: Upload | None = None) -> int | str:
    """Upload ``ds`` to the platform; returns the platform dataset id."""
    upload = upload or Upload()
    args = _check_create_args(create_args) if create_args is not None else None
    template = int(args["template_type"]) if args else None
    # validate first: nothing is sent when the data is bad
    check = schema or ds.schema or (schema_for_template(template) if template is not None
                                    else QianfanNonSortedConversation())
    check.validate(ds.to_pylist())
    body = ("\n".join(platform_lines(ds)) + "\n").encode("utf-8")
    annotated = upload.annotated if upload.annotated is not None else bool(getattr(check, "is_annotated", True))

    cfg = resolve_config(config)
    if console_v2(cfg):  # a 2026 account: the /v2/dataset calls (:mod:`._platform_v2`)
        return await upload_v2(body, len(ds), version_id=None if dataset_id is None else str(dataset_id),
                               create_args=args, release=release, cfg=cfg, upload=upload)
    BosHelper(None, upload.ak, upload.sk, config=cfg).require_keys()
    if args is not None:
        created = (await Data.acreate_bare_dataset(config=cfg, **args)).parsed.result
        dataset_id, storage = created.id, created.storage_info
        if dataset_id is None:
            raise DatasetPlatformError("dataset/create returned no dataset id")
        logger.info("created platform dataset %s (%s)", dataset_id, args["name"])
    else:
        assert dataset_id is not None
        info = await version_info(dataset_id, cfg)
        storage = info.get("storage") or {}
    bucket: str | None
    if upload.bucket:
        bucket, prefix, region = upload.bucket, upload.path.strip("/"), upload.region
    else:
        bucket = storage.get("storageId")
        prefix = str(storage.get("storagePath") or storage.get("rawStoragePath") or "").strip("/")
        region = storage.get("region") or ""
    if not bucket:
        raise DatasetPlatformError(f"dataset {dataset_id} has no storage bucket (storageInfo."
                                   "storageId) to upload to")
    key = f"{prefix}/data_{uuid.uuid4().hex}.jsonl".lstrip("/")
    await put_object(BosHelper(region or None, upload.ak, upload.sk, config=cfg), str(bucket), key, body)
    await Data.acreate_data_import_task(dataset_id, annotated, DataSourceType.PrivateBos,
                                        f"bos:/{bucket}/{key}", config=cfg)
    await _wait(dataset_id, "importStatus", ImportStatus.FINISHED,
                {ImportStatus.FAILED, ImportStatus.TERMINATED}, cfg.import_status_polling_interval, cfg)
    if release:
        await Data.arelease_dataset(dataset_id, config=cfg)
        await _wait(dataset_id, "releaseStatus", ReleaseStatus.FINISHED, {ReleaseStatus.FAILED},
                    cfg.release_status_polling_interval, cfg)
    logger.info("dataset %s uploaded (%d rows)%s", dataset_id, len(ds), " and released" if release else "")
    return dataset_id


async def release_if_needed(dataset_id: int | str, config: Config | None) -> None:
    """Release a platform dataset unless it already is (used by the trainer); on a v2 account,
    publish the data-set version ``dataset_id`` unless it is."""
    cfg = resolve_config(config)
    if console_v2(cfg):
        await publish_if_needed(str(dataset_id), cfg)
        return
    info = await version_info(dataset_id, cfg)
    if info.get("releaseStatus") == ReleaseStatus.FINISHED:
        return
    if info.get("releaseStatus") != ReleaseStatus.RUNNING:
        await Data.arelease_dataset(dataset_id, config=cfg)
    await _wait(dataset_id, "releaseStatus", ReleaseStatus.FINISHED, {ReleaseStatus.FAILED},
                cfg.release_status_polling_interval, cfg)


async def download(dataset_id: int | str, config: Config | None) -> pd.DataFrame:
    """Rows of a platform dataset (one-turn conversations as plain rows, longer ones grouped)."""
    return frame_from_obj(normalize_items(await download_items(dataset_id, config)), "export")


async def download_items(dataset_id: int | str, config: Config | None) -> list[Any]:
    """The entities of a platform dataset as its export file holds them (one JSON value per
    line; a conversation is a list of turns): export, wait for the record, fetch the file."""
    cfg = resolve_config(config)
    await Data.acreate_dataset_export_task(dataset_id, 0, config=cfg)

    async def records() -> list[Any]:
        resp = await Data.aget_dataset_export_records(dataset_id, config=cfg)
        return list(resp.body.get("result") or [])

    def exported(found: list[Any]) -> bool:
        if _export_url(found) is not None:
            return True
        if any(isinstance(r, dict) and r.get("status") in (3, "3", "Failed") for r in found):
            raise DatasetPlatformError(f"export of dataset {dataset_id} failed")
        return False

    found = await apoll_until(records, exported, interval=cfg.export_status_polling_interval,
                              timeout=WAIT_LIMIT_S, what=f"the export of dataset {dataset_id}")
    url = _export_url(found)
    assert url is not None
    got = await get_client(cfg).signed_request("GET", url)
    body = got.body
    data = body.get("_bytes") if isinstance(body, dict) else None
    if isinstance(data, bytes) and zipfile.is_zipfile(io.BytesIO(data)):  # the platform zips its exports
        return _parse_export(_unzip_text(data))
    text = body["_raw"] if isinstance(body, dict) and "_raw" in body else json.dumps(body)
    return _parse_export(text)


def _unzip_text(data: bytes) -> str:
    """The data files of an export archive, in name order, as one text."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jsonl", ".json", ".txt")))
        return "\n".join(archive.read(n).decode("utf-8") for n in names)


def _export_url(records: list[Any]) -> str | None:
    done = [r for r in records if isinstance(r, dict) and r.get("downloadUrl")
            and r.get("status") in (2, "2", "Done", "Finished")]
    return str(done[-1]["downloadUrl"]) if done else None


def _parse_export(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
