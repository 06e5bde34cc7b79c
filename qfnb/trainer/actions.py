"""Pipeline actions: load dataset → train → publish → deploy → evaluate.

Each built-in action is async (:class:`AsyncAction`), JSON-in/JSON-out (so the pipeline can
persist and resume), and keeps the platform ids it created in ``self.extra`` (saved before
polling starts, so a resumed action re-attaches instead of creating a second job). Their
constructors take the official SDK's ``**kwargs``; those qfnb has no use for are warned about
once (:func:`warn_ignored`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from qfnb._core.errors import InternalServerError, QfnbError, RequestError, ValidationError
from qfnb._core.http.recording.train_hold import hold_training, holding, keep, worst_case_tokens
from qfnb._core.runtime.poll import apoll_until
from qfnb.model import Model, Service
from qfnb.model.jobs import result_of
from qfnb.protocol.console import checkpoints, train_formats
from qfnb.protocol.console.enums import RunStatus
from qfnb.protocol.console.train_ask import AskError, TrainAsk, v2_data
from qfnb.protocol.console.train_modes import REWARDED, mode_row
from qfnb.resources.console import FineTune
from qfnb.resources.console.sending.account import console_v2, require_iam_keys

from ._action import AsyncAction, BaseAction, RunContext, TrainerStopped
from .configs import DeployConfig, TrainConfig
from .consts import ActionState
from .event import EventHandler
from .settings.model_info import get_default_train_config
from .steps.accounting import record_training
from .steps.load_action import LoadDataSetAction, dataset_config, warn_ignored
from .steps.rewards import RewardFunctionError, RewardProvider, resolve_reward, reward_source

logger = logging.getLogger("qfnb.trainer")

#: Retries of a failing ``DescribeFineTuningTask`` poll, and the first backoff (doubles).
POLL_RETRIES = 3
POLL_BACKOFF_S = 3.0

__all__ = ["AsyncAction", "BaseAction", "DeployAction", "EvaluateAction", "LoadDataSetAction",
           "ModelPublishAction", "RunContext", "TrainAction", "TrainFailedError", "TrainerStopped"]


#: reads of a run stopped from here, ``STOP_READ_S`` apart, waiting for it to end (settled on its tokens)
STOP_READS, STOP_READ_S = 10, 0.5


class TrainFailedError(InternalServerError):
    """The platform reported the training task as failed (an ``InternalError``, the class the
    official SDK raises for it)."""

    def __init__(self, message: str) -> None:
        RequestError.__init__(self, message)
        self.error_code, self.error_msg, self.status_code = "TrainFailed", message, 200

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error_msg,))


class TrainAction(AsyncAction):
    """v2 ``CreateFineTuningJob`` + ``CreateFineTuningTask``, then poll until the run ends.

    Input ``{"datasets": [{"id": 111, "type": 1}]}``; output ``{..., "task_id", "job_id"}``.
    ``**kwargs``: ``peft_type=`` sets the train config's ``peft_type``; ``job_name=``/``name=``
    the job's name; ``id=``, ``event_handler=`` as for every action; others are warned about once.
    """

    is_incr: bool = False

    def __init__(self, train_type: str | None = None, train_config: TrainConfig | None = None,
                 base_model: str | None = None, task_id: str | int | None = None,
                 job_id: str | int | None = None, train_mode: str | None = None,
                 **kwargs: Any) -> None:
        own = {k: kwargs.pop(k) for k in ("job_name", "peft_type") if k in kwargs}
        #: incremental training: the run to continue from (``previous_task_id=``, as LLMFinetune's)
        self.increment_task_id = kwargs.pop("increment_task_id", None) or kwargs.pop("previous_task_id", None)
        self.increment_checkpoint_step = kwargs.pop("increment_checkpoint_step", None)
        corpus = kwargs.pop("corpus_config", None)
        self.corpus_config = corpus.to_wire() if hasattr(corpus, "to_wire") else corpus
        self.train_extras: dict[str, Any] = dict(kwargs.pop("train_extras", None) or {})
        reward = kwargs.pop("reward", None)
        self.is_incr = bool(kwargs.pop("is_incr", False)) or self.increment_task_id is not None
        #: the run's forecast trained tokens (``%qftrain``'s forecast of its file), held against the budget at create
        self.forecast_tokens: int | None = kwargs.pop("forecast_tokens", None)
        if self.forecast_tokens is not None and (isinstance(self.forecast_tokens, bool)
                                                 or not isinstance(self.forecast_tokens, int)
                                                 or self.forecast_tokens < 0):
            raise ValidationError("forecast_tokens", f"must be an int >= 0, got {self.forecast_tokens!r:.40}")
        if self.is_incr and self.increment_task_id is None:
            logger.warning("TrainAction: is_incr=True without previous_task_id: training from the base model")
        warn_ignored("TrainAction", kwargs)
        super().__init__(**kwargs)
        train_type = train_type or base_model or ""
        self.job_id = job_id or None  # attach to an existing job (and to a run, when task_id is given too)
        self.task_id = task_id or None
        if not train_type and self.increment_task_id is None:
            raise ValidationError("train_type", "the base model to fine-tune is required (or previous_task_id=)")
        self.train_type = train_type
        self.base_model = base_model or train_type
        self.train_config = train_config or TrainConfig()
        if own.get("peft_type"):
            self.train_config = self.train_config.model_copy()
            self.train_config.peft_type = own["peft_type"]  # validated (validate_assignment)
        try:
            self.train_mode = train_formats.train_mode(train_mode)
        except ValueError as exc:
            raise ValidationError("train_mode", str(exc).removeprefix("train_mode: ")) from None
        #: a RFT run's reward: the user's function (scored in this process) or a declarative grader
        self.reward = _rft_reward(reward, self.train_mode, self.train_extras)
        self.job_name = own.get("job_name") or kwargs.get("name")
        #: the job's description (qfnb's recipe mark, :mod:`qfnb.trainer.records.replay`)
        self.description: str | None = None
        #: the detail of the run seen failed or stopped (settled on its trained tokens)
        self._ended_detail: dict[str, Any] | None = None

    def get_default_train_config(self, model_type: str | None = None, train_mode: str | None = None,
                                 peft_type: str | None = None) -> TrainConfig:
        """The platform's default train config of ``model_type`` (this action's model) for
        ``peft_type`` (default: the first it lists), from ``FineTune.V2.supported_models``; an
        empty ``TrainConfig`` (every value left to the platform) when it lists none. qfnb sends
        that empty one when no config is given: the platform fills in the same defaults."""

        table = get_default_train_config(train_mode or self.train_mode).get(model_type or self.train_type) or {}
        if not table:
            return TrainConfig()
        key = next((k for k in table if k == peft_type), sorted(table)[0])
        return table[key].model_copy(deep=True)

    def resume(self, **kwargs: Any) -> None:
        """Re-attach to this action's training task (or start it) and wait until it ends."""
        self.exec(self.extra.get("input") or {}, **kwargs)

    @property
    def job_id(self) -> str | None:
        return self.extra.get("job_id")

    @job_id.setter
    def job_id(self, value: str | int | None) -> None:
        """Attach to an existing fine-tune job (as officially: ``action.job_id = ...``)."""
        self._set_id("job_id", value)

    @property
    def task_id(self) -> str | None:
        return self.extra.get("task_id")

    @task_id.setter
    def task_id(self, value: str | int | None) -> None:
        """Attach to an existing training run: a resume polls it instead of starting one."""
        self._set_id("task_id", value)

    def _set_id(self, key: str, value: str | int | None) -> None:
        if value is None:
            self.extra.pop(key, None)
        elif isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
            raise ValidationError(key, f"must be a platform id (str or int), got {value!r}")
        else:
            self.extra[key] = str(value)  # the console takes ids as strings

    async def aexec(self, input: dict[str, Any] | None, ctx: RunContext) -> dict[str, Any]:
        cfg = ctx.resolved()
        if console_v2(cfg):  # the /v2/finetuning calls are IAM-signed: refused before anything is sent
            require_iam_keys(cfg)
        input = dict(input or {})
        if "datasets" not in input and (self.extra.get("input") or {}).get("datasets") is not None:
            input["datasets"] = self.extra["input"]["datasets"]  # a resume that starts here
        if "datasets" not in input and self.task_id is None:
            raise ValidationError("datasets", "TrainAction needs the output of LoadDataSetAction")
        datasets = self._datasets(input) if "datasets" in input else None  # checked before anything is sent
        if "datasets" in input:
            self.extra["input"] = {"datasets": input["datasets"]}
        if self.increment_task_id is not None and not self.extra.get("incr_checked"):
            await self._continue_from(ctx)
        await self._ensure_job(ctx)
        if self.extra.get("run_status") in (RunStatus.FAILED, RunStatus.STOPPED):
            # a run that ended badly is not re-attached to: a resume starts a new run
            self.extra.pop("task_id", None)
            self.extra.pop("run_status", None)
        if self.task_id is None:
            ctx.check_stop()
            datasets = datasets if datasets is not None else self._datasets(input)
            self.ask(datasets)  # the platform's one request, checked here: the body below is the official one
            await self._start_run(ctx, datasets)
        detail = await self._ended_run(ctx)
        return {**input, "job_id": self.job_id, "task_id": self.task_id,
                "metrics": detail.get("metrics") or {}, **checkpoint_outcome(detail)}

    async def _ensure_job(self, ctx: RunContext) -> None:
        """The fine-tune job the run goes in, created unless given or made before."""
        if self.job_id is None:
            job = await FineTune.V2.acreate_job(
                name=self.job_name or f"job_{uuid.uuid4().hex[:10]}", model=self.train_type,
                train_mode=self.train_mode, description=self.description, config=ctx.config)
            self.extra["job_id"] = job.parsed.result.job_id
            ctx.save()

    async def _start_run(self, ctx: RunContext, datasets: dict[str, Any]) -> None:
        """The run created, its forecast held against the budget first (``BudgetExceeded``: nothing is sent)."""
        cfg = ctx.resolved()
        hold = hold_training(self._forecast(), self.train_type, cfg, what=f"the fine-tune of {self.train_type}")
        try:
            with holding():  # held here: the console's create does not hold it again
                resp = await self._create_task(ctx, datasets)
        except BaseException:
            if hold is not None:
                hold.release()
            raise
        self.extra["task_id"] = resp.parsed.result.task_id
        keep(cfg, str(self.task_id), hold)
        ctx.save()
        logger.info("training task %s (job %s) created", self.task_id, self.job_id)

    async def _ended_run(self, ctx: RunContext) -> dict[str, Any]:
        """The run polled until it ends, and settled on its trained tokens however it ended."""
        cfg = ctx.resolved()
        try:
            detail = await self._poll_rewarded(ctx, cfg.train_status_polling_interval)
        except (TrainFailedError, TrainerStopped):
            if self._ended_detail is not None:  # a failed or stopped run trained too: settled on its tokens
                record_training(self._ended_detail, self.train_type, cfg, reused=False)
            raise
        record_training(detail, self.train_type, cfg, reused=False)
        return detail

    def _forecast(self) -> int:
        """The tokens held at create: the forecast given (``forecast_tokens``), else where ``max_steps`` bounds the
        run, its worst case (steps x batch x sequence length); else 0 (the run settles on its tokens at its end)."""
        if self.forecast_tokens is not None:
            return max(int(self.forecast_tokens), 0)
        return worst_case_tokens(self.train_config.hyper_parameters())

    async def _create_task(self, ctx: RunContext, datasets: dict[str, Any]) -> Any:
        return await FineTune.V2.acreate_task(
            job_id=self.job_id,  # type: ignore[arg-type]  # a None id: the builder refuses it
            params_scale=self.train_config.peft_type, hyper_params=self.train_config.hyper_parameters(),
            dataset_config=datasets,
            resource_config=self.train_config.resource_config, increment_task_id=self.increment_task_id,
            increment_checkpoint_step=self.increment_checkpoint_step, corpus_config=self.corpus_config,
            config=ctx.config, **self.train_extras)

    def ask(self, datasets: dict[str, Any]) -> TrainAsk:
        """This run as the one typed training request the platform runs (:class:`TrainAsk`): its mode, base,
        data (``datasets``: the v2 ``datasetConfig``) and hyperparameters, checked before anything is sent."""
        try:
            return TrainAsk.build(self.train_mode, self.train_type, v2_data(datasets, "datasets"),
                                  self.train_config.hyper_parameters(), "train_config", "train_mode",
                                  reward=self.train_extras.get("reward"), target=self.train_extras.get("target"),
                                  ray_workers=self.train_extras.get("rayTrainWorkers"))
        except AskError as exc:
            raise ValidationError(exc.field, exc.message) from None

    def _datasets(self, input: dict[str, Any]) -> dict[str, Any]:
        """The run's ``datasetConfig`` from LoadDataSetAction's output."""
        if "datasets" not in input:
            raise ValidationError("datasets", "TrainAction needs the output of LoadDataSetAction to start a run")
        datasets = dataset_config(input["datasets"], input.get("split_ratio", self.train_config.trainset_rate))
        if input.get("corpus_proportion") is not None:
            datasets = {**datasets, "corpusProportion": input["corpus_proportion"]}
        return datasets

    async def _continue_from(self, ctx: RunContext) -> None:
        """Incremental training: the previous run's model (and job, for the same train mode)."""
        resp = await FineTune.V2.atask_detail(task_id=self.increment_task_id, config=ctx.config)
        prev = resp.parsed.result
        self.train_type = self.train_type or prev.model
        if not self.train_type:
            raise ValidationError("previous_task_id", f"task {self.increment_task_id} names no model to continue")
        if prev.train_mode == self.train_mode and prev.job_id and "job_id" not in self.extra:
            self.extra["job_id"] = prev.job_id
        self.extra["incr_checked"] = True

    async def _observe(self, ctx: RunContext) -> dict[str, Any]:
        """One poll: read the run's detail, record it, tell the handlers."""
        detail = result_of(await FineTune.V2.atask_detail(task_id=self.task_id, config=ctx.config))  # type: ignore[arg-type]
        status = detail.get("runStatus") or ""
        self.extra["progress"] = detail.get("runProgress")
        self.extra["run_status"] = status
        self.extra["vdl_link"] = detail.get("vdlLink")
        self.emit(ActionState.Running, f"training {status or 'pending'}", detail)
        ctx.save()
        return detail

    def _ended(self, detail: dict[str, Any]) -> bool:
        status = detail.get("runStatus") or ""
        if status in (RunStatus.FAILED, RunStatus.STOPPED):
            self._ended_detail = detail
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

    async def _poll_rewarded(self, ctx: RunContext, interval: float) -> dict[str, Any]:
        """:meth:`_poll`, with the reward function (a RFT run's) scoring samples in this process meanwhile;
        a reward that failed is raised here, as itself."""
        if not callable(self.reward):
            return await self._poll(ctx, interval)

        def failed(exc: RewardFunctionError) -> None:
            self.emit(ActionState.Running, f"reward failed: {exc}", {"rewardError": str(exc)})

        provider = RewardProvider(self.reward, str(self.task_id), ctx.config, on_error=failed).start()
        try:
            return await self._poll(ctx, interval)
        except TrainFailedError:
            if provider.error is not None:
                raise provider.error from provider.error.__cause__
            raise
        finally:
            await provider.aclose()

    async def on_stop(self, ctx: RunContext) -> None:
        if self.task_id and self.extra.get("run_status") not in (RunStatus.DONE, RunStatus.FAILED,
                                                                 RunStatus.STOPPED):
            try:
                await FineTune.V2.astop_task(task_id=self.task_id, config=ctx.config)
            except QfnbError as exc:
                logger.warning("could not stop training task %s: %s", self.task_id, exc)
            else:
                self.extra["run_status"] = RunStatus.STOPPED
                await self._settle_stopped(ctx)

    async def _settle_stopped(self, ctx: RunContext) -> None:
        """A run stopped from here: settled on the tokens it trained once the platform says it ended (a few
        reads); one still stopping keeps its hold."""
        for _ in range(STOP_READS):
            try:
                detail = result_of(await FineTune.V2.atask_detail(task_id=self.task_id, config=ctx.config))  # type: ignore[arg-type]
            except QfnbError as exc:
                logger.warning("could not read stopped training task %s: %s", self.task_id, exc)
                return
            if detail.get("runStatus") in (RunStatus.DONE, RunStatus.FAILED, RunStatus.STOPPED):
                record_training(detail, self.train_type, ctx.resolved(), reused=False)
                return
            await asyncio.sleep(STOP_READ_S)


def _rft_reward(reward: Any, train_mode: str, extras: dict[str, Any]) -> Any:
    """``reward=`` checked (:func:`~qfnb.trainer.steps.rewards.resolve_reward`): RFT needs one and no other
    mode takes one; its source goes to the task as ``reward``."""
    if reward is None:
        if mode_row(train_mode).rewarded and "reward" not in extras:
            raise ValidationError("reward", f"train_mode={train_mode!r} needs reward=fn(prompt, completion, **kw) -> "
                                  "float (or a grader dict, e.g. {'type': 'string_check', ...})")
        return None
    if not mode_row(train_mode).rewarded:
        raise ValidationError("reward", f"is for train_mode={' or '.join(map(repr, REWARDED))}; this run's "
                              f"train_mode is {train_mode!r}")
    reward = resolve_reward(reward)
    extras["reward"] = reward_source(reward)
    return reward


def checkpoint_outcome(detail: dict[str, Any]) -> dict[str, Any]:
    """A finished run's checkpoints and the decision on them (qfnb.protocol.console.checkpoints), from its
    task detail: ``checkpoints``, ``best_checkpoint`` (a step or None), ``overfitting`` (words or
    None) and, where the platform says, ``eval_file`` (the held-out split the run used)."""
    saved = list(detail.get("checkpointList") or [])
    best = checkpoints.best_checkpoint(saved)
    over = checkpoints.overfitting([(c["step"], c["evalLoss"]) for c in saved if c.get("evalLoss") is not None])
    held_out = {"eval_file": detail["evalFile"]} if detail.get("evalFile") else {}
    return {"checkpoints": saved, "best_checkpoint": None if best is None else int(best["step"]),
            "overfitting": None if over is None else over.describe(), **held_out}


class ModelPublishAction(AsyncAction):
    """Publish the finished run to the model repository and wait until it is Ready.

    Input ``{"task_id", "job_id"}``; output adds ``model_id``, ``model_version_id`` (and
    qfnb's ``model``, the :class:`qfnb.model.Model` as a dict). ``name`` names the model.
    """

    def __init__(self, id: str | None = None, name: str | None = None,
                 event_handler: EventHandler | None = None, checkpoint: int | str = "best", **kwargs: Any) -> None:
        warn_ignored("ModelPublishAction", kwargs)
        super().__init__(id, name, event_handler, **kwargs)
        self.name = name or ""
        self.checkpoint = checkpoint  # the run's checkpoint to publish: "best", "last" or a step

    async def aexec(self, input: dict[str, Any] | None, ctx: RunContext) -> dict[str, Any]:
        input = dict(input or {})

        saved = self.extra.get("model")
        model = (Model.from_dict(saved, config=ctx.config) if saved else
                 Model(task_id=input.get("task_id"), job_id=input.get("job_id"), config=ctx.config))
        if model.version_id is None:
            which = self.checkpoint
            if which == "best" and input.get("best_checkpoint") is not None:
                which = int(input["best_checkpoint"])  # the run's decision: the platform's, or a notebook metric's
            await model.apublish(self.name, tick=self._tick, checkpoint=which)  # named this, the model's or a new name
        else:  # resumed after publishing: just wait for Ready
            await model.await_ready(tick=self._tick)
        self.extra["model"] = model.to_dict()
        return {**input, "model_id": model.set_id, "model_version_id": model.version_id,
                "model_set_id": model.model_set_id, "model": model.to_dict(), "checkpoint_step": model.step}

    async def _tick(self, info: dict[str, Any]) -> None:
        self.emit(ActionState.Running, f"model {info.get('state')}", info)
        if self.ctx:
            self.ctx.check_stop()


class DeployAction(AsyncAction):
    """Deploy the published model as a service and wait until it serves.

    Output adds ``service_id`` and ``service_endpoint`` to the input; ``model_id`` and
    ``model_version_id`` are those it deployed.
    """

    def __init__(self, deploy_config: DeployConfig | None = None, **kwargs: Any) -> None:
        warn_ignored("DeployAction", kwargs)
        super().__init__(**kwargs)
        if not isinstance(deploy_config, DeployConfig):
            raise ValidationError("deploy_config", "must be a qfnb.trainer.DeployConfig")
        self.deploy_config = deploy_config
        self.model_id: int | str | None = None
        self.model_version_id: int | str | None = None

    async def aexec(self, input: dict[str, Any] | None, ctx: RunContext) -> dict[str, Any]:
        input = dict(input or {})
        model = _input_model(input, ctx)
        self.model_id, self.model_version_id = model.set_id, model.version_id
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


class EvaluateAction(AsyncAction):
    """Evaluate the deployed service (or model) with ``EvaluationManager``."""

    def __init__(self, eval_dataset: Any, evaluators: list[Any], id: str | None = None,
                 event_handler: EventHandler | None = None, **kwargs: Any) -> None:
        warn_ignored("EvaluateAction", kwargs)
        super().__init__(id, event_handler=event_handler, **kwargs)
        if not evaluators:
            raise ValidationError("evaluators", "give at least one evaluator")
        self.eval_dataset = eval_dataset
        self.evaluators = list(evaluators)
        self.result: Any = None
        #: the input of the last run (the official attribute; :meth:`resume` runs it again)
        self._input: dict[str, Any] | None = None

    def resume(self, **kwargs: Any) -> dict[str, Any]:
        """Evaluate again on the last input (an evaluation has no platform task to re-attach to)."""
        return self.exec(self._input or {}, **kwargs)

    async def aexec(self, input: dict[str, Any] | None, ctx: RunContext) -> dict[str, Any]:
        # deferred: loads pandas (`import qfnb.trainer` does not)
        from qfnb.evaluation import EvaluationManager, LocalEvaluator

        input = dict(input or {})
        self._input = dict(input)
        model = _input_model(input, ctx)
        target: Any = model.service or model
        local = [e for e in self.evaluators if isinstance(e, LocalEvaluator)]
        manager = (EvaluationManager(local_evaluators=local) if len(local) == len(self.evaluators)
                   else EvaluationManager(qianfan_evaluators=self.evaluators))
        if hasattr(self.eval_dataset, "afetch"):
            await self.eval_dataset.afetch()
        self.emit(ActionState.Running, "evaluating", {"evaluators": [type(e).__name__ for e in self.evaluators]})
        self.result = await manager.aeval([target], self.eval_dataset)
        metrics = {str(k): dict(v) for k, v in getattr(self.result, "metrics", {}).items()}
        return {**input, "eval_res": metrics}  # metrics per model, under the official key


def _input_model(input: dict[str, Any], ctx: RunContext) -> Model:
    """The model a step's input names: qfnb's saved ``model`` dict, else the official keys
    (``model_id``, ``model_version_id``, ``task_id``, ``job_id``)."""

    given = input.get("model")
    if isinstance(given, Model):  # the official input: a Model object
        return given
    if input.get("model"):
        return Model.from_dict(input["model"], config=ctx.config)
    if input.get("model_version_id") is None and input.get("model_id") is None:
        raise ValidationError("model_version_id", "the input names no model (expected the output of "
                              "ModelPublishAction: model_id / model_version_id)")
    return Model(set_id=input.get("model_id"), version_id=input.get("model_version_id"),
                 task_id=input.get("task_id"), job_id=input.get("job_id"), config=ctx.config)
