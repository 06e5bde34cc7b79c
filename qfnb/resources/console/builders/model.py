"""``Model``: the v1 model repository, evaluation tasks, and ``Model.V2`` (``/v2/model``)."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.wires.qianfan.routes import Console, V2Action

from ..sending.sender import ConsoleRequest, compact, invalid, require, require_id, surface

#: Compute block the platform expects on eval/create (fixed by the platform's SDK).
_EVAL_COMPUTE = {"vmType": 1, "vmNumber": 8}


#: the classes the ``@surface`` builders below are exposed on (``../model.py``, generated), with their docs
CLASSES = {
    "Model": "Model repository console API (v1); ``Model.V2`` for ``/v2/model``.",
    "Model.V2": "``/v2/model``: model sets and models.",
}


@surface("Model.list", answer="ModelInfoAnswer")
def list_versions(model_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``modelDetail``: a model and all its versions."""
    return ConsoleRequest(Console.MODEL_DETAIL, {"modelId": require_id(model_id, "model_id"), **kwargs})


@surface("Model.detail", answer="ModelVersionAnswer")
def detail(model_version_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``modelVersionDetail``: one model version (``state`` is Creating/Ready/Fail)."""
    body = {"modelVersionId": require_id(model_version_id, "model_version_id"), **kwargs}
    return ConsoleRequest(Console.MODEL_VERSION_DETAIL, body)


@surface("Model.publish")
def publish(is_new: bool, version_meta: dict[str, Any], model_name: str | None = None,
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


@surface("Model.create_evaluation_task", answer="EvaluationCreatedAnswer")
def create_evaluation_task(name: str, version_info: list[dict[str, Any]], dataset_id: int | str,
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


@surface("Model.get_evaluation_info", answer="EvaluationInfoAnswer")
def get_evaluation_info(eval_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``eval/detail``: state and units of an evaluation task."""
    return ConsoleRequest(Console.EVAL_DETAIL, {"id": require_id(eval_id, "eval_id"), **kwargs})


@surface("Model.get_evaluation_result")
def get_evaluation_result(eval_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``eval/report``: metrics per evaluated model version."""
    return ConsoleRequest(Console.EVAL_REPORT, {"id": require_id(eval_id, "eval_id"), **kwargs})


@surface("Model.stop_evaluation_task")
def stop_evaluation_task(eval_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``eval/cancel``."""
    return ConsoleRequest(Console.EVAL_CANCEL, {"id": require_id(eval_id, "eval_id"), **kwargs})


@surface("Model.V2.describe_model_set")
def v2_describe_model_set(model_set_name: str | None = None, model_set_id: str | None = None,
                           **kwargs: Any) -> ConsoleRequest:
    """``DescribeModelSet`` by id or name."""
    if not model_set_name and not model_set_id:
        raise invalid("model_set_id", "model_set_id or model_set_name is required")
    body = compact({"modelSetId": model_set_id, "modelSetName": model_set_name, **kwargs})
    return ConsoleRequest(Console.V2_MODEL, body, action=V2Action.DESCRIBE_MODEL_SET)


@surface("Model.V2.describe_model", answer="ModelV2Answer")
def v2_describe_model(model_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeModel``."""
    body = {"modelId": require(model_id, "model_id"), **kwargs}
    return ConsoleRequest(Console.V2_MODEL, body, action=V2Action.DESCRIBE_MODEL)


@surface("Model.V2.create_custom_model_set")
def v2_create_custom_model_set(model_set_name: str, model_type: str = "Text2Text",
                                labels: list[str] | None = None, **kwargs: Any) -> ConsoleRequest:
    """``CreateCustomModelSet``: a new model (set) of the user's; result ``{"modelSetId"}``.
    ``model_type``: Text2Text (the default), Text2Image, TextRepresentation, ImageUnderstanding, Industry."""
    body = compact({"modelSetName": require(model_set_name, "model_set_name"), "modelType": model_type,
                    "labels": labels or None, **kwargs})
    return ConsoleRequest(Console.V2_MODEL, body, action=V2Action.CREATE_CUSTOM_MODEL_SET)


@surface("Model.V2.create_custom_model")
def v2_create_custom_model(model_set_id: str, source_type: str = "Train", train_meta: dict[str, Any] | None = None,
                            import_meta: dict[str, Any] | None = None, description: str | None = None,
                            **kwargs: Any) -> ConsoleRequest:
    """``CreateCustomModel``: a new version of model set ``model_set_id`` (result ``{"modelId"}``), from a
    fine-tuning task (``source_type`` Train, ``train_meta`` ``{"taskId", "checkpointStep"?}``) or an import
    (https://cloud.baidu.com/doc/qianfan-api/s/Mmnijpuh3)."""
    require(model_set_id, "model_set_id")
    if source_type not in ("Train", "Import"):
        raise invalid("source_type", "must be 'Train' or 'Import'")
    if source_type == "Train":
        require(train_meta, "train_meta", dict)
        require((train_meta or {}).get("taskId"), "train_meta.taskId")
    else:
        require(import_meta, "import_meta", dict)
    body = compact({"modelSetId": model_set_id, "sourceType": source_type, "description": description,
                    "trainMeta": train_meta if source_type == "Train" else None,
                    "importMeta": import_meta if source_type == "Import" else None, **kwargs})
    return ConsoleRequest(Console.V2_MODEL, body, action=V2Action.CREATE_CUSTOM_MODEL)
