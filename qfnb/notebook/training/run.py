"""``%qftrain``: launch a fine-tune in the background and deploy what it trained.

Everything runs as a coroutine on qfnb's loop (:mod:`qfnb._core.runtime.sync`), so the kernel
stays free: the trainer's ``arun()`` (``qfnb.trainer.LLMFinetune``), whose events (Contract 5)
feed a :class:`TrainingDashboard`, and a deploy. ``--attach TASK`` (a dashboard fed by polling a
platform task) is :mod:`.attach`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from IPython.core.error import UsageError

from qfnb import trainer
from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb._core.record import ledger
from qfnb.model import Model
from qfnb.notebook._ipython import display
from qfnb.notebook.arguments import TrainArgs
from qfnb.notebook.magic_options import TRAIN_HYPER, TRAIN_OPTIONS, TrainOptions
from qfnb.notebook.training import _background
from qfnb.notebook.training.dashboard import Trained, TrainingDashboard
from qfnb.protocol.console import train_formats
from qfnb.protocol.console.checkpoints import METRICS
from qfnb.protocol.console.model_names import LOCAL_FINETUNE_BASE
from qfnb.protocol.console.train_modes import MODE_TABLE, REWARDED, mode_row
from qfnb.protocol.console.training import LIMITS, hyper_problem
from qfnb.resources.console.sending.account import MissingConsoleKeysError, console_v2, require_iam_keys
from qfnb.resources.targets import QIANFAN, JobTarget, parse_target
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.trainer import Event, EventHandler
    from qfnb.trainer.spend.forecast import TrainForecast

log = logging.getLogger("qfnb.notebook.training.run")

DEFAULT_BASE = LOCAL_FINETUNE_BASE
#: the largest validation split (percent of the data held out) ``--eval-split`` and the launcher offer
MAX_EVAL_SPLIT = 90
#: option -> (min, max) inclusive, for the launcher's bounded inputs
BOUNDS: dict[str, tuple[float, float]] = {opt: (LIMITS[h].lo, LIMITS[h].hi) for opt, h in TRAIN_HYPER.items()}


@dataclass(frozen=True)
class TrainSpec(TrainOptions):
    """What to fine-tune, validated before anything is sent (the hyperparameters: the generated
    :class:`~qfnb.notebook.magic_options.TrainOptions`)."""

    dataset: str
    base: str = DEFAULT_BASE
    deploy: bool = False
    name: str | None = None  # what dashboards, --list and %qfmodels call the run (its id beside)
    eval_split: int | None = None  # % of the data held out for the evaluation loss (None: the platform's 20)
    fresh: bool = False  # train again rather than reuse a finished run of the same recipe (qfnb.trainer.records.replay)
    early_stop: bool = False  # end the run after checkpoints without improvement (qfnb.protocol.console.checkpoints)
    #: what picks the best checkpoint besides the held-out loss: "rouge_l", "exact_match" or a notebook
    #: function (input, reference, output) -> float (qfnb.trainer.steps.checkpoint_metric)
    eval_metric: str | Callable[..., Any] | None = None
    #: where the training runs (``--target``, parsed; None: ``QFNB_TARGET``, else the configured platform)
    target: JobTarget | None = None
    #: Ray Train workers on a Ray target (``--ray-workers``; None: ``QFNB_RAY_TRAIN_WORKERS``, else 1)
    ray_workers: int | None = None
    #: the train mode (``--mode``): SFT, PostPretrain, DPO, KTO, RFT (:data:`qfnb.protocol.console.train_formats.MODES`)
    mode: str = "SFT"
    #: a RFT run's reward (``--reward module:function``), scored in this kernel
    reward: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ValueError("--dataset is required (a .jsonl path or a platform dataset id)")
        self._check_mode()
        if not self.base:
            raise ValueError("--base must name a base model")
        if self.name is not None and not re.fullmatch(r"[A-Za-z][\w.-]{0,49}", self.name):
            raise ValueError(f"--name must start with a letter and hold up to 50 letters, digits, '_', '-' or '.', "
                             f"got {self.name!r}")
        if self.eval_split is not None and not 0 <= self.eval_split <= MAX_EVAL_SPLIT:
            raise ValueError(f"--eval-split must be a percentage in [0, {MAX_EVAL_SPLIT}], got {self.eval_split!r}")
        if self.early_stop and self.eval_split == 0:
            raise ValueError("--early-stop needs held-out rows to judge checkpoints on: drop --eval-split 0")
        if self.eval_metric is not None and self.eval_split == 0:
            raise ValueError("--eval-metric needs held-out rows to score checkpoints on: drop --eval-split 0")
        self._check_reward()
        if isinstance(self.eval_metric, str) and self.eval_metric not in METRICS:
            raise ValueError(f"--eval-metric must be one of {', '.join(METRICS)} or the name of a notebook function "
                             f"(input, reference, output) -> float, got {self.eval_metric!r}")
        # each against qfnb.protocol.console.training.LIMITS, the rule the platform applies
        for option in TRAIN_OPTIONS:
            value = getattr(self, option.field)
            problem = None if value is None else hyper_problem(TRAIN_HYPER[option.field], value)
            if problem is not None:
                raise ValueError(f"{option.label} {problem}")

    def _check_mode(self) -> None:
        """``--mode`` as the platform spells it (SFT when not given); ``--eval-metric`` is SFT's, ``--beta`` a mode's
        whose row takes it."""
        object.__setattr__(self, "mode", train_formats.train_mode(self.mode, "--mode"))
        row = mode_row(self.mode)
        if self.beta is not None and "beta" not in row.hyper:
            takers = " and ".join(f"{m.name}'s" for m in MODE_TABLE.values() if "beta" in m.hyper)
            raise ValueError(f"--beta is {takers} (how close the tuned model stays to the base), not "
                             f"{self.mode}'s")
        if self.eval_metric is not None and not row.generation_metric:
            raise ValueError(f"--eval-metric scores SFT answers; a {self.mode} run's checkpoints are scored by "
                             "its own held-out measure")

    def _check_reward(self) -> None:
        if mode_row(self.mode).rewarded != (self.reward is not None):
            raise ValueError(f"--mode {self.mode} needs --reward module:function (the reward of the sampled answers)"
                             if self.reward is None else f"--reward is for --mode {' or '.join(REWARDED)}, "
                             f"not {self.mode}")

    @classmethod
    def from_args(cls, args: TrainArgs, *, eval_metric: str | Callable[..., Any] | None,
                  reward: Callable[..., Any] | None = None) -> TrainSpec:
        """The spec a ``%qftrain`` line asks for (``eval_metric``: its ``--eval-metric``, a notebook
        function's name resolved); a problem is a ``UsageError`` naming the option."""
        given = {**asdict(args.hyper), "dataset": args.dataset, "base": args.base, "deploy": args.deploy,
                 "name": args.name, "eval_split": args.eval_split, "fresh": args.fresh,
                 "early_stop": args.early_stop, "eval_metric": eval_metric, "target": _target(args.target),
                 "ray_workers": args.ray_workers, "mode": args.mode, "reward": reward}
        kwargs = {name: value for name, value in given.items() if value is not None}
        kwargs.setdefault("dataset", "")
        if args.ray_workers is not None and args.ray_workers < 1:
            raise UsageError(f"--ray-workers must be at least 1, got {args.ray_workers}")
        cfg = Config.from_env()
        if problem := console_keys_problem(given["target"], cfg):  # refused here, not in the background job
            raise UsageError(f"%qftrain: {problem}")
        if args.base is None and cfg.api_version == 2:  # the local base is no cloud model
            raise UsageError("%qftrain: name the base model with --base: on the Qianfan cloud (a v2 API key is "
                             f"set) the local base {DEFAULT_BASE} cannot be fine-tuned; use one of the cloud's "
                             "fine-tunable models (its DescribeFineTuningSupportModels list, e.g. "
                             "--base ERNIE-Speed-8K)")
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc

    def train_config(self) -> dict[str, Any]:
        mapping = super().train_config()
        if self.eval_split is not None:  # the platform's validation split (v2 datasetConfig.splitRatio)
            mapping["trainset_rate"] = self.eval_split
        if self.early_stop:
            mapping["early_stop"] = True
        if self.eval_metric is not None:
            mapping["eval_metric"] = self.eval_metric
        return mapping

    @property
    def title(self) -> str:
        what = f"{self.base} ← {Path(self.dataset).name}"
        what += "" if mode_row(self.mode).default else f" ({self.mode})"
        return f"{self.name} · {what}" if self.name else what


def console_keys_problem(target: JobTarget | None, cfg: Config | None = None) -> str | None:
    """Why a fine-tune on ``target`` (None: the configured platform) cannot start with ``cfg``'s keys
    (None: the environment's): on the Qianfan cloud with a 2026 (v2) account, the console's calls are
    signed with the IAM key pair, which an API key alone is not; None when nothing is missing."""
    cfg = cfg or Config.from_env()
    if not (target is None or (target.cluster is None and target.kind == QIANFAN)) or not console_v2(cfg):
        return None
    try:
        require_iam_keys(cfg)
    except MissingConsoleKeysError as exc:
        return str(exc)
    return None


def _target(given: str | None) -> JobTarget | None:
    """``--target`` parsed (None when not given: the trainer reads ``QFNB_TARGET``); UsageError naming it."""
    try:
        return parse_target(given, field="--target") if given is not None else None
    except ValidationError as exc:
        raise UsageError(str(exc)) from None


class Finetune(Trained, Protocol):
    """What ``%qftrain`` drives of a fine-tune (``LLMFinetune`` has it): its run, stop and status."""

    @property
    def status(self) -> str: ...
    async def arun(self) -> object: ...
    def stop(self) -> object: ...


class _ForecastSlot(Protocol):
    forecast_tokens: int | None


@runtime_checkable
class HoldsForecast(Protocol):
    """A fine-tune whose run holds a forecast against the budget at create (``LLMFinetune``: its
    ``TrainAction``'s ``forecast_tokens``)."""

    train_action: _ForecastSlot


TrainerFactory = Callable[[TrainSpec, Any], Finetune]


def default_trainer(spec: TrainSpec, event_handler: Any) -> LLMFinetune:
    """The real trainer: ``LLMFinetune`` on a :class:`qfnb.dataset.Dataset`."""
    from qfnb.dataset import Dataset  # deferred: loads pandas (`%load_ext qfnb` does not)

    path = Path(spec.dataset).expanduser()
    if path.exists():
        ds = Dataset.load(data_file=path)
    elif spec.dataset.isdigit() or spec.dataset.startswith("ds-"):
        ds = Dataset.load(qianfan_dataset_id=spec.dataset)
    else:
        raise UsageError(f"--dataset: no such file and not a dataset id: {spec.dataset!r}")
    return LLMFinetune(
        train_type=spec.base,
        dataset=ds,
        train_config=TrainConfig(**spec.train_config()),
        deploy_config=deploy_config(spec.name) if spec.deploy else None,
        event_handler=event_handler,
        name=spec.name or "",
        replay=False if spec.fresh else None,  # None: reused while the kernel's cache is on
        target=spec.target,
        ray_workers=spec.ray_workers,
        train_mode=spec.mode,
        reward=spec.reward,
    )


def _event_handler(dash: TrainingDashboard) -> EventHandler:
    class DashboardHandler(trainer.EventHandler):
        def dispatch(self, event: Event) -> None:
            dash.handle_event(event)

    return DashboardHandler()


def _final_status(trainer: Finetune, stop_requested: bool) -> str:
    status = trainer.status.lower()
    if stop_requested or "stop" in status:
        return "stopped"
    if "fail" in status or "error" in status:
        return "failed"
    return "succeeded"


def _model_to_deploy(output: Any) -> Any:
    """The trainer's published model: ``output["model"]``, else its ``model_version_id``."""
    model = output.get("model") if isinstance(output, dict) else None
    if isinstance(model, Model):
        return model
    if isinstance(output, dict) and output.get("taskId") and output.get("jobId"):  # an attached task's detail
        return Model(task_id=str(output["taskId"]), job_id=str(output["jobId"]))
    version = output.get("model_version_id") if isinstance(output, dict) else None
    if version is None:  # (the dashboard's model id is the model *set* id: not deployable)
        raise ValueError("the fine-tune published no model version to deploy")
    return Model(version_id=version)


def deploy_config(name: str | None) -> DeployConfig:
    """How a run named ``name`` at launch is deployed: the service takes the name, and its endpoint
    starts with it (``helpdesk-faq`` → ``helpdesk_faq_3f2a9c1d``), so ``%qfmodels``, ``%%qfchat`` and
    the ``%qfeval`` report, which show endpoints, show the launch name with an id beside it."""
    if not name:
        return DeployConfig()
    return DeployConfig(name=name, endpoint_prefix=re.sub(r"[^a-z0-9_]", "_", name.lower()))


def given_name(detail: Mapping[str, Any]) -> str | None:
    """The name the user gave a task's job at launch (None: the generated ``job_…`` one or none)."""
    named = str(detail.get("jobName") or "")
    return named if named and not re.fullmatch(r"job_[0-9a-f]+", named) else None


async def deploy_job(dash: TrainingDashboard) -> Any:
    """Publish-aware deploy of the dashboard's trained model; the dashboard shows how it goes."""
    output = dash.trainer.output if dash.trainer is not None else None
    try:
        service = await _model_to_deploy(output).adeploy(deploy_config(dash.launch_name), tick=dash.deploy_tick)
    except Exception as exc:
        log.warning("deploy failed: %s", exc)
        dash.deploy_failed(str(exc))
        raise
    dash.service = service
    dash.mark_deployed(str(service.endpoint or service.id))
    return service


def deploy_in_background(dash: TrainingDashboard) -> Any:
    """The Deploy button: :func:`deploy_job` on qfnb's loop; a ``concurrent.futures.Future``."""
    return _background.submit(deploy_job(dash))


#: words in a file's name that mark rows kept out of training (``tickets_test.csv``, ``eval.jsonl``)
HELD_OUT_WORDS = ("test", "eval", "valid", "val", "dev", "held", "holdout", "heldout", "validation")


def held_out_file(train: str) -> str | None:
    """A file beside the training file ``train`` that holds rows kept out of it (same format, a
    name with :data:`HELD_OUT_WORDS`), as the path the user wrote; None when there is none."""
    path = Path(train)
    if not train or not path.is_file():
        return None
    words = set(re.split(r"[^a-z]+", path.stem.lower()))
    for other in sorted(path.parent.iterdir()):
        if other == path or other.suffix.lower() != path.suffix.lower() or not other.is_file():
            continue
        if set(re.split(r"[^a-z]+", other.stem.lower())) - words & set(HELD_OUT_WORDS):
            return str(path.parent / other.name) if str(path.parent) != "." else other.name
    return None


def forecast(spec: TrainSpec, *, shown: bool, dry_run: bool = False) -> TrainForecast | None:
    """``--forecast`` (or a budget): the fine-tune's forecast shown and checked before it starts (None
    without); refused by the budget, it is shown with the line saying so; ``--dry-run``: shown, never raised."""
    from qfnb.notebook.forecasts import checked_forecast, refused  # deferred: loads the inference resources
    from qfnb.trainer.spend.forecast import forecast_training  # deferred: reads the ledger and the price table

    def ahead() -> TrainForecast:
        found = forecast_training(spec.dataset, base=spec.base, epochs=spec.epochs, batch_size=spec.batch_size,
                                  max_steps=spec.steps, max_seq_len=spec.max_seq_len, eval_split=spec.eval_split,
                                  train_mode=spec.mode)
        if shown:
            display(found)
        found = refused(found, found.check_budget, shown=shown, dry_run=dry_run)
        if dry_run and not shown and not found.verdict:
            display(found)
        return found

    return checked_forecast(ahead, shown=shown, magic="qftrain", dry_run=dry_run)


def launch(spec: TrainSpec, factory: TrainerFactory | None = None, *, show: bool = True,
           on_deploy: Callable[[TrainingDashboard], Any] | None = None,
           forecast_tokens: int | None = None) -> TrainingDashboard:
    """Start a fine-tune on qfnb's loop and return its (displayed) dashboard; ``forecast_tokens`` (the
    forecast's trained tokens) is what its run holds against the budget until it ends."""
    stop = threading.Event()
    holder: dict[str, Any] = {}

    def on_stop() -> None:
        stop.set()
        holder["trainer"].stop()

    dash = TrainingDashboard(spec.title, on_stop=on_stop, on_deploy=on_deploy or deploy_in_background)
    dash.launch_name = spec.name
    held_out = held_out_file(spec.dataset)
    dash.eval_data = held_out or spec.dataset
    dash.eval_is_training = held_out is None  # its "next:" %qfeval then warns: the model saw those rows
    trainer = (factory or default_trainer)(spec, _event_handler(dash))
    holder["trainer"] = dash.trainer = trainer
    if forecast_tokens is not None and isinstance(trainer, HoldsForecast):
        trainer.train_action.forecast_tokens = forecast_tokens
    if show:
        dash.show()
    cell = ledger.current_cell()

    async def run() -> None:
        try:
            with ledger.launched_from(cell):  # its trained-token row lands under this %qftrain cell
                await trainer.arun()
        except Exception as exc:
            dash.finish("stopped" if stop.is_set() else "failed", error=f"{type(exc).__name__}: {exc}")
        else:
            dash.finish(_final_status(trainer, stop.is_set()), output=trainer.output)

    _background.submit(run())
    return dash


