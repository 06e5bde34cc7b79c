"""The evaluation loss on the held-out split (``spec.eval_file``): when to measure it, and how.

It is the answer-only loss of :func:`qfnb.local.training.lora.answer_loss`, averaged over every
labelled token of the held-out rows, with the model in eval mode (no LoRA dropout) and no
gradients. To keep its cost small on a CPU, at most :data:`MAX_EXAMPLES` held-out rows are used
(the same ones each time, so the curve's moves are the model's), about :data:`POINTS` times a run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.local.training import data, lora

log = logging.getLogger("qfnb.local.training")

#: held-out rows the loss is measured on (the rest of the split is not trained on either)
MAX_EXAMPLES = 32
#: how many times a run measures it (and at its last step)
POINTS = 6


def every(total_steps: int, logging_steps: int = 1) -> int:
    """Measure every this many steps: about :data:`POINTS` times a run, on logged steps."""
    n = max(1, math.ceil(total_steps / POINTS))
    return max(logging_steps, math.ceil(n / logging_steps) * logging_steps)


@dataclass
class EvalSet:
    """The held-out rows, collated once into batches."""

    batches: list[tuple[Any, Any, Any]]
    examples: int
    seconds: float = 0.0  # time spent measuring, so far

    @classmethod
    def build(cls, rows: Sequence[tuple[list[int], list[int]]], batch_size: int, pad_id: int) -> EvalSet:
        rows = list(rows)[:MAX_EXAMPLES]
        size = max(1, batch_size * 2)  # no gradients: twice the training batch fits
        return cls([data.collate(rows[i : i + size], pad_id) for i in range(0, len(rows), size)], len(rows))

    def loss(self, model: Any, *, autocast: bool | None = None) -> float:
        """The mean answer-token loss over the held-out rows."""
        import torch

        t0 = time.time()
        was_training = model.training
        model.eval()
        total, tokens = 0.0, 0
        try:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                 enabled=lora.NATIVE_BF16 if autocast is None else autocast):
                for ids, mask, labels in self.batches:
                    n = int((labels[:, 1:] != data.IGNORE).sum())
                    if n:
                        total += float(lora.answer_loss(model, ids, mask, labels)) * n
                        tokens += n
        finally:
            if was_training:
                model.train()
            self.seconds += time.time() - t0
        return total / tokens if tokens else float("nan")
