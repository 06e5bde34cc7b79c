"""``LLMFinetune`` (alias ``Finetune``): the SFT pipeline with run/start/stop/resume.

The pipeline runs on qfnb's background event loop: ``run()`` waits for it, ``start()``
returns at once (the notebook stays free), ``await arun()`` runs it on the caller's loop.
State is saved to ``<cache>/pipeline/<id>.json`` before/after each action and on each poll.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from qfnb._core.config import Config as _Config
from qfnb._core.errors import ValidationError
from qfnb._core.record.ledger import current_cell, launched_from
from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import make_progress
from qfnb._core.runtime.steps import StepFeed
from qfnb.model import Model, Service
from qfnb.protocol.console import train_formats
from qfnb.resources.targets import JobTarget, check_platform, parse_target

from ._action import RunContext
from .actions import (
    DeployAction,
    EvaluateAction,
    LoadDataSetAction,
    ModelPublishAction,
    TrainAction,
)
from .configs import DeployConfig, TrainConfig
from .consts import FinetuneStatus
from .event import EventHandler
from .inputs import as_dataset, previous_task
from .pipeline import EventLog, Pipeline, Trainer
from .records import finetune_store, official_file, persist, replay
from .records.finetune_store import TrainerSummary
from .spend import budget_check
from .steps.load_action import warn_ignored

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb._core.runtime.progress import ProgressArg

logger = logging.getLogger("qfnb.trainer")
#: a dataset as given (a Dataset, an id, a config...)
D = TypeVar("D")


#: credentials the official SDK takes as keyword arguments; they become this trainer's config
_CREDENTIALS = ("ak", "sk", "access_key", "secret_key", "access_token", "bearer_token")


class LLMFinetune(Trainer):
    """Fine-tune ``train_type`` on ``dataset``, publish, and optionally deploy and evaluate.

    The official ``**kwargs`` are accepted: ``peft_type=`` and ``train_mode=`` go to the
    training step (``train_mode``: ``"SFT"``, ``"PostPretrain"``, ``"DPO"``, ``"KTO"``, a string in any
    case or a ``TrainMode``; a local dataset is checked in that mode's format now, naming its line),
    ``ak=``/``sk=``/``access_key=``/``secret_key=`` make this trainer's config;
    ``dataset_bos_path=`` is the dataset; ``previous_trainer=``/``previous_task_id=`` continue a
    run (incremental training), from its checkpoint ``increment_checkpoint_step=`` when given (the
    platform's ``incrementCheckpointStep``); other names are ignored, with one warning each.
    ``ray_workers=`` (with a Ray ``target``; default ``QFNB_RAY_TRAIN_WORKERS``, else 1): Ray Train
    workers training the run data-parallel. ``train_mode="RFT"`` takes ``reward=``: a function
    ``fn(prompt, completion, **kw) -> float`` that scores the sampled answers in this process while the
    run trains (:mod:`qfnb.trainer.steps.rewards`), ``"module:function"``, or a declarative grader dict.
    ``forecast_tokens=`` (e.g. ``forecast_training(...).tokens``) is held against the budget before the run is
    created (refused, nothing sent, where it cannot fit), until the run settles on the tokens it trained.
    """

    def __init__(self, train_type: str = "", dataset: Any = None,
                 train_config: TrainConfig | str | Path | None = None,
                 deploy_config: DeployConfig | None = None,
                 event_handler: EventHandler | None = None, base_model: str | None = None,
                 eval_dataset: Any = None, evaluators: list[Any] | None = None,
                 name: str = "", model_not_publish: bool = False, config: Config | None = None,
                 id: str | None = None, replay: bool | None = None, target: JobTarget | str | None = None,
                 ray_workers: int | None = None, **kwargs: Any) -> None:
        config = _with_credentials(config, kwargs)
        train_kwargs = _train_kwargs(kwargs)
        #: where the training runs (local, qianfan or a cluster such as ray://HOST:DASHBOARD_PORT; None: the
        #: config's platform)
        self.target = _train_target(target, config, train_kwargs)
        #: Ray Train workers training the run together on a cluster target (None on any other target)
        self.ray_workers = _ray_workers(ray_workers, self.target, train_kwargs)
        dataset = _bos_dataset(dataset, kwargs.pop("dataset_bos_path", None))
        warn_ignored("LLMFinetune", kwargs)
        train_type = train_type or base_model or ""
        if not train_type and "increment_task_id" not in train_kwargs:
            raise ValidationError("train_type", "name the base model to fine-tune "
                                  "(e.g. 'Gemma-3-270M' locally), or continue one with previous_task_id=")
        dataset = as_dataset(dataset, train_kwargs.get("train_mode", "SFT"))
        train_config = _train_config(train_config)
        _check_parts(event_handler, eval_dataset, evaluators, model_not_publish, deploy_config)
        self.train_type = train_type
        self.dataset = dataset
        self.train_config = train_config or TrainConfig()
        self.deploy_config = deploy_config
        self.event_handler = event_handler
        self.name = name
        self.config = config
        self.eval_dataset = eval_dataset
        self.evaluators = evaluators
        self.model_not_publish = model_not_publish
        #: reuse an identical finished run (:mod:`qfnb.trainer.records.replay`); None: when the cache is on
        self.replay = replay
        #: what was reused (:meth:`qfnb.trainer.records.replay.Reuse.as_dict`), or None
        self.replayed: dict[str, Any] | None = None
        self.ppl = Pipeline(self._actions(train_kwargs), id=id)
        self.ppls = [self.ppl]
        self._log = EventLog(event_handler)
        self._ctx = RunContext(config, self._log, self._save)
        self._future: concurrent.futures.Future[Any] | None = None
        self._results: list[Any] = [None]
        self.created = time.time()
        self.dataset_file: str | None = None

    def _actions(self, train_kwargs: dict[str, Any]) -> list[Any]:
        actions: list[Any] = [
            LoadDataSetAction(self.dataset),
            TrainAction(self.train_type, self.train_config, job_name=self.name or None, **train_kwargs),
        ]
        if callable(self.train_config.eval_metric):  # a notebook function: checkpoints scored on the engine
            from .steps.checkpoint_metric import CheckpointMetricAction  # deferred: loads the inference resources

            actions.append(CheckpointMetricAction(self.train_config.eval_metric, self.train_config.eval_metric_items))
        if not self.model_not_publish:
            actions.append(ModelPublishAction(name=self.name, checkpoint=(
                self.deploy_config.checkpoint if self.deploy_config is not None else "best")))
        if self.deploy_config is not None:
            actions.append(DeployAction(self.deploy_config))
        if self.evaluators:
            actions.append(EvaluateAction(self.eval_dataset, list(self.evaluators)))
        return actions

    # ---- identity & state ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.ppl.id

    @property
    def status(self) -> str:
        """Trainer status (reference §5.1 table), e.g. ``Training`` or ``TrainFinished``."""
        return self.ppl.status.value

    @property
    def train_action(self) -> TrainAction:
        return next(a for a in self.ppl.steps if isinstance(a, TrainAction))

    @property
    def result(self) -> list[Any]:
        """The run's result: :attr:`output` (with its ``model`` / ``service`` objects) once it
        finished, the error it ended with, or ``None`` before a run."""
        last = self._results[-1]
        return [last if last is None or isinstance(last, BaseException) else self.output]

    @property
    def output(self) -> dict[str, Any]:
        """The last finished output; ``output["model"]`` is a :class:`qfnb.model.Model`, and
        after a deploy ``output["service"]`` the :class:`qfnb.model.Service`."""

        done = [a.output for a in self.ppl.steps if a.output is not None]
        out = dict(done[-1]) if done else {}
        if isinstance(self._results[-1], BaseException):  # as officially: a failed run's output names the error
            out["error"] = str(self._results[-1])
        if isinstance(out.get("model"), dict):
            out["model"] = Model.from_dict(out["model"], config=self.config)
        deploy = next((a for a in self.ppl.steps if isinstance(a, DeployAction)), None)
        if out.get("service_id") is not None and deploy is not None:  # as the official deploy output
            out["service"] = self._service(out, deploy)
        evaluate = next((a for a in self.ppl.steps if isinstance(a, EvaluateAction)), None)
        if evaluate is not None and evaluate.result is not None:
            out["eval_result"] = evaluate.result
        return out

    def _service(self, out: dict[str, Any], deploy: DeployAction) -> Service:
        model = out.get("model") if isinstance(out.get("model"), Model) else None
        known = getattr(model, "service", None)
        return known if isinstance(known, Service) else Service(
            id=out["service_id"], endpoint=out.get("service_endpoint"), model=model,
            deploy_config=deploy.deploy_config, service_type=deploy.deploy_config.service_type,
            config=self.config)

    def __repr__(self) -> str:
        return f"LLMFinetune(id={self.id!r}, train_type={self.train_type!r}, status={self.status!r})"

    # ---- running ------------------------------------------------------------------------------

    async def arun(self) -> LLMFinetune:
        """Run (or continue) the pipeline on the current event loop."""
        self._ctx.stop_flag.clear()
        if (found := await replay.aprepare(self, self._ctx)) is not None:
            self.replayed = found.as_dict()
            self._save()
        finetune_store.stash_dataset(self)
        if self.replayed is None:
            await budget_check.hold_forecast(self)
        try:
            self._results = [await self.ppl.arun({}, self._ctx)]
        except Exception as exc:  # kept in ``result`` (official), and raised
            self._results = [exc]
            raise
        return self

    def start(self) -> LLMFinetune:
        """Start in the background on qfnb's loop; returns at once (see :meth:`wait`)."""
        if self._future is not None and not self._future.done():
            raise RuntimeError(f"trainer {self.id} is already running")
        cell = current_cell()

        async def run() -> LLMFinetune:
            with launched_from(cell):  # its usage counts under the cell that started it
                return await self.arun()

        self._future = sync.submit(run())
        return self

    def wait(self, timeout: float | None = None) -> LLMFinetune:
        """Block until a :meth:`start`-ed run ends; re-raises its error."""
        if self._future is None:
            raise RuntimeError("the trainer was not started")
        self._future.result(timeout)
        return self

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def run(self, progress: ProgressArg = None, **kwargs: Any) -> LLMFinetune:
        """Run the whole pipeline and wait (safe in Jupyter: runs on qfnb's loop thread).

        ``progress``: a bar of the training steps — by default a widget inside a notebook kernel
        (whether or not ``%load_ext qfnb`` ran), ``True`` also a tqdm-style bar on a terminal,
        ``False`` none, or any object with ``on_start``/``on_result``/``on_close``."""

        bar = make_progress(progress, desc=f"fine-tune {self.name or self.train_type}")
        feed = StepFeed(bar) if bar is not None else None
        if feed is not None:
            feed.observe(0)  # drawn now, in the caller's cell
            self._log.watchers.append(feed.event)
        self.start()
        try:
            return self.wait()
        except KeyboardInterrupt:
            # Interrupting the *wait* does not kill the training: it goes on in the background
            logger.warning("trainer %s keeps running in the background (status %s); "
                           "call .stop() to stop it or .wait() to wait again", self.id, self.status)
            raise
        finally:
            if feed is not None:
                self._log.watchers.remove(feed.event)
                feed.close()

    def resume(self, **kwargs: Any) -> LLMFinetune:
        """Continue from the last finished action (re-attaching to an existing training task)."""
        return self.run()

    def stop(self) -> LLMFinetune:
        """Ask the pipeline to stop; a running training task is stopped on the platform."""
        self._ctx.stop_flag.set()
        return self

    def compare(self, pairs: Any = None, *, metric: Any = None, judge: Any = None, checkpoint: str | int = "best",
                likelihood: bool = True, confidence: float = 0.95, max_tokens: int = 128) -> Any:
        """Does the tuned model win? The finished run (its ``checkpoint``: ``"best"``, ``"last"`` or a
        step) against its base on held-out preference ``pairs`` (default: the run's own validation
        split), judged by what they write: degeneration first, then ``metric`` (``(prompt, answer[, pair])
        -> float`` or a local evaluator), then ``judge``; a collapsed model is never the winner, and
        likelihood is a second line. ``.verdict`` says it in words, ``.p_value`` and ``.winner`` give it
        (:func:`qfnb.evaluation.runs.preference.compare_preference`)."""
        # deferred: loads numpy (`import qfnb.trainer` does not)
        from qfnb.evaluation.runs.preference import compare_preference

        out = self.train_action.output or {}
        task = out.get("task_id") or self.train_action.task_id
        if not task or self.train_action.output is None:
            raise ValidationError("compare", "the run has not finished training: run() or wait() first")
        held = pairs if pairs is not None else out.get("eval_file")
        if held is None:
            raise ValidationError("pairs", "the run kept no held-out split (train with a validation split, e.g. "
                                  "TrainConfig(trainset_rate=20)) and no pairs were given")
        if not out.get("checkpoints"):
            raise ValidationError("checkpoint", "the run saved no checkpoints to compare (checkpoints=0)")
        which = checkpoint if isinstance(checkpoint, str) else f"step-{checkpoint}"
        return compare_preference(f"{task}@{which}", self.train_action.base_model, held, metric=metric, judge=judge,
                                  likelihood=likelihood, confidence=confidence, max_tokens=max_tokens,
                                  config=self.config)

    # ---- persistence --------------------------------------------------------------------------

    def _save(self) -> None:
        try:
            persist.write_record(finetune_store.record_of(self))
        except OSError as exc:  # persistence must not kill a training run
            logger.warning("could not save trainer state for %s: %s", self.id, exc)

    def save(self, file: str | Path | None = None) -> LLMFinetune:
        """Save the trainer's record now (it is saved at every step anyway); ``load(id)`` reads it.
        ``file``: also write the pipeline as the official SDK's file, read by ``load(file=...)``."""
        persist.write_record(finetune_store.record_of(self))
        if file is not None:
            official_file.to_file(self, file)
        return self

    def register_event_handler(self, event_handler: EventHandler, ppl_id: str | None = None) -> None:
        """Send this trainer's events to ``event_handler`` (replacing the one given before)."""
        if not callable(getattr(event_handler, "dispatch", None)):
            raise ValidationError("event_handler", "must have a dispatch(event) method")
        if ppl_id is not None and ppl_id != self.ppl.id:
            raise KeyError(f"no pipeline {ppl_id!r}; this trainer's is {self.ppl.id!r}")
        self.event_handler = self._log.forward = event_handler

    def info(self) -> dict[str, Any]:
        """The saved record (ids, statuses, outputs; never credentials)."""
        return finetune_store.record_of(self)

    @classmethod
    def load(cls, id: str | None = None, *, file: str | Path | None = None,
             event_handler: EventHandler | None = None, config: Config | None = None,
             eval_dataset: Any = None, evaluators: list[Any] | None = None,
             reward: Any = None) -> LLMFinetune:
        """Rebuild a trainer from its saved record (``id``), or from the official SDK's pipeline
        file (``file=``, as ``save(file)`` writes it; the trainer is then saved under its id);
        call :meth:`resume` (or :meth:`run`) to continue it.

        Evaluators and reward functions are code, not data: a trainer that evaluates needs
        ``eval_dataset=`` and ``evaluators=`` again here, a RFT trainer whose reward is a function
        ``reward=`` (its run goes on taking rewards from this process once resumed).
        """
        if (id is None) == (file is None):
            raise ValidationError("id", "give the id of a saved trainer or file= (a pipeline file), one of them")
        if file is not None:
            trainer = official_file.from_file(cls, file, event_handler=event_handler, config=config)
            trainer._save()
            return trainer
        return finetune_store.load_trainer(cls, str(id), event_handler=event_handler, config=config,
                                           eval_dataset=eval_dataset, evaluators=evaluators, reward=reward)

    @classmethod
    def list(cls) -> list[TrainerSummary]:
        """Saved trainers, newest first: ``[{"id", "name", "status", "updated"}, ...]`` (each also
        readable as attributes, ``trainers[0].id``, as the official SDK's trainer objects)."""
        return finetune_store.list_summaries()


def _with_credentials(config: Config | None, kwargs: dict[str, Any]) -> Config | None:
    """The official credential keywords (``ak=`` ...) make the trainer's config."""
    creds = {k: v for k in _CREDENTIALS if (v := kwargs.pop(k, None))}
    if not creds:
        return config

    return config.with_overrides(**creds) if config is not None else _Config.from_env(**creds)


def _train_target(target: JobTarget | str | None, config: Config | None,
                  train_kwargs: dict[str, Any]) -> JobTarget | None:
    """``target=`` (else ``QFNB_TARGET``) checked before anything is sent: ``"local"``/``"qianfan"``
    must name the platform the config points at; a cluster target is trained by the local platform (it
    submits the run to the cluster and brings its best checkpoint back), so it needs no Qianfan
    credentials, and goes to the platform as the task's ``target``."""
    where = parse_target(target)
    if where is None:
        return None
    cfg = config if config is not None else _Config.from_env()
    if where.cluster is not None:
        if cfg.is_configured and not cfg.embedded:
            raise ValidationError("target", f"{where}: a fine-tune on a cluster is run by qfnb's local platform, "
                                            "but this client's config names Qianfan credentials: unset them")
        train_kwargs["train_extras"] = {**train_kwargs.get("train_extras", {}), "target": str(where)}
    else:
        check_platform(where, replace(cfg, embedded=cfg.embedded or not cfg.is_configured))
    return where


#: the default number of Ray Train workers of a fine-tune on a Ray target
RAY_WORKERS_ENV = "QFNB_RAY_TRAIN_WORKERS"


def _ray_workers(value: int | None, target: JobTarget | None, train_kwargs: dict[str, Any]) -> int | None:
    """``ray_workers=`` (else ``QFNB_RAY_TRAIN_WORKERS``, else 1) for a cluster target, checked before
    anything is sent (a whole number of at least 1; given with another target it is refused); it goes to
    the platform as the task's ``rayTrainWorkers``."""
    if target is None or target.cluster is None:
        if value is not None:
            raise ValidationError("ray_workers", f"needs a cluster target (target='ray://HOST:PORT'), "
                                                 f"not {None if target is None else str(target)!r}")
        return None
    field, workers = "ray_workers", value
    if value is None:  # the environment's text, else 1
        field, text = RAY_WORKERS_ENV, os.environ.get(RAY_WORKERS_ENV) or ""
        workers = 1 if not text else int(text) if text.strip().isdigit() else text  # type: ignore[assignment]
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValidationError(field, f"must be a whole number of Ray Train workers, at least 1; got {workers!r}")
    train_kwargs["train_extras"] = {**train_kwargs.get("train_extras", {}), "rayTrainWorkers": workers}
    return workers


def _train_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keywords that go to the training step (incremental training's included)."""
    out = {k: v for k in ("peft_type", "train_mode", "corpus_config", "train_extras", "reward", "forecast_tokens")
           if (v := kwargs.pop(k, None)) is not None}
    if "train_mode" in out:  # a string in any case or a TrainMode, checked before anything is sent
        try:
            out["train_mode"] = train_formats.train_mode(out["train_mode"])
        except ValueError as exc:
            raise ValidationError("train_mode", str(exc).removeprefix("train_mode: ")) from None
    previous = previous_task(kwargs.pop("previous_task_id", None), kwargs.pop("previous_trainer", None))
    step = kwargs.pop("increment_checkpoint_step", None)
    if previous is not None:
        out["increment_task_id"] = previous
    if step is not None:  # the checkpoint of the previous run to continue from (its final adapter without)
        if previous is None:
            raise ValidationError("increment_checkpoint_step", "needs previous_task_id= (the run it is a step of)")
        out["increment_checkpoint_step"] = step
    return out


def _bos_dataset(dataset: D, bos_path: object) -> D | str:
    """``dataset_bos_path=`` (the official keyword) is the dataset when given."""
    if bos_path is None:
        return dataset
    if dataset is not None:
        raise ValidationError("dataset_bos_path", "give dataset= or dataset_bos_path=, not both")
    if not isinstance(bos_path, str) or not bos_path.startswith("bos:/"):
        raise ValidationError("dataset_bos_path", f"must be a bos:/ URI, got {bos_path!r}")
    return bos_path


def _train_config(train_config: Any) -> TrainConfig | None:
    if isinstance(train_config, str | Path):
        return TrainConfig.load(train_config)
    if train_config is not None and not isinstance(train_config, TrainConfig):
        raise ValidationError("train_config", "must be a TrainConfig or a .json/.yaml path")
    return train_config


def _check_parts(event_handler: Any, eval_dataset: Any, evaluators: Any, model_not_publish: bool,
                 deploy_config: Any) -> None:
    if event_handler is not None and not callable(getattr(event_handler, "dispatch", None)):
        raise ValidationError("event_handler", "must have a dispatch(event) method")
    if bool(eval_dataset is not None) != bool(evaluators):
        raise ValidationError("evaluators", "give both eval_dataset and evaluators, or neither")
    if model_not_publish and deploy_config is not None:
        raise ValidationError("deploy_config", "cannot deploy when model_not_publish=True")


Finetune = LLMFinetune
__all__ = ["Finetune", "FinetuneStatus", "LLMFinetune", "TrainerSummary"]
