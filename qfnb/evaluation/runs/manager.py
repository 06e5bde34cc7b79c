"""``EvaluationManager``: run models over a dataset, score the outputs, summarise per model.

Local path: inference for each llm through its async batch (``worker_num`` concurrent
requests), optional pre-processors on each output, every ``LocalEvaluator`` over all rows
(batched per evaluator, across models), then each evaluator's ``summarize`` per model. Each item is
a span in the data dir's trace table (``%qftrace``) with its model tag and scores; its model call
nests under it.
Platform path: one platform evaluation task (see :mod:`qfnb.evaluation.platform`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from typing import Any

import pandas as pd

from qfnb._core.record import ledger
from qfnb._core.record.traces import OpenSpan, write_spans
from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import ProgressArg, ProgressCallback, make_progress

from .._errors import EvaluationError, invalid
from ..base import LocalEvaluator, Sample
from ..data import eval_frame, to_frame
from ..evaluators.pairwise import check_not_candidate
from ..evaluators.platform import QianfanEvaluator, check_qianfan_evaluators
from ..llm import as_targets, target_identity
from ..results.result import BASE_COLUMNS, EvaluationResult, summarize_all
from .answers import MappedProgress, answers_of, as_store, item_span, recorded_answers
from .platform import arun_platform_evaluation

log = logging.getLogger("qfnb.evaluation")

PreProcessor = Callable[..., Any]


class EvaluationManager:
    """Evaluate llms on a dataset with either local or platform (Qianfan) evaluators.

    ``pre_processors`` are callables ``f(output, input=..., reference=...) -> output`` applied
    to each output before the local evaluators see it.
    """

    def __init__(self, local_evaluators: Sequence[LocalEvaluator] | None = None,
                 qianfan_evaluators: Sequence[QianfanEvaluator] | None = None,
                 pre_processors: Sequence[PreProcessor] | None = None, *, worker_num: int = 4) -> None:
        if bool(local_evaluators) == bool(qianfan_evaluators):
            raise invalid("local_evaluators", "set exactly one of local_evaluators and qianfan_evaluators "
                                              "(and give it at least one evaluator)")
        if isinstance(worker_num, bool) or not isinstance(worker_num, int) or worker_num < 1:
            raise invalid("worker_num", "must be an integer >= 1")
        for ev in local_evaluators or ():
            if not isinstance(ev, LocalEvaluator):
                raise invalid("local_evaluators", f"{type(ev).__name__} is not a LocalEvaluator")
        if qianfan_evaluators:
            check_qianfan_evaluators(qianfan_evaluators)
            if pre_processors:
                raise invalid("pre_processors", "only apply to local evaluators")
        for p in pre_processors or ():
            if not callable(p):
                raise invalid("pre_processors", f"{p!r} is not callable")
        self.local_evaluators = list(local_evaluators or [])
        self.qianfan_evaluators = list(qianfan_evaluators or [])
        self.pre_processors = list(pre_processors or [])
        self.worker_num = worker_num
        self.task_id: str | None = None

    def __repr__(self) -> str:
        evs = self.local_evaluators or self.qianfan_evaluators
        return f"EvaluationManager({', '.join(type(e).__name__ for e in evs)})"

    # -- public API --------------------------------------------------------------------------
    async def aeval(self, llms: Any = None, dataset: Any = None, *, input_column: str | None = None,
                    reference_column: str | None = None, worker_num: int | None = None,
                    progress: ProgressArg = None, poll_interval: float | None = None,
                    timeout: float | None = None, config: Any = None, repeats: int = 1, store: Any = None,
                    recorded: Any = None, **infer_kwargs: Any) -> EvaluationResult:
        """Evaluate ``llms`` (a list, or a ``{tag: llm}`` mapping) on ``dataset``.

        ``infer_kwargs`` (e.g. ``temperature``) go to every inference call. ``repeats`` asks
        each item that many times (samples get a ``repeat`` column). ``store`` (a path or an
        :class:`~.answers.AnswerStore`) keeps every answer: a re-run asks only for answers the
        store lacks. ``recorded`` scores answers already made, without calling a model: a
        dataset column name, or ``{tag: column | batch output (Dataset, DataFrame, .jsonl, BatchJob)}``.
        """
        if self.qianfan_evaluators:
            if recorded is not None or repeats != 1 or store is not None:
                raise invalid("qianfan_evaluators", "recorded, repeats and store apply to local evaluators")
            return await self._aeval_platform(llms, dataset, config=config, poll_interval=poll_interval,
                                              timeout=timeout)
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise invalid("repeats", f"must be an integer >= 1, got {repeats!r}")
        if dataset is None:
            raise invalid("dataset", "is required")
        targets = as_targets(llms) if llms is not None or recorded is None else []
        answer_store = as_store(store)
        # in a worker thread: a platform-backed Dataset downloads its rows on first access
        frame = await asyncio.to_thread(eval_frame, dataset, input_column=input_column,
                                        reference_column=reference_column)
        kept = await _recorded(recorded, dataset, list(frame["input"]), {t.tag for t in targets})
        identities = {t.tag: target_identity(t) for t in targets}
        judges: list[Any] = [ev for ev in self.local_evaluators if hasattr(ev, "judge_target")]
        for ev in judges:
            check_not_candidate(ev, [*identities.items(), *((tag, None) for tag in kept)])
        n = len(frame)
        tags = [t.tag for t in targets] + list(kept)
        generations = n * repeats * len(targets)
        tracker = _Tracker(progress, "evaluation",
                           generations + n * repeats * len(tags) * len(self.local_evaluators))
        with ledger.job(f"evaluation {uuid.uuid4().hex[:8]}"), closing(tracker):  # one job in the usage ledger
            spans: dict[tuple[str, int, int], OpenSpan] = {}
            rows = await _answered_rows(targets, frame, repeats=repeats, workers=worker_num or self.worker_num,
                                        infer_kwargs=infer_kwargs, tracker=tracker, store=answer_store,
                                        spans=spans)
            rows += _recorded_rows(kept, frame, repeats)
            if rows and all(_failed(r["error"]) for r in rows):
                raise EvaluationError(f"every inference failed; first error: {rows[0]['error']}")
            columns = BASE_COLUMNS + (["repeat"] if repeats > 1 else [])
            samples = pd.DataFrame(rows, columns=columns)
            result = await self._score(samples, tags, tracker, generations)
            _keep_item_spans(result.samples, [c for c in result.samples.columns if c not in (*columns, "repeat")],
                             spans)
            result.identities = identities
            result.judges = [ev.judge_info() for ev in judges]
            return result

    async def _aeval_platform(self, llms: Any, dataset: Any, *, config: Any, poll_interval: float | None,
                              timeout: float | None) -> EvaluationResult:
        """One platform evaluation task of ``llms`` on ``dataset``."""
        models = list(llms.values()) if isinstance(llms, Mapping) else list(llms)
        result = await arun_platform_evaluation(self.qianfan_evaluators, models, dataset, config=config,
                                                poll_interval=poll_interval, timeout=timeout)
        self.task_id = result.task_id
        return result

    def eval(self, llms: Any = None, dataset: Any = None, **kwargs: Any) -> EvaluationResult:
        """Sync shell over :meth:`aeval` (safe inside Jupyter)."""

        return sync.run(self.aeval(llms, dataset, **kwargs))

    async def aeval_only(self, dataset: Any, *, input_column: str | None = None,
                         reference_column: str | None = None, output_column: str | None = None,
                         llm_column: str | None = None, tag: str = "model",
                         progress: ProgressArg = None) -> EvaluationResult:
        """Score a dataset that already holds outputs (optionally several models' rows, told
        apart by ``llm_column``)."""
        if not self.local_evaluators:
            raise invalid("local_evaluators", "eval_only runs local evaluators; none are set")
        frame = await asyncio.to_thread(eval_frame, dataset, input_column=input_column,
                                        reference_column=reference_column, output_column=output_column,
                                        need_output=True)
        if llm_column is not None:
            source = await asyncio.to_thread(to_frame, dataset)
            if llm_column not in source.columns:
                raise invalid("llm_column", f"column {llm_column!r} not in the dataset")
            frame["llm"] = [str(v) for v in source[llm_column]]
        else:
            frame["llm"] = tag
        frame["index"] = frame.groupby("llm").cumcount()
        frame["error"] = None
        tags = list(dict.fromkeys(frame["llm"]))
        with closing(_Tracker(progress, "evaluation", len(frame) * len(self.local_evaluators))) as tracker:
            return await self._score(frame[BASE_COLUMNS].reset_index(drop=True), tags, tracker, 0)

    def eval_only(self, dataset: Any, **kwargs: Any) -> EvaluationResult:
        """Sync shell over :meth:`aeval_only`."""

        return sync.run(self.aeval_only(dataset, **kwargs))

    # -- scoring -----------------------------------------------------------------------------
    def _preprocess(self, samples: pd.DataFrame) -> None:
        if not self.pre_processors:
            return
        outputs = list(samples["output"])
        for pos, (inp, ref) in enumerate(zip(samples["input"], samples["reference"], strict=True)):
            if _failed(samples["error"].iat[pos]):
                continue
            value = outputs[pos]
            for p in self.pre_processors:
                value = p(value, input=inp, reference=ref)
            outputs[pos] = "" if value is None else str(value)
        samples["output"] = outputs

    async def _score(self, samples: pd.DataFrame, tags: list[str], tracker: _Tracker,
                     offset: int) -> EvaluationResult:
        self._preprocess(samples)
        ok = [i for i, e in enumerate(samples["error"]) if not _failed(e)]
        batch = [Sample(int(samples["index"].iat[i]), str(samples["llm"].iat[i]), samples["input"].iat[i],
                        str(samples["reference"].iat[i]), str(samples["output"].iat[i])) for i in ok]
        ok_set = set(ok)
        columns: list[list[str]] = []
        owner: dict[str, str] = {}
        for ev in self.local_evaluators:
            name = type(ev).__name__
            ticked: set[int] = set()  # the samples the evaluator told of as it scored them

            def told(pos: int, good: bool, at: int = offset, ticked: set[int] = ticked) -> None:
                ticked.add(pos)
                tracker.result(at + pos, good)

            results = await _evaluate_many(ev, batch, MappedProgress(told, ok) if tracker.active else False)
            if len(results) != len(batch):
                raise EvaluationError(f"{name} returned {len(results)} results for {len(batch)} samples")
            keys = list(dict.fromkeys(k for r in results for k in r))
            for k in keys:
                if k in owner or k in BASE_COLUMNS:
                    raise invalid("local_evaluators", f"metric {k!r} of {name} clashes with "
                                                      f"{owner.get(k, 'a base column')}")
                owner[k] = name
                values: list[Any] = [None] * len(samples)
                for pos, r in zip(ok, results, strict=True):
                    values[pos] = r.get(k)
                samples[k] = values
            columns.append(keys)
            for pos in range(len(samples)):
                if pos not in ticked:
                    tracker.result(offset + pos, pos in ok_set)
            offset += len(samples)
        metrics = summarize_all(self.local_evaluators, columns, samples, tags)
        return EvaluationResult(metrics, samples, evaluators=self.local_evaluators, metric_columns=columns)


async def _evaluate_many(ev: LocalEvaluator, batch: list[Sample], progress: ProgressArg) -> list[dict[str, Any]]:
    """``ev``'s scores of ``batch``, told to ``progress`` as they come where its ``aevaluate_many``
    takes it (one written before it did is asked without)."""
    if "progress" in inspect.signature(ev.aevaluate_many).parameters:
        return await ev.aevaluate_many(batch, progress=progress)
    return await ev.aevaluate_many(batch)


async def _recorded(recorded: Any, dataset: Any, inputs: list[Any], running: set[str]) -> dict[str, list[str]]:
    """The recorded answers per tag (none when ``recorded`` is None); a tag may not name a model to run."""
    if recorded is None:
        return {}
    source = await asyncio.to_thread(to_frame, dataset)
    kept = await asyncio.to_thread(recorded_answers, recorded, source, inputs)  # files, a BatchJob's reads
    clash = sorted(set(kept) & running)
    if clash:
        raise invalid("recorded", f"{clash} also name models to run; give the recorded answers other tags")
    return kept


async def _answered_rows(targets: Sequence[Any], frame: pd.DataFrame, *, repeats: int, workers: int,
                         infer_kwargs: dict[str, Any], tracker: _Tracker, store: Any,
                         spans: dict[tuple[str, int, int], OpenSpan]) -> list[dict[str, Any]]:
    """Ask each target every input ``repeats`` times: the long-frame rows (failures logged); each
    item asked gets its span in ``spans`` under ``(tag, repeat, index)``."""
    inputs = list(frame["input"])
    rows: list[dict[str, Any]] = []
    for k, target in enumerate(targets):
        asked: dict[tuple[int, int], OpenSpan] = {}
        with ledger.job_part(target.tag):  # a forecast of this model (or prompt variant) reads its calls only
            answers = await answers_of(target, inputs, repeats=repeats, workers=workers, infer_kwargs=infer_kwargs,
                                       tracker=tracker, offset=k * len(inputs) * repeats, store=store, spans=asked)
        spans.update({(target.tag, r, i): span for (r, i), span in asked.items()})
        flat = [a for rep in answers for a in rep]
        failed = [a for a in flat if isinstance(a, BaseException)]
        if failed:
            log.warning("%s: %d of %d inferences failed (first: %s)", target.tag, len(failed), len(flat), failed[0])
        for r, rep in enumerate(answers):
            rows += _rows(target.tag, frame, rep, r if repeats > 1 else None)
    return rows


def _keep_item_spans(samples: pd.DataFrame, metrics: Sequence[str],
                     spans: Mapping[tuple[str, int, int], OpenSpan]) -> None:
    """One span per scored item in the data dir's trace table: the model tag, the item, its numeric
    scores (``qfnb.eval.score.<metric>``); an answer reused or recorded (no call now) takes no time."""
    repeats = samples["repeat"] if "repeat" in samples.columns else None
    kept = []
    for pos in range(len(samples)):
        tag, index = str(samples["llm"].iat[pos]), int(samples["index"].iat[pos])
        repeat = int(repeats.iat[pos]) if repeats is not None else 0
        span = spans.get((tag, repeat, index)) or item_span(tag, index, repeat)
        if _failed(samples["error"].iat[pos]):
            span.status = 500
        for metric in metrics:
            value = samples[metric].iat[pos]
            if isinstance(value, int | float) and not isinstance(value, bool) and value == value:  # not NaN
                span.attributes[f"qfnb.eval.score.{metric}"] = float(value)
        kept.append(span.span())
    write_spans(kept)


def _recorded_rows(kept: Mapping[str, list[str]], frame: pd.DataFrame, repeats: int) -> list[dict[str, Any]]:
    """The long-frame rows of the recorded answers (the same ones for every repeat)."""
    return [row for tag, outs in kept.items() for r in range(repeats)
            for row in _rows(tag, frame, list(outs), r if repeats > 1 else None)]


def _rows(tag: str, frame: pd.DataFrame, answers: list[Any], repeat: int | None) -> list[dict[str, Any]]:
    """Long-frame rows of one model's answers (one repeat)."""
    out = []
    for i, (inp, ref, ans) in enumerate(zip(frame["input"], frame["reference"], answers, strict=True)):
        err = ans if isinstance(ans, BaseException) else None
        row = {"llm": tag, "index": i, "input": inp, "reference": ref, "output": "" if err else ans,
               "error": f"{type(err).__name__}: {err}" if err else None}
        if repeat is not None:
            row["repeat"] = repeat
        out.append(row)
    return out


def _failed(error: Any) -> bool:
    """Whether a row's ``error`` cell records a failure (pandas stores "no error" as None/NaN)."""
    return isinstance(error, str) and bool(error)


class _Tracker:
    """One Contract 8 progress callback for a whole evaluation (inference, then each evaluator)."""

    def __init__(self, progress: ProgressArg, desc: str, total: int) -> None:
        self._cb: ProgressCallback | None = make_progress(progress, desc=desc)  # None: no bar (False, or not a kernel)
        self._safe("on_start", total)

    def _safe(self, name: str, *args: Any) -> None:
        if self._cb is None:
            return
        try:
            getattr(self._cb, name)(*args)
        except Exception:  # a UI callback must never break the evaluation
            log.exception("progress callback %s failed", name)

    @property
    def active(self) -> bool:
        return self._cb is not None

    def result(self, index: int, ok: bool) -> None:
        self._safe("on_result", index, ok)

    def close(self) -> None:
        self._safe("on_close")
        self._cb = None
