"""The dataset console's task calls: ETL (cleaning), augmenting, entities (the rows of a
platform dataset: list, annotate, delete)."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.wires.qianfan.routes import Console

from ..consts import EntityListingType
from ..sending.sender import ConsoleRequest, compact, invalid, require, require_id, surface


def _number(value: Any, field_name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(field_name, f"must be a number in [{low}, {high}], got {value!r}")
    return value


def _ids(value: Any, field_name: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise invalid(field_name, "must be a non-empty list of ids")
    return value


@surface("Data.create_dataset_etl_task", answer="EtlTaskCreatedAnswer")
def create_dataset_etl_task(etl_task_name: str, source_dataset_id: int | str, destination_dataset_id: int | str,
                            operations: dict[str, list[dict[str, Any]]], **kwargs: Any) -> ConsoleRequest:
    """``etl/create``: clean ``source_dataset_id`` into ``destination_dataset_id``."""
    require(operations, "operations", dict)
    body = {"etlTaskName": require(etl_task_name, "etl_task_name"),
            "sourceDatasetId": require_id(source_dataset_id, "source_dataset_id"),
            "destDatasetId": require_id(destination_dataset_id, "destination_dataset_id"),
            "entityType": 2, "operationsV2": operations, **kwargs}
    return ConsoleRequest(Console.ETL_CREATE, body)


@surface("Data.get_dataset_etl_task_info", answer="EtlTaskAnswer")
def get_dataset_etl_task_info(etl_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``etl/detail``."""
    return ConsoleRequest(Console.ETL_DETAIL, {"etlId": require_id(etl_id, "etl_id"), **kwargs})


@surface("Data.get_dataset_etl_task_list", answer="EtlTaskListAnswer")
def get_dataset_etl_task_list(page_size: int = 10, offset: int = 0, **kwargs: Any) -> ConsoleRequest:
    """``etl/list``."""
    return ConsoleRequest(Console.ETL_LIST, {"offset": offset, "pageSize": page_size, **kwargs})


@surface("Data.delete_dataset_etl_task")
def delete_dataset_etl_task(etl_ids: list[int | str], **kwargs: Any) -> ConsoleRequest:
    """``etl/delete``."""
    return ConsoleRequest(Console.ETL_DELETE, {"etlIds": _ids(etl_ids, "etl_ids"), **kwargs})


@surface("Data.create_dataset_augmenting_task")
def create_dataset_augmenting_task(name: str, source_dataset_id: int | str, destination_dataset_id: int | str,
                                   dev_api_id: str, app_id: int, num_seed_fewshot: int,
                                   num_instances_to_generate: int, similarity_threshold: float,
                                   **kwargs: Any) -> ConsoleRequest:
    """``enhance/create``: generate new rows from a few seed rows (self-instruct)."""
    body = {"name": require(name, "name"), "isSelfInstruct": True,
            "sourceDatasetId": require_id(source_dataset_id, "source_dataset_id"),
            "destDatasetId": require_id(destination_dataset_id, "destination_dataset_id"),
            "devApiId": dev_api_id, "appId": app_id,
            "numSeedFewshot": _number(num_seed_fewshot, "num_seed_fewshot", 1, 10),
            "numInstancesToGenerate": _number(num_instances_to_generate, "num_instances_to_generate", 1, 5000),
            "similarityThreshold": _number(similarity_threshold, "similarity_threshold", 0, 1), **kwargs}
    return ConsoleRequest(Console.AUG_CREATE, body)


@surface("Data.get_dataset_aug_task_list")
def get_dataset_aug_task_list(keyword: str | None = None, sorted_by_start_time_asc: bool | None = None,
                              page_size: int = 10, offset: int = 0, **kwargs: Any) -> ConsoleRequest:
    """``enhance/list``."""
    body: dict[str, Any] = {"isSelfInstruct": True, "offset": offset, "pageSize": page_size}
    if keyword:
        body["word"] = keyword
    if sorted_by_start_time_asc is not None:
        body.update(sortField="startTime", sortBy="asc" if sorted_by_start_time_asc else "desc")
    return ConsoleRequest(Console.AUG_LIST, {**body, **kwargs})


@surface("Data.get_dataset_augmenting_task_info")
def get_dataset_augmenting_task_info(task_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``enhance/detail``."""
    return ConsoleRequest(Console.AUG_DETAIL, {"taskId": require_id(task_id, "task_id"), **kwargs})


@surface("Data.delete_dataset_augmenting_task")
def delete_dataset_augmenting_task(task_ids: list[int | str], **kwargs: Any) -> ConsoleRequest:
    """``enhance/delete``."""
    return ConsoleRequest(Console.AUG_DELETE, {"taskIds": _ids(task_ids, "task_ids"), **kwargs})


@surface("Data.annotate_an_entity")
def annotate_an_entity(entity_id: str, dataset_id: int | str, content: list[dict[str, Any]] | None = None,
                       labels: list[dict[str, Any]] | None = None, **kwargs: Any) -> ConsoleRequest:
    """``entity/annotate``: set an entity's content (or, for image sets, its labels)."""
    body: dict[str, Any] = {"id": require(entity_id, "entity_id"), "datasetId": require_id(dataset_id, "dataset_id")}
    if content:
        body["content"] = content
    elif labels:
        body["labels"] = labels
    return ConsoleRequest(Console.ENTITY_ANNOTATE, {**body, **kwargs})


@surface("Data.delete_an_entity")
def delete_an_entity(entity_ids: list[str], dataset_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``entity/delete``."""
    body = {"id": _ids(entity_ids, "entity_ids"), "datasetId": require_id(dataset_id, "dataset_id"), **kwargs}
    return ConsoleRequest(Console.ENTITY_DELETE, body)


def _closure(value: list[int] | None, field_name: str) -> list[int] | None:
    if value and len(value) != 2:
        raise invalid(field_name, f"must be [start, end], got {len(value)} values")
    return value or None


@surface("Data.list_all_entity_in_dataset")
def list_all_entity_in_dataset(dataset_id: int | str, offset: int = 0, page_size: int = 20,
                               import_time_closure: list[int] | None = None,
                               annotating_time_closure: list[int] | None = None,
                               listing_type: EntityListingType | int = EntityListingType.All,
                               label_id_str: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``entity/list``: a page of a platform dataset's entities."""
    body = compact({"datasetId": require_id(dataset_id, "dataset_id"), "offset": offset, "pageSize": page_size,
                    "tabType": EntityListingType(listing_type).value,
                    "importTime": _closure(import_time_closure, "import_time_closure"),
                    "annoTime": _closure(annotating_time_closure, "annotating_time_closure"),
                    "labelId": label_id_str or None})
    return ConsoleRequest(Console.ENTITY_LIST, {**body, **kwargs})
