"""``Data``: v1 dataset management (``/wenxinworkshop/dataset/...``) and ``Data.V2``."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.console.data_enums import TEMPLATE_PROJECT
from qfnb.protocol.wires.qianfan import batch as wire
from qfnb.protocol.wires.qianfan.routes import Console

from ..consts import (
    DataExportDestinationType,
    DataProjectType,
    DataSetType,
    DataSourceType,
    DataStorageType,
    DataTemplateType,
)
from ..sending.sender import ConsoleRequest, compact, invalid, member, require, require_id, surface

#: the classes the ``@surface`` builders below are exposed on (``../data.py``, generated), with their docs
CLASSES = {
    "Data": "Dataset console API (v1); ``Data.V2`` for ``/v2/dataset``.",
    "Data.V2": "``/v2/dataset``.",
}


@surface("Data.create_bare_dataset", answer="DatasetCreatedAnswer")
def create_bare_dataset(name: str, data_set_type: int | DataSetType = DataSetType.TextOnly,
                         project_type: int | DataProjectType | None = None,
                         template_type: int | DataTemplateType = DataTemplateType.NonSortedConversation,
                         storage_type: str | DataStorageType = DataStorageType.PublicBos,
                         storage_id: str | None = None, storage_path: str | None = None,
                         **kwargs: Any) -> ConsoleRequest:
    """``dataset/create``: an empty dataset (version 1) to import files into."""
    require(name, "name")
    dtype = member(data_set_type, DataSetType, "data_set_type")
    template = member(template_type, DataTemplateType, "template_type")
    project = TEMPLATE_PROJECT[template] if project_type is None else member(
        project_type, DataProjectType, "project_type")
    if TEMPLATE_PROJECT[template] != project:
        raise invalid("template_type", f"{template.name} does not belong to project {project.name}")
    if dtype is DataSetType.MultiModel and template is not DataTemplateType.Text2Image:
        raise invalid("template_type", f"a multi-model set is a Text2Image one, got {template.name}")
    storage = member(storage_type, DataStorageType, "storage_type")
    if storage is DataStorageType.PrivateBos and not (storage_id and storage_path):
        raise invalid("storage_id", "storage_id and storage_path are required for private BOS")
    path = storage_path if storage_path is None or storage_path.endswith("/") else storage_path + "/"
    body = compact({"name": name, "versionId": 1, "projectType": int(project),
                    "templateType": int(template), "dataType": int(dtype),
                    "storageType": storage.value, "storageId": storage_id,
                    "rawStoragePath": path, **kwargs})
    return ConsoleRequest(Console.DATASET_CREATE, body)


@surface("Data.create_data_import_task")
def create_data_import_task(dataset_id: int | str, is_annotated: bool,
                             import_source: int | DataSourceType, file_url: str,
                             **kwargs: Any) -> ConsoleRequest:
    """``dataset/import``: import ``file_url`` (``bos:/bucket/key``) into a dataset."""
    require_id(dataset_id, "dataset_id")
    require(is_annotated, "is_annotated", bool)
    source = member(import_source, DataSourceType, "import_source")
    require(file_url, "file_url")
    if source is DataSourceType.PrivateBos and not file_url.startswith("bos:/"):
        raise invalid("file_url", "must be a bos:/bucket/key URI for a BOS import")
    body = {"datasetId": dataset_id, "annotated": is_annotated, "importFrom": int(source),
            "files": [file_url], **kwargs}
    return ConsoleRequest(Console.DATASET_IMPORT, body)


def _by_id(path: str, dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """A call to ``path`` about one dataset."""
    return ConsoleRequest(path, {"datasetId": require_id(dataset_id, "dataset_id"), **kwargs})


@surface("Data.release_dataset")
def release_dataset(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``dataset/release``: make an imported dataset usable for training."""
    return _by_id(Console.DATASET_RELEASE, dataset_id, **kwargs)


@surface("Data.get_dataset_info", answer="DatasetInfoAnswer")
def get_dataset_info(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``dataset/info``: ``versionInfo.importStatus``/``releaseStatus``/``entityCount``."""
    return _by_id(Console.DATASET_INFO, dataset_id, **kwargs)


@surface("Data.delete_dataset")
def delete_dataset(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``dataset/delete``."""
    return _by_id(Console.DATASET_DELETE, dataset_id, **kwargs)


@surface("Data.get_dataset_status_in_batch")
def get_dataset_status_in_batch(dataset_id_list: list[int | str], **kwargs: Any) -> ConsoleRequest:
    """``dataset/statusList``."""
    if not isinstance(dataset_id_list, list) or not dataset_id_list:
        raise invalid("dataset_id_list", "must be a non-empty list")
    return ConsoleRequest("/wenxinworkshop/dataset/statusList",
                          {"datasetIds": dataset_id_list, **kwargs})


@surface("Data.create_dataset_export_task")
def create_dataset_export_task(dataset_id: int | str,
                                export_destination_type: int | DataExportDestinationType,
                                storage_id: str | None = None,
                                is_export_with_annotation: bool = True,
                                **kwargs: Any) -> ConsoleRequest:
    """``dataset/export``."""
    require_id(dataset_id, "dataset_id")
    dest = member(export_destination_type, DataExportDestinationType, "export_destination_type")
    if dest is DataExportDestinationType.PrivateBos and not storage_id:
        raise invalid("storage_id", "is required when exporting to private BOS")
    body = compact({"datasetId": dataset_id, "exportFormat": 0,
                    "exportType": 1 if is_export_with_annotation else 2,
                    "exportTo": int(dest), "storageId": storage_id, **kwargs})
    return ConsoleRequest("/wenxinworkshop/dataset/export", body)


@surface("Data.get_dataset_export_records")
def get_dataset_export_records(dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``dataset/exportRecord``."""
    return _by_id("/wenxinworkshop/dataset/exportRecord", dataset_id, **kwargs)


@surface("Data.get_dataset_import_error_detail")
def get_dataset_import_error_detail(dataset_id: int | str, error_code: int,
                                     **kwargs: Any) -> ConsoleRequest:
    """``dataset/importErrorDetail``."""
    body = {"datasetId": require_id(dataset_id, "dataset_id"),
            "errCode": require(error_code, "error_code", int), **kwargs}
    return ConsoleRequest("/wenxinworkshop/dataset/importErrorDetail", body)


@surface("Data.V2.create_dataset")
def v2_create_dataset(dataset_name: str, data_format: str, storage_type: str = "sysStorage",
                       storage_path: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``CreateDataset`` (v2)."""
    require(dataset_name, "dataset_name")
    require(data_format, "data_format")
    if storage_type not in ("BOS", "sysStorage"):
        raise invalid("storage_type", "must be 'BOS' or 'sysStorage'")
    body = compact({"datasetName": dataset_name, "dataFormat": data_format,
                    "storageType": storage_type, "storagePath": storage_path, **kwargs})
    return ConsoleRequest(Console.V2_DATASET, body, action="CreateDataset")


@surface("Data.V2.create_import_task")
def v2_create_import_task(version_id: str, files: list[str], **kwargs: Any) -> ConsoleRequest:
    """``CreateImportTask`` (v2)."""
    require(version_id, "version_id")
    if not isinstance(files, list) or not files:
        raise invalid("files", "must be a non-empty list of URIs")
    return ConsoleRequest(Console.V2_DATASET, {"versionId": version_id, "files": files, **kwargs},
                          action="CreateImportTask")


@surface("Data.V2.describe_import_task")
def v2_describe_import_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeImportTask`` (v2)."""
    return ConsoleRequest(Console.V2_DATASET, {"taskId": require(task_id, "task_id"), **kwargs},
                          action="DescribeImportTask")


@surface("Data.V2.describe_dataset_version")
def v2_describe_dataset_version(version_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeDatasetVersion`` (v2): a version's detail (``importStatus``, ``publishStatus``...)."""
    return ConsoleRequest(Console.V2_DATASET, {"versionId": require(version_id, "version_id"), **kwargs},
                          action="DescribeDatasetVersion")


@surface("Data.V2.publish_dataset_version")
def v2_publish_dataset_version(version_id: str, **kwargs: Any) -> ConsoleRequest:
    """``PublishDatasetVersion`` (v2)."""
    return ConsoleRequest(Console.V2_DATASET,
                          {"versionId": require(version_id, "version_id"), **kwargs},
                          action="PublishDatasetVersion")


# ---- offline batch inference (console v2 /v2/batchinference): exactly what the official SDK sends


@surface("Data.create_offline_batch_inference_task", answer="BatchTaskCreatedAnswer")
def create_offline_batch_inference_task(name: str, input_bos_uri: str | None = None,
                                         output_bos_uri: str | None = None, model_id: str | None = None,
                                         endpoint: str | None = None, inference_params: dict[str, Any] | None = None,
                                         description: str | None = None, afs_config: dict[str, Any] | None = None,
                                         completion_window: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``CreateBatchInferenceTask``: run ``model_id`` (or ``endpoint``) over the JSONL at
    ``input_bos_uri``, answers under ``output_bos_uri``; ``completion_window`` "24h" or None."""
    require(name, "name")
    if inference_params is not None and not isinstance(inference_params, dict):
        raise invalid("inference_params", f"must be a dict, got {type(inference_params).__name__}")
    body: dict[str, Any] = {"name": name, "inferenceParams": inference_params or {}, **kwargs}
    if afs_config:
        body["afsConfig"] = afs_config
    elif input_bos_uri and output_bos_uri:
        body["inputBosUri"] = require(input_bos_uri, "input_bos_uri")
        body["outputBosUri"] = require(output_bos_uri, "output_bos_uri")
    else:
        raise invalid("input_bos_uri", "input_bos_uri and output_bos_uri (or afs_config) are required")
    if model_id:
        body["modelId"] = model_id
    elif endpoint:
        body["endpoint"] = endpoint
    if description is not None:
        body["description"] = description
    if completion_window is not None:
        if completion_window not in wire.COMPLETION_WINDOWS:
            raise invalid("completion_window", f"must be one of {sorted(wire.COMPLETION_WINDOWS)} or None, "
                          f"got {completion_window!r}")
        body["completion_window"] = completion_window
    return ConsoleRequest(wire.ROUTE, body, action=wire.CREATE, headers=dict(wire.CREATE_HEADERS))


@surface("Data.get_offline_batch_inference_task", answer="BatchTaskAnswer")
def get_offline_batch_inference_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeBatchInferenceTask``."""
    return ConsoleRequest(wire.ROUTE, {"taskId": require(task_id, "task_id"), **kwargs}, action=wire.DESCRIBE)


@surface("Data.stop_offline_batch_inference_task")
def stop_offline_batch_inference_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``StopBatchInferenceTask``: finished rows stay in the output."""
    return ConsoleRequest(wire.ROUTE, {"taskId": require(task_id, "task_id"), **kwargs}, action=wire.STOP)


@surface("Data.list_offline_batch_inference_task", answer="BatchTaskListAnswer")
def list_offline_batch_inference_task(marker: str | None = None, max_keys: int | None = None,
                                       page_reverse: bool | None = None,
                                       run_status: list[str] | str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``DescribeBatchInferenceTasks``; ``run_status`` e.g. "Running", "Done", "Stopped", "Failed"."""
    statuses = [run_status] if isinstance(run_status, str) else list(run_status or [])
    body = compact({**kwargs, "marker": marker, "maxKeys": max_keys, "pageReverse": page_reverse,
                    "runStatus": statuses})
    return ConsoleRequest(wire.ROUTE, body, action=wire.DESCRIBE_ALL)
