"""``Data``: v1 dataset management (``/wenxinworkshop/dataset/...``) and ``Data.V2``."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.routes import Console

from . import batch_inference as _bi
from ._base import ConsoleRequest, compact, console_api, invalid, require, require_id
from .consts import (
    TEMPLATE_PROJECT,
    DataExportDestinationType,
    DataProjectType,
    DataSetType,
    DataSourceType,
    DataStorageType,
    DataTemplateType,
)


def _coerce(value: Any, enum: type, field_name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = [m.value for m in enum]  # type: ignore[attr-defined]
        raise invalid(field_name, f"must be one of {allowed}, got {value!r}") from None


def _create_bare_dataset(name: str, data_set_type: int | DataSetType = DataSetType.TextOnly,
                         project_type: int | DataProjectType | None = None,
                         template_type: int | DataTemplateType = DataTemplateType.NonSortedConversation,
                         storage_type: str | DataStorageType = DataStorageType.PublicBos,
                         storage_id: str | None = None, storage_path: str | None = None,
                         **kwargs: Any) -> ConsoleRequest:
    """``dataset/create``: an empty dataset (version 1) to import files into."""
    require(name, "name")
    dtype = _coerce(data_set_type, DataSetType, "data_set_type")
    template = _coerce(template_type, DataTemplateType, "template_type")
    project = TEMPLATE_PROJECT[template] if project_type is None else _coerce(
        project_type, DataProjectType, "project_type")
    if TEMPLATE_PROJECT[template] != project:
        raise invalid("template_type", f"{template.name} does not belong to project {project.name}")
    storage = _coerce(storage_type, DataStorageType, "storage_type")
    if storage is DataStorageType.PrivateBos and not (storage_id and storage_path):
        raise invalid("storage_id", "storage_id and storage_path are required for private BOS")
    path = storage_path if storage_path is None or storage_path.endswith("/") else storage_path + "/"
    body = compact({"name": name, "versionId": 1, "projectType": int(project),
                    "templateType": int(template), "dataType": int(dtype),
                    "storageType": storage.value, "storageId": storage_id,
                    "rawStoragePath": path, **kwargs})
    return ConsoleRequest(Console.DATASET_CREATE, body)


def _create_data_import_task(dataset_id: int | str, is_annotated: bool,
                             import_source: int | DataSourceType, file_url: str,
                             **kwargs: Any) -> ConsoleRequest:
    """``dataset/import``: import ``file_url`` (``bos:/bucket/key``) into a dataset."""
    require_id(dataset_id, "dataset_id")
    require(is_annotated, "is_annotated", bool)
    source = _coerce(import_source, DataSourceType, "import_source")
    require(file_url, "file_url")
    if source is DataSourceType.PrivateBos and not file_url.startswith("bos:/"):
        raise invalid("file_url", "must be a bos:/bucket/key URI for a BOS import")
    body = {"datasetId": dataset_id, "annotated": is_annotated, "importFrom": int(source),
            "files": [file_url], **kwargs}
    return ConsoleRequest(Console.DATASET_IMPORT, body)


def _by_id(path: str) -> Any:
    def build(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
        return ConsoleRequest(path, {"datasetId": require_id(dataset_id, "dataset_id"), **kwargs})
    return build


def _release_dataset(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``dataset/release``: make an imported dataset usable for training."""
    return _by_id(Console.DATASET_RELEASE)(dataset_id, **kwargs)  # type: ignore[no-any-return]


def _get_dataset_info(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``dataset/info``: ``versionInfo.importStatus``/``releaseStatus``/``entityCount``."""
    return _by_id(Console.DATASET_INFO)(dataset_id, **kwargs)  # type: ignore[no-any-return]


def _delete_dataset(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``dataset/delete``."""
    return _by_id(Console.DATASET_DELETE)(dataset_id, **kwargs)  # type: ignore[no-any-return]


def _get_dataset_status_in_batch(dataset_id_list: list[int | str], **kwargs: Any) -> ConsoleRequest:
    """``dataset/statusList``."""
    if not isinstance(dataset_id_list, list) or not dataset_id_list:
        raise invalid("dataset_id_list", "must be a non-empty list")
    return ConsoleRequest("/wenxinworkshop/dataset/statusList",
                          {"datasetIds": dataset_id_list, **kwargs})


def _create_dataset_export_task(dataset_id: int | str,
                                export_destination_type: int | DataExportDestinationType,
                                storage_id: str | None = None,
                                is_export_with_annotation: bool = True,
                                **kwargs: Any) -> ConsoleRequest:
    """``dataset/export``."""
    require_id(dataset_id, "dataset_id")
    dest = _coerce(export_destination_type, DataExportDestinationType, "export_destination_type")
    if dest is DataExportDestinationType.PrivateBos and not storage_id:
        raise invalid("storage_id", "is required when exporting to private BOS")
    body = compact({"datasetId": dataset_id, "exportFormat": 0,
                    "exportType": 1 if is_export_with_annotation else 2,
                    "exportTo": int(dest), "storageId": storage_id, **kwargs})
    return ConsoleRequest("/wenxinworkshop/dataset/export", body)


def _get_dataset_export_records(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``dataset/exportRecord``."""
    return _by_id("/wenxinworkshop/dataset/exportRecord")(dataset_id, **kwargs)  # type: ignore[no-any-return]


def _get_dataset_import_error_detail(dataset_id: int | str, error_code: int,
                                     **kwargs: Any) -> ConsoleRequest:
    """``dataset/importErrorDetail``."""
    body = {"datasetId": require_id(dataset_id, "dataset_id"),
            "errCode": require(error_code, "error_code", int), **kwargs}
    return ConsoleRequest("/wenxinworkshop/dataset/importErrorDetail", body)


def _v2_create_dataset(dataset_name: str, data_format: str, storage_type: str = "sysStorage",
                       storage_path: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``CreateDataset`` (v2)."""
    require(dataset_name, "dataset_name")
    require(data_format, "data_format")
    if storage_type not in ("BOS", "sysStorage"):
        raise invalid("storage_type", "must be 'BOS' or 'sysStorage'")
    body = compact({"datasetName": dataset_name, "dataFormat": data_format,
                    "storageType": storage_type, "storagePath": storage_path, **kwargs})
    return ConsoleRequest(Console.V2_DATASET, body, action="CreateDataset")


def _v2_create_import_task(version_id: str, files: list[str], **kwargs: Any) -> ConsoleRequest:
    """``CreateImportTask`` (v2)."""
    require(version_id, "version_id")
    if not isinstance(files, list) or not files:
        raise invalid("files", "must be a non-empty list of URIs")
    return ConsoleRequest(Console.V2_DATASET, {"versionId": version_id, "files": files, **kwargs},
                          action="CreateImportTask")


def _v2_describe_import_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeImportTask`` (v2)."""
    return ConsoleRequest(Console.V2_DATASET, {"taskId": require(task_id, "task_id"), **kwargs},
                          action="DescribeImportTask")


def _v2_publish_dataset_version(version_id: str, **kwargs: Any) -> ConsoleRequest:
    """``PublishDatasetVersion`` (v2)."""
    return ConsoleRequest(Console.V2_DATASET,
                          {"versionId": require(version_id, "version_id"), **kwargs},
                          action="PublishDatasetVersion")


class Data:
    """Dataset console API (v1); ``Data.V2`` for ``/v2/dataset``."""

    create_bare_dataset, acreate_bare_dataset = console_api(_create_bare_dataset)
    create_data_import_task, acreate_data_import_task = console_api(_create_data_import_task)
    release_dataset, arelease_dataset = console_api(_release_dataset)
    get_dataset_info, aget_dataset_info = console_api(_get_dataset_info)
    delete_dataset, adelete_dataset = console_api(_delete_dataset)
    get_dataset_status_in_batch, aget_dataset_status_in_batch = console_api(
        _get_dataset_status_in_batch)
    create_dataset_export_task, acreate_dataset_export_task = console_api(
        _create_dataset_export_task)
    get_dataset_export_records, aget_dataset_export_records = console_api(
        _get_dataset_export_records)
    get_dataset_import_error_detail, aget_dataset_import_error_detail = console_api(
        _get_dataset_import_error_detail)
    # offline batch inference (/v2/batchinference), builders in batch_inference.py
    create_offline_batch_inference_task, acreate_offline_batch_inference_task = console_api(
        _bi._create_offline_batch_inference_task)
    get_offline_batch_inference_task, aget_offline_batch_inference_task = console_api(
        _bi._get_offline_batch_inference_task)
    stop_offline_batch_inference_task, astop_offline_batch_inference_task = console_api(
        _bi._stop_offline_batch_inference_task)
    list_offline_batch_inference_task, alist_offline_batch_inference_task = console_api(
        _bi._list_offline_batch_inference_task)

    class V2:
        """``/v2/dataset``."""

        create_dataset, acreate_dataset = console_api(_v2_create_dataset)
        create_import_task, acreate_import_task = console_api(_v2_create_import_task)
        describe_import_task, adescribe_import_task = console_api(_v2_describe_import_task)
        publish_dataset_version, apublish_dataset_version = console_api(
            _v2_publish_dataset_version)
