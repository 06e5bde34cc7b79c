"""The evaluator interface.

A :class:`LocalEvaluator` scores one sample with ``evaluate(input, reference, output) -> dict``
and summarises one model's scores with ``summarize(frame) -> dict``. Evaluators that do I/O
(an embedding model, an LLM judge) override the async ``aevaluate`` / ``aevaluate_many``
instead; the manager only ever calls the async side, so a plain synchronous ``evaluate`` is
run in a worker thread and never blocks the event loop. An ``aevaluate_many`` that takes
``progress`` tells it of each sample scored (the evaluation's bar moves while a judge works).
"""

from __future__ import annotations

import asyncio
from abc import ABC
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from qfnb._core.runtime.progress import ProgressArg, ProgressCallback

#: What a dataset row gives an evaluator as input: a prompt or a chat history.
EvalInput = str | list[dict[str, Any]]


@dataclass(frozen=True)
class Sample:
    """One row to score: which model (``llm`` tag) answered which row (``index``)."""

    index: int
    llm: str
    input: EvalInput
    reference: str
    output: str


def listener(progress: ProgressArg) -> ProgressCallback | None:
    """The callback an ``aevaluate_many``'s ``progress`` names (None for None, True or False: the
    evaluation draws its own bar)."""
    return None if isinstance(progress, bool) or progress is None else progress


class Evaluator(ABC):  # noqa: B024 - abstract by role; subclasses pick which side they implement
    """Base of every evaluator (local and platform)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LocalEvaluator(Evaluator):
    """An evaluator that runs in this process (which methods a subclass implements: the module docstring)."""

    #: Rows scored concurrently by the default ``aevaluate_many``.
    concurrency: int = 4

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        """Score one sample; the dict's keys become metric columns."""
        raise NotImplementedError(f"{type(self).__name__} implements neither evaluate nor aevaluate")

    async def aevaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        """Async twin of :meth:`evaluate`; by default runs it in a worker thread."""
        return await asyncio.to_thread(self.evaluate, input, reference, output)

    async def aevaluate_many(self, samples: Sequence[Sample], progress: ProgressArg = None) -> list[dict[str, Any]]:
        """Score many samples (results in input order), ``concurrency`` at a time; ``progress`` (a
        Contract 8 callback) hears of each sample as it is scored, by its position in ``samples``."""
        gate = asyncio.Semaphore(max(1, self.concurrency))
        bar = listener(progress)

        async def one(index: int, s: Sample) -> dict[str, Any]:
            async with gate:
                scores = await self.aevaluate(s.input, s.reference, s.output)
            if bar is not None:
                bar.on_result(index, True)
            return scores

        return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(samples))))

    def summarize(self, frame: pd.DataFrame) -> dict[str, Any] | None:
        """Summarise one model's rows (``input``, ``reference``, ``output`` and this evaluator's metric
        columns); by default each numeric metric column's mean (missing values skipped)."""
        scores = frame.drop(columns=["input", "reference", "output"], errors="ignore")
        means = scores.apply(pd.to_numeric, errors="coerce").astype(float).mean().dropna()
        return {col: float(v) for col, v in means.items()} or None
