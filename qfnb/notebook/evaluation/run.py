"""``%qfeval --models ... --dataset ...``: check the magic's arguments into an :class:`EvalPlan`, a
run of ``EvaluationManager``.

The metric words live in :mod:`.metric_words`, the model words in :mod:`.targets`; this module reads
the data set, checks the numbers, tags, ``--sequential``, ``--calibrate`` and ``--sample``, and puts
the plan together. Everything is checked before the first model call; problems raise
:class:`EvalArgsError` naming the option.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qfnb.dataset import Dataset
from qfnb.evaluation import EvaluationManager, LocalJudgeEvaluator, PairwiseJudge
from qfnb.evaluation.data import REFERENCE_NAMES, eval_frame, to_frame
from qfnb.evaluation.evaluators.metrics import FunctionEvaluator
from qfnb.evaluation.llm import PromptVariant, embedded_chat
from qfnb.evaluation.runs.answers import AnswerStore, default_store_path
from qfnb.evaluation.runs.batch_answers import check_batchable
from qfnb.evaluation.runs.sequential_eval import eval_sequential
from qfnb.evaluation.stats.judge_check import Verdict, check_judge, uncalibrated
from qfnb.notebook._checks import sampling_options, split_csv
from qfnb.notebook.arguments import EvalArgs
from qfnb.notebook.evaluation.labels import read_labels
from qfnb.notebook.evaluation.metric_words import (
    JUDGE_MAX_TOKENS,
    METRICS,
    check_metrics,
    columns_for,
    custom_metrics,
    make_evaluators,
    metric_bounds,
)
from qfnb.notebook.evaluation.options import (
    FIELD_ERRORS,
    EvalArgsError,
    batch_target,
    check_judges,
    check_recorded,
    parse_prompts,
    parse_recorded,
    reason,
)
from qfnb.notebook.evaluation.targets import default_chat_model, resolve_llm, resolve_llms, tag_of
from qfnb.notebook.sampling import SamplingOptions
from qfnb.notebook.widgets.progress import make_progress
from qfnb.resources.targets import JobTarget


@dataclass(frozen=True)
class EvalPlan:
    """A checked evaluation: ready for ``EvaluationManager(...).eval(llms, frame, ...)``."""

    llms: dict[str, Any]
    frame: pd.DataFrame
    metrics: tuple[str, ...]
    evaluators: list[Any]
    sampling: SamplingOptions = field(default_factory=SamplingOptions)  # -t, --top-p, ..., --max-tokens
    workers: int = 4
    repeats: int = 1
    #: ``{tag: dataset column or batch output path}``: answers scored without calling a model
    recorded: dict[str, str] = field(default_factory=dict)
    #: the baseline of ``--compare`` (a model tag), or None
    compare: str | None = None
    #: the answer store of the run's answers (``--fresh``: asked again), or None
    store: AnswerStore | None = None
    #: ``--pairwise``: a PairwiseJudge for the comparison, or None
    pairwise: Any = None
    #: ``--sequential [MIN_DIFF]``: stop generating once the comparison is decided (on ``decide_on``)
    sequential: bool = False
    min_difference: float | None = None
    decide_on: str | None = None
    #: ``--calibrate``: ``{model tag: {item index: the user's label}}`` for the judge's scores
    labels: dict[str, dict[int, float]] = field(default_factory=dict)
    #: the rows the data set offered (before ``--sample`` drew ``frame``'s items from them)
    rows_available: int = 0
    #: those rows, when ``--sample`` drew ``frame`` from them (a ``--plan`` forecasts its full run on them)
    population: pd.DataFrame | None = None

    #: ``--metrics NAME`` of a notebook function: its evaluator by the word asked
    custom: dict[str, FunctionEvaluator] = field(default_factory=dict)
    #: ``--batch``: the generations go through the platform's durable batch job (:mod:`.batch`)
    batch: bool = False
    #: ``--target`` (else ``QFNB_TARGET``): where ``--batch``'s jobs run (None: the config's platform)
    target: JobTarget | None = None
    #: ``--label [WIDTH]``: the person labels the judged answers in a widget (:mod:`.labelling`); the width
    #: one model's interval is labelled down to (None: the default)
    label: bool = False
    label_width: float | None = None

    def label_tags(self) -> list[str]:
        """``--label``'s models: one, or a pair ``(a, b)`` with ``--compare``'s baseline second."""
        tags = [*self.llms, *self.recorded]
        if self.compare is not None and len(tags) == 2:
            tags = [t for t in tags if t != self.compare] + [self.compare]
        return tags

    @property
    def columns(self) -> dict[str, str]:
        """Result column -> the name shown: exactly the metrics asked for, under the names asked for."""
        return columns_for(self.metrics, {w: list(ev.columns) for w, ev in self.custom.items()})

    @property
    def shown_metrics(self) -> list[str]:
        """What a stored result re-shows: the built-in words asked, and each notebook function's columns."""
        return [c for m in self.metrics for c in ([m] if m in METRICS else list(self.custom[m].columns) or [m])]

    @property
    def chart_metrics(self) -> list[str]:
        """The metric columns the user asked for, under their names (what the chart shows)."""
        return list(dict.fromkeys(self.columns.values()))

    @property
    def generations(self) -> int:
        return len(self.frame) * len(self.llms) * self.repeats

    def run(self, progress: Any = True) -> Any:
        """Run the evaluation (blocking; safe in a kernel) and return the ``EvaluationResult``.
        The progress bar counts generations (rows x models), then each answer a judge scores (the
        other metrics follow in a moment)."""
        judged = self.judged_positions()
        if not self.generations and not judged:  # recorded answers only: the bar counts their scoring
            judged = self.scored_positions()
        bar = make_progress(progress, desc=self.bar_label(judged))
        manager = EvaluationManager(local_evaluators=self.evaluators, worker_num=self.workers)
        if self.sequential:
            assert self.compare is not None and self.decide_on is not None  # checked by plan()
            model = next(t for t in self.llms if t != self.compare)
            return eval_sequential(manager, self.llms, self.frame, model=model, baseline=self.compare,
                                   metric=self.decide_on, bounds=metric_bounds(self.decide_on, self.evaluators),
                                   min_difference=self.min_difference, round_size=self.workers * 2,
                                   progress=bar, repeats=self.repeats, store=self.store, **self.sampling.fields())
        return manager.eval(self.llms or None, self.frame, input_column="input", reference_column="reference",
                            progress=GenerationProgress(bar, self.generations, judged) if bar is not None else False,
                            repeats=self.repeats, store=self.store, recorded=self.recorded or None,
                            **self.sampling.fields())

    def bar_label(self, judged: Sequence[int]) -> str:
        """What the bar counts: generations (calls), then what a judge scores; a run of recorded answers
        only makes no call, and its bar says so (it showed an empty 0/0)."""
        if not self.generations:
            return "recorded answers scored (no calls)" if judged else "no calls"
        return "generations + judging" if judged else "generations"

    def scored_positions(self) -> list[int]:
        """The first evaluator's pass over every answer in the evaluation's index space (one a recorded answer)."""
        answers = len(self.frame) * self.repeats * (len(self.llms) + len(self.recorded or {}))
        return list(range(self.generations, self.generations + answers)) if self.evaluators else []

    def judged_positions(self) -> list[int]:
        """Where a judge's scores fall in the evaluation's one index space (the generations first,
        then each evaluator's pass over every answer, in order: :class:`~qfnb.evaluation.EvaluationManager`)."""
        answers = len(self.frame) * self.repeats * (len(self.llms) + len(self.recorded or {}))
        return [self.generations + k * answers + j for k, ev in enumerate(self.evaluators)
                if isinstance(ev, LocalJudgeEvaluator) for j in range(answers)]

    def judge_check(self, result: Any) -> tuple[list[Verdict], list[str]]:
        """``--calibrate``: the judge against the user's labels (its verdicts, then their notes); with a
        judge and no labels, no verdict and a note that it is uncalibrated."""
        if not self.labels:
            return [], uncalibrated(result.judges)
        check = check_judge(result, self.labels, metric=METRICS["judge"][1][0], baseline=self.compare)
        return list(check.verdicts.values()), check.notes

    def comparison(self, result: Any) -> Any:
        """``result.compare`` against the ``--compare`` baseline on the asked-for metrics."""
        wanted = [c for c in self.columns if c in result.item_metrics]
        return result.compare(b=self.compare, metrics=wanted or None, judge=self.pairwise).renamed(self.columns)


def _sequential(args: EvalArgs, compare: str | None, llms: Mapping[str, Any], recorded: Mapping[str, Any],
                metrics: Sequence[str]) -> tuple[bool, float | None, str | None]:
    """``--sequential [MIN_DIFF]``: two live models, a baseline, and the metric that decides (the first asked)."""
    value = args.sequential
    if value is None:
        return False, None, None
    if compare is None:
        raise EvalArgsError("--sequential decides a comparison: add --compare BASE")
    if recorded or len(llms) != 2:
        raise EvalArgsError(f"--sequential compares exactly two models it runs (got {len(llms)} and "
                            f"{len(recorded)} recorded)")
    decide_on = METRICS[metrics[0]][1][0] if metrics[0] in METRICS else metrics[0]
    return True, min_difference(value, "--sequential") if value else None, decide_on


def min_difference(value: str, option: str) -> float:
    """``MIN_DIFF`` of ``--sequential`` / ``--plan``: a positive number."""
    try:
        out = float(value)
    except ValueError:
        raise EvalArgsError(f"{option}: MIN_DIFF must be a number, got {value!r}") from None
    if not out > 0:
        raise EvalArgsError(f"{option}: MIN_DIFF must be positive, got {value}")
    return out


def _batch(args: EvalArgs, llms: Mapping[str, Any], sequential: bool) -> bool:
    """``--batch``: every model a platform chat model, every item sent at once (before anything is sent)."""
    if not (args.batch or args.target):
        return False
    if sequential:
        raise EvalArgsError("--batch sends every item at once and --sequential stops early: use one of them")
    if not llms:
        raise EvalArgsError("--batch generates answers: give --models (recorded answers need no batch)")
    try:
        check_batchable(llms)
    except ValueError as exc:
        raise EvalArgsError(f"--batch: {reason(exc)}") from None
    return True


def _labels(args: EvalArgs, dataset: Any, frame: pd.DataFrame, tags: Sequence[str],
            metrics: Sequence[str]) -> dict[str, dict[int, float]]:
    """``--calibrate``: the user's labels of the judged answers (:mod:`.labels`), before any call."""
    words = split_csv(args.calibrate)
    if not words:
        return {}
    if "judge" not in metrics:
        raise EvalArgsError("--calibrate checks a judge against your labels: add --judge [MODEL]")
    return read_labels(words, to_frame(dataset).head(len(frame)), frame, tags)


def sample_rows(rows: int, size: int) -> list[int]:
    """``--sample N``: ``N`` of ``rows`` row positions drawn at random (seed 0), in the data set's order.
    One permutation serves every size, so a larger sample keeps a smaller one's items (a pilot's
    answers are reused by the full run)."""
    chosen = np.random.default_rng(0).permutation(rows)[:size]
    return sorted(int(i) for i in chosen)


def reuse_note(plan: EvalPlan) -> str | None:
    """``↺ 12 of 12 answers reused from earlier runs on the same items · --fresh asks again`` when
    the run's answer store gave any back (a replay asks no model: its bar's speed is the store's)."""
    hits = plan.store.hits if plan.store is not None else 0
    if not hits:
        return None
    asked = plan.generations - hits
    return (f"↺ {hits} of {plan.generations} answers reused from earlier runs on the same items "
            f"({asked} asked now) · --fresh asks every model again")


class GenerationProgress:
    """Contract 8 filter: forwards the inference results (the first ``generations`` indices of the
    evaluation's one index space) and a judge's scores (its ``judged`` indices, counted after them)
    and drops the other scoring ones, so the bar counts generations, then what the judge has scored."""

    def __init__(self, inner: Any, generations: int, judged: Sequence[int] = ()) -> None:
        self.inner, self.generations = inner, generations
        self._judged = {index: k for k, index in enumerate(judged, start=generations)}

    def on_start(self, total: int | None) -> None:
        self.inner.on_start(self.generations + len(self._judged))

    def on_result(self, index: int, ok: bool) -> None:
        at = index if index < self.generations else self._judged.get(index)
        if at is not None:
            self.inner.on_result(at, ok)

    def on_close(self) -> None:
        self.inner.on_close()


def load_dataset(word: str, namespace: Mapping[str, Any]) -> Any:
    """A namespace variable (Dataset, DataFrame, list of dicts), a local file or a platform id."""
    if not word:
        raise EvalArgsError("--dataset is required (a .jsonl/.json/.csv path, a platform dataset id, "
                            "or a Dataset/DataFrame variable)")
    if word.isidentifier() and word in namespace:
        return namespace[word]

    path = Path(word).expanduser()
    if path.exists():
        try:
            return Dataset.load(data_file=path)
        except (ValueError, OSError) as exc:
            raise EvalArgsError(f"--dataset: cannot read {word}: {exc}") from exc
    if word.isdigit() or word.startswith("ds-"):  # a platform dataset id
        return Dataset.load(qianfan_dataset_id=word)
    if word.isidentifier():
        raise EvalArgsError(f"--dataset: no variable, file or dataset id named {word!r}")
    raise EvalArgsError(f"--dataset: no such file: {word}")


def dataset_frame(dataset: Any, *, input_column: str | None, reference_column: str | None,
                  need_reference: bool, limit: int | None) -> pd.DataFrame:
    """``input``/``reference`` rows (the first ``limit``), read as ``EvaluationManager`` reads them."""
    try:
        frame = eval_frame(dataset, input_column=input_column, reference_column=reference_column)
    except ValueError as exc:  # qfnb's ValidationError names the missing column
        named = {"input_column": input_column, "reference_column": reference_column}
        field = exc.field if isinstance(exc, FIELD_ERRORS) else None
        option = f"--{field.replace('_', '-')}" if isinstance(field, str) and named.get(field) else "--dataset"
        raise EvalArgsError(f"{option}: {reason(exc)}") from exc
    if limit is not None:
        frame = frame.head(limit).reset_index(drop=True)
    if need_reference and not any(str(r).strip() for r in frame["reference"]):
        raise EvalArgsError(f"--dataset has no reference answers (looked for a column among "
                            f"{list(REFERENCE_NAMES)}; name it with --reference-column), and the "
                            f"metrics compare outputs with references")
    return frame


def _check_numbers(args: EvalArgs) -> None:
    """``--limit``, ``--workers`` and ``--repeats`` (the sampling options: :func:`sampling_options`)."""
    for name, value in (("limit", args.limit), ("workers", args.workers), ("repeats", args.repeats),
                        ("sample", args.sample)):
        if value is not None and value < 1:
            raise EvalArgsError(f"--{name} must be a positive integer, got {value}")
    if args.sample is not None and args.recorded:
        raise EvalArgsError("--sample draws items at random, and --recorded answers follow the data set's rows: "
                            "use --limit")


def _check_tags(compare: str | None, llms: Mapping[str, Any], recorded: Mapping[str, Any]) -> None:
    """Recorded answers name no model, and ``--compare``'s baseline is one of two or more."""
    tags = [*llms, *recorded]
    clash = sorted(set(llms) & set(recorded))
    if clash:
        raise EvalArgsError(f"--recorded: {clash} also name models in --models; give the recorded answers other tags")
    if compare is not None and compare not in tags:
        raise EvalArgsError(f"--compare: {compare!r} is not one of the evaluated models {tags}")
    if compare is not None and len(tags) < 2:
        raise EvalArgsError("--compare needs at least two models (the baseline and one to compare with it)")


def _judge(args: EvalArgs, namespace: Mapping[str, Any]) -> Any | None:
    """``--judge``'s model (bare: a chat model on the embedded local platform); None without it."""
    if args.judge is None:
        return None

    return resolve_llm(args.judge, namespace, "--judge")[1] if args.judge else embedded_chat()


def _pairwise(args: EvalArgs, compare: str | None, namespace: Mapping[str, Any], tags: Sequence[str]) -> Any | None:
    """``--pairwise``'s judge of each model against the ``--compare`` baseline (or, with ``--label`` and two
    models, of the first against the second: what the person labels); None without it."""
    if args.pairwise is None:
        return None
    if compare is None and not (args.label is not None and len(tags) == 2):
        raise EvalArgsError("--pairwise judges each model against the --compare baseline: add --compare BASE (or "
                            "--label with two models)")

    model = resolve_llm(args.pairwise, namespace, "--pairwise")[1] if args.pairwise else embedded_chat()
    return PairwiseJudge(model, judge_kwargs={"max_output_tokens": JUDGE_MAX_TOKENS})


def prompt_variants(args: EvalArgs, llms: dict[str, Any], namespace: Mapping[str, Any]) -> dict[str, Any]:
    """``--prompts NAME=PROMPT,...``: one candidate per prompt, all answered by the one ``--model``."""
    prompts = parse_prompts(args.prompts, namespace)
    if not prompts:
        return llms
    if len(llms) != 1:
        raise EvalArgsError(f"--prompts compares prompts on one model: give one --model (got {len(llms)})")
    (model,) = llms.values()
    return {name: PromptVariant(text, model) for name, text in prompts.items()}


def plan(args: EvalArgs, namespace: Mapping[str, Any]) -> EvalPlan:
    """Check every argument of the run form of ``%qfeval`` (no model is called)."""
    _check_numbers(args)
    try:
        sampling = sampling_options(args.sampling)
    except ValueError as exc:
        raise EvalArgsError(str(exc)) from None
    custom = custom_metrics(split_csv(args.metrics), namespace)
    metrics = check_metrics(split_csv(args.metrics), judge=args.judge is not None, custom=custom)
    words = split_csv(args.models) + [f"endpoint:{e}" for e in split_csv(args.endpoint)]
    if not words and (args.models or args.endpoint):
        raise EvalArgsError("--models: give at least one model (a name, an ep_... endpoint or a variable)")
    recorded = parse_recorded(split_csv(args.recorded))
    if not words and not recorded:  # like %%qfchat without -m: the default chat model
        words = [default_chat_model()]
    dataset = load_dataset(args.dataset or "", namespace)
    frame = dataset_frame(dataset, input_column=args.input_column, reference_column=args.reference_column,
                          need_reference=any(m != "judge" for m in metrics), limit=args.limit)
    recorded = check_recorded(recorded, dataset, args.limit, namespace)
    llms = resolve_llms(words, namespace) if words else {}
    compare = tag_of(args.compare, words, llms)  # `--compare ep_x@best` names `ep_x@best (step 16)`
    llms = prompt_variants(args, llms, namespace)
    _check_tags(compare, llms, recorded)

    sequential, min_difference, decide_on = _sequential(args, compare, llms, recorded, metrics)
    batch = _batch(args, llms, sequential)
    labels = _labels(args, dataset, frame, [*llms, *recorded], metrics)
    available, population = len(frame), None
    if args.sample is not None and args.sample < available:
        chosen = sample_rows(available, args.sample)
        population, frame = frame, frame.iloc[chosen].reset_index(drop=True)
        labels = {tag: {new: got[old] for new, old in enumerate(chosen) if old in got} for tag, got in labels.items()}
    evaluators = make_evaluators(metrics, _judge(args, namespace), custom)
    if decide_on is not None:
        metric_bounds(decide_on, evaluators)  # known before any call
    pairwise = _pairwise(args, compare, namespace, [*llms, *recorded])
    check_judges([*evaluators, *([pairwise] if pairwise else [])], llms, recorded)
    label, label_width = _label(args, metrics, [*llms, *recorded], pairwise=pairwise is not None)
    return EvalPlan(llms, frame, metrics, evaluators,
                    sampling, args.workers or 4,
                    repeats=args.repeats or 1, recorded=recorded, compare=compare,
                    store=AnswerStore(default_store_path(), refresh=bool(args.fresh)) if llms else None,
                    pairwise=pairwise, sequential=sequential, min_difference=min_difference, decide_on=decide_on,
                    labels=labels, rows_available=available, population=population, custom=custom, batch=batch,
                    target=batch_target(args.target) if batch else None, label=label, label_width=label_width)


def _label(args: EvalArgs, metrics: Sequence[str], tags: Sequence[str], *,
           pairwise: bool = False) -> tuple[bool, float | None]:
    """``--label [WIDTH]``: checked before any call (a judge or a pairwise judge of the pair, one model
    or a pair)."""
    if args.label is None:
        return False, None
    if "judge" not in metrics and not pairwise:
        raise EvalArgsError("--label asks you to label what a judge scored: add --judge [MODEL] (or, for a pair, "
                            "--pairwise [MODEL])")
    if len(tags) not in (1, 2):
        raise EvalArgsError(f"--label labels one model or a pair; this run has {len(tags)} ({', '.join(tags)})")
    return True, min_difference(args.label, "--label") if args.label else None
