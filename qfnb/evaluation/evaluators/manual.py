"""Human scoring: a callable scorer, or a queue of items a notebook widget scores later.

Without a scorer, evaluation leaves the manual metrics empty and queues one
:class:`ManualItem` per (model, row). ``pending()`` lists what is left, ``submit(item_id, ...)``
records a score, and ``EvaluationResult.refresh()`` folds submitted scores into the
result's tables and summaries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import ProgressArg

from .._errors import invalid
from ..base import EvalInput, LocalEvaluator, Sample, listener
from ..llm import acall


@dataclass
class ManualItem:
    """One output awaiting (or holding) human scores; ``id`` is ``"{llm}:{index}"``."""

    id: str
    llm: str
    index: int
    input: EvalInput
    reference: str
    output: str
    scores: dict[str, float | None] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return bool(self.scores) and all(v is not None for v in self.scores.values())


Scorer = Callable[[EvalInput, str, str], Any]


class ManualEvaluator(LocalEvaluator):
    """Manual scoring on ``dimensions`` (default ``["score"]``) within ``[min_score, max_score]``.

    ``scorer(input, reference, output)`` (sync or async) may return a number (for a single
    dimension) or a ``{dimension: number}`` dict; without one, items are queued.
    """

    def __init__(self, scorer: Scorer | None = None, *, dimensions: Sequence[str] = ("score",),
                 min_score: float = 0, max_score: float = 5) -> None:
        dims = [str(d).strip() for d in dimensions]
        if not dims or any(not d for d in dims):
            raise invalid("dimensions", "needs at least one non-empty dimension name")
        if len(set(dims)) != len(dims):
            raise invalid("dimensions", f"duplicate names in {dims}")
        if max_score <= min_score:
            raise invalid("max_score", f"must be greater than min_score ({min_score})")
        if scorer is not None and not callable(scorer):
            raise invalid("scorer", "must be callable (input, reference, output) -> score")
        self.scorer = scorer
        self.dimensions = dims
        self.min_score = min_score
        self.max_score = max_score
        self.concurrency = 1
        self._items: dict[str, ManualItem] = {}
        self._lock = threading.Lock()

    # -- scoring -----------------------------------------------------------------------------
    def _check(self, scores: dict[str, Any]) -> dict[str, float | None]:
        unknown = set(scores) - set(self.dimensions)
        if unknown:
            raise invalid("scores", f"unknown dimension(s) {sorted(unknown)}; expected {self.dimensions}")
        out: dict[str, float | None] = {}
        for dim, value in scores.items():
            if value is None:
                out[dim] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid(dim, f"score must be a number, got {type(value).__name__}")
            if not self.min_score <= value <= self.max_score:
                raise invalid(dim, f"score {value} outside [{self.min_score}, {self.max_score}]")
            out[dim] = float(value)
        return out

    def _as_scores(self, value: Any) -> dict[str, float | None]:
        if isinstance(value, dict):
            return self._check(value)
        if len(self.dimensions) != 1:
            raise invalid("scorer", f"must return a dict over {self.dimensions}")
        return self._check({self.dimensions[0]: value})

    async def _call_scorer(self, s: Sample) -> dict[str, Any]:
        assert self.scorer is not None
        scores = self._as_scores(await acall(self.scorer, s.input, s.reference, s.output))
        return {d: scores.get(d) for d in self.dimensions}

    async def aevaluate_many(self, samples: Sequence[Sample], progress: ProgressArg = None) -> list[dict[str, Any]]:
        if self.scorer is not None:
            bar = listener(progress)
            scores = []
            for i, s in enumerate(samples):
                scores.append(await self._call_scorer(s))
                if bar is not None:
                    bar.on_result(i, True)
            return scores
        with self._lock:
            for s in samples:
                item_id = f"{s.llm}:{s.index}"
                self._items[item_id] = ManualItem(item_id, s.llm, s.index, s.input, s.reference, s.output,
                                                  {d: None for d in self.dimensions})
        return [{d: None for d in self.dimensions} for _ in samples]

    async def aevaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return (await self.aevaluate_many([Sample(len(self._items), "manual", input, reference, output)]))[0]

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return dict(sync.run(self.aevaluate(input, reference, output)))

    # -- the queue ---------------------------------------------------------------------------
    def items(self) -> list[ManualItem]:
        with self._lock:
            return list(self._items.values())

    def pending(self) -> list[ManualItem]:
        """Queued items not yet fully scored, in queue order."""
        return [i for i in self.items() if not i.done]

    def submit(self, item_id: str, score: float | None = None, **scores: float) -> ManualItem:
        """Record scores for ``item_id``: ``submit(id, 4)`` (one dimension) or ``submit(id, 满意度=4)``."""
        given: dict[str, Any] = dict(scores)
        if score is not None:
            if len(self.dimensions) != 1:
                raise invalid("score", f"name the dimension: one of {self.dimensions}")
            given[self.dimensions[0]] = score
        if not given:
            raise invalid("scores", "no score given")
        checked = self._check(given)
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                raise invalid("item_id", f"no queued item {item_id!r}")
            item.scores.update(checked)
            return item

    def score_of(self, llm: str, index: int) -> dict[str, float | None] | None:
        with self._lock:
            item = self._items.get(f"{llm}:{index}")
            return dict(item.scores) if item else None

    def __repr__(self) -> str:
        mode = "scorer" if self.scorer else f"{len(self.pending())} pending"
        return f"ManualEvaluator(dimensions={self.dimensions}, {mode})"
