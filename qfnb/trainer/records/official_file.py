"""The official SDK's pipeline file (``Finetune.load(file=...)`` / ``trainer.save(file)``).

Its shape, as the official SDK writes and reads it::

    {"id": "...", "current_action": "<action id>", "case_init_params": {"case_type": "Finetune"},
     "actions": [{"type": "LoadDataSetAction", "id": ..., "datasets": {<datasetConfig>}, "output": ...},
                 {"type": "TrainAction", "id": ..., "init_params": {"train_type", "train_mode",
                  "train_config": {...}, "is_incr", "job_name", ...}, "job_id", "task_id", "input", "output"},
                 {"type": "ModelPublishAction", "id": ..., "input": {...}, "model_id": ..., "output": ...},
                 {"type": "DeployAction", "id": ..., "init_params": {"deploy_config": {...}}, "output": ...}]}

An action with an ``output`` finished; the others run when the trainer runs. An evaluation step
is not kept (evaluators are code, as officially).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qfnb._core.errors import ValidationError
from qfnb.protocol.console.train_ask import AskError, v2_data

from ..actions import DeployAction, ModelPublishAction, TrainAction
from ..configs import DatasetConfig, DeployConfig, TrainConfig
from ..steps.load_action import LoadDataSetAction, dataset_config
from .finetune_run import FinetuneRun, RunT

logger = logging.getLogger("qfnb.trainer")

__all__ = ["from_file", "to_file"]

_TYPES = ("LoadDataSetAction", "TrainAction", "ModelPublishAction", "DeployAction")


def read(file: str | Path) -> dict[str, Any]:
    """The file's pipeline, checked: a Finetune case with a training step."""
    path = Path(file)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError("file", f"cannot read pipeline file {path}: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("actions"), list):
        raise ValidationError("file", f"{path.name} is not a pipeline file: it needs an \"actions\" list")
    case = (meta.get("case_init_params") or {}).get("case_type")
    if case not in (None, "Finetune"):
        raise ValidationError("file", f"{path.name} holds a {case} pipeline, not a Finetune one")
    return meta


def steps_of(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The file's actions by type (each type once); unknown types are refused, evaluations skipped."""
    out: dict[str, dict[str, Any]] = {}
    for i, action in enumerate(meta["actions"]):
        kind = action.get("type") if isinstance(action, dict) else None
        if kind == "EvaluateAction":
            logger.warning("pipeline file: the EvaluateAction step is not loaded (evaluators are code)")
            continue
        if kind not in _TYPES:
            raise ValidationError("file", f"action {i}: unknown type {kind!r} (one of {', '.join(_TYPES)})")
        if kind in out:
            raise ValidationError("file", f"action {i}: a second {kind}")
        out[kind] = action
    if "TrainAction" not in out or "LoadDataSetAction" not in out:
        raise ValidationError("file", "a Finetune pipeline needs a LoadDataSetAction and a TrainAction")
    return out


def dataset_of(load: dict[str, Any]) -> Any:
    """What ``LoadDataSetAction`` is given: the platform dataset(s) or BOS URI(s) its config names."""
    conf = load.get("datasets") or (load.get("output") or {}).get("datasets")
    try:
        refs = [ref for _, ref in v2_data(conf, "datasets").train]
    except AskError as exc:
        raise ValidationError(exc.field, f"LoadDataSetAction's datasetConfig: {exc.message}") from None
    if len(refs) == 1 and load.get("eval_split_ratio") is None:
        return refs[0]
    return DatasetConfig(datasets=refs, eval_split_ratio=load.get("eval_split_ratio"))


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def from_file(cls: Callable[..., RunT], file: str | Path, **kwargs: Any) -> RunT:
    """A trainer of the official pipeline file ``file``, at the step the file is at."""
    meta = read(file)
    steps = steps_of(meta)
    init = dict(steps["TrainAction"].get("init_params") or {})
    deploy = steps.get("DeployAction")
    dc = _given((deploy or {}).get("init_params", {}).get("deploy_config") or {})
    train_kwargs = _given({"train_mode": init.get("train_mode"),
                           "previous_task_id": init.get("task_id")})
    trainer = cls(train_type=init.get("train_type") or "", dataset=dataset_of(steps["LoadDataSetAction"]),
                  train_config=TrainConfig(**_given(dict(init.get("train_config") or {}))),
                  deploy_config=DeployConfig(**dc) if deploy is not None else None,
                  name=init.get("job_name") or "", model_not_publish="ModelPublishAction" not in steps,
                  id=meta.get("id"), **train_kwargs, **kwargs)
    records = [_record(type(a).__name__, steps.get(type(a).__name__) or {}, a.id) for a in trainer.ppl.steps]
    ids = [r["id"] for r in records]
    current = ids.index(meta["current_action"]) if meta.get("current_action") in ids else 0
    trainer.ppl.restore_actions(records, current)
    return trainer


def _record(kind: str, action: dict[str, Any], default_id: str) -> dict[str, Any]:
    """qfnb's record of one official action: done when it has an output."""
    output = action.get("output") if isinstance(action.get("output"), dict) else None
    extra: dict[str, Any] = {}
    if kind == "TrainAction":
        init = action.get("init_params") or {}
        extra = _given({"job_id": action.get("job_id") or init.get("job_id"),
                        "task_id": action.get("task_id") or init.get("task_id"), "input": action.get("input")})
    return {"id": action.get("id") or default_id, "type": kind, "state": "Done" if output else None,
            "output": output, "error": None, "extra": extra}


def to_file(trainer: FinetuneRun, file: str | Path) -> Path:
    """Write ``trainer``'s pipeline as the official SDK's file (read back by ``Finetune.load(file=)``)."""
    actions: list[dict[str, Any]] = []
    for a in trainer.ppl.steps:
        base = {"id": a.id, "type": type(a).__name__, "output": _plain(a.output)}
        if isinstance(a, LoadDataSetAction):
            base["datasets"] = _loaded(a, trainer)
        elif isinstance(a, TrainAction):
            base.update(job_id=a.job_id, task_id=a.task_id, input=a.extra.get("input"),
                        status=a.extra.get("run_status"), progress=a.extra.get("progress"),
                        vdl_link=a.extra.get("vdl_link"), init_params={
                            "train_mode": a.train_mode, "train_type": a.train_type,
                            "train_config": a.train_config.model_dump(mode="json", exclude_none=True),
                            "is_incr": a.is_incr, "job_name": a.job_name, "task_id": a.increment_task_id})
        elif isinstance(a, ModelPublishAction):
            base["input"] = {k: (a.output or {}).get(k) for k in ("task_id", "job_id")}
            base["model_id"] = (a.output or {}).get("model_version_id")
        elif isinstance(a, DeployAction):
            base["init_params"] = {"deploy_config": a.deploy_config.model_dump(mode="json")}
        actions.append(base)
    meta = {"id": trainer.id, "current_action": trainer.ppl.current_action, "actions": actions,
            "case_init_params": {"case_type": "Finetune"}}
    path = Path(file)
    path.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def _plain(output: dict[str, Any] | None) -> dict[str, Any] | None:
    """An output without qfnb's objects (``model`` as a dict is dropped, as officially)."""
    return None if output is None else {k: v for k, v in output.items() if k != "model"}


def _loaded(action: Any, trainer: FinetuneRun) -> dict[str, Any] | None:
    """The datasetConfig the load step made (or, before it ran, the platform ids it was given)."""
    if action.output and action.output.get("datasets") is not None:
        return dataset_config(action.output["datasets"], trainer.train_config.trainset_rate)
    ds = action.dataset
    if isinstance(ds, str) and ds.startswith("bos:/"):
        return {"sourceType": "Bos", "versions": [{"versionBosUri": ds}]}
    ident = getattr(ds, "qianfan_dataset_id", ds)
    return {"sourceType": "Platform", "versions": [{"versionId": ident}]} if isinstance(ident, int | str) else None
