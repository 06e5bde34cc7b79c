"""A fine-tune's checkpoints and the decision on them, pure and written once for the training worker,
the console routes, the trainer and the notebook.

A run saves ``K`` LoRA checkpoints evenly over its steps (:func:`checkpoint_steps`). Each is an
entry of the task detail's ``checkpointList`` as the Qianfan platform returns it (``step``, ``time``,
``trainLoss``, ``evalLoss``; qfnb adds ``metric``/``metricName`` when a generation metric is named).
The best one (:func:`best_checkpoint`) has the lowest held-out loss, or the highest metric when one
is named, or (DPO, KTO) the highest held-out preference accuracy, as Hugging Face's
``load_best_model_at_end`` picks it. Over-fitting (:func:`overfitting`) is named once the held-out
loss of a later checkpoint rose clearly above its lowest; early stopping
(:func:`patience_spent`) ends a run after ``patience`` checkpoints without improvement, as
``EarlyStoppingCallback(early_stopping_patience=…)`` does.

Checkpoints are also judged by what they write: each answers a few held-out prompts greedily, and its entry
carries :data:`DEGENERATION_RATE` (:mod:`qfnb.protocol.console.degeneration`'s rate), :data:`DEGENERATE` (the
verdict of :func:`judge_checkpoint`, beside the base's answers to the same prompts) and a few ``answers``. The
best checkpoint is never a degenerate one; a run's first degenerate checkpoint is where its answers collapsed
(:func:`collapse`), and :func:`collapse_error` says what was seen and what to lower when none still answered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from qfnb.protocol.console.degeneration import AnswersReport, check_answer

__all__ = ["BASE_FAILS", "DEFAULT_CHECKPOINTS", "DEFAULT_PATIENCE", "DEGENERATE", "DEGENERATION_RATE", "LOOP_RATE",
           "METRICS", "NOT_JUDGED", "OVERFIT_RISE", "PREFERENCE_SCORE", "REWARD_MARGIN", "UNJUDGED",
           "CheckpointVerdict", "Overfit", "best_checkpoint", "checkpoint_steps", "choose", "collapse",
           "collapse_error", "judge_checkpoint", "one_answer_collapse", "overfitting", "patience_spent",
           "served_unjudged"]

#: checkpoints a run keeps when a validation split exists and the request names no count
DEFAULT_CHECKPOINTS = 5
#: checkpoints without improvement before an early-stopping run ends
DEFAULT_PATIENCE = 2
#: generation metrics a run can score its checkpoints with (higher is better)
METRICS = ("rouge_l", "exact_match")
#: a preference run's held-out score of a checkpoint (higher is better), and its tie-break
PREFERENCE_SCORE = "valid_preference_accuracy"
REWARD_MARGIN = "valid_reward_margin"
#: how far (relative) the held-out loss must rise above its lowest to be called over-fitting
OVERFIT_RISE = 0.05
#: a checkpoint entry's share of degenerate held-out answers, and its verdict (a bool)
DEGENERATION_RATE = "valid_degeneration_rate"
DEGENERATE = "degenerate"
#: what :func:`judge_checkpoint` adds to what it saw when the base's every answer looped too: no verdict on the run
NOT_JUDGED = " (not judged: the base's answers degenerated too)"
#: a checkpoint entry's flag, true when its answers were not held against the run (:data:`NOT_JUDGED`)
UNJUDGED = "unjudged"
#: the share of answers degenerate for a reason other than the token cap (a loop, a bare marker) that makes a
#: checkpoint degenerate even when the base's answers were all cut at the cap
LOOP_RATE = 0.5
_CUT = "cut at the token cap"


def checkpoint_steps(total_steps: int, count: int) -> list[int]:
    """``count`` steps spread evenly over ``1..total_steps``, the last one always among them."""
    if count <= 0 or total_steps <= 0:
        return []
    count = min(count, total_steps)
    return sorted({max(1, round(total_steps * i / count)) for i in range(1, count + 1)})


def _score(entry: Mapping[str, Any], key: str) -> float | None:
    """``entry[key]`` (``"evalLoss"`` or ``"metric"``) as a finite float, or None."""
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


class CheckpointVerdict(NamedTuple):
    """:func:`judge_checkpoint`'s answer: the verdict, what was seen, and whether the answers were held against the
    run at all (False beside a base that never answered: then ``degenerate`` is False whatever was seen)."""

    degenerate: bool
    seen: str
    judged: bool = True

    def fields(self) -> dict[str, Any]:
        """The checkpoint entry's fields: :data:`DEGENERATE`, ``degeneration``, and :data:`UNJUDGED` when not judged."""
        return {DEGENERATE: self.degenerate, "degeneration": self.seen, **({} if self.judged else {UNJUDGED: True})}


def judge_checkpoint(report: AnswersReport, base: AnswersReport | None = None) -> CheckpointVerdict:
    """Is a checkpoint whose held-out answers read as ``report`` degenerate, beside the base's answers to the same
    prompts (``base``)? Degenerate when its answers collapsed (one answer to most
    prompts, or most degenerate) and the base's had not; when more of its answers are degenerate than the base's
    (with a clean base: any one); or when more than :data:`LOOP_RATE` of them loop, are empty or a bare marker
    (a degeneration other than running to the token cap) and more than the base's. A base's own flaws (a chatty
    base cut at the cap) are not the run's; against a base whose every answer looped, only one answer given to
    most prompts, which the base did not do, is judged, and against one that never answered (a random model's
    empty replies) nothing: not ``judged``, and ``seen`` says so."""
    seen = report.summary
    if base is None:
        return CheckpointVerdict(report.collapsed or report.rate > 0, seen)
    if one_answer_collapse(report, base):
        return CheckpointVerdict(True, seen)
    if base.checks and _loop_rate(base) >= 1.0:
        return CheckpointVerdict(False, seen + NOT_JUDGED, judged=False)
    if report.collapsed and not base.collapsed:
        return CheckpointVerdict(True, seen)
    if report.rate > base.rate + 1e-9 or _loop_rate(report) > max(LOOP_RATE, _loop_rate(base)):
        return CheckpointVerdict(True, seen + f" (the base's: {base.rate:.0%})")
    return CheckpointVerdict(False, seen)


def one_answer_collapse(report: AnswersReport, base: AnswersReport) -> bool:
    """One answer, itself sound (given alone to at least one prompt, or a loop whose first pass reads as a sound
    answer alone), given to most prompts where the base gave none: the run's own collapse, however the base's answers
    looped (Gemma-3-270M's Chinese ones all do; its RFT run answered 6 of 10 questions with ``抱歉说不难。[Ticket
    #11011]``, a DPO run 7 of 10 with ``抱歉给您带来困扰。[Ticket #1888]``, 4 of them looped). A random model that
    loops the same junk for every prompt, or a base that never answered, is not judged so; a bare marker that most
    references contain is (``[Ticket #1111]Ticket #1111…`` to every prompt: the piece every good answer shares,
    round 38)."""
    if report.same_answer is None or base.same_answer is not None or not base.checks:
        return False
    if all(c.reasons == ("empty",) for c in base.checks):
        return False
    return report.same_clean >= 1 or report.same_in_references or not check_answer(report.same_answer).degenerate


def _loop_rate(report: AnswersReport) -> float:
    """The share of answers degenerate for a reason other than the token cap."""
    if not report.checks:
        return 0.0
    return sum(any(r != _CUT for r in c.reasons) for c in report.checks) / len(report.checks)


def _answers(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The entries a best checkpoint may be: those not judged :data:`DEGENERATE`."""
    return [c for c in entries if c.get(DEGENERATE) is not True]


def best_checkpoint(checkpoints: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Never a :data:`DEGENERATE` checkpoint (None when every one is); among the others, the checkpoint with the
    highest metric when the entries carry one; for a preference run (DPO,
    KTO: entries with :data:`PREFERENCE_SCORE`) the highest held-out preference accuracy, then the lowest
    held-out loss, then the earlier step; else the lowest held-out loss (a PostPretrain run's lowest
    perplexity). The earlier on a tie; None when no entry has a score."""
    checkpoints = _answers(checkpoints)
    by_metric = [c for c in checkpoints if _score(c, "metric") is not None]
    if by_metric:
        return max(by_metric, key=lambda c: (_score(c, "metric"), -int(c["step"])))
    by_preference = [c for c in checkpoints if _score(c, PREFERENCE_SCORE) is not None]
    if by_preference:
        # a tie on accuracy: the lower held-out loss, then the earlier step (less drift from the base); not the
        # wider margin, which grows as the policy over-optimises (a DPO run's degenerate answers had the widest)
        return max(by_preference, key=lambda c: (_score(c, PREFERENCE_SCORE), -(_score(c, "evalLoss") or 0.0),
                                                 -int(c["step"])))
    scored = [c for c in checkpoints if _score(c, "evalLoss") is not None]
    return min(scored, key=lambda c: (_score(c, "evalLoss"), int(c["step"]))) if scored else None


def collapse(checkpoints: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Where a run's answers collapsed: its first :data:`DEGENERATE` checkpoint after which none answered again
    (``step``, ``rate``, ``seen``: what was read, ``example``: an answer, ``lastGoodStep``: the best checkpoint
    that still answered, or None). None when the last checkpoint still answers (or none was judged)."""
    ordered = sorted(checkpoints, key=lambda c: int(c["step"]))
    if not ordered or ordered[-1].get(DEGENERATE) is not True:
        return None
    first = len(ordered)
    while first > 0 and ordered[first - 1].get(DEGENERATE) is True:
        first -= 1
    began = ordered[first]
    good = best_checkpoint(ordered[:first])
    example = next((a.get("answer") for a in began.get("answers") or [] if a.get("reason")), None)
    return {"step": int(began["step"]), "rate": began.get(DEGENERATION_RATE), "seen": began.get("degeneration"),
            "example": example, "lastGoodStep": None if good is None else int(good["step"])}


def served_unjudged(checkpoints: Sequence[Mapping[str, Any]], found: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The served model's checkpoint (the last one, or after a collapse ``found`` the one served) when most of its
    held-out answers degenerated but were not held against the run because the base's all had (:data:`UNJUDGED`):
    ``{step, rate, seen}``. The model is served, yet answers no better than its base (measured: a Gemma-3-270M DPO
    run at ``learningRate`` 2e-4 in Chinese ran on past its answer to the cap in 8 of 10). None otherwise."""
    ordered = sorted(checkpoints, key=lambda c: int(c["step"]))
    step = found.get("lastGoodStep") if found else (ordered[-1]["step"] if ordered else None)
    entry = next((c for c in ordered if step is not None and int(c["step"]) == int(step)), None)
    rate = None if entry is None else _score(entry, DEGENERATION_RATE)
    if entry is None or rate is None or rate <= 0.5 or entry.get(UNJUDGED) is not True:
        return None
    return {"step": int(entry["step"]), "rate": rate,
            "seen": str(entry.get("degeneration") or "").replace(NOT_JUDGED, "")}


#: the share of the base's own held-out answers degenerate from which a collapse error blames the base too
BASE_FAILS = 0.5


def collapse_error(found: Mapping[str, Any], *, learning_rate: float, steps: int, beta: float | None = None,
                   base_rate: float | None = None) -> str:
    """A run whose every checkpoint collapsed, in words: what was seen (``found``: :func:`collapse`'s, or the final
    read's with ``prompts``, where it read them) and what to lower (``beta``: the run's, given when its mode's row
    takes one). ``base_rate``: the share of the base's answers to the same prompts that degenerated; from
    :data:`BASE_FAILS` the error says the base itself does not answer them (measured: Gemma-3-270M echoes Chinese
    questions, and its DPO run at a lower learning rate looped 80 % of its answers instead of collapsing)."""
    fix = f"lower learningRate (now {learning_rate:g}) or the steps/epochs (now {steps} steps)"
    if beta is not None:
        fix += f", or raise beta (now {beta:g})"
    if base_rate is not None and base_rate >= BASE_FAILS:
        fix += (f"; but the base itself gave degenerate answers to {base_rate:.0%} of these prompts: it does not "
                "answer them, and a few dozen examples will not teach it to; a larger base may")
    example = found.get("example")
    if found.get("prompts") is not None:  # read at the run's end (qfnb.local.training.answers.read_final)
        return (f"the model's answers collapsed: at its last step ({found['step']}) it answered {found['seen']}"
                + (f", e.g. {str(example)[:120]!r}" if example is not None and str(example)[:80] not in found["seen"]
                   else "")
                + (" (read on its training prompts: no held-out data was given, so no checkpoint was judged)"
                   if found["prompts"] == "training" else " (read on its held-out prompts: no checkpoint was kept)")
                + f"; nothing is served: {fix}; with held-out data and checkpoints the last checkpoint that still "
                "answered would be served")
    rate = found.get("rate")
    seen = f"{rate:.0%} of held-out answers degenerate" if isinstance(rate, int | float) else "degenerate answers"
    return (f"the model's answers collapsed from step {found['step']}, its first checkpoint: {seen}"
            + (f" ({found['seen']})" if found.get("seen") else "")
            + (f", e.g. {str(found['example'])[:120]!r}" if found.get("example") is not None
               and str(found["example"])[:80] not in str(found.get("seen") or "") else "")
            + f"; no checkpoint still answered, so none is served: {fix}")


def patience_spent(checkpoints: Sequence[Mapping[str, Any]], patience: int) -> bool:
    """True when the last ``patience`` checkpoints all came after the best one (no improvement)."""
    best = best_checkpoint(checkpoints)
    if best is None or patience < 1:
        return False
    later = [c for c in checkpoints if int(c["step"]) > int(best["step"])]
    return len(later) >= patience


@dataclass(frozen=True)
class Overfit:
    """The held-out loss was lowest at ``since`` (``low``) and is ``now`` at ``step``."""

    since: int
    low: float
    step: int
    now: float

    def describe(self) -> str:
        return f"over-fitting since step {self.since}: held-out loss {self.low:.3g} → {self.now:.3g}"

    def to_wire(self) -> dict[str, Any]:
        return {"sinceStep": self.since, "lowestEvalLoss": round(self.low, 6), "step": self.step,
                "evalLoss": round(self.now, 6), "message": self.describe()}


def overfitting(points: Sequence[tuple[int, float]], rise: float = OVERFIT_RISE) -> Overfit | None:
    """Over-fitting on ``(step, held-out loss)`` points: the latest loss is more than ``rise`` above
    the lowest one, which came earlier. None when the held-out loss has not clearly risen."""
    finite = [(int(s), float(v)) for s, v in points if math.isfinite(v)]
    if len(finite) < 2:
        return None
    since, low = min(finite, key=lambda p: (p[1], p[0]))
    step, now = finite[-1]
    if step <= since or now <= low * (1 + rise):
        return None
    return Overfit(since, low, step, now)


def choose(checkpoints: Sequence[Mapping[str, Any]], which: int | str) -> Mapping[str, Any]:
    """The checkpoint ``which`` names: ``"best"``, ``"last"`` or a step (an int or ``"step-8"``);
    ValueError naming the steps there are."""
    if not checkpoints:
        raise ValueError("the task saved no checkpoints")
    if which == "last":
        return max(checkpoints, key=lambda c: int(c["step"]))
    if which == "best":
        best = best_checkpoint(checkpoints)
        if best is None and not _answers(checkpoints):
            raise ValueError("every checkpoint's held-out answers degenerated; none is the best (name a step: "
                             + ", ".join(str(c["step"]) for c in checkpoints) + ")")
        return best if best is not None else max(checkpoints, key=lambda c: int(c["step"]))
    text = str(which).removeprefix("step-").removeprefix("step")
    steps = ", ".join(str(c["step"]) for c in checkpoints)
    if isinstance(which, bool) or not text.isdigit():
        raise ValueError(f"checkpoint must be 'best', 'last' or a step ({steps}), got {which!r}")
    found = next((c for c in checkpoints if int(c["step"]) == int(text)), None)
    if found is None:
        raise ValueError(f"no checkpoint at step {int(text)}; the task has checkpoints at steps {steps}")
    return found
