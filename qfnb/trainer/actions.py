"""Pipeline actions: load dataset → train → publish → deploy → evaluate.

Each action is async, JSON-in/JSON-out (so the pipeline can persist and resume), and keeps
the platform ids it created in ``self.extra`` (saved before polling starts, so a resumed
action re-attaches instead of creating a second job).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.poll import apoll_until
from qfnb.protocol.console import RunStatus
from qfnb.resources.console import FineTune

from .configs import DeployConfig, TrainConfig
from .consts import ActionState
from .event import Event, EventHandler, dispatch_event

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

logger = logging.getLogger("qfnb.trainer")

#: Retries of a failing ``DescribeFineTuningTask`` poll, and the first backoff (doubles).
POLL_RETRIES = 3
POLL_BACKOFF_S = 3.0


class TrainerStopped(QfnbError):
    """The pipeline was stopped by :meth:`LLMFinetune.stop`."""


class TrainFailedError(QfnbError):
    """The platform reported the training task as failed."""


class RunContext:
    """What actions share while running: config, events, persistence, stop flag."""

    def __init__(self, config: Config | None, handler: EventHandler | None,
                 save: Callable[[], None]) -> None:
        self.config = config
        self.handler = handler
        self.save = save
        self.stop_flag = threading.Event()

    def resolved(self) -> Config:
        from qfnb._core.config import resolve_config

        return resolve_config(self.config)

    def check_stop(self) -> None:
        if self.stop_flag.is_set():
            raise TrainerStopped("the trainer was stopped")

    async def sleep(self, seconds: float) -> None:
        """Sleep without blocking the loop, waking early (and raising) when stopped."""
        end = asyncio.get_running_loop().time() + seconds
        while True:
            self.check_stop()
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.1))


class BaseAction:
    """An atomic, resumable step of a :class:`Pipeline`."""

    def __init__(self, id: str | None = None, event_handler: EventHandler | None = None) -> None:
        self.id = id or f"{type(self).__name__}_{uuid.uuid4().hex[:8]}"
        self.event_handler = event_handler
        self.state: ActionState | None = None
        self.output: dict[str, Any] | None = None
        self.error: str | None = None
        self.extra: dict[str, Any] = {}
        self.ctx: RunContext | None = None

    async def exec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        raise NotImplementedError

    async def on_stop(self, ctx: RunContext) -> None:
        """Called when stopped while running (cancel the platform job, if any)."""

    def emit(self, state: ActionState, description: str = "", data: dict[str, Any] | None = None) -> None:
        self.state = state
        ctx = self.ctx
        event = Event(type(self).__name__, self.id, state, description, dict(data or {}))
        dispatch_event(ctx.handler if ctx else None, event)
        if self.event_handler is not None and (ctx is None or self.event_handler is not ctx.handler):
            dispatch_event(self.event_handler, event)

    def action_event(self, state: ActionState, msg: str = "", data: dict[str, Any] | None = None) -> None:
        """Official-SDK spelling of :meth:`emit`."""
        self.emit(state, msg, data)

    def action_error_event(self, e: Exception) -> None:
        self.emit(ActionState.Error, f"{type(e).__name__}: {e}")

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "type": type(self).__name__,
                "state": self.state.value if self.state else None, "output": self.output,
                "error": self.error, "extra": self.extra}

    def restore(self, rec: dict[str, Any]) -> None:
        self.id = rec.get("id", self.id)
        self.state = ActionState(rec["state"]) if rec.get("state") else None
        self.output = rec.get("output")
        self.error = rec.get("error")
        self.extra = dict(rec.get("extra") or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, state={self.state})"


class LoadDataSetAction(BaseAction):
    """Make sure the dataset is on the platform (upload + release) and describe it for training."""

    def __init__(self, dataset: Any = None, event_handler: EventHandler | None = None, *,
                 split_ratio: int = 20, id: str | None = None) -> None:
        super().__init__(id, event_handler)
        if dataset is None:
            raise ValidationError("dataset", "is required")
        self.dataset = dataset
        self.split_ratio = split_ratio

    async def exec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from qfnb.dataset import Dataset
        from qfnb.dataset._platform import release_if_needed

        ds = self.dataset
        if isinstance(ds, str) and ds.startswith("bos:/"):
            versions: list[dict[str, Any]] = [{"versionBosUri": ds}]
            source = "Bos"
        else:
            if isinstance(ds, Dataset) and ds.qianfan_dataset_id is None:
                self.emit(ActionState.Running, "uploading dataset", {"rows": len(ds)})
                await ds.asave(qianfan_dataset_create_args={"name": f"ds_{uuid.uuid4().hex[:10]}"},
                               config=ctx.config)
                dataset_id = ds.qianfan_dataset_id
            elif isinstance(ds, Dataset):
                dataset_id = ds.qianfan_dataset_id
                await release_if_needed(dataset_id, ctx.config)  # type: ignore[arg-type]
            elif isinstance(ds, int | str) and ds != "":
                dataset_id = ds
                await release_if_needed(dataset_id, ctx.config)
            else:
                raise ValidationError("dataset", "must be a qfnb Dataset, a platform dataset id "
                                      f"or a bos:/ URI, got {type(ds).__name__}")
            versions = [{"versionId": dataset_id}]
            source = "Platform"
            self.extra["dataset_id"] = dataset_id
        return {**input, "datasets": {"sourceType": source, "versions": versions,
                                      "splitRatio": self.split_ratio}}


class TrainAction(BaseAction):
    """v2 ``CreateFineTuningJob`` + ``CreateFineTuningTask``, then poll until the run ends."""

    def __init__(self, train_type: str | None = None, train_config: TrainConfig | None = None,
                 base_model: str | None = None, task_id: str | None = None, job_id: str | None = None,
                 train_mode: str | None = "SFT", *, job_name: str | None = None,
                 event_handler: EventHandler | None = None, id: str | None = None) -> None:
        super().__init__(id, event_handler)
        train_type = train_type or base_model or ""
        if job_id:  # attach to an existing job (and to a run, when task_id is given too)
            self.extra["job_id"] = job_id
        if task_id:
            self.extra["task_id"] = task_id
        if not train_type:
            raise ValidationError("train_type", "the base model to fine-tune is required")
        self.train_type = train_type
        self.train_config = train_config or TrainConfig()
        self.train_mode = str(train_mode or "SFT")
        self.job_name = job_name

    @property
    def job_id(self) -> str | None:
        return self.extra.get("job_id")

    @property
    def task_id(self) -> str | None:
        return self.extra.get("task_id")

    async def exec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        cfg = ctx.resolved()
        if "datasets" not in input:
            raise ValidationError("datasets", "TrainAction needs the output of LoadDataSetAction")
        if self.job_id is None:
            resp = await FineTune.V2.acreate_job(
                name=self.job_name or f"job_{uuid.uuid4().hex[:10]}", model=self.train_type,
                train_mode=self.train_mode, config=ctx.config)
            self.extra["job_id"] = resp.body["result"]["jobId"]
            ctx.save()
        if self.extra.get("run_status") in (RunStatus.FAILED, RunStatus.STOPPED):
            # a run that ended badly is not re-attached to: a resume starts a new run
            self.extra.pop("task_id", None)
            self.extra.pop("run_status", None)
        if self.task_id is None:
            ctx.check_stop()
            resp = await FineTune.V2.acreate_task(
                job_id=self.job_id, params_scale=self.train_config.peft_type,
                hyper_params=self.train_config.hyper_parameters(), dataset_config=input["datasets"],
                resource_config=self.train_config.resource_config, config=ctx.config)
            self.extra["task_id"] = resp.body["result"]["taskId"]
            ctx.save()
            logger.info("training task %s (job %s) created", self.task_id, self.job_id)
        detail = await self._poll(ctx, cfg.train_status_polling_interval)
        return {**input, "job_id": self.job_id, "task_id": self.task_id,
                "metrics": detail.get("metrics") or {}, "checkpoints": detail.get("checkpointList") or []}

    async def _observe(self, ctx: RunContext) -> dict[str, Any]:
        """One poll: read the run's detail, record it, tell the handlers."""
        resp = await FineTune.V2.atask_detail(task_id=self.task_id, config=ctx.config)
        detail = dict(resp.body.get("result") or {})
        status = detail.get("runStatus") or ""
        self.extra["progress"] = detail.get("runProgress")
        self.extra["run_status"] = status
        self.extra["vdl_link"] = detail.get("vdlLink")
        self.emit(ActionState.Running, f"training {status or 'pending'}", detail)
        ctx.save()
        return detail

    def _ended(self, detail: dict[str, Any]) -> bool:
        status = detail.get("runStatus") or ""
        if status == RunStatus.FAILED:
            msg = detail.get("errorMessage") or "no reason given"
            raise TrainFailedError(f"training task {self.task_id} failed: {msg}")
        if status == RunStatus.STOPPED:
            raise TrainerStopped(f"training task {self.task_id} was stopped on the platform")
        return bool(status == RunStatus.DONE)

    async def _poll(self, ctx: RunContext, interval: float) -> dict[str, Any]:
        ctx.check_stop()  # later stops wake ``ctx.sleep`` between polls
        return await apoll_until(lambda: self._observe(ctx), self._ended, interval=interval,
                                 what=f"training task {self.task_id}", retries=POLL_RETRIES,
                                 backoff=POLL_BACKOFF_S, sleep=ctx.sleep, stop=lambda: self.on_stop(ctx))

    async def on_stop(self, ctx: RunContext) -> None:
        if self.task_id and self.extra.get("run_status") not in (RunStatus.DONE, RunStatus.FAILED,
                                                                 RunStatus.STOPPED):
            try:
                await FineTune.V2.astop_task(task_id=self.task_id, config=ctx.config)
            except QfnbError as exc:
                logger.warning("could not stop training task %s: %s", self.task_id, exc)
            else:
                self.extra["run_status"] = RunStatus.STOPPED


class ModelPublishAction(BaseAction):
    """Publish the finished run to the model repository and wait until it is Ready."""

    def __init__(self, id: str | None = None, name: str | None = None,
                 event_handler: EventHandler | None = None) -> None:
        super().__init__(id, event_handler)
        self.name = name or ""

    async def exec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from qfnb.model import Model

        saved = self.extra.get("model")
        model = (Model.from_dict(saved, config=ctx.config) if saved else
                 Model(task_id=input.get("task_id"), job_id=input.get("job_id"), config=ctx.config))
        if model.version_id is None:
            model.name = self.name or model.name or f"m_{uuid.uuid4().hex[:12]}"
            await model.apublish(model.name, tick=self._tick)
        else:  # resumed after publishing: just wait for Ready
            await model.await_ready(tick=self._tick)
        self.extra["model"] = model.to_dict()
        return {**input, "model_id": model.id, "model_version_id": model.version_id,
                "model_set_id": model.model_set_id, "model": model.to_dict()}

    async def _tick(self, info: dict[str, Any]) -> None:
        self.emit(ActionState.Running, f"model {info.get('state')}", info)
        if self.ctx:
            self.ctx.check_stop()


class DeployAction(BaseAction):
    """Deploy the published model as a service and wait until it serves."""

    def __init__(self, deploy_config: DeployConfig | None = None, id: str | None = None,
                 event_handler: EventHandler | None = None) -> None:
        super().__init__(id, event_handler)
        if not isinstance(deploy_config, DeployConfig):
            raise ValidationError("deploy_config", "must be a qfnb.trainer.DeployConfig")
        self.deploy_config = deploy_config

    async def exec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from qfnb.model import Model, Service

        model = Model.from_dict(input.get("model") or {}, config=ctx.config)
        saved = self.extra.get("service_id")
        if saved is not None:  # resumed: the service exists, wait for it
            service = Service(id=saved, model=model, deploy_config=self.deploy_config,
                              service_type=self.deploy_config.service_type, config=ctx.config)
            await service.await_serving(tick=self._tick)
            model.service = service
        else:
            service = await model.adeploy(self.deploy_config, tick=self._tick)
        return {**input, "service_id": service.id, "service_endpoint": service.endpoint,
                "model": model.to_dict()}

    async def _tick(self, info: dict[str, Any]) -> None:
        if info.get("serviceId") is not None:
            self.extra["service_id"] = info["serviceId"]
            if self.ctx:
                self.ctx.save()
        self.emit(ActionState.Running, f"service {info.get('runStatus')}", info)
        if self.ctx:
            self.ctx.check_stop()


class EvaluateAction(BaseAction):
    """Evaluate the deployed service (or model) with ``EvaluationManager``."""

    def __init__(self, eval_dataset: Any, evaluators: list[Any], id: str | None = None,
                 event_handler: EventHandler | None = None) -> None:
        super().__init__(id, event_handler)
        if not evaluators:
            raise ValidationError("evaluators", "give at least one evaluator")
        self.eval_dataset = eval_dataset
        self.evaluators = list(evaluators)
        self.result: Any = None

    async def exec(self, input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from qfnb.evaluation import EvaluationManager, LocalEvaluator
        from qfnb.model import Model

        model = Model.from_dict(input.get("model") or {}, config=ctx.config)
        target: Any = model.service or model
        local = [e for e in self.evaluators if isinstance(e, LocalEvaluator)]
        manager = (EvaluationManager(local_evaluators=local) if len(local) == len(self.evaluators)
                   else EvaluationManager(qianfan_evaluators=self.evaluators))
        if hasattr(self.eval_dataset, "afetch"):
            await self.eval_dataset.afetch()
        self.emit(ActionState.Running, "evaluating", {"evaluators": [type(e).__name__ for e in self.evaluators]})
        self.result = await manager.aeval([target], self.eval_dataset)
        metrics = {str(k): dict(v) for k, v in getattr(self.result, "metrics", {}).items()}
        return {**input, "eval_metrics": metrics}
