"""How likely a served model finds given answers: each answer's summed token log-probability as the
reply to its conversation, teacher-forced (``POST /v1/fine_tuning/answer_logprobs``, qfnb's own).

It is what "does the tuned model win?" reads (:mod:`qfnb.evaluation.runs.preference`): on a held-out
preference pair, has tuning raised the preferred answer's likelihood relative to the rejected one's
more than the base has it?

``by`` says how: ``"forward"``, all the call's answers in batched forward passes over the model's transformers
weights and its peft adapter (:mod:`qfnb.local.engines.hf.scoring`: what the platform keeps of a model it trained;
a few hundredths of a nat per token from the engine's numbers, which run on the GGUF's quantised weights);
``"engine"``, on the engine that serves the model (llama-server with the adapter: each answer decoded a token at a
time under a grammar of its ids, one call an answer; an in-process transformers model in one forward pass); ``"auto"``
(the default), forward where the platform has the weights, else the engine. The answer says which
(``scored_by``): margins compare only when both models were scored one way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from qfnb.local.domain.state.site import ServingSite
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.api import AnswerScorer, Engine
from qfnb.local.engines.base import text_turns
from qfnb.local.engines.gate import EngineBusy
from qfnb.protocol.platform.answer_scoring import AUTO, ENGINE, FORWARD, WAYS

#: items of one call, and answers of one item
MAX_ITEMS, MAX_ANSWERS = 64, 8
#: answers scored at once on an engine that does not say its batch slots
ANSWERS_AT_ONCE = 4
#: answers of one forward-pass batch (the call's client is heard between batches)
FORWARD_AT_ONCE = 16


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
    """``{"model", "items": [{"messages", "answers": [...]}], "by"}`` -> each answer's log-probability and
    token count, in order, the call's ``usage`` (the answers' tokens scored, as input) and ``scored_by``; the
    model is any name the chat routes serve (``ft:…``, ``task-…@best``...); ``by`` as the module says.
    ``scored(model, tokens)`` is told of each answer as it is scored (a call its client left is counted for what it
    scored)."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise BodyError("model", "is required: the served model that scores the answers")
    by = body.get("by", AUTO)
    if by not in WAYS:
        raise BodyError("by", f"must be {FORWARD!r}, {ENGINE!r} or {AUTO!r}, got {by!r}")
    items = _items(body)
    served = platform.resolve("chat", name)
    endpoint = platform.engine_endpoint(served)
    forward = None if by == ENGINE else platform.registry.forward_scorer(endpoint)
    if forward is None and by == FORWARD:
        raise BodyError("by", f"{name}: the platform has no transformers weights of it to score in a forward pass "
                        f"(ask by {ENGINE!r} or {AUTO!r})")

    def told(tokens: int) -> None:
        if scored is not None:
            scored(served.name, tokens)

    if forward is not None:
        return _answered(name, items, await _forward_scored(forward, items, told), FORWARD)
    engine: Engine = await asyncio.to_thread(platform.registry.chat, endpoint)
    at_once = asyncio.Semaphore(answers_at_once(engine))

    async def one(turns: list[dict[str, str]], answer: str) -> tuple[float, int]:
        async with at_once:
            score = await _scored(engine, turns, answer)
        told(score[1])
        return score

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [[group.create_task(one(turns, answer)) for answer in answers] for turns, answers in items]
    except ExceptionGroup as failed:  # the first answer's failure, as the route reports one
        raise failed.exceptions[0] from None
    return _answered(name, items, [task.result() for answer_tasks in tasks for task in answer_tasks], ENGINE)


async def _forward_scored(scorer: AnswerScorer, items: list[tuple[list[dict[str, str]], list[str]]],
                          scored: Callable[[int], None]) -> list[tuple[float, int]]:
    """Every answer of ``items`` scored by ``scorer``, :data:`FORWARD_AT_ONCE` a forward-pass batch in a thread."""
    flat = [(turns, answer) for turns, answers in items for answer in answers]
    out: list[tuple[float, int]] = []
    for start in range(0, len(flat), FORWARD_AT_ONCE):
        batch = await asyncio.to_thread(scorer.answer_logprobs, flat[start:start + FORWARD_AT_ONCE])
        for _, tokens in batch:
            scored(tokens)
        out += batch
    return out


def _answered(name: str, items: list[tuple[list[dict[str, str]], list[str]]], scores: list[tuple[float, int]],
              by: str) -> dict[str, Any]:
    """The route's answer: each item's answers' log-probabilities and token counts (``scores``, every answer of
    ``items`` in order), the call's ``usage``, and how they were scored (``scored_by``)."""
    data, total, k = [], 0, 0
    for index, (_, answers) in enumerate(items):
        mine, k = scores[k:k + len(answers)], k + len(answers)
        total += sum(s[1] for s in mine)
        data.append({"index": index, "logprobs": [round(s[0], 6) for s in mine], "tokens": [s[1] for s in mine]})
    return {"object": "list", "model": name, "data": data, "scored_by": by,
            "usage": {"prompt_tokens": total, "completion_tokens": 0, "total_tokens": total}}
