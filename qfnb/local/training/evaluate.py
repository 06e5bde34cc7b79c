"""The evaluation loss on the held-out split (``spec.eval_file``): when to measure it, and how.

It is the answer-only loss of :func:`qfnb.local.training.lora.answer_loss`, averaged over every
labelled token of the held-out rows, with the model in eval mode (no LoRA dropout) and no
gradients. To keep its cost small on a CPU, at most :data:`MAX_EXAMPLES` held-out rows are used
(the same ones each time, so the curve's moves are the model's), about :data:`POINTS` times a run,
and no more than :func:`budget_rows` lets in :data:`SCORING_SHARE` of the training time.
:class:`MetricSet` scores a checkpoint's greedy answers to a few held-out prompts with a
generation metric (``rouge_l``, ``exact_match``: :mod:`qfnb.protocol.console.textmetrics`).
:func:`served_loss` measures the same loss on a served model instead (llama-server with the adapter).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

from qfnb.local.engines.api import Engine
from qfnb.local.engines.gate import EngineBusy, run_blocking
from qfnb.local.training import data, lora
from qfnb.protocol.console import textmetrics

#: held-out rows the loss is measured on (the rest of the split is not trained on either)
MAX_EXAMPLES = 32
#: held-out rows measured whatever the budget says
MIN_EXAMPLES = 4
#: how many times a run measures it (and at its last step)
POINTS = 6
#: the share of the training time the held-out loss may take, by default
SCORING_SHARE = 0.15
#: a training step (forward, backward, optimizer) costs about this many no-gradient forward passes
STEP_COST = 3.0
#: the most new tokens a checkpoint's answer may have when a generation metric scores it
METRIC_TOKENS = 48


def budget_rows(total_steps: int, batch_size: int, points: int, share: float = SCORING_SHARE) -> int:
    """Held-out rows the loss can be measured on ``points`` times within ``share`` of the training
    time (``total_steps`` steps of ``batch_size`` rows): at least :data:`MIN_EXAMPLES` (fewer make the
    loss too noisy to pick a checkpoint by), at most :data:`MAX_EXAMPLES`."""
    rows = share * total_steps * batch_size * STEP_COST / max(points, 1)
    return max(MIN_EXAMPLES, min(MAX_EXAMPLES, int(rows)))


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
    def build(cls, rows: Sequence[tuple[list[int], list[int]]], batch_size: int, pad_id: int,
              limit: int = MAX_EXAMPLES) -> Self:
        rows = list(rows)[:min(limit, MAX_EXAMPLES)]
        size = max(1, batch_size * 2)  # no gradients: twice the training batch fits
        return cls([data.collate(rows[i : i + size], pad_id) for i in range(0, len(rows), size)], len(rows))

    def loss(self, model: Any, *, autocast: bool | None = None) -> float:
        """The mean answer-token loss over the held-out rows."""
        import torch

        total, tokens = 0.0, 0
        with _scoring(model, self), torch.no_grad(), torch.autocast(
                "cpu", dtype=torch.bfloat16, enabled=lora.NATIVE_BF16 if autocast is None else autocast):
            for ids, mask, labels in self.batches:
                n = int((labels[:, 1:] != data.IGNORE).sum())
                if n:
                    total += float(lora.answer_loss(model, ids, mask, labels)) * n
                    tokens += n
        return total / tokens if tokens else float("nan")


def served_loss(engine: Engine, rows: Sequence[tuple[list[int], list[int]]], limit: int = MAX_EXAMPLES) -> float:
    """:meth:`EvalSet.loss` of ``rows`` (``data.encode_all``'s ``(input_ids, labels)``) measured on a
    served model: the same rows (the first ``limit``, at most :data:`MAX_EXAMPLES`), the same
    labelled tokens (each after the tokens before it) and the same mean over all of them, each
    token's log-probability taken from ``engine`` (:meth:`~qfnb.local.engines.api.Engine.token_logprobs`:
    llama-server with the adapter applied). Blocking; waits while the engine is busy."""

    async def logprobs(ids: list[int], positions: list[int]) -> list[float]:
        while True:
            try:
                return await engine.token_logprobs(ids, positions)
            except EngineBusy as exc:
                await asyncio.sleep(exc.retry_after)

    async def measure() -> tuple[float, int]:
        total, tokens = 0.0, 0
        for ids, labels in list(rows)[:min(limit, MAX_EXAMPLES)]:
            positions = [t for t in range(1, len(ids)) if labels[t] != data.IGNORE]
            if positions:
                total -= sum(await logprobs(ids, positions))
                tokens += len(positions)
        return total, tokens

    total, tokens = run_blocking(measure)
    return total / tokens if tokens else float("nan")


class MetricSet:
    """A generation metric over a few held-out items: each checkpoint answers them greedily."""

    def __init__(self, name: str, examples: Sequence[data.Example], tokenizer: Any) -> None:
        self.name, self.tok = name, tokenizer
        self.prompts = [tokenizer.apply_chat_template(list(e.messages), tokenize=False, add_generation_prompt=True)
                        for e in examples]
        self.references = [e.answer for e in examples]
        # an answer may run a little past the longest reference, never further (generation is the cost)
        longest = max((len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in self.references), default=0)
        self.max_tokens = min(METRIC_TOKENS, longest + 4)
        self.seconds = 0.0

    @property
    def items(self) -> int:
        return len(self.prompts)

    def score(self, model: Any) -> float:
        """The mean metric of the model's answers against the held-out responses."""
        import torch

        end = data.end_token_ids(self.tok)
        scores = []
        with _scoring(model, self), torch.no_grad():
            for prompt, ref in zip(self.prompts, self.references, strict=True):
                ids = self.tok(prompt, add_special_tokens=False, return_tensors="pt")
                out = model.generate(**ids, max_new_tokens=self.max_tokens, do_sample=False, eos_token_id=end,
                                     use_cache=True, pad_token_id=self.tok.pad_token_id)
                answer = self.tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
                scores.append(textmetrics.exact_match(ref, answer) if self.name == "exact_match"
                              else textmetrics.rouge(ref, answer)["rouge_l"])
        return sum(scores) / len(scores) if scores else float("nan")


@contextlib.contextmanager
def _scoring(model: Any, timed: EvalSet | MetricSet) -> Iterator[None]:
    """``model`` in eval mode for the block (back in training mode after, if it was), the block's
    time added to ``timed.seconds``."""
    t0, was_training = time.time(), model.training
    model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()
        timed.seconds += time.time() - t0
