"""``%qfeval``'s two forms once its line is parsed: a run (the checked plan, its forecast and budget,
``--batch``'s durable tasks, the generations, and the report with its pilot plan, judge notes,
comparison and stability) and a stored result's report (``%qfeval RESULT [--compare BASE]
[--plan MIN_DIFF]``). Problems with the arguments raise ``UsageError``; a run that fails, a
:class:`~qfnb.notebook.errors.QfnbCellError` with one clear line."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from IPython.core.error import UsageError

from qfnb.evaluation import EvaluationResult
from qfnb.evaluation.runs.answers import AnswerStore, default_store_path
from qfnb.notebook import forecasts
from qfnb.notebook._checks import split_csv
from qfnb.notebook.arguments import EvalArgs
from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.evaluation import batch as evalbatch
from qfnb.notebook.evaluation import plan as evalplan
from qfnb.notebook.evaluation.labelling import PREFERENCE_SCALE, LabelSession, LabelWidget
from qfnb.notebook.evaluation.metric_words import METRICS, columns_for, report_frame, report_samples
from qfnb.notebook.evaluation.options import EvalArgsError
from qfnb.notebook.evaluation.report import EvalReport, as_results, judge_scales
from qfnb.notebook.evaluation.run import EvalPlan, min_difference, reuse_note

if TYPE_CHECKING:  # pragma: no cover
    from IPython.core.interactiveshell import InteractiveShell

log = logging.getLogger("qfnb.notebook.evaluation.qfeval")


class EvalHost(Protocol):
    """What a ``%qfeval`` run uses of the magics that run it (``QfnbMagics`` has it): their shell and
    namespace, the progress setting, and the line runner of ``--plan``'s full run."""

    @property
    def shell(self) -> InteractiveShell | None: ...
    @property
    def user_ns(self) -> dict[str, Any]: ...
    @property
    def eval_progress(self) -> Any: ...
    def run_line(self, line: str) -> object: ...


def run_report(magics: EvalHost, args: EvalArgs, chart: list[str], line: str, *,
               watch: Callable[..., Any]) -> EvalReport | None:
    """``%qfeval --models ... --dataset ...``: check, forecast, run and report (``magics``: the
    kernel's :class:`~qfnb.notebook.magics.QfnbMagics`; ``watch``: ``%qfbatch``'s live line, which
    watches ``--batch``'s tasks)."""
    try:
        plan, pilot = evalplan.prepare(args, magics.user_ns)
    except EvalArgsError as exc:
        raise UsageError(str(exc)) from exc
    except Exception as exc:  # the platform could not list models or hand out the dataset
        raise QfnbCellError(f"{type(exc).__name__}: {exc}", title="qfeval could not start") from exc
    log.info("qfeval: %d model(s) x %d row(s), metrics %s", len(plan.llms), len(plan.frame), plan.metrics)
    ahead = _forecast(plan, args.forecast, args.dry_run)
    if ahead.dry_run:  # --dry-run: the forecast is shown, nothing is asked
        return None
    batch = evalbatch.phase(plan, watch=watch)
    if batch is not None:  # each model's forecast against its own task
        ahead = ahead.of_tasks(batch.tasks)
    try:
        result = plan.run(progress=magics.eval_progress)
    except Exception as exc:  # every inference failed, the platform went away, ...: one clear line
        raise QfnbCellError(f"{type(exc).__name__}: {exc}", title="qfeval failed") from exc
    result.shown_metrics = plan.shown_metrics
    if args.output:
        magics.user_ns[args.output] = result
    shown = report_frame(plan.columns, result.metrics_df)
    wanted = chart if chart != ["auto"] else list(shown.columns)
    report = EvalReport(shown, report_samples(plan.columns, result.samples_df), chart=wanted or ["auto"], result=result,
                        scales=_shown_scales(plan.columns, result), names=plan.columns)
    report.reused = batch.note if batch is not None else reuse_note(plan)
    report.forecast = ahead.checks()
    if pilot is not None:
        try:
            report.plan = pilot.report(result, plan, line)
        except EvalArgsError as exc:
            raise UsageError(str(exc)) from exc
        report.runner = evalplan.full_run(report.plan, magics.shell, magics.run_line)
    _judged(report, plan, result)
    if plan.label:
        _labelling(report, plan, result, magics.shell)
    return report


def _labelling(report: EvalReport, plan: EvalPlan, result: EvaluationResult, shell: InteractiveShell | None) -> None:
    """``--label``: the label session over the judged answers (its labels from the evaluation's store, and
    ``--calibrate``'s where it asks for them), and its widget in a kernel (a terminal shows the verdict)."""
    tags = plan.label_tags()
    preferences = None
    if plan.pairwise is not None and len(tags) == 2:  # the pairwise judge corrected; its orders disagreeing: doubt
        metric, scale = f"pairwise:{plan.pairwise.tag}", PREFERENCE_SCALE
        preferences = result.preferences(plan.pairwise, tags[0], tags[1])
    else:
        metric = METRICS["judge"][1][0]
        found = judge_scales(result).get(metric)
        if found is None:
            raise QfnbCellError("the judge recorded no score range", title="qfeval --label")
        scale = found
    try:
        session = LabelSession.of_result(result, tags, metric=metric, scale=scale,
                                         store=plan.store or AnswerStore(default_store_path()),
                                         width=plan.label_width, known=plan.labels, preferences=preferences)
    except EvalArgsError as exc:
        raise UsageError(str(exc)) from exc
    report.labelling = session
    if evalplan.in_kernel(shell):
        report.labeller = LabelWidget(session)


def _judged(report: EvalReport, plan: EvalPlan, result: EvaluationResult) -> None:
    """The report's judge notes, comparison and stability (each where the plan asks for it)."""
    try:
        report.verdicts, report.judge_notes = plan.judge_check(result)
        if plan.compare is not None and not plan.sequential:  # after a sequential stop, fixed-n tests are invalid
            report.comparison = plan.comparison(result)
        if plan.repeats > 1:
            report.stability = result.stability(metrics=[c for c in plan.columns if c in result.item_metrics])
    except ValueError as exc:  # e.g. every answer of the baseline failed: the report still shows
        log.warning("qfeval: no comparison: %s", exc)


def stored_report(value: object, args: EvalArgs, chart: list[str]) -> EvalReport:
    """``%qfeval RESULT``: the report of a result in the namespace (a notebook run's shows the metrics
    it asked for, under their names), with ``--plan``'s sample sizes and ``--compare``'s comparison
    (of a ``{name: result}`` dict, its results combined: one per run, paired by item)."""
    results = as_results(value)  # a TypeError for what is no result
    if isinstance(results, EvaluationResult) and results.shown_metrics:
        cols = columns_for(results.shown_metrics)
        report = EvalReport(report_frame(cols, results.metrics_df), report_samples(cols, results.samples_df),
                            chart=chart, result=results, scales=_shown_scales(cols, results), names=cols)
    else:
        report = EvalReport.from_value(results, chart=chart)
    if args.plan is None and args.compare is None:
        return report
    result = EvaluationResult.combine(results) if isinstance(results, Mapping) else results
    if args.plan is not None:
        report.plan = _stored_plan(result, args, args.plan)
    if args.compare is not None:
        try:
            report.comparison = result.compare(b=args.compare)
        except ValueError as exc:
            raise UsageError(f"%qfeval --compare: {exc}") from exc
    return report


def _shown_scales(columns: Mapping[str, str], result: EvaluationResult) -> dict[str, tuple[float, float]]:
    """The judges' score ranges under the names the report shows."""
    return {columns.get(m, m): scale for m, scale in judge_scales(result).items()}


def _stored_plan(result: EvaluationResult, args: EvalArgs, min_diff: str) -> evalplan.PlanReport:
    """``%qfeval RESULT --compare BASE --plan MIN_DIFF``: the plan from a stored result."""
    if args.compare is None:
        raise UsageError("%qfeval --plan: name the baseline with --compare BASE")
    metrics = split_csv(args.metrics or []) or result.item_metrics[:1]
    try:
        if not metrics:
            raise EvalArgsError("--plan: the result has no per-item metric")
        found, skipped = evalplan.plans(result, args.compare, metrics[0], min_difference(min_diff, "--plan"))
    except EvalArgsError as exc:
        raise UsageError(str(exc)) from exc
    pilot = len(set(result.samples["index"]))
    return evalplan.PlanReport(found, pilot_items=pilot, dataset_items=None, line=None, metric=metrics[0],
                               skipped=skipped)


def _forecast(plan: EvalPlan, shown: bool, dry_run: bool = False) -> forecasts.RunForecast:
    """``--forecast``, ``--dry-run`` (or a budget): the evaluation's forecast shown and checked before its
    first call (the answers its store or the response cache hold count as none)."""

    def ahead() -> forecasts.RunForecast:
        found, notes = forecasts.eval_forecasts(plan.llms, list(plan.frame["input"]), batch=plan.batch,
                                                max_tokens=plan.sampling.max_output_tokens, repeats=plan.repeats,
                                                params=plan.sampling.fields(), store=plan.store)
        return forecasts.begin(found, notes, shown=shown, dry_run=dry_run,
                               what=f"this evaluation ({plan.generations:,} generations)")

    return (forecasts.checked_forecast(ahead, shown=shown, magic="qfeval", dry_run=dry_run)
            or forecasts.RunForecast.none())
