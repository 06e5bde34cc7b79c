"""Pairwise judging (A vs B) with its guardrails.

* Both orders: every pair is judged as (model, baseline) and as (baseline, model); a model wins
  an item only when the judge prefers it in both orders. A disagreement between the orders (a
  judge that favours a position) is a tie, as is an unreadable reply in either order.
* A judge that is also a candidate is refused (:func:`check_not_candidate`): a model grading its
  own answers favours them.
* The rubric is versioned and hashed (:mod:`.rubric`); the reference is shown only when the
  rubric uses it. No model given: a chat model on the embedded local platform, offline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.protocol.console.textmetrics import as_text

from .._errors import invalid
from ..base import EvalInput
from ..llm import LLMTarget, as_prompt, as_target, embedded_chat, target_identity
from .rubric import Rubric, pairwise_rubric

_WINNER = re.compile(r"(?:winner|胜者|获胜|更好)\s*[:：]?\s*\**\s*(?:answer\s*|回答\s*)?\[*\s*(A|B|tie|平局|相当)\b",
                     re.IGNORECASE)
_BARE = re.compile(r"^\s*\[*\s*(A|B|tie)\s*\]*\s*[.。]?\s*$", re.IGNORECASE)


def parse_winner(text: str) -> str | None:
    """``"A"``, ``"B"``, ``"tie"`` from a judge's reply, or ``None`` when it names none."""
    text = as_text(text)
    m = _WINNER.search(text) or _BARE.match(text)
    if not m:
        return None
    word = m.group(1)
    if word.lower() == "tie" or word in ("平局", "相当"):
        return "tie"
    return word.upper()


@dataclass(frozen=True)
class Preference:
    """One item judged in both orders: ``+1`` the model wins, ``-1`` the baseline wins, ``0`` a tie."""

    value: int
    model_first: str | None  # the verdict with the model's answer shown as A
    baseline_first: str | None  # the verdict with the baseline's answer shown as A
    position_bias: bool  # the two orders disagree (the verdict followed the position)


def combine(model_first: str | None, baseline_first: str | None) -> Preference:
    """Both orders' verdicts -> one preference; any disagreement or unreadable reply is a tie."""
    as_model = {"A": 1, "B": -1, "tie": 0}  # model shown as A
    as_base = {"A": -1, "B": 1, "tie": 0}  # baseline shown as A
    one = as_model.get(model_first or "")
    two = as_base.get(baseline_first or "")
    if one is None or two is None:
        return Preference(0, model_first, baseline_first, False)
    agree = one == two
    return Preference(one if agree else 0, model_first, baseline_first, not agree)


class PairwiseJudge:
    """Ask ``model`` which of two answers is better, in both orders (see the module docstring)."""

    def __init__(self, model: Any = None, *, rubric: Rubric | None = None, uses_reference: bool = True,
                 concurrency: int = 4, judge_kwargs: dict[str, Any] | None = None, tag: str | None = None) -> None:
        rubric = rubric or pairwise_rubric(uses_reference=uses_reference)
        if rubric.kind != "pairwise":
            raise invalid("rubric", "PairwiseJudge needs a rubric of kind 'pairwise'")
        self.rubric = rubric
        self._target: LLMTarget = as_target(model if model is not None else embedded_chat(), tag)
        self.concurrency = concurrency
        self.judge_kwargs = dict(judge_kwargs or {})

    @property
    def judge_target(self) -> LLMTarget:
        return self._target

    @property
    def tag(self) -> str:
        return self._target.tag

    def judge_info(self) -> dict[str, Any]:
        return {"judge": self._target.tag, "mode": "pairwise, both orders", **self.rubric.info()}

    def build_prompt(self, input: EvalInput, reference: str, answer_a: str, answer_b: str) -> str:
        return self.rubric.prompt(prompt=as_prompt(input), reference=as_text(reference),
                                  response_a=as_text(answer_a), response_b=as_text(answer_b))

    async def apreferences(self, items: Sequence[tuple[EvalInput, str, str, str]]) -> list[Preference]:
        """``items``: ``(input, reference, model answer, baseline answer)``; one preference each."""
        prompts = [self.build_prompt(i, r, m, b) for i, r, m, b in items]
        prompts += [self.build_prompt(i, r, b, m) for i, r, m, b in items]
        replies = await self._target.run(prompts, self.concurrency, self.judge_kwargs, None)
        verdicts = [None if isinstance(r, BaseException) else parse_winner(r) for r in replies]
        n = len(items)
        return [combine(verdicts[k], verdicts[n + k]) for k in range(n)]

    def __repr__(self) -> str:
        return f"PairwiseJudge(model={self._target.tag!r}, rubric={self.rubric.name!r}@{self.rubric.hash})"


def check_not_candidate(judge: Any, candidates: Iterable[tuple[str, str | None]]) -> None:
    """Refuse a judge that is also a candidate: same tag, or the same model behind another tag.

    ``candidates`` are ``(tag, identity)`` pairs (identity ``None`` for recorded answers)."""

    target: LLMTarget = judge.judge_target
    mine = target_identity(target)
    for tag, identity in candidates:
        if tag == target.tag or (identity is not None and identity == mine):
            raise invalid("judge", f"the judge {target.tag!r} is also a candidate ({tag!r}); a model judging "
                                   "its own answers favours them: pick a judge that is not being evaluated")
