"""``Model``'s evaluation-result calls (export, per-sample results, delete) and the evaluable
models; a generated mixin ``Model`` subclasses."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.wires.qianfan.routes import Console

from ..consts import EvaluationResultExportDestinationType, EvaluationResultExportField, EvaluationResultExportRange
from ..sending.sender import ConsoleRequest, invalid, member, paged, require, require_id, surface


@surface("Model.create_evaluation_result_export_task")
def create_evaluation_result_export_task(eval_id: int | str, export_destination_type: str | None = None,
                                         export_range: str = EvaluationResultExportRange.Total,
                                         export_field: list[str] | None = None, bos_bucket_id: str | None = None,
                                         result_ids: list[str] | None = None, **kwargs: Any) -> ConsoleRequest:
    """``eval/result/export``: export an evaluation's results (to the platform's BOS by default).

    ``export_destination_type``, ``export_range`` and ``export_field`` take the members of
    ``EvaluationResultExportDestinationType``, ``EvaluationResultExportRange`` and
    ``EvaluationResultExportField`` (string enums) or their values."""
    dest = member(export_destination_type or "local", EvaluationResultExportDestinationType, "export_destination_type")
    scope = member(export_range, EvaluationResultExportRange, "export_range")
    fields = [member(f, EvaluationResultExportField, "export_field").value
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


@surface("Model.get_evaluation_result_export_task_status")
def get_evaluation_result_export_task_status(export_task_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``eval/result/export/info``: the state of an export task."""
    body = {"exportID": require_id(export_task_id, "export_task_id"), **kwargs}
    return ConsoleRequest(Console.EVAL_RESULT_EXPORT_INFO, body)


@surface("Model.evaluable_model_list", answer="EvaluableModelListAnswer")
def evaluable_model_list(**kwargs: Any) -> ConsoleRequest:
    """``eval/model/list``: the model versions an evaluation can run on."""
    return ConsoleRequest(Console.EVAL_MODEL_LIST, dict(kwargs))


@surface("Model.get_evaluation_result_list")
def get_evaluation_result_list(id: int | str, bleu4: dict[str, float] | None = None,
                               rouge_1: dict[str, float] | None = None, rouge_2: dict[str, float] | None = None,
                               rouge_l: dict[str, float] | None = None, judge_score: dict[str, int] | None = None,
                               model_version_ids: list[int] | None = None, order_by: str | None = None,
                               order: str | None = None, eval_unit_id: list[str] | None = None, page_no: int = 1,
                               page_size: int = 20, **kwargs: Any) -> ConsoleRequest:
    """``eval/result/list``: an evaluation's per-sample results, filtered by score ranges."""
    body = {"id": require_id(id, "id"), **paged(
        page_no, page_size, bleu4=bleu4, rouge_1=rouge_1, rouge_2=rouge_2, rouge_l=rouge_l, judgeScore=judge_score,
        modelVersionIds=model_version_ids, evalUnitId=eval_unit_id, orderBy=order_by, order=order)}
    return ConsoleRequest(Console.EVAL_RESULT_LIST, {**body, **kwargs})


@surface("Model.batch_delete_evaluation_result")
def batch_delete_evaluation_result(eval_ids: list[str] | list[int], **kwargs: Any) -> ConsoleRequest:
    """``eval/delete``."""
    return ConsoleRequest(Console.EVAL_DELETE, {"evalIds": require(eval_ids, "eval_ids", list), **kwargs})
