"""v2 console routes (``POST /v2/<domain>?Action=…``, batch inference too): ``{requestId, result}`` or HTTP 4xx
errors."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qfnb.local.domain.batch import tasks as batch_tasks
from qfnb.local.domain.console import deployments, model_versions
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state import site
from qfnb.local.domain.state.values import BodyError, NotFound, iso
from qfnb.local.domain.training import fine_tunes
from qfnb.local.domain.training import rewards as reward_requests
from qfnb.local.server.middleware.auth import authenticator
from qfnb.local.server.middleware.keyed_creates import Created, marked, once_per_key
from qfnb.local.server.middleware.v2_errors import v2_refusal
from qfnb.local.server.routes.platform import v2_datasets
from qfnb.local.server.serving.failures import failure_response
from qfnb.local.server.serving.wire import base_url, idempotency_key, json_body, page_params, paged, v2_error, v2_ok
from qfnb.protocol.console import rewards
from qfnb.protocol.console.train_ask import AskError, v2_data
from qfnb.protocol.console.train_modes import MODE_TABLE, ModeRow
from qfnb.protocol.console.training import FLAGS, LIMITS
from qfnb.protocol.platform.targets import CLUSTERS, QIANFAN, JobTarget, TargetError, parse_target
from qfnb.protocol.wires.qianfan import batch as batch_wire
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX, Console, V2Action

log = logging.getLogger("qfnb.local.domain.console")

#: a blocking handler runs in a thread; a coroutine function (a long poll) is awaited on the loop
Handler = Callable[[Platform, dict[str, Any]], Any]


# ---- fine-tuning ------------------------------------------------------------------------------


def _job_view(job: dict[str, Any]) -> dict[str, Any]:
    return {"jobId": job["sid"], "name": job["name"], "description": job["description"], "model": job["model"],
            "trainMode": job["trainMode"], "parameterScale": job["parameterScale"], "createDate": iso(job["created"])}


def _run_view(p: Platform, run: dict[str, Any]) -> dict[str, Any]:
    job = p.store.get("ft_jobs", run["containerId"]) or {}
    return {"taskId": run["sid"], "jobId": job.get("sid"), "jobName": job.get("name"), "model": run["baseModel"],
            "trainMode": run.get("trainMode") or job.get("trainMode", "SFT"),
            "parameterScale": job.get("parameterScale", "LoRA"),
            "runStatus": run["status"], "runProgress": f"{fine_tunes.percent(run)}%", "vdlLink": "",
            "createDate": iso(run["created"]), "finishDate": iso(run.get("finished")),
            "metrics": run.get("metrics") or {}, **fine_tunes.progress_fields(run)}


def create_ft_job(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    job = fine_tunes.create_container(p, name=body.get("name"), base_model=body.get("model"), base_field="model",
                                      train_mode=str(body.get("trainMode") or "SFT"),
                                      description=body.get("description") or "",
                                      parameter_scale=str(body.get("parameterScale") or "LoRA"))
    return {"jobId": job["sid"]}


def _cluster_target(value: Any) -> JobTarget | None:
    """A task's ``target``: None or ``"local"`` (a local worker), else a cluster of
    :data:`~qfnb.protocol.platform.targets.CLUSTERS` (``ray://HOST:DASHBOARD_PORT``); BodyError naming ``target``
    before anything is queued."""
    try:
        where = parse_target(value, env=False)
    except TargetError as exc:
        raise BodyError(exc.field, exc.message) from None
    if where is not None and where.kind == QIANFAN:
        raise BodyError("target", "the local platform trains here ('local') or on a cluster, not on 'qianfan'")
    return where if where is not None and where.cluster is not None else None


def _check_cluster(where: JobTarget) -> None:
    """The cluster's own check that it can take the run (its follower's ``check``: a Ray head answers and
    speaks this side's Ray); BodyError naming ``target`` otherwise."""
    try:  # deferred: the cluster's client loads only for its target
        importlib.import_module(CLUSTERS[where.kind].train).check(where)
    except TargetError as exc:
        raise BodyError(exc.field, exc.message) from None


def _workers(value: Any, where: JobTarget | None) -> int | None:
    """A cluster target's ``rayTrainWorkers`` (1 when not given); BodyError naming it when it is not a whole
    number of at least 1, or is given without a cluster target."""
    if where is None:
        if value is not None:
            raise BodyError("rayTrainWorkers", "needs a cluster target (target: ray://HOST:DASHBOARD_PORT)")
        return None
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BodyError("rayTrainWorkers", f"must be a whole number of Ray Train workers, at least 1; got {value!r}")
    return value


def create_ft_task(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    job = site.get(p, "ft_jobs", body.get("jobId"), "jobId")
    try:
        data = v2_data(body.get("datasetConfig"))
    except AskError as exc:
        raise BodyError(exc.field, exc.message) from None
    init = fine_tunes.continued_from(p, body.get("incrementTaskId"), body.get("incrementCheckpointStep"))
    where = _cluster_target(body.get("target"))  # qfnb's own field: a cluster trains the run
    workers = _workers(body.get("rayTrainWorkers"), where)  # qfnb's own field: its Ray Train workers
    kept = {"parameterScale": body.get("parameterScale") or "LoRA", "incrementTaskId": body.get("incrementTaskId"),
            "incrementCheckpointStep": body.get("incrementCheckpointStep")}
    ask = fine_tunes.train_ask(job.get("trainMode"), job["model"], data, body.get("hyperParameterConfig"),
                               "hyperParameterConfig", reward=body.get("reward"), extra=kept,
                               init_adapter=None if init is None else str(init),
                               target=None if where is None else str(where),
                               ray_workers=workers)
    if where is not None:
        _check_cluster(where)
    run = fine_tunes.create_run(p, job, ask)
    return {"jobId": job["sid"], "taskId": run["sid"]}


def describe_task(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return _run_view(p, site.get(p, "runs", body.get("taskId"), "taskId"))


def describe_tasks(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    job = site.get(p, "ft_jobs", body.get("jobId"), "jobId")
    runs = [_run_view(p, r) for r in p.store.all("runs", lambda r: r.get("containerId") == job["id"])]
    return paged(runs, body, "taskList", "taskId")


def describe_jobs(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    jobs = [_job_view(j) for j in p.store.all("ft_jobs")
            if not model or (j["model"] or "").lower() == str(model).lower()]
    return paged(jobs, body, "jobList", "jobId")


def stop_task(p: Platform, body: dict[str, Any]) -> bool:
    return p.supervisor.stop(site.get(p, "runs", body.get("taskId"), "taskId")["id"])


def delete_task(p: Platform, body: dict[str, Any]) -> bool:
    model_versions.delete_run(p, site.get(p, "runs", body.get("taskId"), "taskId"))
    return True


def supported_models(p: Platform, body: dict[str, Any]) -> list[dict[str, Any]]:
    """DescribeFineTuningSupportModels: each entry in the platform's vocabulary (``modelType`` text2text, each
    hyperparameter with its ``name`` and ``description``), which the official trainer validates field by field."""
    def configs(mode: ModeRow, base: str) -> list[dict[str, Any]]:
        defaults = mode.defaults(base)
        return [{"key": k, "name": _words(k), "description": f"{_words(k)}, true or false", "type": "bool",
                 "checkType": "choice", "checkValue": [True, False], "default": v} if k in FLAGS else
                {"key": k, "name": _words(k), "description": f"{_words(k)}, in [{LIMITS[k].lo}, {LIMITS[k].hi}]",
                 "type": type(v).__name__, "checkType": "range", "checkValue": [LIMITS[k].lo, LIMITS[k].hi],
                 "default": v} for k, v in defaults.items()]

    # a rewarded mode needs a reward from the client (qfnb.local.training.rft): not one this listing can offer alone
    modes = [m for m in MODE_TABLE.values() if not m.rewarded]
    return [{"model": m.name, "modelType": "text2text", "supportTrainMode": [{
        "trainMode": mode.name, "supportParameterScale": [{
            "parameterScale": "LoRA", "supportHyperParameterConfig": configs(mode, m.name)}]} for mode in modes]}
        for m in fine_tunes.trainable_models(p)]


def _words(key: str) -> str:
    """``learningRate`` -> ``Learning rate``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", key).capitalize()


# ---- models and services --------------------------------------------------------------------


def describe_model_set(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    key = body.get("modelSetId")
    if key is None:
        name = body.get("modelSetName")
        found = p.store.all("models", lambda m: m.get("modelName") == name)
        if not found:
            raise NotFound(f"modelSetName {name!r} not found")
        model = found[-1]
    else:
        model = site.get(p, "models", key, "modelSetId")
    return {"modelSetId": model["sid"], "modelSetName": model["modelName"], "source": model["source"],
            "modelType": "text", "createDate": iso(model["created"]),
            "modelIds": [v["sid"] for v in model_versions.versions_of(p, model["id"])]}


def describe_model(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    v = site.get(p, "versions", body.get("modelId"), "modelId")
    model = p.store.get("models", v["modelId"]) or {}
    return {"modelId": v["sid"], "modelSetId": model.get("sid"), "modelSetName": model.get("modelName"),
            "version": v["version"], "state": v["state"], "sourceType": v.get("sourceType"),
            "sourceInfo": {"trainTaskId": v.get("runIdStr"), "trainJobId": v.get("taskIdStr"),
                           "baseModel": v["baseModel"]}, "createDate": iso(v["created"])}


def create_service(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    svc = deployments.create_service(p, model_id=body.get("modelSetId"), version_id=body.get("modelId"),
                                     name=body.get("name"), uri=body.get("urlSuffix"))
    return {"serviceId": svc["sid"], "instanceId": svc["sid"]}


def _service_view(p: Platform, svc: dict[str, Any], base: str) -> dict[str, Any]:
    version = p.store.get("versions", svc["modelVersionId"]) or {}
    model = p.store.get("models", svc["modelId"]) or {}
    return {"serviceId": svc["sid"], "name": svc["name"], "modelSetId": model.get("sid"),
            "modelId": version.get("sid"), "modelVersionId": version.get("sid"),
            "url": f"{base}{MODEL_API_PREFIX}/chat/{svc['uri']}", "serviceType": "chat", "runStatus": svc["status"],
            "chargeStatus": "NORMAL", "resourceConfig": {"type": "local", "replicasCount": 1},
            "createTime": iso(svc["created"]), "errorMessage": svc.get("errorMessage")}


# ---- batch inference: /v2/batchinference ------------------------------------------------------


def _batch_view(task: dict[str, Any]) -> dict[str, Any]:
    """A task as ``DescribeBatchInferenceTask`` shows it (qfnb adds ``failedCount`` and the rest)."""
    out_dir = f"{task['outputBosUri'].rstrip('/')}/{task['sid']}/"
    paid_in, paid_out = batch_tasks.paid_usage(task)
    view: dict[str, Any] = {
        "taskId": task["sid"], "name": task["name"], "description": task["description"],
        "endpoint": task.get("endpoint"), "modelId": task.get("modelId"), "inferenceParams": task["inferenceParams"],
        "runStatus": task["runStatus"], "inputBosUri": task.get("inputBosUri"), "outputBosUri": task["outputBosUri"],
        "outputDir": out_dir, "completion_window": task.get("completionWindow"),
        "createTime": iso(task["created"]), "finishTime": iso(task.get("finished")),
        "doneCount": task["done"] + task["failed"], "totalCount": task.get("total") or 0,
        "progress": f"{task['done'] + task['failed']}/{task.get('total') or 0}",
        "inputTokenUsage": paid_in, "outputTokenUsage": paid_out,
        # qfnb's additions: the counts apart, where the files are, and the job's own bookkeeping
        "succeededCount": task["done"], "failedCount": task["failed"],
        "outputFileUri": out_dir + "output.jsonl", "errorFileUri": out_dir + "error.jsonl",
        "runSeconds": task.get("runSeconds", 0.0), "repeatedRequests": task.get("repeatedRequests", 0),
        "repeatedInputTokens": task.get("repeatInputTokens", 0),
        "repeatedOutputTokensEstimated": task.get("repeatOutputTokens", 0),
        "preemptedRequests": task.get("preempted", 0), "retriedRequests": task.get("retried", 0),
        "datasetId": task.get("datasetId")}
    if task["runStatus"] == batch_wire.BatchStatus.FAILED.value:
        view.update(errorCode=task.get("errorCode", 500), errorReason=task.get("errorReason", ""))
    return view


def create_batch(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return {"taskId": batch_tasks.create(p, body)["sid"]}


def describe_batch(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return _batch_view(batch_tasks.get(p, body.get("taskId")))


def stop_batch(p: Platform, body: dict[str, Any]) -> bool:
    batch_tasks.stop(p, batch_tasks.get(p, body.get("taskId"))["id"])
    return True


def _run_statuses(value: Any) -> list[str]:
    """``runStatus`` of DescribeBatchInferenceTasks: a status or a list of them (none: all)."""
    wanted = [] if value is None else [value] if isinstance(value, str) else value
    names = [s.value for s in batch_wire.BatchStatus]
    if not isinstance(wanted, list) or not all(isinstance(w, str) and w in names for w in wanted):
        raise BodyError("runStatus", f"must be one of {', '.join(names)} or a list of them, got {value!r:.60}")
    return wanted


def describe_batches(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    wanted = _run_statuses(body.get("runStatus"))
    max_keys = 10 if body.get("maxKeys") is None else body["maxKeys"]
    page_params({**body, "maxKeys": max_keys})  # maxKeys / marker / pageReverse checked before any work
    tasks = [_batch_view(t) for t in p.store.all("batches", lambda t: not t.get("openai"))
             if not wanted or t["runStatus"] in wanted]
    return paged(tasks, {**body, "maxKeys": max_keys}, "taskList", "taskId")


# ---- datasets: :mod:`.v2_datasets` -------------------------------------------------------------


def describe_datasets(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return paged([v2_datasets.dataset_view(d) for d in p.store.all("datasets")], body, "datasets", "datasetId")


HANDLERS: dict[tuple[str, str], Handler] = {
    (Console.V2_DATASET, "CreateDataset"): v2_datasets.create_dataset,
    (Console.V2_DATASET, "DescribeDatasets"): describe_datasets,
    (Console.V2_DATASET, "DescribeDatasetVersion"): v2_datasets.describe_dataset_version,
    (Console.V2_DATASET, "CreateImportTask"): v2_datasets.create_import_task,
    (Console.V2_DATASET, "DescribeImportTask"): v2_datasets.describe_import_task,
    (Console.V2_DATASET, "PublishDatasetVersion"): v2_datasets.publish_dataset_version,
    (Console.V2_FINETUNING, V2Action.CREATE_JOB): create_ft_job,
    (Console.V2_FINETUNING, V2Action.CREATE_TASK): create_ft_task,
    (Console.V2_FINETUNING, V2Action.DESCRIBE_TASK): describe_task,
    (Console.V2_FINETUNING, V2Action.DESCRIBE_TASKS): describe_tasks,
    (Console.V2_FINETUNING, V2Action.DESCRIBE_JOBS): describe_jobs,
    (Console.V2_FINETUNING, V2Action.STOP_TASK): stop_task,
    (Console.V2_FINETUNING, V2Action.DELETE_TASK): delete_task,
    (Console.V2_FINETUNING, V2Action.SUPPORTED_MODELS): supported_models,
    # qfnb's: a RFT run's client rewards (the fetch is a long poll, a coroutine: it waits on the event loop)
    (Console.V2_FINETUNING, rewards.FETCH_ACTION): reward_requests.fetch,
    (Console.V2_FINETUNING, rewards.SUBMIT_ACTION): reward_requests.submit,
    (Console.V2_MODEL, V2Action.DESCRIBE_MODEL_SET): describe_model_set,
    (Console.V2_MODEL, V2Action.DESCRIBE_MODEL): describe_model,
    (Console.V2_SERVICE, V2Action.CREATE_SERVICE): create_service,
    (batch_wire.ROUTE, batch_wire.CREATE): create_batch, (batch_wire.ROUTE, batch_wire.DESCRIBE): describe_batch,
    (batch_wire.ROUTE, batch_wire.STOP): stop_batch, (batch_wire.ROUTE, batch_wire.DESCRIBE_ALL): describe_batches,
}


async def dispatch(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    if (failure := authenticator(request).check_console(request)) is not None:
        return failure
    path, action = request.url.path, request.query_params.get("Action", "")
    try:
        created = await _answer(request, platform, path, action, await json_body(request))
        if created is None:
            return v2_error(400, "InvalidAction", f"Action {action!r} on {path} is not supported by the local "
                            "platform")
    except Exception as exc:
        if (refused := v2_refusal(exc, (reward_requests.TooManyPolls, batch_tasks.TooManyJobs))) is not None:
            return refused
        log.exception("v2 console %r, Action %r, failed", path, action)
        return failure_response(path, exc, platform.settings.data_dir)
    return marked(v2_ok(created.answer), created)


async def _answer(request: Request, platform: Platform, path: str, action: str,
                  body: dict[str, Any]) -> Created | None:
    """The call's answer (a create: once per ``Idempotency-Key``, :func:`once_per_key`); None for an action
    the local platform does not serve."""
    if (path, action) == (Console.V2_SERVICE, V2Action.DESCRIBE_SERVICE):
        svc = site.get(platform, "services", body.get("serviceId"), "serviceId")
        return Created(_service_view(platform, svc, base_url(request)), replayed=False)
    if (path, action) == (Console.V2_DATASET, "CreateImportTask"):  # once per Idempotency-Key, kept with its rows
        return Created(await run_in_threadpool(v2_datasets.create_import_task, platform, body,
                                               idempotency_key(request)), replayed=False)
    if (path, action) == (Console.V2_SERVICE, V2Action.DESCRIBE_SERVICES):
        views = [_service_view(platform, s, base_url(request)) for s in platform.store.all("services")]
        return Created(paged(views, body, "serviceList", "serviceId"), replayed=False)
    handler = HANDLERS.get((path, action))
    if handler is None:
        return None
    if inspect.iscoroutinefunction(handler):  # a long poll: awaited on the loop
        return Created(await handler(platform, body), replayed=False)
    return await once_per_key(request, platform, body, partial(handler, platform, body))


def routes() -> list[Route]:
    # the v2 prompt library is cloud-only: its calls answer with the one-sentence InvalidAction
    paths = sorted({p for p, _ in HANDLERS} | {Console.V2_SERVICE, Console.V2_PROMPT_TEMPLATES,
                                               Console.V2_PROMPT_LABELS})
    return [Route(path, dispatch, methods=["POST"]) for path in paths]
