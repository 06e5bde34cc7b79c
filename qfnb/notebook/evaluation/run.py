"""``%qfeval --models ... --dataset ...``: turn magic arguments into an ``EvaluationManager`` run.

Glue only: metric names map to the evaluators of :mod:`qfnb.evaluation`, model words to the
objects ``EvaluationManager`` already accepts (``ChatCompletion`` by name or endpoint, or a
``Model`` / ``Service`` / resource / callable from the user's namespace), and the dataset to a
frame read by :func:`qfnb.evaluation.data.eval_frame`. Everything is checked — metrics, models
(against the platform's model list, no inference), the dataset file and its columns — before
the first model call; problems raise :class:`EvalArgsError` naming the option.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qfnb._core.runtime import sync
from qfnb.dataset import Dataset
from qfnb.evaluation import (
    BleuEvaluator,
    EmbeddingSimilarityEvaluator,
    EvaluationManager,
    ExactMatchEvaluator,
    LocalJudgeEvaluator,
    PairwiseJudge,
    RetrievalEvaluator,
    RougeEvaluator,
)
from qfnb.evaluation.answers import AnswerStore, default_store_path
from qfnb.evaluation.batch_answers import check_batchable
from qfnb.evaluation.data import REFERENCE_NAMES, eval_frame, to_frame
from qfnb.evaluation.judge_check import check_judge, uncalibrated
from qfnb.evaluation.llm import PromptVariant, as_target, embedded_chat
from qfnb.evaluation.metrics import FunctionEvaluator
from qfnb.evaluation.sequential_eval import eval_sequential
from qfnb.notebook._checks import sampling_options
from qfnb.notebook.evaluation.labels import read_labels
from qfnb.notebook.evaluation.options import (
    EvalArgsError,
    check_judges,
    check_recorded,
    parse_prompts,
    parse_recorded,
    reason,
)
from qfnb.notebook.progress import make_progress
from qfnb.notebook.sampling import SamplingOptions
from qfnb.resources import ChatCompletion
from qfnb.resources.defaults import default_model

log = logging.getLogger("qfnb.notebook.evaluation.run")

#: metric word -> (evaluator family, the result columns it shows). Aliases share a family. The
#: report shows a one-column metric under the word asked for (``bleu``, not ``bleu4``).
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "exact_match": ("exact_match", ("exact_match",)),
    "accuracy": ("exact_match", ("accuracy",)),
    "bleu": ("bleu", ("bleu4",)),
    "bleu4": ("bleu", ("bleu4",)),
    "rouge": ("rouge", ("rouge_1", "rouge_2", "rouge_l")),
    "rouge_1": ("rouge", ("rouge_1",)),
    "rouge_2": ("rouge", ("rouge_2",)),
    "rouge_l": ("rouge", ("rouge_l",)),
    "similarity": ("similarity", ("similarity",)),
    "judge": ("judge", ("judge_score",)),
    # a retrieval pipeline's ranked ids (its output) against a ``relevant`` column
    "retrieval": ("retrieval", ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10")),
    "hit@1": ("retrieval", ("hit@1",)),
    "hit@3": ("retrieval", ("hit@3",)),
    "hit@5": ("retrieval", ("hit@5",)),
    "mrr": ("retrieval", ("mrr@10",)),
    "ndcg": ("retrieval", ("ndcg@10",)),
}
DEFAULT_METRICS = ("exact_match", "bleu", "rouge_l")
#: the lowest and highest score of each per-item metric column (``--sequential`` needs them; a judge's
#: come from its rubric)
BOUNDS: dict[str, tuple[float, float]] = {
    "exact_match": (0.0, 1.0), "accuracy": (0.0, 1.0), "bleu4": (0.0, 1.0), "rouge_1": (0.0, 1.0),
    "rouge_2": (0.0, 1.0), "rouge_l": (0.0, 1.0), "similarity": (-1.0, 1.0)}
#: Endpoint words: ``ep_...`` (what a deploy names them by default) or an explicit ``endpoint:NAME``.
ENDPOINT_PREFIXES = ("endpoint:", "ep:")
#: The judge's reply is one score line and one reason line; this caps a rambling judge.
JUDGE_MAX_TOKENS = 64


def columns_for(metrics: Sequence[str], custom: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Result column -> the name shown, for the metric words asked (``bleu`` shows ``bleu4`` as ``bleu``);
    a notebook function's columns (``custom``, else the word itself) show under their own names."""
    shown: dict[str, str] = {}
    for m in metrics:
        if m not in METRICS:
            for c in (custom or {}).get(m) or (m,):
                shown.setdefault(c, c)
            continue
        cols = METRICS[m][1]
        for c in cols:
            shown.setdefault(c, m if len(cols) == 1 and m != "judge" else c)
    return shown


def report_frame(columns: Mapping[str, str], metrics_df: pd.DataFrame) -> pd.DataFrame:
    """The asked-for metric columns of a result's ``metrics_df``, renamed to the asked names."""
    keep = [c for c in columns if c in metrics_df.columns]
    return metrics_df[keep].rename(columns=dict(columns))


def report_samples(columns: Mapping[str, str], samples_df: pd.DataFrame) -> pd.DataFrame:
    """Per-sample columns ``tag/metric`` likewise: asked ones renamed, the family's others dropped."""
    every = {c for _, cols in METRICS.values() for c in cols}
    rename, drop = {}, []
    for col in samples_df.columns:
        tag, _, name = str(col).rpartition("/")
        if name in columns:
            rename[col] = f"{tag}/{columns[name]}" if tag else columns[name]
        elif name in every:
            drop.append(col)
    return samples_df.drop(columns=drop).rename(columns=rename)


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
    store: Any = None
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

    #: ``--metrics NAME`` of a notebook function: its evaluator by the word asked
    custom: dict[str, FunctionEvaluator] = field(default_factory=dict)
    #: ``--batch``: the generations go through the platform's durable batch job (:mod:`.batch`)
    batch: bool = False

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

    def report_frame(self, metrics_df: pd.DataFrame) -> pd.DataFrame:
        return report_frame(self.columns, metrics_df)

    def report_samples(self, samples_df: pd.DataFrame) -> pd.DataFrame:
        return report_samples(self.columns, samples_df)

    @property
    def generations(self) -> int:
        return len(self.frame) * len(self.llms) * self.repeats

    def run(self, progress: Any = True) -> Any:
        """Run the evaluation (blocking; safe in a kernel) and return the ``EvaluationResult``.
        The progress bar counts generations (rows x models); scoring follows in a moment."""
        bar = make_progress(progress, desc="generations")
        manager = EvaluationManager(local_evaluators=self.evaluators, worker_num=self.workers)
        if self.sequential:
            assert self.compare is not None and self.decide_on is not None  # checked by plan()
            model = next(t for t in self.llms if t != self.compare)
            return eval_sequential(manager, self.llms, self.frame, model=model, baseline=self.compare,
                                   metric=self.decide_on, bounds=metric_bounds(self.decide_on, self.evaluators),
                                   min_difference=self.min_difference, round_size=self.workers * 2,
                                   progress=bar, repeats=self.repeats, store=self.store, **self.sampling.fields())
        return manager.eval(self.llms or None, self.frame, input_column="input", reference_column="reference",
                            progress=GenerationProgress(bar, self.generations) if bar is not None else False,
                            repeats=self.repeats, store=self.store, recorded=self.recorded or None,
                            **self.sampling.fields())

    def judge_check(self, result: Any) -> list[str]:
        """``--calibrate``: the judge against the user's labels; with a judge and no labels, that it is uncalibrated."""
        if not self.labels:
            return uncalibrated(result.judges)
        metric = METRICS["judge"][1][0]
        return check_judge(result, self.labels, metric=metric, baseline=self.compare).sentences

    def comparison(self, result: Any) -> Any:
        """``result.compare`` against the ``--compare`` baseline on the asked-for metrics."""
        wanted = [c for c in self.columns if c in result.item_metrics]
        return result.compare(b=self.compare, metrics=wanted or None, judge=self.pairwise).renamed(self.columns)


def metric_bounds(column: str, evaluators: Sequence[Any]) -> tuple[float, float]:
    """The score range of a result column: fixed for the text metrics, the rubric's for a judge."""
    if column in BOUNDS:
        return BOUNDS[column]
    for ev in evaluators:
        rubric = getattr(ev, "rubric", None)
        if getattr(ev, "metric_name", None) == column and rubric is not None:
            return float(rubric.min_score), float(rubric.max_score)
        bounds = getattr(ev, "bounds", None)
        if getattr(ev, "metric_name", None) == column and bounds is not None:
            return float(bounds[0]), float(bounds[1])
    raise EvalArgsError(f"--sequential: no known score range for {column!r} (a notebook function gives its own: "
                        "fn.bounds = (lowest, highest))")


def _sequential(args: argparse.Namespace, llms: Mapping[str, Any], recorded: Mapping[str, Any],
                metrics: Sequence[str]) -> tuple[bool, float | None, str | None]:
    """``--sequential [MIN_DIFF]``: two live models, a baseline, and the metric that decides (the first asked)."""
    value = getattr(args, "sequential", None)
    if value is None:
        return False, None, None
    if args.compare is None:
        raise EvalArgsError("--sequential decides a comparison: add --compare BASE")
    if recorded or len(llms) != 2:
        raise EvalArgsError(f"--sequential compares exactly two models it runs (got {len(llms)} and "
                            f"{len(recorded)} recorded)")
    try:
        min_difference = float(value) if value else None
    except ValueError:
        raise EvalArgsError(f"--sequential: MIN_DIFF must be a number, got {value!r}") from None
    if min_difference is not None and not min_difference > 0:
        raise EvalArgsError(f"--sequential: MIN_DIFF must be positive, got {value}")
    decide_on = METRICS[metrics[0]][1][0] if metrics[0] in METRICS else metrics[0]
    return True, min_difference, decide_on


def _batch(args: argparse.Namespace, llms: Mapping[str, Any], sequential: bool) -> bool:
    """``--batch``: every model a platform chat model, every item sent at once (before anything is sent)."""
    if not getattr(args, "batch", False):
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


def _labels(args: argparse.Namespace, dataset: Any, frame: pd.DataFrame, tags: Sequence[str],
            metrics: Sequence[str]) -> dict[str, dict[int, float]]:
    """``--calibrate``: the user's labels of the judged answers (:mod:`.labels`), before any call."""
    words = split_words(getattr(args, "calibrate", None))
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
    hits = int(getattr(plan.store, "hits", 0) or 0)
    if not hits:
        return None
    asked = plan.generations - hits
    return (f"↺ {hits} of {plan.generations} answers reused from earlier runs on the same items "
            f"({asked} asked now) · --fresh asks every model again")


class GenerationProgress:
    """Contract 8 filter: forwards the inference results (the first ``generations`` indices of the
    evaluation's one index space) and drops the scoring ones, so the bar counts generations."""

    def __init__(self, inner: Any, generations: int) -> None:
        self.inner, self.generations = inner, generations

    def on_start(self, total: int | None) -> None:
        self.inner.on_start(self.generations)

    def on_result(self, index: int, ok: bool) -> None:
        if 0 <= index < self.generations:
            self.inner.on_result(index, ok)

    def on_close(self) -> None:
        self.inner.on_close()


def split_words(values: Sequence[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (repeatable, comma-separated options)."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def custom_metrics(words: Sequence[str], namespace: Mapping[str, Any]) -> dict[str, FunctionEvaluator]:
    """``--metrics`` words that name no built-in metric but a notebook function ``(input, reference, output)``."""
    out: dict[str, FunctionEvaluator] = {}
    for word in words:
        if word.lower() in METRICS or not word.isidentifier() or word not in namespace:
            continue
        fn = namespace[word]
        if not callable(fn):
            raise EvalArgsError(f"--metrics: {word!r} is a {type(fn).__name__}, not a function "
                                "(input, reference, output) -> float | dict")
        out[word] = FunctionEvaluator(fn, name=word)
    return out


def check_metrics(words: Sequence[str], judge: bool, custom: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """Known metric words (built-in names lower-cased; ``custom``: notebook functions by name), deduplicated;
    ``judge`` is added when a judge model is given."""
    metrics = [w if w in (custom or {}) else w.lower() for w in words] or list(DEFAULT_METRICS)
    unknown = [w for w in metrics if w not in METRICS and w not in (custom or {})]
    if unknown:
        raise EvalArgsError(f"--metrics: unknown metric(s) {unknown}; choose from {sorted(METRICS)} or name a "
                            "notebook function (input, reference, output) -> float | dict "
                            "(add an LLM judge with --judge MODEL)")
    if "judge" in metrics and not judge:
        raise EvalArgsError("--metrics judge needs a judge model: add --judge MODEL")
    if judge and "judge" not in metrics:
        metrics.append("judge")
    return tuple(dict.fromkeys(metrics))


def _endpoint_of(word: str) -> str | None:
    for prefix in ENDPOINT_PREFIXES:
        if word.startswith(prefix):
            return word[len(prefix):].strip() or None
    return word if word.startswith("ep_") else None


def _known_endpoints(services: Mapping[str, Any]) -> set[str]:
    """Endpoint suffixes in a ``service/list`` result (the last segment of each entry's url)."""
    found: set[str] = set()
    for group in ("common", "custom"):
        for entry in services.get(group) or []:
            url = str(entry.get("url") or "") if isinstance(entry, Mapping) else ""
            if url:
                found.add(url.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
    return found


async def _acheck_resource(res: Any, endpoint: str | None) -> None:
    """Resolve ``res`` the way a call would (no inference is sent); an endpoint must be listed
    by the platform's ``service/list`` when that list can be read."""
    await res.aresolve()
    if endpoint is None:
        return
    endpoint = endpoint.partition("@")[0]  # NAME@best, NAME@step-8: a checkpoint of the service NAME
    cfg = res.client.config
    if not (cfg.access_key and cfg.secret_key):
        return  # no console keys: the service list cannot be read; the first call will tell
    try:
        services = await res.client.list_services()
        if endpoint not in _known_endpoints(services):  # deployed since the list was cached?
            services = await res.client.list_services(refresh=True)
    except Exception as exc:  # the list is a help, not a requirement
        log.warning("could not fetch the platform's service list to check %r: %s", endpoint, exc)
        return
    if endpoint not in _known_endpoints(services):
        raise EvalArgsError(f"no deployed service with endpoint {endpoint!r} (the platform lists "
                            f"{len(services.get('custom') or [])} custom service(s))")


def resolve_llm(word: str, namespace: Mapping[str, Any], option: str = "--models") -> tuple[str, Any]:
    """``(tag, llm)`` for one model word: a namespace variable, an endpoint or a model name."""
    if word.isidentifier() and word in namespace:
        value = namespace[word]
        try:
            as_target(value, word)  # the same check EvaluationManager makes
        except ValueError as exc:
            raise EvalArgsError(f"{option}: {word}: {reason(exc)}") from exc
        return word, value
    endpoint = _endpoint_of(word)
    if any(word.startswith(p) for p in ENDPOINT_PREFIXES) and endpoint is None:
        raise EvalArgsError(f"{option}: {word!r} names no endpoint")
    res = ChatCompletion(endpoint=endpoint) if endpoint else ChatCompletion(model=word)
    try:
        sync.run(_acheck_resource(res, endpoint))
    except EvalArgsError as exc:
        raise EvalArgsError(f"{option}: {exc}") from None
    except ValueError as exc:  # qfnb.errors.ValidationError: unknown model
        hint = "" if endpoint else " (a deployed service goes by its endpoint: ep_... or endpoint:NAME)"
        raise EvalArgsError(f"{option}: {reason(exc)}{hint}") from exc
    return (endpoint or word), res


def resolve_llms(words: Sequence[str], namespace: Mapping[str, Any]) -> dict[str, Any]:
    if not words:
        raise EvalArgsError("--models: give at least one model (a name, an ep_... endpoint or a variable)")
    dupes = sorted({w for w in words if words.count(w) > 1})
    if dupes:
        raise EvalArgsError(f"--models: {dupes} given more than once")
    return dict(resolve_llm(w, namespace) for w in words)


def default_chat_model() -> str:
    name = default_model("chat")
    if not name:
        raise EvalArgsError("--models: no default chat model is configured; name one (a model, ep_... or a variable)")
    return name


def _looks_like_dataset_id(word: str) -> bool:
    return word.isdigit() or word.startswith("ds-")


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
    if _looks_like_dataset_id(word):
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
        field = getattr(exc, "field", None)
        option = f"--{field.replace('_', '-')}" if isinstance(field, str) and named.get(field) else "--dataset"
        raise EvalArgsError(f"{option}: {reason(exc)}") from exc
    if limit is not None:
        frame = frame.head(limit).reset_index(drop=True)
    if need_reference and not any(str(r).strip() for r in frame["reference"]):
        raise EvalArgsError(f"--dataset has no reference answers (looked for a column among "
                            f"{list(REFERENCE_NAMES)}; name it with --reference-column), and the "
                            f"metrics compare outputs with references")
    return frame


def make_evaluators(metrics: Sequence[str], judge: Any | None) -> list[Any]:
    # the result's own column is the word asked for (exact_match, or the SDK's accuracy), so a stored
    # result's samples_df and a later --compare say what the notebook asked for
    match_name = next((m for m in metrics if m in METRICS and METRICS[m][0] == "exact_match"), "exact_match")
    factories: dict[str, Callable[[], Any]] = {
        "exact_match": lambda: ExactMatchEvaluator(metric_name=match_name),
        "bleu": BleuEvaluator,
        "rouge": RougeEvaluator,
        "similarity": EmbeddingSimilarityEvaluator,
        "retrieval": RetrievalEvaluator,
        "judge": lambda: LocalJudgeEvaluator(judge, judge_kwargs={"max_output_tokens": JUDGE_MAX_TOKENS}),
    }
    families = dict.fromkeys(METRICS[m][0] for m in metrics if m in METRICS)
    return [factories[f]() for f in families]


def _check_numbers(args: argparse.Namespace) -> None:
    """``--limit``, ``--workers`` and ``--repeats`` (the sampling options: :func:`sampling_options`)."""
    if args.limit is not None and args.limit < 1:
        raise EvalArgsError(f"--limit must be a positive integer, got {args.limit}")
    if args.workers is not None and args.workers < 1:
        raise EvalArgsError(f"--workers must be a positive integer, got {args.workers}")
    if args.repeats is not None and args.repeats < 1:
        raise EvalArgsError(f"--repeats must be a positive integer, got {args.repeats}")
    if getattr(args, "sample", None) is not None and args.sample < 1:
        raise EvalArgsError(f"--sample must be a positive integer, got {args.sample}")
    if getattr(args, "sample", None) is not None and args.recorded:
        raise EvalArgsError("--sample draws items at random, and --recorded answers follow the data set's rows: "
                            "use --limit")


def _check_tags(args: argparse.Namespace, llms: Mapping[str, Any], recorded: Mapping[str, Any]) -> None:
    """Recorded answers name no model, and ``--compare``'s baseline is one of two or more."""
    tags = [*llms, *recorded]
    clash = sorted(set(llms) & set(recorded))
    if clash:
        raise EvalArgsError(f"--recorded: {clash} also name models in --models; give the recorded answers other tags")
    if args.compare is not None and args.compare not in tags:
        raise EvalArgsError(f"--compare: {args.compare!r} is not one of the evaluated models {tags}")
    if args.compare is not None and len(tags) < 2:
        raise EvalArgsError("--compare needs at least two models (the baseline and one to compare with it)")


def _judge(args: argparse.Namespace, namespace: Mapping[str, Any]) -> Any | None:
    """``--judge``'s model (bare: a chat model on the embedded local platform); None without it."""
    if args.judge is None:
        return None

    return resolve_llm(args.judge, namespace, "--judge")[1] if args.judge else embedded_chat()


def _pairwise(args: argparse.Namespace, namespace: Mapping[str, Any]) -> Any | None:
    """``--pairwise``'s judge of each model against the ``--compare`` baseline; None without it."""
    if getattr(args, "pairwise", None) is None:
        return None
    if args.compare is None:
        raise EvalArgsError("--pairwise judges each model against the --compare baseline: add --compare BASE")

    model = resolve_llm(args.pairwise, namespace, "--pairwise")[1] if args.pairwise else embedded_chat()
    return PairwiseJudge(model, judge_kwargs={"max_output_tokens": JUDGE_MAX_TOKENS})


def prompt_variants(args: argparse.Namespace, llms: dict[str, Any], namespace: Mapping[str, Any]) -> dict[str, Any]:
    """``--prompts NAME=PROMPT,...``: one candidate per prompt, all answered by the one ``--model``."""
    prompts = parse_prompts(getattr(args, "prompts", None), namespace)
    if not prompts:
        return llms
    if len(llms) != 1:
        raise EvalArgsError(f"--prompts compares prompts on one model: give one --model (got {len(llms)})")
    (model,) = llms.values()
    return {name: PromptVariant(text, model) for name, text in prompts.items()}


def plan(args: argparse.Namespace, namespace: Mapping[str, Any]) -> EvalPlan:
    """Check every argument of the run form of ``%qfeval`` (no model is called)."""
    _check_numbers(args)
    try:
        sampling = sampling_options(args)
    except ValueError as exc:
        raise EvalArgsError(str(exc)) from None
    custom = custom_metrics(split_words(args.metrics), namespace)
    metrics = check_metrics(split_words(args.metrics), judge=args.judge is not None, custom=custom)
    words = split_words(args.models) + [f"endpoint:{e}" for e in split_words(args.endpoint)]
    if not words and (args.models or args.endpoint):
        raise EvalArgsError("--models: give at least one model (a name, an ep_... endpoint or a variable)")
    recorded = parse_recorded(split_words(args.recorded))
    if not words and not recorded:  # like %%qfchat without -m: the default chat model
        words = [default_chat_model()]
    dataset = load_dataset(args.dataset or "", namespace)
    frame = dataset_frame(dataset, input_column=args.input_column, reference_column=args.reference_column,
                          need_reference=any(m != "judge" for m in metrics), limit=args.limit)
    recorded = check_recorded(recorded, dataset, args.limit, namespace)
    llms = resolve_llms(words, namespace) if words else {}
    llms = prompt_variants(args, llms, namespace)
    _check_tags(args, llms, recorded)

    sequential, min_difference, decide_on = _sequential(args, llms, recorded, metrics)
    batch = _batch(args, llms, sequential)
    labels = _labels(args, dataset, frame, [*llms, *recorded], metrics)
    available = len(frame)
    if getattr(args, "sample", None) is not None and args.sample < available:
        chosen = sample_rows(available, args.sample)
        frame = frame.iloc[chosen].reset_index(drop=True)
        labels = {tag: {new: got[old] for new, old in enumerate(chosen) if old in got} for tag, got in labels.items()}
    evaluators = [*make_evaluators(metrics, _judge(args, namespace)), *custom.values()]
    if decide_on is not None:
        metric_bounds(decide_on, evaluators)  # known before any call
    pairwise = _pairwise(args, namespace)
    check_judges([*evaluators, *([pairwise] if pairwise else [])], llms, recorded)
    return EvalPlan(llms, frame, metrics, evaluators,
                    sampling, args.workers or 4,
                    repeats=args.repeats or 1, recorded=recorded, compare=args.compare,
                    store=AnswerStore(default_store_path(), refresh=bool(args.fresh)) if llms else None,
                    pairwise=pairwise, sequential=sequential, min_difference=min_difference, decide_on=decide_on,
                    labels=labels, rows_available=available, custom=custom, batch=batch)
