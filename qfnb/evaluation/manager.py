"""``EvaluationManager``: run models over a dataset, score the outputs, summarise per model.

Local path: inference for each llm through its async batch (``worker_num`` concurrent
requests), optional pre-processors on each output, every ``LocalEvaluator`` over all rows
(batched per evaluator, across models), then each evaluator's ``summarize`` per model.
Platform path: one platform evaluation task (see :mod:`qfnb.evaluation.platform`).
``eval``/``eval_only`` are thin sync shells over ``aeval``/``aeval_only``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from qfnb._core.runtime.progress import ProgressArg, ProgressCallback, make_progress

from ._errors import EvaluationError, invalid
from .base import LocalEvaluator, Sample
from .data import eval_frame
from .llm import as_targets
from .platform import QianfanEvaluator, arun_platform_evaluation, check_qianfan_evaluators
from .result import BASE_COLUMNS, EvaluationResult, summarize_all

log = logging.getLogger("qfnb.evaluation")

PreProcessor = Callable[..., Any]
#: Contract 8: ``True`` (a bar), ``None``/``False`` (nothing) or an object with
#: ``on_start(total)`` / ``on_result(index, ok)`` / ``on_close()``.


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
        if local_evaluators:
            for ev in local_evaluators:
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
    async def aeval(self, llms: Any, dataset: Any, *, input_column: str | None = None,
                    reference_column: str | None = None, worker_num: int | None = None,
                    progress: ProgressArg = None, poll_interval: float | None = None,
                    timeout: float | None = None, config: Any = None, **infer_kwargs: Any) -> EvaluationResult:
        """Evaluate ``llms`` (a list, or a ``{tag: llm}`` mapping) on ``dataset``.

        ``infer_kwargs`` (e.g. ``temperature``) go to every inference call.
        """
        if self.qianfan_evaluators:
            models = list(llms.values()) if isinstance(llms, Mapping) else list(llms)
            result = await arun_platform_evaluation(self.qianfan_evaluators, models, dataset, config=config,
                                                    poll_interval=poll_interval, timeout=timeout)
            self.task_id = result.task_id
            return result
        targets = as_targets(llms)
        # in a worker thread: a platform-backed Dataset downloads its rows on first access
        frame = await asyncio.to_thread(eval_frame, dataset, input_column=input_column,
                                        reference_column=reference_column)
        workers = worker_num or self.worker_num
        inputs = list(frame["input"])
        n = len(inputs)
        tracker = _Tracker(progress, "evaluation", n * len(targets) * (1 + len(self.local_evaluators)))
        try:
            rows: list[dict[str, Any]] = []
            for k, target in enumerate(targets):
                answers = await target.run(inputs, workers, infer_kwargs, tracker.shifted(k * n))
                failed = sum(isinstance(a, BaseException) for a in answers)
                if failed:
                    first = next(a for a in answers if isinstance(a, BaseException))
                    log.warning("%s: %d of %d inferences failed (first: %s)", target.tag, failed, n, first)
                for i, (inp, ref, ans) in enumerate(zip(inputs, frame["reference"], answers, strict=True)):
                    err = ans if isinstance(ans, BaseException) else None
                    rows.append({"llm": target.tag, "index": i, "input": inp, "reference": ref,
                                 "output": "" if err else ans,
                                 "error": f"{type(err).__name__}: {err}" if err else None})
            if rows and all(_failed(r["error"]) for r in rows):
                raise EvaluationError(f"every inference failed; first error: {rows[0]['error']}")
            samples = pd.DataFrame(rows, columns=BASE_COLUMNS)
            return await self._score(samples, [t.tag for t in targets], tracker, n * len(targets))
        finally:
            tracker.close()

    def eval(self, llms: Any, dataset: Any, **kwargs: Any) -> EvaluationResult:
        """Sync shell over :meth:`aeval` (safe inside Jupyter)."""
        from qfnb._core.runtime import sync

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
            from .data import to_frame

            source = await asyncio.to_thread(to_frame, dataset)
            if llm_column not in source.columns:
                raise invalid("llm_column", f"column {llm_column!r} not in the dataset")
            frame["llm"] = [str(v) for v in source[llm_column]]
        else:
            frame["llm"] = tag
        frame["index"] = frame.groupby("llm").cumcount()
        frame["error"] = None
        tags = list(dict.fromkeys(frame["llm"]))
        tracker = _Tracker(progress, "evaluation", len(frame) * len(self.local_evaluators))
        try:
            return await self._score(frame[BASE_COLUMNS].reset_index(drop=True), tags, tracker, 0)
        finally:
            tracker.close()

    def eval_only(self, dataset: Any, **kwargs: Any) -> EvaluationResult:
        """Sync shell over :meth:`aeval_only`."""
        from qfnb._core.runtime import sync

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
            results = await ev.aevaluate_many(batch)
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
                tracker.result(offset + pos, pos in ok_set)
            offset += len(samples)
        metrics = summarize_all(self.local_evaluators, columns, samples, tags)
        return EvaluationResult(metrics, samples, evaluators=self.local_evaluators, metric_columns=columns)


def _failed(error: Any) -> bool:
    """Whether a row's ``error`` cell records a failure (pandas stores "no error" as None/NaN)."""
    return isinstance(error, str) and bool(error)


class _Tracker:
    """One Contract 8 progress callback for a whole evaluation (inference, then each evaluator)."""

    def __init__(self, progress: ProgressArg, desc: str, total: int) -> None:
        self._cb: ProgressCallback | None = None
        if progress is not False:
            self._cb = make_progress(progress, desc=desc)  # None: a bar only in a notebook kernel
            if self._cb is not None:
                self._safe("on_start", total)

    def _safe(self, name: str, *args: Any) -> None:
        try:
            getattr(self._cb, name)(*args)
        except Exception:  # a UI callback must never break the evaluation
            log.exception("progress callback %s failed", name)

    def result(self, index: int, ok: bool) -> None:
        if self._cb is not None:
            self._safe("on_result", index, ok)

    def shifted(self, offset: int) -> Any:
        """A callback for a sub-batch (e.g. ``abatch_do``): indices shifted, start/close dropped."""
        return False if self._cb is None else _Shifted(self, offset)  # False: no bar of their own

    def close(self) -> None:
        if self._cb is not None:
            self._safe("on_close")
            self._cb = None


class _Shifted:
    def __init__(self, tracker: _Tracker, offset: int) -> None:
        self._tracker, self._offset = tracker, offset

    def on_start(self, total: int | None) -> None:
        pass

    def on_result(self, index: int, ok: bool) -> None:
        self._tracker.result(self._offset + index, ok)

    def on_close(self) -> None:
        pass
