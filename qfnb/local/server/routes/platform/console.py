"""v1 console routes (``/wenxinworkshop/...``): bce-auth-v1 signed, ``{log_id, result}`` answers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qfnb.local.domain.console import dataset_tasks, deployments, entities, evaluation, model_versions, prompts
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state import site
from qfnb.local.domain.state.bucket import REGION
from qfnb.local.domain.state.values import BodyError, NotFound, iso
from qfnb.local.domain.training import fine_tunes
from qfnb.local.server.middleware.auth import authenticator
from qfnb.local.server.middleware.keyed_creates import Created, KeyReused, marked, once_per_key
from qfnb.local.server.serving.failures import failure_response
from qfnb.local.server.serving.wire import base_url, idempotency_key, json_body, v1_data_error, v1_error, v1_ok
from qfnb.protocol.console.enums import V1_TRAIN_STATUS, ExportStatus, RunStatus, ServiceStatus
from qfnb.protocol.console.train_ask import TrainData
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX, Console

log = logging.getLogger("qfnb.local.domain.console")

Handler = Callable[[Platform, dict[str, Any]], Any]


def _int(body: dict[str, Any], field: str) -> object:
    value = body.get(field)
    if value is None or isinstance(value, bool):
        raise BodyError(field, "is required")
    return value


# ---- fine-tuning ------------------------------------------------------------------------------


def create_task(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    rec = fine_tunes.create_container(p, name=body.get("name"),
                                      base_model=body.get("trainType") or body.get("baseTrainType"),
                                      base_field="trainType", description=body.get("description") or "",
                                      base_optional=True, train_mode=body.get("trainMode") or "SFT")
    return {"id": rec["id"], "uuid": rec["sid"], "name": rec["name"], "description": rec["description"],
            "createTime": iso(rec["created"])}


def create_job(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    container = site.get(p, "ft_jobs", _int(body, "taskId"), "taskId")
    if not container.get("model"):  # a task created without trainType: the job names the base model
        base = fine_tunes.resolve_base(p, body.get("trainType") or body.get("baseTrainType"), "trainType")
        container = p.store.update("ft_jobs", container["id"], model=base)
    trainset = body.get("trainset")
    if not isinstance(trainset, list) or not trainset:
        raise BodyError("trainset", "is required: [{type: 1, id: <dataset id>}]")
    refs = []
    for i, item in enumerate(trainset):
        if not isinstance(item, dict) or item.get("id") is None:
            raise BodyError(f"trainset[{i}].id", "is required")
        refs.append((f"trainset[{i}].id", item["id"]))
    ask = fine_tunes.train_ask(body.get("trainMode") or container.get("trainMode"),  # v1: the job (run) names it
                               container["model"],
                               TrainData(tuple(refs), split=("trainsetRate", body.get("trainsetRate"))),
                               body.get("trainConfig"), "trainConfig",
                               extra={"peftType": body.get("peftType") or "LoRA"})
    run = fine_tunes.create_run(p, container, ask)
    return {"id": run["id"], "uuid": run["sid"]}


def _run_of(p: Platform, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    container = site.get(p, "ft_jobs", _int(body, "taskId"), "taskId")
    run = site.get(p, "runs", _int(body, "jobId"), "jobId")
    if run["containerId"] != container["id"]:
        raise NotFound(f"jobId {body['jobId']!r} does not belong to taskId {body['taskId']!r}")
    return container, run


def job_detail(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    container, run = _run_of(p, body)
    status = RunStatus(run["status"])
    started, finished = run.get("started"), run.get("finished")
    return {"id": run["id"], "uuid": run["sid"], "taskId": container["id"], "taskName": container["name"],
            "version": run["id"], "trainType": container["model"], "trainMode": run.get("trainMode", "SFT"),
            "peftType": run.get("peftType", "LoRA"), "trainStatus": V1_TRAIN_STATUS[status].value,
            "progress": fine_tunes.percent(run), "runTime": int((finished or time.time()) - started) if started else 0,
            "trainTime": run.get("elapsedSeconds"), "startTime": iso(started), "finishTime": iso(finished),
            "vdlLink": "", "metrics": run.get("metrics") or {}, **fine_tunes.progress_fields(run)}


def stop_job(p: Platform, body: dict[str, Any]) -> bool:
    _, run = _run_of(p, body)
    return p.supervisor.stop(run["id"])


# ---- models ---------------------------------------------------------------------------------


def version_view(p: Platform, v: dict[str, Any]) -> dict[str, Any]:
    model = p.store.get("models", v["modelId"]) or {}
    return {"modelId": v["modelId"], "modelIdStr": model.get("sid"), "modelName": model.get("modelName"),
            "modelVersionId": v["id"], "modelVersionIdStr": v["sid"], "version": v["version"],
            "sourceType": v.get("sourceType"), "framework": "PyTorch", "algorithm": v["baseModel"],
            "modelNet": v["baseModel"], "state": v["state"], "ioMode": "chat", "trainType": v["baseModel"],
            "createTime": iso(v["created"]), "description": v.get("description", ""),
            "sourceExtra": {"trainSourceExtra": {"taskId": v.get("taskId"), "taskIdStr": v.get("taskIdStr"),
                                                 "runId": v.get("runId"), "runIdStr": v.get("runIdStr")}},
            "deployResource": [], "supportOptions": []}


def model_detail(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    model = site.get(p, "models", _int(body, "modelId"), "modelId")
    return {"modelId": model["id"], "modelIdStr": model["sid"], "modelName": model["modelName"],
            "source": model["source"], "modelType": model.get("modelType", 0), "createTime": iso(model["created"]),
            "modelVersionList": [version_view(p, v) for v in model_versions.versions_of(p, model["id"])]}


def model_version_detail(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return version_view(p, site.get(p, "versions", _int(body, "modelVersionId"), "modelVersionId"))


def publish(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    model, version = model_versions.publish(p, is_new=body.get("isNewModel", True), meta=body.get("versionMeta"),
                                            model_name=body.get("modelName"), model_id=body.get("modelId"))
    return {"modelId": model["id"], "modelIDStr": model["sid"], "modelIdStr": model["sid"],
            "version": version["version"], "versionId": version["id"], "versionIdStr": version["sid"]}


# ---- services -------------------------------------------------------------------------------


def service_apply(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    svc = deployments.create_service(p, model_id=body.get("modelId"), version_id=body.get("modelVersionId"),
                                     name=body.get("name"), uri=body.get("uri"))
    return {"result": True, "serviceId": svc["id"]}


def service_view(p: Platform, svc: dict[str, Any], base_url: str) -> dict[str, Any]:
    model = p.store.get("models", svc["modelId"]) or {}
    return {"id": svc["id"], "serviceId": svc["id"], "serviceIdStr": svc["sid"], "modelId": svc["modelId"],
            "modelVersionId": svc["modelVersionId"], "modelName": model.get("modelName"), "name": svc["name"],
            "uri": svc["uri"], "fullUri": f"{base_url}{MODEL_API_PREFIX}/chat/{svc['uri']}",
            "applyStatus": svc["status"], "serviceStatus": svc["status"], "sourceType": "Train", "qps": 0,
            "payType": "PostPay", "createTime": iso(svc["created"]), "errorMessage": svc.get("errorMessage")}


def service_list(p: Platform, body: dict[str, Any], base_url: str) -> dict[str, Any]:
    wanted = body.get("apiTypefilter")
    common = []
    for api_type in ("chat", "completions", "embeddings", "reranker", "text2image", "image2text"):
        if isinstance(wanted, list) and wanted and api_type not in wanted:
            continue
        for m in p.base_models():
            if api_type in m.api_types:
                common.append({"name": m.name, "url": f"{base_url}{MODEL_API_PREFIX}/{api_type}/{m.endpoint}",
                               "apiType": api_type, "chargeStatus": "FREE",
                               "versionList": [{"trainType": m.name, "serviceStatus": ServiceStatus.DONE.value}]})
    custom = [{"name": s["name"], "url": f"{base_url}{MODEL_API_PREFIX}/chat/{s['uri']}", "apiType": "chat",
               "serviceId": s["id"], "serviceStatus": s["status"], "chargeStatus": "FREE"}
              for s in p.store.all("services", lambda s: s.get("status") == ServiceStatus.SERVING.value)]
    return {"common": common, "custom": custom}


# ---- datasets -------------------------------------------------------------------------------


def dataset_view(ds: dict[str, Any]) -> dict[str, Any]:
    return {"id": ds["id"], "groupId": ds["id"], "datasetId": ds["sid"], "versionId": 1, "groupName": ds["name"],
            "name": ds["name"], "dataType": ds["dataType"], "projectType": ds["projectType"],
            "templateType": ds["templateType"], "importStatus": ds["importStatus"],
            "releaseStatus": ds["releaseStatus"], "storageType": ds["storageType"],
            "storageInfo": dataset_storage(ds)}


def dataset_storage(ds: dict[str, Any]) -> dict[str, Any]:
    """Where a dataset's files live in the local BOS (``storageInfo``; ``versionInfo.storage``)."""
    return {"storageId": "qfnb-local", "storagePath": f"/datasets/{ds['sid']}/", "storageName": "qfnb-local",
            "rawStoragePath": f"/datasets/{ds['sid']}/", "region": REGION}


def dataset_create(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    return dataset_view(dataset_tasks.create_dataset(p, body))


def dataset_import(p: Platform, body: dict[str, Any], key: str | None = None) -> bool:
    ds = site.get(p, "datasets", _int(body, "datasetId"), "datasetId")
    if body.get("importFrom", 1) != 1:
        raise BodyError("importFrom", "the local platform imports from object storage only (importFrom=1)")
    dataset_tasks.import_dataset(p, ds, body.get("files"), key)
    return True


def dataset_release(p: Platform, body: dict[str, Any]) -> bool:
    ds = site.get(p, "datasets", _int(body, "datasetId"), "datasetId")
    p.store.update("datasets", ds["id"], releaseStatus=2)
    return True


def dataset_export(p: Platform, body: dict[str, Any]) -> bool:
    ds = site.get(p, "datasets", _int(body, "datasetId"), "datasetId")
    if body.get("exportTo", 0) != 0:
        raise BodyError("exportTo", "the local platform exports to its own storage only (exportTo=0)")
    dataset_tasks.export_dataset(p, ds)
    return True


def dataset_export_records(p: Platform, body: dict[str, Any], base_url: str,
                           link: Callable[[str], str]) -> list[dict[str, Any]]:
    """The exports, each with a ``downloadUrl`` that reads with no credentials (``link``: a pre-signed
    link, as the cloud gives; the official SDK downloads it with a plain GET)."""
    ds = site.get(p, "datasets", _int(body, "datasetId"), "datasetId")
    return [{k: v for k, v in rec.items() if k not in ("bucket", "key")}
            | {"downloadUrl": link(f"{base_url}/bos/{rec['bucket']}/{rec['key']}")}
            for rec in ds.get("exports") or []]


def dataset_info(p: Platform, body: dict[str, Any]) -> dict[str, Any]:
    ds = site.get(p, "datasets", _int(body, "datasetId"), "datasetId")
    exports = ds.get("exports") or []
    return {"groupPK": ds["id"], "name": ds["name"], "dataType": ds["dataType"],
            "versionInfo": {"datasetPK": ds["id"], "bmlDatasetId": ds["sid"], "versionId": 1,
                            "dataType": ds["dataType"],  # where the official SDK reads it (Dataset.load)
                            # when the rows last changed: the official SDK exports again when this is newer
                            # than its cached export
                            "createTime": iso(ds["created"]), "modifyTime": iso(ds.get("modified") or ds["created"]),
                            "importStatus": ds["importStatus"], "importProgress": 100 if ds["importStatus"] == 2 else 0,
                            "importErrorMessage": ds.get("importErrorMessage") or "",
                            "exportStatus": exports[-1]["status"] if exports else ExportStatus.NOT_STARTED.value,
                            "exportRecordCount": len(exports), "releaseStatus": ds["releaseStatus"],
                            "releaseErrCode": 0,
                            "releaseStoragePath": f"/datasets/{ds['sid']}/", "projectType": ds["projectType"],
                            "templateType": ds["templateType"], "storageType": ds["storageType"],
                            "entityCount": ds["entityCount"], "annotatedEntityCount": ds["entityCount"],
                            "storage": dataset_storage(ds)}}


HANDLERS: dict[str, Handler] = {
    Console.FT_CREATE_TASK: create_task, Console.FT_CREATE_JOB: create_job, Console.FT_JOB_DETAIL: job_detail,
    Console.FT_STOP_JOB: stop_job, Console.MODEL_DETAIL: model_detail,
    Console.MODEL_VERSION_DETAIL: model_version_detail, Console.MODEL_PUBLISH: publish,
    Console.EVAL_CREATE: evaluation.create_v1, Console.EVAL_DETAIL: evaluation.detail_v1,
    Console.EVAL_REPORT: evaluation.report_v1, Console.EVAL_CANCEL: evaluation.cancel_v1,
    Console.SERVICE_APPLY: service_apply, Console.DATASET_CREATE: dataset_create,
    Console.DATASET_IMPORT: dataset_import, Console.DATASET_RELEASE: dataset_release,
    Console.DATASET_INFO: dataset_info, Console.DATASET_EXPORT: dataset_export,
    Console.ENTITY_LIST: entities.list_page, Console.ENTITY_ANNOTATE: entities.annotate,
    Console.ENTITY_DELETE: entities.delete,
    Console.PROMPT_CREATE: prompts.create, Console.PROMPT_INFO: prompts.info, Console.PROMPT_UPDATE: prompts.update,
    Console.PROMPT_DELETE: prompts.delete, Console.PROMPT_LIST: prompts.list_page,
    Console.PROMPT_LABEL_LIST: prompts.list_labels,
}


async def dispatch(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    if (failure := authenticator(request).check_console(request)) is not None:
        return failure
    path = request.url.path
    data_api = path.startswith("/wenxinworkshop/dataset/")
    fail = v1_data_error if data_api else partial(v1_error, inference=False)
    try:
        created = await _answer(request, platform, path, await json_body(request))
        if created is None:
            return fail(ErrorCode.UNSUPPORTED_METHOD, f"{path} is not supported by the local platform: it is "
                        "a cloud service (configure Qianfan credentials to use it)")
    except BodyError as exc:
        return fail(exc.code, str(exc))
    except NotFound as exc:
        return fail(ErrorCode.INVALID_PARAM, str(exc))
    except KeyReused as exc:
        return fail(ErrorCode.INVALID_PARAM, str(exc), http_status=422)
    except Exception as exc:
        log.exception("console call %r failed", path)
        return failure_response(path, exc, platform.settings.data_dir)
    return marked(v1_ok(created.answer, data_api=data_api), created)


async def _answer(request: Request, platform: Platform, path: str, body: dict[str, Any]) -> Created | None:
    """The call's answer (a create: once per ``Idempotency-Key``, :func:`once_per_key`); None for a path
    the local platform does not serve."""
    if path == Console.SERVICE_LIST:
        return Created(service_list(platform, body, base_url(request)), replayed=False)
    if path == Console.DATASET_EXPORT_RECORD:
        return Created(await run_in_threadpool(dataset_export_records, platform, body, base_url(request),
                                               authenticator(request).shared_link), replayed=False)
    if path == Console.DATASET_IMPORT:  # run once per Idempotency-Key, its key kept with its rows
        return Created(await run_in_threadpool(dataset_import, platform, body, idempotency_key(request)),
                       replayed=False)
    if path == Console.SERVICE_DETAIL:
        svc = site.get(platform, "services", _int(body, "serviceId"), "serviceId")
        return Created(service_view(platform, svc, base_url(request)), replayed=False)
    handler = HANDLERS.get(path)
    return None if handler is None else await once_per_key(request, platform, body, partial(handler, platform, body))


def routes() -> list[Route]:
    paths = [*HANDLERS, Console.SERVICE_LIST, Console.SERVICE_DETAIL, Console.DATASET_EXPORT_RECORD]
    # last: any other v1 console call (ETL, augmenting, prompt optimizing ...) answers with one sentence
    return [*(Route(path, dispatch, methods=["POST"]) for path in paths),
            Route("/wenxinworkshop/{rest:path}", dispatch, methods=["POST"])]
