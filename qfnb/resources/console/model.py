"""``Model``: the v1 model repository, evaluation tasks, and ``Model.V2`` (``/v2/model``)."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.routes import Console, V2Action

from ._base import ConsoleRequest, compact, console_api, invalid, require, require_id
from .consts import EvaluationResultExportDestinationType, EvaluationResultExportField, EvaluationResultExportRange

#: Compute block the platform expects on eval/create (fixed by the platform's SDK).
_EVAL_COMPUTE = {"vmType": 1, "vmNumber": 8}


def _list(model_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``modelDetail``: a model and all its versions."""
    return ConsoleRequest(Console.MODEL_DETAIL, {"modelId": require_id(model_id, "model_id"), **kwargs})


def _detail(model_version_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``modelVersionDetail``: one model version (``state`` is Creating/Ready/Fail)."""
    body = {"modelVersionId": require_id(model_version_id, "model_version_id"), **kwargs}
    return ConsoleRequest(Console.MODEL_VERSION_DETAIL, body)


def _publish(is_new: bool, version_meta: dict[str, Any], model_name: str | None = None,
             model_id: int | str | None = None, tags: list[str] | None = None,
             **kwargs: Any) -> ConsoleRequest:
    """``publishTrainModel``: publish a finished training run as a model version.

    ``version_meta`` uses v1 naming: ``{"taskId": <v2 job id>, "iterationId": <v2 task id>}``.
    """
    require(is_new, "is_new", bool)
    require(version_meta, "version_meta", dict)
    require_id(version_meta.get("taskId"), "version_meta.taskId")
    require_id(version_meta.get("iterationId"), "version_meta.iterationId")
    if is_new and not model_name:
        raise invalid("model_name", "is required when is_new=True")
    if not is_new and model_id is None:
        raise invalid("model_id", "is required when is_new=False")
    body = compact({"isNewModel": is_new, "versionMeta": version_meta, "modelName": model_name,
                    "modelId": model_id, "tags": tags, **kwargs})
    return ConsoleRequest(Console.MODEL_PUBLISH, body)


def _create_evaluation_task(name: str, version_info: list[dict[str, Any]], dataset_id: int | str,
                            eval_config: dict[str, Any], description: str | None = None,
                            pending_eval_id: int | None = None, dataset_name: str | None = None,
                            **kwargs: Any) -> ConsoleRequest:
    """``eval/create``: evaluate model versions on a platform dataset."""
    require(name, "name")
    if not isinstance(version_info, list) or not version_info:
        raise invalid("version_info", "must be a non-empty list of {modelId, modelVersionId}")
    for i, info in enumerate(version_info):
        if not isinstance(info, dict):
            raise invalid(f"version_info[{i}]", "must be a dict")
        require_id(info.get("modelVersionId"), f"version_info[{i}].modelVersionId")
    require_id(dataset_id, "dataset_id")
    require(eval_config, "eval_config", dict)
    if not eval_config.get("evalMode"):
        raise invalid("eval_config.evalMode", "is required (e.g. 'rule', 'model', 'manual')")
    body = compact({"name": name, "versionEvalInfo": version_info, "datasetId": dataset_id,
                    "datasetName": dataset_name,
                    "evalStandardConf": eval_config, "computeResourceConf": dict(_EVAL_COMPUTE),
                    "description": description, "id": pending_eval_id, **kwargs})
    return ConsoleRequest(Console.EVAL_CREATE, body)


def _get_evaluation_info(eval_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``eval/detail``: state and units of an evaluation task."""
    return ConsoleRequest(Console.EVAL_DETAIL, {"id": require_id(eval_id, "eval_id"), **kwargs})


def _get_evaluation_result(eval_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``eval/report``: metrics per evaluated model version."""
    return ConsoleRequest(Console.EVAL_REPORT, {"id": require_id(eval_id, "eval_id"), **kwargs})


def _stop_evaluation_task(eval_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``eval/cancel``."""
    return ConsoleRequest(Console.EVAL_CANCEL, {"id": require_id(eval_id, "eval_id"), **kwargs})


def _enum(kind: Any, value: Any, field_name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise invalid(field_name, f"must be one of {[m.value for m in kind]}, got {value!r}") from None


def _create_evaluation_result_export_task(
        eval_id: int | str, export_destination_type: EvaluationResultExportDestinationType | str | None = None,
        export_range: EvaluationResultExportRange | str = EvaluationResultExportRange.Total,
        export_field: list[EvaluationResultExportField | str] | None = None, bos_bucket_id: str | None = None,
        result_ids: list[str] | None = None, **kwargs: Any) -> ConsoleRequest:
    """``eval/result/export``: export an evaluation's results (to the platform's BOS by default)."""
    dest = _enum(EvaluationResultExportDestinationType, export_destination_type or "local", "export_destination_type")
    scope = _enum(EvaluationResultExportRange, export_range, "export_range")
    fields = [_enum(EvaluationResultExportField, f, "export_field").value
              for f in (export_field or list(EvaluationResultExportField))]
    body: dict[str, Any] = {"id": require_id(eval_id, "eval_id"), "exportType": dest.value,
                            "exportOpt": scope.value, "exportContent": fields}
    if dest is EvaluationResultExportDestinationType.PrivateBos:
        body["volumeId"] = require(bos_bucket_id, "bos_bucket_id")
    if scope is EvaluationResultExportRange.Part:
        if not result_ids:
            raise invalid("result_ids", "are required when export_range is Part")
        body["resultIds"] = result_ids
    return ConsoleRequest(Console.EVAL_RESULT_EXPORT, {**body, **kwargs})


def _get_evaluation_result_export_task_status(export_task_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``eval/result/export/info``: the state of an export task."""
    body = {"exportID": require_id(export_task_id, "export_task_id"), **kwargs}
    return ConsoleRequest(Console.EVAL_RESULT_EXPORT_INFO, body)


def _evaluable_model_list(**kwargs: Any) -> ConsoleRequest:
    """``eval/model/list``: the model versions an evaluation can run on."""
    return ConsoleRequest(Console.EVAL_MODEL_LIST, dict(kwargs))


def _paged(page_no: int, page_size: int, **fields: Any) -> dict[str, Any]:
    return compact({"pageNo": require(page_no, "page_no", int), "pageSize": require(page_size, "page_size", int),
                    **{k: (v or None) for k, v in fields.items()}})


def _preset_list(name_filter: str | None = None, model_type: list[int] | None = None,
                 model_version_vendor: list[str] | None = None, ctx_length: list[str] | None = None,
                 language_support: list[str] | None = None, expansion: list[str] | None = None,
                 order_by: str | None = None, page_no: int = 1, page_size: int = 20, **kwargs: Any) -> ConsoleRequest:
    """``model/preset/list``: the platform's preset models."""
    body = _paged(page_no, page_size, nameFilter=name_filter, modelType=model_type,
                  modelVersionVendor=model_version_vendor, ctxLength=ctx_length,
                  languageSupport=language_support, expansion=expansion, orderBy=order_by)
    return ConsoleRequest(Console.MODEL_PRESET_LIST, {**body, **kwargs})


def _user_list(name_filter: str | None = None, model_type: list[int] | None = None, order_by: str | None = None,
               order: str | None = None, page_no: int = 1, page_size: int = 20, **kwargs: Any) -> ConsoleRequest:
    """``model/user/list``: your own models."""
    body = _paged(page_no, page_size, nameFilter=name_filter, modelType=model_type, orderBy=order_by, order=order)
    return ConsoleRequest(Console.MODEL_USER_LIST, {**body, **kwargs})


def _batch_delete_model(model_ids: list[int] | list[str], **kwargs: Any) -> ConsoleRequest:
    """``model/batchDelete``."""
    return ConsoleRequest(Console.MODEL_BATCH_DELETE, {"modelIDs": require(model_ids, "model_ids", list), **kwargs})


def _batch_delete_model_version(model_version_ids: list[int] | list[str], **kwargs: Any) -> ConsoleRequest:
    """``model/version/batchDelete``."""
    body = {"modelVersionIds": require(model_version_ids, "model_version_ids", list), **kwargs}
    return ConsoleRequest(Console.MODEL_VERSION_BATCH_DELETE, body)


def _get_evaluation_result_list(id: int | str, bleu4: dict[str, float] | None = None,
                                rouge_1: dict[str, float] | None = None, rouge_2: dict[str, float] | None = None,
                                rouge_l: dict[str, float] | None = None, judge_score: dict[str, int] | None = None,
                                model_version_ids: list[int] | None = None, order_by: str | None = None,
                                order: str | None = None, eval_unit_id: list[str] | None = None, page_no: int = 1,
                                page_size: int = 20, **kwargs: Any) -> ConsoleRequest:
    """``eval/result/list``: an evaluation's per-sample results, filtered by score ranges."""
    body = {"id": require_id(id, "id"), **_paged(
        page_no, page_size, bleu4=bleu4, rouge_1=rouge_1, rouge_2=rouge_2, rouge_l=rouge_l, judgeScore=judge_score,
        modelVersionIds=model_version_ids, evalUnitId=eval_unit_id, orderBy=order_by, order=order)}
    return ConsoleRequest(Console.EVAL_RESULT_LIST, {**body, **kwargs})


def _batch_delete_evaluation_result(eval_ids: list[str] | list[int], **kwargs: Any) -> ConsoleRequest:
    """``eval/delete``."""
    return ConsoleRequest(Console.EVAL_DELETE, {"evalIds": require(eval_ids, "eval_ids", list), **kwargs})


def _v2_describe_model_set(model_set_name: str | None = None, model_set_id: str | None = None,
                           **kwargs: Any) -> ConsoleRequest:
    """``DescribeModelSet`` by id or name."""
    if not model_set_name and not model_set_id:
        raise invalid("model_set_id", "model_set_id or model_set_name is required")
    body = compact({"modelSetId": model_set_id, "modelSetName": model_set_name, **kwargs})
    return ConsoleRequest(Console.V2_MODEL, body, action=V2Action.DESCRIBE_MODEL_SET)


def _v2_describe_model(model_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeModel``."""
    body = {"modelId": require(model_id, "model_id"), **kwargs}
    return ConsoleRequest(Console.V2_MODEL, body, action=V2Action.DESCRIBE_MODEL)


class Model:
    """Model repository console API (v1); ``Model.V2`` for ``/v2/model``."""

    list, alist = console_api(_list)
    detail, adetail = console_api(_detail)
    publish, apublish = console_api(_publish)
    create_evaluation_task, acreate_evaluation_task = console_api(_create_evaluation_task)
    get_evaluation_info, aget_evaluation_info = console_api(_get_evaluation_info)
    get_evaluation_result, aget_evaluation_result = console_api(_get_evaluation_result)
    stop_evaluation_task, astop_evaluation_task = console_api(_stop_evaluation_task)
    create_evaluation_result_export_task, acreate_evaluation_result_export_task = console_api(
        _create_evaluation_result_export_task)
    get_evaluation_result_export_task_status, aget_evaluation_result_export_task_status = console_api(
        _get_evaluation_result_export_task_status)
    evaluable_model_list, aevaluable_model_list = console_api(_evaluable_model_list)
    preset_list, apreset_list = console_api(_preset_list)
    user_list, auser_list = console_api(_user_list)
    batch_delete_model, abatch_delete_model = console_api(_batch_delete_model)
    batch_delete_model_version, abatch_delete_model_version = console_api(_batch_delete_model_version)
    get_evaluation_result_list, aget_evaluation_result_list = console_api(_get_evaluation_result_list)
    batch_delete_evaluation_result, abatch_delete_evaluation_result = console_api(_batch_delete_evaluation_result)

    class V2:
        """``/v2/model``: model sets and models."""

        describe_model_set, adescribe_model_set = console_api(_v2_describe_model_set)
        describe_model, adescribe_model = console_api(_v2_describe_model)
