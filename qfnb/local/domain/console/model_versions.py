"""The console's models: a preset per served base, a finished run published as a model version, a run's files
deleted, a model's versions."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from qfnb.local.domain.state.site import TrainingSite, get
from qfnb.local.domain.state.values import BodyError, check_name
from qfnb.local.domain.training.fine_tunes import run_checkpoint, trainable_models
from qfnb.protocol.console.enums import ModelVersionState, RunStatus

log = logging.getLogger("qfnb.local.domain.console.model_versions")


def ensure_presets(platform: TrainingSite) -> None:
    """One preset model (with a version) per served base chat model, so bases can be evaluated/deployed."""
    have = {m.get("presetOf") for m in platform.store.all("models", lambda m: m.get("source") == "PlatformPreset")}
    for served in trainable_models(platform):
        if served.name in have:
            continue
        model = platform.store.insert("models", {"modelName": served.name, "source": "PlatformPreset",
                                                 "presetOf": served.name, "modelType": 0})
        platform.store.insert("versions", {"modelId": model["id"], "version": "1", "baseModel": served.name,
                                           "adapterDir": None, "state": ModelVersionState.READY.value,
                                           "sourceType": "PlatformPreset"})


def publish(platform: TrainingSite, *, is_new: Any, meta: Any, model_name: Any,
            model_id: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish a Done run's adapter as a new model (or a new version of ``model_id``)."""
    if not isinstance(meta, dict):
        raise BodyError("versionMeta", "is required: {taskId, iterationId}")
    container = platform.store.get_or_raise("ft_jobs", meta.get("taskId"), BodyError(
        "versionMeta.taskId", f"fine-tune job {meta.get('taskId')!r} not found"))
    run = platform.store.get("runs", meta.get("iterationId"))
    if run is None or run.get("containerId") != container["id"]:
        raise BodyError("versionMeta.iterationId", f"task {meta.get('iterationId')!r} not found in that job")
    if run.get("status") != RunStatus.DONE.value or not run.get("adapter_dir"):
        raise BodyError("versionMeta.iterationId", f"task {run['sid']} is {run.get('status')}, not Done; only a "
                        "finished task can be published")
    adapter, step = run["adapter_dir"], None
    if meta.get("step") is not None:  # a checkpoint of the run ("best" and "last" as qfnb's extension)
        chosen = run_checkpoint(run, meta["step"], "versionMeta.step")
        adapter, step = chosen["path"], int(chosen["step"])
    if is_new is not False:
        check_name("modelName", model_name)
        model = platform.store.insert("models", {"modelName": model_name, "source": "Train", "modelType": 0})
    else:
        model = get(platform, "models", model_id, "modelId")
    number = 1 + len(platform.store.all("versions", lambda v: v.get("modelId") == model["id"]))
    version = platform.store.insert("versions", {
        "modelId": model["id"], "version": str(number), "baseModel": run["baseModel"],
        "adapterDir": adapter, "state": ModelVersionState.READY.value, "sourceType": "Train",
        "taskId": container["id"], "taskIdStr": container["sid"], "runId": run["id"], "runIdStr": run["sid"],
        "step": step,
        "description": str(meta.get("description") or "")})
    return model, version


def delete_run(platform: TrainingSite, run: dict[str, Any]) -> None:
    """Delete a finished run with its job dir and the checkpoints no published version uses."""
    if run.get("status") in (RunStatus.WAITING.value, RunStatus.RUNNING.value):
        raise BodyError("taskId", f"task {run['sid']} is {run['status']}; stop it before deleting it")
    used = {str(v.get("adapterDir")) for v in platform.store.all("versions")}
    others = {str(e.get("path")) for r in platform.store.all("runs", lambda r: r["id"] != run["id"])
              for e in r.get("checkpointList") or []}
    models = platform.models
    for entry in run.get("checkpointList") or []:
        path = Path(str(entry.get("path") or ""))
        if str(path) not in used | others and path.parent == models.root:
            models.drop_adapter(path)
    job_dir = Path(str(run.get("job_dir") or ""))
    if job_dir.parent == platform.settings.data_dir / "jobs" and not any(u.startswith(str(job_dir)) for u in used):
        shutil.rmtree(job_dir, ignore_errors=True)
    platform.store.delete("runs", run["id"])
    log.info("deleted fine-tune task %s", run["sid"])


def versions_of(platform: TrainingSite, model_id: int) -> list[dict[str, Any]]:
    return platform.store.all("versions", lambda v: v.get("modelId") == model_id)


