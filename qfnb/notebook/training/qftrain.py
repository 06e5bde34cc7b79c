"""``%qftrain``'s dispatch: ``--stop TASK``, ``--list``, ``--attach [ID]`` (one live dashboard per job in
this kernel), the launcher form when the line gives no recipe, else a launch (its forecast first)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError

from qfnb._core.errors import ValidationError
from qfnb.notebook._ipython import Decorator, argument, magic_arguments_of, option_arguments
from qfnb.notebook.arguments import TrainArgs
from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.magic_options import TRAIN_OPTIONS
from qfnb.notebook.training import attach
from qfnb.notebook.training import run as train
from qfnb.notebook.training.jobs import jobs_frame, resolve_task
from qfnb.notebook.training.launcher import FinetuneLauncher, platform_base_models
from qfnb.protocol.console import train_formats

#: ``@magic_arguments()`` with every ``%qftrain`` option, in its help's order
QFTRAIN_ARGUMENTS: Decorator = magic_arguments_of(
    argument("--base", help="Base model to fine-tune (default: the platform's fine-tune base)."),
    argument("--dataset", help="Training data: a local .jsonl path or a platform dataset id."),
    option_arguments(TRAIN_OPTIONS),
    argument("--name", help="A name for the run (dashboards, --list and %%qfmodels show it, the id beside)."),
    argument("--mode", metavar="MODE", help="Train mode: SFT (default: prompt/response pairs), PostPretrain (plain "
             "text), DPO (prompt + chosen + rejected), KTO (prompt + chosen or rejected), RFT (prompts, scored by "
             "--reward)."),
    argument("--eval-split", type=int, metavar="PCT", help="Hold out PCT%% of the data (never trained on) for the "
             "evaluation loss the dashboard draws beside the training loss (default: the platform's 20; 0: none)."),
    argument("--early-stop", action="store_true",
             help="End the run once 2 checkpoints in a row bring no improvement of the held-out loss."),
    argument("--eval-metric", metavar="METRIC", help="Also score each checkpoint's answers to held-out items and "
             "keep the best by it: rouge_l, exact_match or a notebook function (input, reference, output) -> float."),
    argument("--forecast", action="store_true",
             help="Before it starts, show what the fine-tune will take: training tokens (rows x epochs, by the "
                  "base's tokenizer), steps, time (this machine's recorded fine-tunes) and price; the dashboard "
                  "puts the run beside it at the end. With a budget set, a run it may exceed is refused."),
    argument("--dry-run", action="store_true",
             help="Show the fine-tune's forecast (as --forecast, and what a budget would say) and start nothing."),
    argument("--deploy", action="store_true",
             help="Publish and deploy the model when training succeeds (its best checkpoint; with --attach TASK: "
                  "deploy that job)."),
    argument("--fresh", action="store_true",
             help="Train again even if this platform has a finished run of the same recipe (it is reused otherwise)."),
    argument("--target", help="Where the training runs: local (the embedded platform), qianfan (the cloud) or "
                              "ray://HOST:DASHBOARD_PORT (a Ray cluster: the local platform submits it as a Ray Train "
                              "job, follows it and brings the best checkpoint back to be served). "
                              "Default: QFNB_TARGET, else the configured platform."),
    argument("--ray-workers", type=int, metavar="N",
             help="With a Ray --target: Ray Train workers training the run data-parallel (each on its share of the "
                  "rows, one CPU each). Default: QFNB_RAY_TRAIN_WORKERS, else 1."),
    argument("--reward", metavar="MODULE:FUNCTION", help="RFT's reward: fn(prompt, completion, **kw) -> float, "
             "imported from MODULE (or a notebook function's name); it scores the sampled answers in this kernel while "
             "the run trains. With --attach: go on providing the rewards of a RFT run whose kernel restarted."),
    argument("-o", "--output", help="Store the dashboard (.trainer, .wait(), .trained_model_id) here."),
    argument("--attach", metavar="ID", nargs="?", const="",
             help="Re-attach a dashboard to a fine-tune: a task, job or pipeline id (none: the newest running)."),
    argument("--list", action="store_true", help="List this platform's fine-tunes (status, progress, age)."),
    argument("--stop", metavar="TASK", help="Stop a running fine-tune task."),
)


def handle_magic(magics: Any, args: TrainArgs, line: str) -> Any:
    """Dispatch the parsed ``%qftrain`` arguments."""
    if args.stop:
        try:
            attach.platform_stop(args.stop)
        except Exception as exc:
            raise QfnbCellError(f"could not stop task {args.stop}: {exc}", title="qftrain") from exc
        return f"stop requested for task {args.stop}"
    if args.list:
        try:
            return jobs_frame()
        except Exception as exc:
            raise QfnbCellError(f"could not list the fine-tunes: {exc}", title="qftrain") from exc
    if args.attach is not None:
        return _attach(magics, args)
    if not args.recipe:
        bases = platform_base_models(magics.list_models)
        launcher = FinetuneLauncher(factory=magics.trainer_factory, base_models=bases, mode=_mode_arg(args.mode))
        launcher.on_deploy = magics.deployer
        if args.output:
            magics.user_ns[args.output] = launcher
            launcher.var_name = args.output
        launcher.show()  # with a display id: the job's final static state replaces the form
        return None
    return _launch(magics, args)


def _launch(magics: Any, args: TrainArgs) -> None:
    """A recipe's launch, its forecast first (``--dry-run``: the forecast only)."""
    spec = train.TrainSpec.from_args(args, eval_metric=_metric_arg(args.eval_metric, magics.user_ns),
                                     reward=_reward_arg(args.reward, magics.user_ns))
    ahead = train.forecast(spec, shown=args.forecast, dry_run=args.dry_run)
    if args.dry_run:  # the forecast is shown: nothing starts
        return None
    try:
        dash = train.launch(spec, magics.trainer_factory, on_deploy=magics.deployer,
                            forecast_tokens=ahead.tokens if ahead is not None else None)
    except UsageError:
        raise
    except Exception as exc:  # bad dataset, unknown base model, ...: one clear line
        raise QfnbCellError(f"{type(exc).__name__}: {exc}", title="qftrain could not start") from exc
    dash.forecast = ahead
    _keep(magics, args, dash.state.title, dash)
    return None


def _mode_arg(word: str | None) -> str:
    """``--mode`` as the platform spells it; a UsageError naming the modes."""
    try:
        return train_formats.train_mode(word or "SFT", "--mode")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _metric_arg(word: str | None, namespace: dict[str, Any]) -> str | Callable[..., Any] | None:
    """``--eval-metric``'s word: a built-in metric's name as typed, or the notebook function it names,
    under that name (its column is ``step_five`` for ``--eval-metric step_five``, as ``%qfeval
    --metrics`` names it, even for a lambda)."""
    fn = namespace.get(word) if word is not None and word.isidentifier() else None
    if not callable(fn):
        return word

    def metric(input: Any, reference: str, output: str) -> Any:
        return fn(input, reference, output)

    metric.__name__ = metric.__qualname__ = str(word)
    return metric


def _reward_arg(word: str | None, namespace: dict[str, Any]) -> Callable[..., Any] | None:
    """``--reward``: a notebook function named so, else ``module:function`` imported (a UsageError naming
    the option when it is neither)."""
    if word is None:
        return None
    fn = namespace.get(word) if word.isidentifier() else None
    if callable(fn):
        return fn  # type: ignore[no-any-return]
    from qfnb.trainer.steps.rewards import resolve_reward  # deferred: the trainer's reward checks

    try:
        found = resolve_reward(word, "--reward")
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    if not callable(found):
        raise UsageError(f"--reward must name a function, got {word!r}")
    return found


def _attach(magics: Any, args: TrainArgs) -> None:
    """``--attach [task | job | pipeline id]``: one live dashboard of that job in this kernel."""
    try:
        task_id = resolve_task(args.attach or None)
        dash = _followed(magics, task_id)
        if dash is not None:
            dash.show()  # this kernel already follows it: the same dashboard, not a second that may disagree
        else:
            dash = attach.attach(task_id, on_deploy=magics.deployer,
                                 reward=_reward_arg(args.reward, magics.user_ns), **magics.attach_options)
    except UsageError:
        raise
    except Exception as exc:
        raise QfnbCellError(f"cannot attach to {args.attach or 'the newest running fine-tune'}: {exc}",
                            title="qftrain") from exc
    _keep(magics, args, task_id, dash)
    if args.deploy:  # %qftrain --attach TASK --deploy: deploy this job (now, or when it succeeds)
        if not dash.done:
            dash.deploy_when_done = True
            dash.state.note("will deploy when the fine-tune succeeds")
        elif dash.state.status != "succeeded":
            raise UsageError(f"task {task_id} {dash.state.status}: there is no model to deploy")
        else:
            dash.deploy()


def _followed(magics: Any, task_id: str) -> Any:
    """The dashboard this kernel already shows for ``task_id`` (launched here, or attached)."""
    for dash in magics.dashboards.values():
        if dash.state.task_id == task_id and (not dash.done or dash.state.status == "succeeded"):
            return dash
    return None


def _keep(magics: Any, args: TrainArgs, key: str, dash: Any) -> None:
    magics.dashboards[key] = dash
    if args.output:
        magics.user_ns[args.output] = dash
        dash.var_name = args.output
