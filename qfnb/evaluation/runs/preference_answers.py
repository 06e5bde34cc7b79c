"""Does the tuned model answer better? Both models answer each held-out prompt, and each pair of answers
is decided in order by what the answers are:

1. **degeneration** (:mod:`qfnb.protocol.console.degeneration`, the pair's preferred answer as the
   reference): a degenerate answer (empty, cut at the token cap, one n-gram or marker repeated, a
   bare marker) loses to one that is not, whatever any score says; two degenerate answers tie. A
   model that gave most prompts a degenerate answer, or one answer to most prompts, has *collapsed*,
   and every answer of it counts as degenerate;
2. **the user's measure** (``metric=``): a function ``(prompt, answer)`` or ``(prompt, answer, pair)``
   -> a number, higher is better (a RFT reward function fits), or a local evaluator of
   :mod:`qfnb.evaluation` (``evaluate(input, reference, output)``, the preferred answer as the
   reference); the higher score wins, equal scores go on to the judge;
3. **a judge** (``judge=``, a :class:`~qfnb.evaluation.evaluators.pairwise.PairwiseJudge`): both orders,
   a disagreement is a tie;
4. neither given: **resemblance**: each answer's word overlap (F1 over
   :func:`~qfnb.protocol.console.degeneration.tokens`: English and Chinese alike) with the preferred
   answer minus that with the rejected one; the answer nearer the preferred one wins.

So a measure that a collapsed answer satisfies (a marker, a keyword) never decides alone: the
degeneration is read first.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

from qfnb._core.http.client import AsyncQianfanClient
from qfnb.protocol.console import degeneration, train_formats

from .._errors import invalid
from ..base import LocalEvaluator
from ..evaluators.pairwise import PairwiseJudge, Preference
from ..llm import response_text
from ..stats.degeneration_first import Answers, collapse_said, decided

__all__ = ["AnsweredPair", "Answers", "Measure", "collapse_said", "decided", "judge_answers_of", "measure_of",
           "model_answers", "prompt_of", "resemblance"]

#: chat calls in flight at once for one model (the engine batches them in its slots; more would wait in
#: its queue or be refused)
ANSWERS_AT_ONCE = 16


@dataclass(frozen=True)
class AnsweredPair:
    """One held-out prompt answered by both models: the answers, their scores under the measure (None
    where none was applied), the outcome for the tuned model (1 a win, 0.5 a tie, 0 a loss) and what
    decided it (``"degeneration"``, the measure's name, ``"the judge"`` or ``"tie"``)."""

    prompt: str
    tuned_answer: str
    base_answer: str
    tuned_degenerate: bool
    base_degenerate: bool
    tuned_score: float | None
    base_score: float | None
    outcome: float
    decided_by: str
    #: the judge's own preference (1 the tuned answer, 0.5 a tie, 0 the base's), where one was named
    judge_outcome: float | None = None
    #: the judge's verdict itself (both orders), where one was named: what a label queue reads
    judgement: Preference | None = None


class Measure:
    """The user's measure of one answer, higher is better (see the module doc); ``name`` says it."""

    def __init__(self, name: str, score: Callable[[train_formats.Pair, str], Any]) -> None:
        self.name, self._score = name, score

    async def ascore(self, pair: train_formats.Pair, answer: str) -> float:
        value = self._score(pair, answer)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, dict):  # an evaluator's scores
            value = _one_score(self.name, value)
        if not isinstance(value, Real) or not math.isfinite(float(value)):  # (True/False count as 1/0)
            raise invalid("metric", f"{self.name!r} gave {value!r} for an answer: return a finite number")
        return float(value)


def _one_score(name: str, scores: dict[str, Any]) -> Any:
    numbers = {k: v for k, v in scores.items() if isinstance(v, Real)}
    if len(numbers) != 1:
        raise invalid("metric", f"the evaluator {name!r} gave {sorted(scores)}: compare_preference needs an "
                                "evaluator of one numeric score (or pass a function)")
    return next(iter(numbers.values()))


def measure_of(metric: Any) -> Measure | None:
    """``metric=`` as a :class:`Measure` (None for None), checked before anything is sent."""
    if metric is None:
        return None
    if isinstance(metric, LocalEvaluator):
        name = str(getattr(metric, "metric_name", type(metric).__name__))
        return Measure(name, lambda pair, answer: metric.aevaluate(list(pair.messages), pair.chosen, answer))
    if not callable(metric):
        raise invalid("metric", f"{metric!r} is neither a function (prompt, answer[, pair]) -> float nor a local "
                                "evaluator of qfnb.evaluation")
    takes_pair = _takes_three(metric)
    name = str(getattr(metric, "__name__", type(metric).__name__))

    def score(pair: train_formats.Pair, answer: str) -> Any:
        try:
            return metric(prompt_of(pair), answer, pair) if takes_pair else metric(prompt_of(pair), answer)
        except Exception as exc:
            raise invalid("metric", f"{name!r} failed on an answer: {type(exc).__name__}: {exc}") from exc

    return Measure(name, score)


def _takes_three(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes a third positional argument (the pair), else it is called with two."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    if len(positional) < 2:
        raise invalid("metric", f"{getattr(fn, '__name__', fn)!r} must take (prompt, answer) or "
                                "(prompt, answer, pair)")
    return len(positional) >= 3


def prompt_of(pair: train_formats.Pair) -> str:
    """The pair's last user message."""
    users = [m["content"] for m in pair.messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def _overlap(answer: Sequence[str], reference: Sequence[str]) -> float:
    """Token F1 of two token lists."""
    common = sum((Counter(answer) & Counter(reference)).values())
    if not common:
        return 0.0
    precision, recall = common / len(answer), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def resemblance(pair: train_formats.Pair, answer: str) -> float:
    """How much nearer ``answer`` is to the preferred answer than to the rejected one: the difference of
    its token F1 with each (-1 to 1)."""
    toks = degeneration.tokens(answer)
    return _overlap(toks, degeneration.tokens(pair.chosen)) - _overlap(toks, degeneration.tokens(pair.rejected))


async def model_answers(client: AsyncQianfanClient, model: str, pairs: Sequence[train_formats.Pair],
                        max_tokens: int) -> Answers:
    """``model``'s greedy answers to every pair's conversation, sent together (at most
    :data:`ANSWERS_AT_ONCE` in flight) so the engine batches them, and read for degeneration."""
    at_once = asyncio.Semaphore(ANSWERS_AT_ONCE)

    async def one(pair: train_formats.Pair) -> tuple[str, str | None]:
        async with at_once:
            resp = await client.chat_v2({"model": model, "messages": list(pair.messages), "temperature": 0,
                                         "max_tokens": max_tokens})
        return response_text(resp), _finish_reason(resp)

    got = await asyncio.gather(*(one(p) for p in pairs))
    texts, reasons = [t for t, _ in got], [r for _, r in got]
    return Answers(texts, reasons, degeneration.judge_answers(texts, finish_reasons=reasons,
                                                              references=[p.chosen for p in pairs]))


def _finish_reason(resp: Any) -> str | None:
    try:
        reason = resp["choices"][0].get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return str(reason) if reason is not None else None


async def judge_answers_of(pairs: Sequence[train_formats.Pair], tuned: Answers, base: Answers,
                           measure: Measure | None, judge: PairwiseJudge | None) -> list[AnsweredPair]:
    """Each pair decided as the module doc says: degeneration, then the measure, then the judge (the
    resemblance when neither measure nor judge is given)."""
    scoring = measure if measure is not None or judge is not None else Measure("resemblance", resemblance)
    tuned_scores: list[float | None] = [None] * len(pairs)
    base_scores: list[float | None] = [None] * len(pairs)
    if scoring is not None:
        tuned_scores = list(await asyncio.gather(*(scoring.ascore(p, a) for p, a in zip(pairs, tuned.texts,
                                                                                        strict=True))))
        base_scores = list(await asyncio.gather(*(scoring.ascore(p, a) for p, a in zip(pairs, base.texts,
                                                                                       strict=True))))
    prefs = None
    if judge is not None:
        prefs = await judge.apreferences([(list(p.messages), p.chosen, m, b)
                                          for p, m, b in zip(pairs, tuned.texts, base.texts, strict=True)])
    out = []
    for k, pair in enumerate(pairs):
        t_bad, b_bad = tuned.degenerate(k), base.degenerate(k)
        t_score, b_score = tuned_scores[k], base_scores[k]
        outcome, by = decided(t_bad, b_bad, t_score, b_score, None if scoring is None else scoring.name,
                              None if prefs is None else prefs[k].value)
        judged = None if prefs is None else (prefs[k].value + 1) / 2
        out.append(AnsweredPair(prompt_of(pair), tuned.texts[k], base.texts[k], t_bad, b_bad, t_score, b_score,
                                outcome, by, judged, None if prefs is None else prefs[k]))
    return out
