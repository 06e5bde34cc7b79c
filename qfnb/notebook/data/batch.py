"""``%qfbatch``: durable batch inference from a notebook, with a live progress line.

The job is a platform task (:class:`qfnb.resources.batch_job.BatchJob`), so a kernel restart
loses nothing: ``%qfbatch --attach [ID]`` shows the bar again from any kernel, ``--list``
lists the tasks, and an Interrupt stops only the bar (the job goes on, and the bar says so).
``--target ray://HOST:PORT`` runs it as a Ray job on that cluster instead; there an Interrupt
stops the Ray job (``stop_job``), and running the same line again resumes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.record.cache import mode_for
from qfnb._core.runtime import sync
from qfnb.notebook._checks import answer_shape, check_var, sampling_options
from qfnb.notebook._ipython import (
    HTML,
    argument,
    display,
    line_magic,
    magic_arguments,
    parse_argstring,
    sampling_arguments,
)
from qfnb.notebook.arguments import BatchArgs
from qfnb.notebook.errors import QfnbCellError, QfnbInterrupted
from qfnb.resources.batch_job import BatchJob, JobState
from qfnb.resources.forecast_result import duration
from qfnb.resources.safe_html import clean, escape
from qfnb.resources.targets import JobTarget, parse_target

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell

    from qfnb.notebook.forecasts import RunForecast

def progress_text(state: JobState) -> str:
    """One line: ``infer-… Running 120/256 rows · 2 failed · 812.4 tok/s · ETA 14 s``."""
    # a finished task has nothing left
    eta = "" if state.finished else f" · ETA {'–' if state.eta_seconds is None else duration(state.eta_seconds)}"
    return (f"{state.task_id} {state.status} {state.done + state.failed}/{state.total} rows · {state.failed} failed"
            f" · {state.tokens_per_second:.1f} tok/s{eta}")


def progress_html(state: JobState, note: str = "") -> str:
    share = 100.0 * (state.done + state.failed) / state.total if state.total else 0.0
    if not note and not state.finished:  # also what a saved notebook or a restarted kernel still shows
        note = f"runs on the platform: %qfbatch --attach {state.task_id} shows it from any kernel"
    if not state.finished:  # no kernel updates this line once the one that drew it is gone: say when it was true
        note += f" · snapshot {time.strftime('%Y-%m-%d %H:%M:%S')}, not live"
    extra = f"<div style='color:var(--jp-ui-font-color2,#595959)'>{escape(note)}</div>" if note else ""
    # the theme's colours: a pale track on a dark page was a glaring white bar
    # a track (border + pale fill) the bar fills, so a finished one still reads as a full bar, not a block
    done_ok = state.finished and not state.failed
    fill = "var(--jp-success-color1,#388e3c)" if done_ok else "var(--jp-brand-color1,#1976d2)"
    return clean(f"<div class='qfnb-batch'><div class='qfnb-batch-track' style='background:var(--jp-layout-color3,"
                 f"#e0e0e0);border:1px solid var(--jp-border-color1,#bdbdbd);border-radius:4px;width:320px;"
                 f"height:8px'><div style='background:{fill};width:{share:.1f}%;height:8px;border-radius:3px'>"
                 f"</div></div><code>{escape(progress_text(state))}</code>{extra}</div>")


class Bar:
    """The live line: an updatable display in a kernel, text otherwise."""

    def __init__(self) -> None:
        self._handle = display(HTML(""), display_id=True)

    def show(self, state: JobState, note: str = "") -> None:
        if self._handle is not None:
            self._handle.update(HTML(progress_html(state, note)))


def reuse_note(state: JobState) -> str:
    """The line under a reused task's bar: which task, when it ended, how to run it again."""
    ended = state.view.get("finishTime") or _when(state.view.get("completed_at"))
    when = f", finished {ended}" if ended else ""
    return (f"↺ reused {state.task_id}{when}: same input rows, model and parameters; nothing was run again"
            " · --fresh runs it again")


def _when(stamp: Any) -> str:
    """A Files + Batch job's Unix time as the console's tasks show theirs (UTC)."""
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def watch(job: BatchJob, *, interval: float = 0.5, bar: Any = None,
          sleep: Callable[[float], None] = time.sleep) -> JobState:
    """Redraw ``job``'s progress until it ends; on Interrupt the bar stops (the job does not).
    The ended task's tokens go to the usage ledger (a reused one's as saved)."""
    bar = bar if bar is not None else Bar()
    reused = job.reused is not None
    state = job.state()
    try:
        while True:
            bar.show(state, reuse_note(state) if reused else "")
            if state.finished:
                job.record(state, reused=reused)
                return state
            sleep(interval)
            state = job.state()
    except KeyboardInterrupt:
        cluster = job.target.cluster if job.target is not None else None
        if cluster is not None:  # a cluster's job stops with the cell: run the same line again to resume it
            state = job.stop()
            job.record(state)
            note = (f"stopped {cluster.title} job {job.task_id} ({state.done}/{state.total} rows answered); running "
                    "the same batch again resumes it with the rows not yet answered")
            bar.show(state, note)
            raise QfnbInterrupted(note, title="batch stopped") from None
        note = (f"stopped watching; the job goes on on the platform — %qfbatch --attach {job.task_id} "
                "shows it again, %qfbatch --stop stops it")
        bar.show(state, note)
        raise QfnbInterrupted(note, title="batch still running") from None


def input_prompts(job: BatchJob, state: JobState) -> list[str]:
    """The last user message of each input row (read from the task's input object)."""
    from qfnb._core.http.client import get_client  # deferred: loads the HTTP client (`%load_ext qfnb` does not)

    if job.on_cluster:  # a cluster job's journal carries each row's prompt
        return job.prompts(state) or [""] * state.total
    cfg = resolve_config(job.config)
    uri, file_id = str(state.view.get("inputBosUri") or ""), str(state.view.get("input_file_id") or "")
    if file_id:  # a Files + Batch job (the v2 cloud): its input file
        got = sync.run(get_client(cfg).v2_api("GET", f"/v2/files/{quote(file_id, safe='')}/content", octets=True))
    elif uri.startswith("bos:/"):
        got = sync.run(get_client(cfg).signed_request("GET", f"{cfg.bos_endpoint.rstrip('/')}/{uri[5:].lstrip('/')}"))
    else:
        return [""] * state.total
    text = got.body["_raw"] if isinstance(got.body, dict) and "_raw" in got.body else json.dumps(got.body)
    prompts = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            messages = (row.get("body") or row).get("messages") or [{"content": row.get("query") or ""}]
            prompts.append(str(messages[-1].get("content", "")))
    return prompts


def as_dataset(job: BatchJob) -> Any:
    """A :class:`qfnb.dataset.Dataset` of the job's rows: ``prompt``, ``llm_output`` (and ``error``)."""
    from qfnb.dataset import Dataset  # deferred: loads pandas (`%load_ext qfnb` does not)

    state = job.state()
    values = job.results()
    prompts = input_prompts(job, state)
    rows = []
    for i, value in enumerate(values):
        row = {"prompt": prompts[i] if i < len(prompts) else "",
               "llm_output": None if value is None or isinstance(value, Exception) else value.result}
        if isinstance(value, Exception):
            row["error"] = str(value)
        rows.append(row)
    return Dataset.create_from_pyobj(rows)


def list_frame(states: list[JobState]) -> pd.DataFrame:
    import pandas as pd

    rows = [{"task": s.task_id, "name": s.name, "status": s.status, "done": s.done, "failed": s.failed,
             "total": s.total, "tok/s": round(s.tokens_per_second, 1), "created": s.view.get("createTime")}
            for s in reversed(states)]
    return pd.DataFrame(rows, columns=["task", "name", "status", "done", "failed", "total", "tok/s", "created"])


def _inputs(value: Any, column: str) -> list[Any]:
    """Prompts from a list, a Dataset or a DataFrame (its ``column``)."""
    if hasattr(value, "list") and hasattr(value, "columns") and not hasattr(value, "iloc"):
        value = value.list()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        value = value.to_dict("records")
    if not isinstance(value, list | tuple):
        raise UsageError("%qfbatch needs a list of prompts, a Dataset or a DataFrame")
    return [v[column] if isinstance(v, dict) and column in v else v for v in value]


def handle_magic(magics: BatchMagics, args: BatchArgs) -> Any:
    """Dispatch ``%qfbatch`` (see the magic's help)."""
    try:
        target = parse_target(args.target, field="--target")
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    if args.list:
        return list_frame(BatchJob.list(target=target))
    if args.stop:
        return progress_text(BatchJob(args.stop, target=target).stop())
    ahead: RunForecast | None = None
    job: BatchJob | None
    if args.attach is not None:
        job = BatchJob.attach(args.attach or None, target=target)
    else:
        job, ahead = _submit(magics, args, target)
    if job is None:  # --dry-run: the forecast is shown, nothing submitted
        return None
    if args.output:
        magics.user_ns[args.output] = job
    if args.no_wait:
        return job
    state = watch(job)
    if state.status != "Done":
        raise QfnbCellError(f"{job.task_id} ended {state.status}: {state.view.get('errorReason') or ''}".strip(),
                            title="batch ended early")
    for check in ahead.checks() if ahead is not None else []:  # --forecast (or a budget): the run beside it
        display(check)
    return as_dataset(job)


def _reuse_wanted(args: BatchArgs) -> bool:
    """Reuse a finished twin unless ``--fresh``, where answers replay (the response cache is on:
    ``%load_ext qfnb`` turns it on), as ``%%qfchat`` replays and ``%qftrain`` reuses a run."""
    return not args.fresh and mode_for(Config.from_env().cache) == "on"


def _submit(magics: BatchMagics, args: BatchArgs,
            target: JobTarget | None) -> tuple[BatchJob | None, RunForecast | None]:
    """Submit ``args.source``'s prompts as a new batch job (``BatchJob.submit``); ``--dry-run``: its
    forecast only (no job)."""
    if not args.source:
        raise UsageError("%qfbatch SOURCE -m MODEL (a list of prompts, a Dataset or a DataFrame), "
                         "or --attach [ID] / --list / --stop ID")
    if args.source not in magics.user_ns:
        raise UsageError(f"no variable {args.source!r} in the notebook")
    model = args.model or magics.default_model or None
    if not (model or args.endpoint):
        raise UsageError("give -m MODEL or --endpoint NAME")
    try:
        sampling = sampling_options(args.sampling)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    shape = answer_shape(magics.user_ns, args.json, args.schema)
    params = sampling.fields()
    if shape is not None:  # every row answers in the asked shape (batch_do's response_format)
        params["response_format"] = shape.response_format
    inputs = _inputs(magics.user_ns[args.source], args.column)
    ahead = _forecast(args, inputs, str(model or args.endpoint), params.get("max_output_tokens"))
    if args.dry_run:
        return None, ahead
    try:  # the sampling options go to every row (the task's inferenceParams)
        return BatchJob.submit(inputs, model=model, endpoint=args.endpoint, name=args.name, inference_params=params,
                               reuse=_reuse_wanted(args), target=target), ahead
    except Exception as exc:
        raise QfnbCellError(str(exc), title="batch not started") from exc


def _forecast(args: BatchArgs, inputs: list[Any], model: str, max_tokens: int | None) -> RunForecast | None:
    """``--forecast`` (or a budget): the batch's forecast shown and checked before it is submitted."""
    # deferred: loads the inference resources (`%load_ext qfnb` does not)
    from qfnb.notebook.forecasts import batch_forecasts, begin, checked_forecast

    shown, dry = args.forecast, args.dry_run
    return checked_forecast(lambda: begin(batch_forecasts(inputs, model=model, max_tokens=max_tokens), shown=shown,
                                          what=f"this batch ({len(inputs):,} rows)", dry_run=dry),
                            shown=shown, magic="batch", dry_run=dry)


class BatchSettings(Protocol):
    """What ``%qfbatch`` reads of the notebook's settings (``QfnbMagics`` has it, given at ``%load_ext qfnb``)."""

    @property
    def default_model(self) -> str: ...


@magics_class
class BatchMagics(Magics):
    """``%qfbatch`` (registered by ``%load_ext qfnb``, with the notebook's ``settings``: its default model)."""

    def __init__(self, shell: InteractiveShell | None = None, settings: BatchSettings | None = None,
                 **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.settings = settings

    @property
    def user_ns(self) -> dict[str, Any]:
        if self.shell is None:
            raise UsageError("%qfbatch needs an IPython shell")
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    @property
    def default_model(self) -> str:
        """``%config QfnbMagics.default_model`` ('' without the notebook's settings: the platform's default)."""
        return self.settings.default_model if self.settings is not None else ""

    @magic_arguments()
    @argument("source", nargs="?", help="A variable: a list of prompts, a Dataset or a DataFrame.")
    @argument("-m", "--model", help="Chat model to run on the platform.")
    @argument("--endpoint", help="A deployed service's endpoint instead of --model.")
    @argument("--column", default="prompt", help="Prompt column of a Dataset/DataFrame (default: prompt).")
    @argument("--name", help="Task name.")
    @sampling_arguments
    @argument("--json", action="store_true", help="Every answer must be a JSON object (response_format json_object).")
    @argument("--schema", help="NAME of a pydantic model class or JSON-schema dict every answer must match (strict).")
    @argument("--forecast", action="store_true",
              help="Before submitting, show what the batch will take (input tokens by the model's tokenizer, "
                   "output tokens with a range, price, ETA); when it ends, the run beside it. With a budget "
                   "set, a batch whose forecast may exceed what is left is refused.")
    @argument("--dry-run", action="store_true",
              help="Show the batch's forecast (as --forecast, and what a budget would say) and submit nothing.")
    @argument("-o", "--output", help="Store the BatchJob (.state(), .results(), .stop()) here.")
    @argument("--no-wait", action="store_true", help="Submit and return the BatchJob without the live bar.")
    @argument("--fresh", action="store_true",
              help="Run a new task even if this platform has a finished one of the same rows, model and "
                   "parameters (it is reused otherwise, as %%qfchat replays).")
    @argument("--target", help="Where the job runs: local (the embedded platform), qianfan (the cloud) or "
                               "ray://HOST:DASHBOARD_PORT (a Ray cluster; an Interrupt stops the Ray job, the same "
                               "line again resumes it). Default: QFNB_TARGET, else the configured platform.")
    @argument("--attach", metavar="ID", nargs="?", const="", help="Show a task's live bar again (none: the newest).")
    @argument("--list", action="store_true", help="List this platform's batch-inference tasks.")
    @argument("--stop", metavar="ID", help="Stop a task (its finished rows stay).")
    @line_magic
    def qfbatch(self, line: str) -> Any:
        """Durable batch inference on the platform with a live bar; the result is a Dataset with ``llm_output``."""
        args = BatchArgs.of(parse_argstring(self.qfbatch, line))
        check_var(args.output, "-o/--output")
        return handle_magic(self, args)
