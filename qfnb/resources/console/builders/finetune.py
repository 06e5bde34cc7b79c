"""``FineTune``: v1 fine-tune tasks/jobs and ``FineTune.V2`` (``/v2/finetuning``).

Naming trap (reference §3.0): in v1 a *task* holds *jobs*; in v2 a *job* holds *tasks*.
"""

from __future__ import annotations

from typing import Any

from qfnb.protocol.console.enums import ParameterScale, TrainMode
from qfnb.protocol.wires.qianfan.routes import Console, V2Action

from ..sending.sender import ConsoleRequest, compact, invalid, member, require, require_id, surface

_SOURCE_TYPES = ("Platform", "Bos", "Afs")


#: the classes the ``@surface`` builders below are exposed on (``../finetune.py``, generated), with their docs
CLASSES = {
    "FineTune": "Fine-tuning console API (v1). ``FineTune.V2`` holds the v2 API.",
    "FineTune.V2": "``/v2/finetuning``: jobs (containers) and tasks (runs).",
}


def check_dataset_config(config: Any, field_name: str = "dataset_config") -> dict[str, Any]:
    """Validate a v2 ``datasetConfig`` (``sourceType``, ``versions`` or the v2 datasets'
    ``datasets``, ``splitRatio``); the dict is sent as given."""
    if not isinstance(config, dict):
        raise invalid(field_name, "must be a dict with sourceType, versions (or datasets) and splitRatio")
    if config.get("sourceType") not in _SOURCE_TYPES:
        raise invalid(f"{field_name}.sourceType", f"must be one of {list(_SOURCE_TYPES)}")
    key = "datasets" if "datasets" in config and "versions" not in config else "versions"
    versions = config.get(key)
    if not isinstance(versions, list) or not versions:
        raise invalid(f"{field_name}.{key}", "must be a non-empty list")
    wanted = ("datasetId", "datasetBosUri") if key == "datasets" else ("versionId", "versionBosUri")
    for i, v in enumerate(versions):
        if not isinstance(v, dict) or not any(v.get(w) for w in wanted):
            raise invalid(f"{field_name}.{key}[{i}]", f"needs {wanted[0]} or {wanted[1]}")
    ratio = config.get("splitRatio", 0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 100:
        raise invalid(f"{field_name}.splitRatio", "must be a number in [0, 100]")
    return config


# ---- v1 builders ------------------------------------------------------------------------

@surface("FineTune.create_task", answer="FineTuneV1TaskAnswer")
def create_task(name: str, description: str | None = None, base_train_type: str | None = None,
                 train_type: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """Create a v1 fine-tune task (the container of jobs)."""
    require(name, "name")
    body = compact({"name": name, "baseTrainType": base_train_type, "trainType": train_type,
                    "description": description, **kwargs})
    return ConsoleRequest(Console.FT_CREATE_TASK, body)


@surface("FineTune.create_job", answer="FineTuneV1JobCreatedAnswer")
def create_job(job: dict[str, Any], **kwargs: Any) -> ConsoleRequest:
    """Create a v1 fine-tune job (one run) from the platform's job dict."""
    require(job, "job", dict)
    require_id(job.get("taskId"), "job.taskId")
    return ConsoleRequest(Console.FT_CREATE_JOB, {**job, **kwargs})


@surface("FineTune.get_job", answer="FineTuneV1JobAnswer")
def get_job(task_id: int | str, job_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """Detail of a v1 job."""
    body = {"taskId": require_id(task_id, "task_id"), "jobId": require_id(job_id, "job_id"), **kwargs}
    return ConsoleRequest(Console.FT_JOB_DETAIL, body)


@surface("FineTune.stop_job")
def stop_job(task_id: int | str, job_id: int | str, **kwargs: Any) -> ConsoleRequest:
    """Stop a v1 job."""
    body = {"taskId": require_id(task_id, "task_id"), "jobId": require_id(job_id, "job_id"), **kwargs}
    return ConsoleRequest(Console.FT_STOP_JOB, body)


# ---- v2 builders ------------------------------------------------------------------------

def _v2(action: str, body: dict[str, Any]) -> ConsoleRequest:
    return ConsoleRequest(Console.V2_FINETUNING, compact(body), action=action)


@surface("FineTune.V2.create_job", answer="FineTuneJobCreatedAnswer")
def v2_create_job(name: str, model: str, train_mode: str | TrainMode = TrainMode.SFT,
                   description: str | None = None, parameter_scale: str | None = None,
                   hyper_parameter_config: dict[str, Any] | None = None,
                   **kwargs: Any) -> ConsoleRequest:
    """``CreateFineTuningJob``: the v2 container of training runs."""
    require(name, "name")
    require(model, "model")
    mode = member(train_mode, TrainMode, "train_mode").value
    scale = None if parameter_scale is None else member(parameter_scale, ParameterScale,
                                                         "parameter_scale").value
    return _v2(V2Action.CREATE_JOB, {"name": name, "model": model, "trainMode": mode,
                                     "description": description, "parameterScale": scale,
                                     "hyperParameterConfig": hyper_parameter_config, **kwargs})


@surface("FineTune.V2.create_task", answer="FineTuneTaskCreatedAnswer")
def v2_create_task(job_id: str, params_scale: str | ParameterScale,
                    hyper_params: dict[str, Any] | None = None,
                    dataset_config: dict[str, Any] | None = None,
                    increment_task_id: str | None = None,
                    increment_checkpoint_step: int | None = None,
                    model_config: dict[str, Any] | None = None,
                    resource_config: dict[str, Any] | None = None,
                    corpus_config: dict[str, Any] | None = None, **kwargs: Any) -> ConsoleRequest:
    """``CreateFineTuningTask``: one training run of job ``job_id``."""
    require(job_id, "job_id")
    scale = member(params_scale, ParameterScale, "params_scale").value
    if hyper_params is not None:
        require(hyper_params, "hyper_params", dict)
    if dataset_config is None and increment_task_id is None:
        raise invalid("dataset_config", "is required (unless increment_task_id is given)")
    if dataset_config is not None:
        check_dataset_config(dataset_config)
    return _v2(V2Action.CREATE_TASK, {
        "jobId": job_id, "parameterScale": scale, "hyperParameterConfig": hyper_params or {},
        "datasetConfig": dataset_config, "incrementTaskId": increment_task_id,
        "incrementCheckpointStep": increment_checkpoint_step, "modelConfig": model_config,
        "resourceConfig": resource_config, "corpusConfig": corpus_config, **kwargs})


@surface("FineTune.V2.job_list", answer="FineTuneJobListAnswer")
def v2_job_list(train_model: str | None = None, marker: str | None = None,
                 max_keys: int | None = None, page_reverse: bool | None = None,
                 model: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``DescribeFineTuningJobs``."""
    return _v2(V2Action.DESCRIBE_JOBS, {"trainModel": train_model, "marker": marker,
                                        "maxKeys": max_keys, "pageReverse": page_reverse,
                                        "model": model, **kwargs})


@surface("FineTune.V2.task_list", answer="FineTuneTaskListAnswer")
def v2_task_list(job_id: str, marker: str | None = None, max_keys: int | None = None,
                  page_reverse: bool | None = None, **kwargs: Any) -> ConsoleRequest:
    """``DescribeFineTuningTasks`` of one job."""
    require(job_id, "job_id")
    return _v2(V2Action.DESCRIBE_TASKS, {"jobId": job_id, "marker": marker, "maxKeys": max_keys,
                                         "pageReverse": page_reverse, **kwargs})


@surface("FineTune.V2.task_detail", answer="FineTuneTaskAnswer")
def v2_task_detail(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeFineTuningTask``: status, progress (and, locally, step/loss) of a run."""
    return _v2(V2Action.DESCRIBE_TASK, {"taskId": require(task_id, "task_id"), **kwargs})


@surface("FineTune.V2.stop_task")
def v2_stop_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``StopFineTuningTask``."""
    return _v2(V2Action.STOP_TASK, {"taskId": require(task_id, "task_id"), **kwargs})


@surface("FineTune.V2.delete_task")
def v2_delete_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DeleteFineTuningTask``."""
    return _v2("DeleteFineTuningTask", {"taskId": require(task_id, "task_id"), **kwargs})


@surface("FineTune.V2.delete_job")
def v2_delete_job(job_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DeleteFineTuningJob``."""
    return _v2("DeleteFineTuningJob", {"jobId": require(job_id, "job_id"), **kwargs})


@surface("FineTune.V2.supported_models", answer="FineTuneSupportedModelsAnswer")
def v2_supported_models(**kwargs: Any) -> ConsoleRequest:
    """``DescribeFineTuningSupportModels``: base models, modes and hyper-parameter bounds."""
    return _v2(V2Action.SUPPORTED_MODELS, dict(kwargs))
