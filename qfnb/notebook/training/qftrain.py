"""``%qftrain``'s dispatch: ``--stop TASK``, ``--list``, ``--attach [ID]`` (one live dashboard per job in
this kernel), the launcher form when the line gives no recipe, else a launch (its forecast first)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError

from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.training import attach
from qfnb.notebook.training import run as train
from qfnb.notebook.training.jobs import jobs_frame, resolve_task
from qfnb.notebook.training.launcher import FinetuneLauncher, platform_base_models


def handle_magic(magics: Any, args: argparse.Namespace, line: str) -> Any:
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
    if args.dataset is None and all(getattr(args, n) is None for n in train.BOUNDS) and args.base is None \
            and args.name is None and getattr(args, "eval_split", None) is None:
        bases = platform_base_models(magics.list_models)
        launcher = FinetuneLauncher(factory=magics.trainer_factory, base_models=bases)
        launcher.on_deploy = magics.deployer
        if args.output:
            magics.user_ns[args.output] = launcher
            launcher.var_name = args.output
        launcher.show()  # with a display id: the job's final static state replaces the form
        return None
    args.eval_metric = _metric_arg(getattr(args, "eval_metric", None), magics.user_ns)
    spec = train.TrainSpec.from_args(args)
    ahead = train.forecast(spec, shown=bool(getattr(args, "forecast", False)))
    try:
        dash = train.launch(spec, magics.trainer_factory, on_deploy=magics.deployer)
    except UsageError:
        raise
    except Exception as exc:  # bad dataset, unknown base model, ...: one clear line
        raise QfnbCellError(f"{type(exc).__name__}: {exc}", title="qftrain could not start") from exc
    dash.forecast = ahead
    _keep(magics, args, dash.state.title, dash)
    return None


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


def _attach(magics: Any, args: argparse.Namespace) -> None:
    """``--attach [task | job | pipeline id]``: one live dashboard of that job in this kernel."""
    try:
        task_id = resolve_task(args.attach or None)
        dash = _followed(magics, task_id)
        if dash is not None:
            dash.show()  # this kernel already follows it: the same dashboard, not a second that may disagree
        else:
            dash = attach.attach(task_id, on_deploy=magics.deployer, **magics.attach_options)
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


def _keep(magics: Any, args: argparse.Namespace, key: str, dash: Any) -> None:
    magics.dashboards[key] = dash
    if args.output:
        magics.user_ns[args.output] = dash
        dash.var_name = args.output
