"""Replaying a fine-tune: an identical finished run on the same platform is reused, not trained again.

A fine-tune's *recipe* is what decides the model it makes: the base model, train mode and PEFT
type, the training data's content (a sha256 of its rows; a platform dataset by its id), every
hyper-parameter (the seed included), the split, the run it continues and the name it was given.
Its :func:`fingerprint` goes into the description of the job qfnb creates (``qfnb-recipe:<fp>``),
so the platform itself remembers which runs made which recipe — on the cloud as locally.

Before training, with replay on (in a notebook after ``%load_ext qfnb``; in the plain SDK with
``LLMFinetune(replay=True)`` or ``QFNB_CACHE=1``), :func:`afind` asks the platform's console API for a
``Done`` run of a job carrying the fingerprint, the model published from it and a service serving that
model, and :func:`apply` marks those steps done: nothing is uploaded, trained, published or deployed
again, and the endpoint is the one the notebook already used (so its cached answers stay valid).
``--fresh`` (``replay=False``) trains again.

Nothing that is not Done is reused: a failed, stopped or running run never counts, and a model
that is not Ready or a service that is not Serving is made anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import QfnbError
from qfnb._core.record.cache import mode_for
from qfnb.model import Model
from qfnb.model.jobs import result_of
from qfnb.protocol.console.enums import ModelVersionState, RunStatus, ServiceStatus
from qfnb.resources.console import FineTune
from qfnb.resources.console import Model as ModelAPI
from qfnb.resources.console import Service as ServiceAPI

from ..actions import DeployAction, ModelPublishAction, TrainAction, checkpoint_outcome
from ..configs import DatasetConfig
from ..consts import ActionState
from ..steps.accounting import record_training
from ..steps.load_action import LoadDataSetAction
from .finetune_run import FinetuneRun

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

    from .._action import RunContext

__all__ = ["MARK", "Reuse", "afind", "apply", "aprepare", "fingerprint", "model_name", "wanted"]

logger = logging.getLogger("qfnb.trainer.records.replay")

#: what the job's description carries: ``qfnb-recipe:<fingerprint>``
MARK = "qfnb-recipe:"
#: how many pages of jobs (100 each) are searched for a recipe, newest first
MAX_PAGES = 10


def wanted(replay: bool | None, config: Config) -> bool:
    """Whether a run looks for a finished twin: ``replay`` when given, else whether the response
    cache is on for its calls (a notebook after ``%load_ext qfnb``; ``QFNB_CACHE=1``; ``cache=``)."""
    if replay is not None:
        return replay

    return mode_for(config.cache) == "on"


def _data_digest(ds: Any) -> str | None:
    """The content of one training dataset: its rows' sha256, a platform dataset's id, a BOS URI."""
    from qfnb.dataset import Dataset  # deferred: loads pandas (`import qfnb.trainer` does not)

    if isinstance(ds, Dataset):
        if ds.qianfan_dataset_id is not None:
            return f"platform:{ds.qianfan_dataset_id}"
        text = json.dumps(ds.to_pylist(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        return "rows:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    if isinstance(ds, int | str) and not isinstance(ds, bool) and ds != "":
        return f"ref:{ds}"
    return None


def fingerprint(trainer: FinetuneRun) -> str | None:
    """The recipe's sha256 (24 hex digits), or None when it cannot be named (unknown data, a reward function)."""
    data = trainer.dataset
    if isinstance(data, DatasetConfig):
        items = [_data_digest(d) for d in data.datasets]
        extra = data.model_dump(mode="json", exclude={"datasets"})
    else:
        items, extra = [_data_digest(data)], {}
    if any(i is None for i in items):
        return None
    action = trainer.train_action
    if callable(action.reward):  # a RFT run scored by a function: code cannot be named, never reused
        return None
    recipe = {"base": (action.train_type or "").lower(), "mode": action.train_mode,
              "config": trainer.train_config.model_dump(mode="json", exclude_none=True),
              "hyper": trainer.train_config.hyper_parameters(), "data": items, "data_options": extra,
              "continues": action.increment_task_id, "checkpoint": action.increment_checkpoint_step,
              "corpus": action.corpus_config, "extras": action.train_extras, "name": trainer.name or ""}
    text = json.dumps(recipe, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def model_name(trainer: FinetuneRun, fp: str) -> str:
    """The name the run's model is published under: the trainer's, else one made of the recipe."""
    return trainer.name or f"m_{fp[:16]}"


@dataclass(frozen=True)
class Reuse:
    """What :func:`afind` found for a recipe on the platform."""

    fingerprint: str
    job_id: str
    task_id: str
    detail: dict[str, Any]
    #: the published model (:meth:`qfnb.model.Model.to_dict`), when one of this run is Ready
    model: dict[str, Any] | None = None
    #: ``{"service_id", "service_endpoint"}`` of a service serving that model
    service: dict[str, Any] | None = None

    @property
    def finished(self) -> str:
        return str(self.detail.get("finishDate") or self.detail.get("finishTime") or "")

    def describe(self) -> str:
        """One line for the dashboard and the log."""
        when = f", finished {self.finished}" if self.finished else ""
        what = ["training"] + (["publish"] if self.model else []) + (["deploy"] if self.service else [])
        return (f"reused finished run {self.task_id} (job {self.job_id}{when}): same base model, data, "
                f"hyper-parameters, seed and name; skipped {', '.join(what)} · --fresh trains again")

    def as_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "job_id": self.job_id, "task_id": self.task_id,
                "finished": self.finished, "model": self.model, "service": self.service,
                "note": self.describe()}


async def _pages(fetch: Callable[[str | None], Awaitable[Any]], key: str) -> list[dict[str, Any]]:
    """Every item of a ``marker``-paged v2 listing (at most :data:`MAX_PAGES` pages)."""
    items: list[dict[str, Any]] = []
    marker: str | None = None
    for _ in range(MAX_PAGES):
        page = result_of(await fetch(marker))
        items.extend(i for i in page.get(key) or [] if isinstance(i, dict))
        info = page.get("pageInfo") or {}
        marker = info.get("nextMarker") if info.get("isTruncated") else None
        if not marker:
            break
    return items


async def _tasks(job_id: str, ctx: RunContext) -> list[dict[str, Any]]:
    return await _pages(lambda m: FineTune.V2.atask_list(job_id=job_id, marker=m, max_keys=100, page_reverse=True,
                                                         config=ctx.config), "taskList")


async def _finished_run(fp: str, ctx: RunContext) -> tuple[str, dict[str, Any]] | None:
    """The newest Done run of a job carrying the recipe: ``(job_id, task detail)``. Jobs are not
    filtered by model on the platform: a base model may be asked for by another of its names."""
    jobs = await _pages(lambda m: FineTune.V2.ajob_list(marker=m, max_keys=100, page_reverse=True,
                                                        config=ctx.config), "jobList")
    for job in jobs:
        if MARK + fp not in str(job.get("description") or ""):
            continue
        job_id = str(job.get("jobId"))
        for task in await _tasks(job_id, ctx):
            if task.get("runStatus") == RunStatus.DONE.value and task.get("taskId"):
                detail = result_of(await FineTune.V2.atask_detail(task_id=str(task["taskId"]), config=ctx.config))
                if detail.get("runStatus") == RunStatus.DONE.value:
                    return job_id, {**task, **detail}
    return None


async def _published(name: str, job_id: str, task_id: str, ctx: RunContext) -> dict[str, Any] | None:
    """A Ready model version published from run ``task_id`` in model set ``name``."""

    try:
        model_set = result_of(await ModelAPI.V2.adescribe_model_set(model_set_name=name, config=ctx.config))
    except QfnbError:  # no model set of that name
        return None
    for version_id in reversed([str(v) for v in model_set.get("modelIds") or []]):
        info = result_of(await ModelAPI.V2.adescribe_model(version_id, config=ctx.config))
        source = info.get("sourceInfo") or {}
        if str(source.get("trainTaskId")) == task_id and info.get("state") == ModelVersionState.READY.value:
            model = Model(job_id=job_id, task_id=task_id, config=ctx.config)
            model.model_set_id, model.version_id_str = str(model_set.get("modelSetId")), version_id
            model.name = name
            model.set_id, model.version_id = await _v1_ids(version_id, ctx) or (None, version_id)
            return model.to_dict()
    return None


async def _v1_ids(version_sid: str, ctx: RunContext) -> tuple[Any, Any] | None:
    """The v1 ids (``modelId``, ``modelVersionId``) of a v2 model version id (``modelVersionDetail``);
    None where the platform does not answer it by that id (then the v2 id stands for both)."""
    try:
        info = result_of(await ModelAPI.adetail(version_sid, config=ctx.config))
    except QfnbError:
        return None
    if info.get("modelId") is None or info.get("modelVersionId") is None:
        return None
    return info["modelId"], info["modelVersionId"]


async def _serving(model: dict[str, Any], ctx: RunContext) -> dict[str, Any] | None:
    """A service serving that model version: ``{"service_id", "service_endpoint"}``."""
    version = str(model.get("version_id_str") or "")
    services = await _pages(lambda m: ServiceAPI.V2.aservice_list(marker=m, max_keys=100, page_reverse=True,
                                                                  config=ctx.config), "serviceList")
    for svc in services:
        if str(svc.get("modelId")) == version and svc.get("runStatus") == ServiceStatus.SERVING.value:
            url = str(svc.get("url") or "").rstrip("/")
            if url:
                return {"service_id": svc.get("serviceId"), "service_endpoint": url.rsplit("/", 1)[-1]}
    return None


async def afind(trainer: FinetuneRun, fp: str, ctx: RunContext) -> Reuse | None:
    """The platform's finished run of this recipe, and what was published and deployed from it."""
    found = await _finished_run(fp, ctx)
    if found is None:
        return None
    job_id, detail = found
    task_id = str(detail.get("taskId"))
    model = service = None
    if not trainer.model_not_publish:
        model = await _published(model_name(trainer, fp), job_id, task_id, ctx)
        if model is not None:  # serving already (deployed by an earlier run): it says so, and offers no Deploy
            service = await _serving(model, ctx)
    return Reuse(fp, job_id, task_id, detail, model, service)


def apply(trainer: FinetuneRun, reuse: Reuse, ctx: RunContext) -> None:
    """Mark the steps the platform already did as done, with the outputs they had (each tells the
    run's handlers, so a dashboard shows the reused run's curve and says what was reused)."""
    out: dict[str, Any] = {"datasets": [], "replayed": reuse.as_dict()}
    for i, action in enumerate(trainer.ppl.steps):
        if isinstance(action, LoadDataSetAction):
            pass
        elif isinstance(action, TrainAction):
            action.ctx = ctx
            action.extra.update(job_id=reuse.job_id, task_id=reuse.task_id, run_status=RunStatus.DONE.value)
            detail = reuse.detail
            out = {**out, "job_id": reuse.job_id, "task_id": reuse.task_id, "metrics": detail.get("metrics") or {},
                   **checkpoint_outcome(detail)}
            action.emit(ActionState.Running, reuse.describe(), {**reuse.detail, "replayed": reuse.as_dict()})
        elif isinstance(action, ModelPublishAction) and reuse.model is not None:
            action.extra["model"] = reuse.model
            model = reuse.model
            out = {**out, "model_id": model.get("set_id"), "model_version_id": model.get("version_id"),
                   "model_set_id": model.get("model_set_id"), "model": model}
        elif isinstance(action, DeployAction) and reuse.service is not None:
            action.extra["service_id"] = reuse.service["service_id"]
            out = {**out, **reuse.service}
        else:
            break
        action.ctx = ctx
        action.output = dict(out)
        action.emit(ActionState.Done, f"{type(action).__name__} reused", action.output)
        trainer.ppl.current = i
    record_training(reuse.detail, trainer.train_action.train_type, ctx.resolved(), reused=True)
    logger.info("%s", reuse.describe())


async def aprepare(trainer: FinetuneRun, ctx: RunContext) -> Reuse | None:
    """Before a new run: mark its job with its recipe, name its model after it (unless named), and
    with replay on reuse what the platform already did for it. A resume goes on with what it
    started (nothing is looked up); so does a recipe that cannot be named."""
    if any(a.state is not None for a in trainer.ppl.steps):
        return None
    fp = fingerprint(trainer)
    if fp is None:
        return None
    trainer.train_action.description = MARK + fp
    publish = next((a for a in trainer.ppl.steps if isinstance(a, ModelPublishAction)), None)
    if publish is not None and not publish.name:
        publish.name = model_name(trainer, fp)
    if not wanted(trainer.replay, ctx.resolved()):
        return None
    found = await afind(trainer, fp, ctx)
    if found is not None:
        apply(trainer, found, ctx)
    return found
