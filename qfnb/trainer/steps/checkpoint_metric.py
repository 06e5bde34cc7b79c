"""A finished run's checkpoints scored by your own metric, a notebook function.

``TrainConfig(eval_metric=fn)`` takes ``fn(input, reference, output) -> float``, the metric
``%qfeval --metrics`` takes. A function cannot travel to the training process, so each checkpoint
answers up to ``eval_metric_items`` held-out items on the engine (``TASK@step-N``: the local
platform serves every checkpoint of a run on its base's engine, no restart), ``fn`` scores the
answers greedily given, and the checkpoint with the highest mean is the best one: the one the
trainer publishes and deploys. The held-out rows are the split the run used (its task detail's
``evalFile``); where none can be read (a cloud run) the run keeps its held-out-loss decision, and
the log says so.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from qfnb.evaluation.evaluators.metrics import FunctionEvaluator
from qfnb.protocol.console import checkpoints
from qfnb.resources import ChatCompletion

from .._action import AsyncAction, RunContext
from ..consts import ActionState
from .load_action import warn_ignored

__all__ = ["DEFAULT_ITEMS", "CheckpointMetricAction"]

logger = logging.getLogger("qfnb.trainer")

#: held-out items each checkpoint answers when ``eval_metric_items`` is not set
DEFAULT_ITEMS = 8
#: the most tokens a checkpoint's answer may have; fewer when the references are short (a token
#: holds at least one character, so the longest reference's characters and a margin bound it)
ANSWER_TOKENS = 64
ANSWER_MARGIN = 8
#: answers asked of the engine at once
CONCURRENCY = 4


def held_out_items(path: str | Path, limit: int) -> list[tuple[str, str]]:
    """Up to ``limit`` ``(prompt, response)`` pairs of a held-out split (JSON lines)."""
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in itertools.islice((ln for ln in fh if ln.strip()), limit)]
    return [(str(row["prompt"]), str(row["response"])) for row in rows]


#: seconds between looks at the stop flag while the metric scores
STOP_POLL_S = 0.1


async def _until_stopped(ctx: RunContext, work: Awaitable[list[float]]) -> list[float]:
    """``work``'s result; :meth:`~qfnb.trainer.LLMFinetune.stop` ends the wait (TrainerStopped) even
    while the metric hangs: its thread, which Python cannot stop, is left to finish on its own."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            if ctx.stop_flag.is_set():
                logger.warning("eval_metric: stopped while the metric was scoring; a call of it that has not "
                               "returned goes on in its thread until it does")
            ctx.check_stop()
            await asyncio.wait({task}, timeout=STOP_POLL_S)
        return task.result()
    finally:
        task.cancel()


class CheckpointMetricAction(AsyncAction):
    """Score each checkpoint of the finished run with ``metric`` and name the best by it.

    Input: :class:`~qfnb.trainer.actions.TrainAction`'s output (``task_id``, ``checkpoints``,
    ``eval_file``). Output: the same with each checkpoint's ``metric``/``metricName``, the
    ``best_checkpoint`` by the metric and ``metric_seconds``, the scoring's wall time."""

    def __init__(self, metric: Callable[..., Any], items: int | None = None, **kwargs: Any) -> None:
        warn_ignored("CheckpointMetricAction", kwargs)
        super().__init__(kwargs.get("id"), kwargs.get("name"), kwargs.get("event_handler"))
        self.evaluator = FunctionEvaluator(metric)
        self.items = items or DEFAULT_ITEMS

    async def aexec(self, input: dict[str, Any] | None, ctx: RunContext) -> dict[str, Any]:
        input = dict(input or {})
        saved = [dict(c) for c in input.get("checkpoints") or []]
        held = input.get("eval_file")
        if not saved or not held or not Path(str(held)).is_file():
            logger.warning("eval_metric %s: no checkpoints or no readable held-out split (a cloud run?); "
                           "the best checkpoint stays the lowest held-out loss", self.evaluator.metric_name)
            return input
        pairs = held_out_items(str(held), self.items)
        if not pairs:
            logger.warning("eval_metric %s: the held-out split %s has no rows; the best checkpoint stays the lowest "
                           "held-out loss", self.evaluator.metric_name, held)
            return input
        cap = min(ANSWER_TOKENS, max((len(ref) for _, ref in pairs), default=0) + ANSWER_MARGIN)
        started = time.monotonic()
        limit = asyncio.Semaphore(CONCURRENCY)
        for entry in saved:
            ctx.check_stop()
            step = int(entry["step"])
            self.emit(ActionState.Running, f"scoring checkpoint step {step} with {self.evaluator.metric_name}")
            chat = ChatCompletion(endpoint=f"{input['task_id']}@step-{step}", config=ctx.config)
            scores = await _until_stopped(ctx, asyncio.gather(*(self._score(chat, limit, prompt, ref, cap)
                                                                for prompt, ref in pairs)))
            entry.update(metric=round(sum(scores) / len(scores), 6), metricName=self.evaluator.metric_name)
        best = checkpoints.best_checkpoint(saved)
        seconds = round(time.monotonic() - started, 3)
        logger.info("eval_metric %s: %d checkpoints x %d held-out items in %.1f s; best: step %s",
                    self.evaluator.metric_name, len(saved), len(pairs), seconds, best and best["step"])
        return {**input, "checkpoints": saved, "best_checkpoint": None if best is None else int(best["step"]),
                "metric_seconds": seconds}

    async def _score(self, chat: ChatCompletion, limit: asyncio.Semaphore, prompt: str, reference: str,
                     cap: int) -> float:
        async with limit:
            resp = await chat.ado(messages=[{"role": "user", "content": prompt}], temperature=0.0001,
                                  max_output_tokens=cap)
        output = str(resp.body.get("result") or "")
        scored = await self.evaluator.aevaluate(prompt, reference, output)
        return float(scored.get(self.evaluator.metric_name, next(iter(scored.values()), math.nan)))
