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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_CHECKPOINTS", "DEFAULT_PATIENCE", "METRICS", "OVERFIT_RISE", "PREFERENCE_SCORE", "REWARD_MARGIN",
           "Overfit", "best_checkpoint", "checkpoint_steps", "choose", "overfitting", "patience_spent"]

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


def best_checkpoint(checkpoints: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The checkpoint with the highest metric when the entries carry one; for a preference run (DPO,
    KTO: entries with :data:`PREFERENCE_SCORE`) the highest held-out preference accuracy, then the lowest
    held-out loss, then the earlier step; else the lowest held-out loss (a PostPretrain run's lowest
    perplexity). The earlier on a tie; None when no entry has a score."""
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
        return best if best is not None else max(checkpoints, key=lambda c: int(c["step"]))
    text = str(which).removeprefix("step-").removeprefix("step")
    steps = ", ".join(str(c["step"]) for c in checkpoints)
    if isinstance(which, bool) or not text.isdigit():
        raise ValueError(f"checkpoint must be 'best', 'last' or a step ({steps}), got {which!r}")
    found = next((c for c in checkpoints if int(c["step"]) == int(text)), None)
    if found is None:
        raise ValueError(f"no checkpoint at step {int(text)}; the task has checkpoints at steps {steps}")
    return found
