"""How likely a served model finds given answers: each answer's summed token log-probability as the
reply to its conversation, teacher-forced (``POST /v1/fine_tuning/answer_logprobs``, qfnb's own).

It is what "does the tuned model win?" reads (:mod:`qfnb.evaluation.runs.preference`): on a held-out
preference pair, has tuning raised the preferred answer's likelihood relative to the rejected one's
more than the base has it? Scored on the engine that serves the model (llama-server with the
adapter; an in-process transformers model in one forward pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from qfnb.local.domain.state.site import ServingSite
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.api import Engine
from qfnb.local.engines.base import text_turns
from qfnb.local.engines.gate import EngineBusy

#: items of one call, and answers of one item
MAX_ITEMS, MAX_ANSWERS = 64, 8
#: answers scored at once on an engine that does not say its batch slots
ANSWERS_AT_ONCE = 4


def answers_at_once(engine: Engine) -> int:
    """Answers scored at once on ``engine``: one per batch slot (each answer is scored in one call on one
    slot, :meth:`~qfnb.local.engines.llama.engine.LlamaEngine.answer_token_logprobs`, so the engine decodes a
    token of each in one step: measured 8 at once against 4 in bench/compare_speed.py), else
    :data:`ANSWERS_AT_ONCE`."""
    slots = engine.gate.slots
    return slots if slots > 0 else ANSWERS_AT_ONCE


def _items(body: dict[str, Any]) -> list[tuple[list[dict[str, str]], list[str]]]:
    items = body.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise BodyError("items", f"must be a list of 1 to {MAX_ITEMS} {{messages, answers}} objects")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BodyError(f"items[{i}]", "must be an object {messages, answers}")
        try:
            turns = text_turns(item.get("messages") or [])
        except (ValueError, AttributeError, TypeError) as exc:
            raise BodyError(f"items[{i}].messages", str(exc)) from None
        if not turns or turns[-1]["role"] != "user":
            raise BodyError(f"items[{i}].messages", "must end with the user message the answers reply to")
        answers = item.get("answers")
        if (not isinstance(answers, list) or not 1 <= len(answers) <= MAX_ANSWERS
                or not all(isinstance(a, str) and a for a in answers)):
            raise BodyError(f"items[{i}].answers", f"must be a list of 1 to {MAX_ANSWERS} non-empty strings")
        out.append((turns, answers))
    return out


async def _scored(engine: Engine, turns: list[dict[str, str]], answer: str) -> tuple[float, int]:
    while True:  # a busy engine is waited for: this is a batch of work, not an interactive call
        try:
            return await engine.answer_logprob(turns, answer)
        except EngineBusy as exc:
            await asyncio.sleep(exc.retry_after)


async def score_answers(platform: ServingSite, body: dict[str, Any],
                        scored: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """``{"model", "items": [{"messages", "answers": [...]}]}`` -> each answer's log-probability and
    token count, in order, and the call's ``usage`` (the answers' tokens scored, as input); the model is
    any name the chat routes serve (``ft:…``, ``task-…@best``...). ``scored(model, tokens)`` is told of
    each answer as it is scored (a call its client left is counted for what it scored)."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise BodyError("model", "is required: the served model that scores the answers")
    items = _items(body)
    served = platform.resolve("chat", name)
    engine: Engine = await asyncio.to_thread(platform.registry.chat, platform.engine_endpoint(served))
    at_once = asyncio.Semaphore(answers_at_once(engine))

    async def one(turns: list[dict[str, str]], answer: str) -> tuple[float, int]:
        async with at_once:
            score = await _scored(engine, turns, answer)
        if scored is not None:  # told as each is scored: a call its client left is counted for what it scored
            scored(served.name, score[1])
        return score

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [[group.create_task(one(turns, answer)) for answer in answers] for turns, answers in items]
    except ExceptionGroup as failed:  # the first answer's failure, as the route reports one
        raise failed.exceptions[0] from None
    data, total = [], 0
    for index, answer_tasks in enumerate(tasks):
        scores = [task.result() for task in answer_tasks]
        total += sum(s[1] for s in scores)
        data.append({"index": index, "logprobs": [round(s[0], 6) for s in scores], "tokens": [s[1] for s in scores]})
    return {"object": "list", "model": name, "data": data,
            "usage": {"prompt_tokens": total, "completion_tokens": 0, "total_tokens": total}}
