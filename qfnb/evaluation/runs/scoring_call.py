"""One ``answer_logprobs`` call on the record: its answers' tokens held against the active budget before it
is sent (``BudgetExceeded`` naming the budget and the estimate: nothing is sent), settled to the tokens the
platform scored (its ``usage``, what ``/metrics`` counts for the call) and in the usage ledger
(``api`` ``answer-logprobs``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qfnb._core.http.client import AsyncQianfanClient
from qfnb._core.http.ratelimit import estimate_tokens
from qfnb._core.record.budget import active_budget
from qfnb._core.record.ledger import UsageRow, default_ledger
from qfnb.protocol.platform.answer_scoring import AUTO, ENGINE, FORWARD

__all__ = ["AUTO", "ENGINE", "FORWARD", "LEDGER_API", "SCORE_ROUTE", "scored_answers"]

#: the platform's scoring route (qfnb's own, beside OpenAI's fine-tuning routes)
SCORE_ROUTE = "/v2/fine_tuning/answer_logprobs"
#: the ledger's ``api`` of a scoring call
LEDGER_API = "answer-logprobs"


def _estimate(items: Sequence[Mapping[str, Any]]) -> int:
    """The answers' tokens, estimated from their text (each at least one): what the platform counts."""
    return sum(max(1, estimate_tokens(str(answer))) for item in items for answer in item.get("answers") or ())


async def scored_answers(client: AsyncQianfanClient, model: str, items: Sequence[Mapping[str, Any]],
                         by: str = AUTO) -> dict[str, Any]:
    """``items`` (``{messages, answers}``) scored by ``model`` (``by``: :data:`FORWARD`, :data:`ENGINE` or
    :data:`AUTO`): the platform's answer (``scored_by`` says how), the call on the record."""
    budget = active_budget()
    estimate = _estimate(items)
    held = budget.reserve(estimate, what=f"scoring {estimate:,} answer tokens under {model}") if budget else None
    try:
        resp = await client.v2_api("POST", SCORE_ROUTE, {"model": model, "items": list(items), "by": by})
    except BaseException:
        if budget is not None and held is not None:
            budget.release(held)
        raise
    body: dict[str, Any] = resp.body
    usage = body.get("usage") if isinstance(body.get("usage"), Mapping) else {}
    tokens = int(usage.get("total_tokens") or 0) if isinstance(usage, Mapping) else 0
    if budget is not None:
        budget.settle(held, tokens, 0.0)  # qfnb's own route: the local platform's, ¥0
    default_ledger().record(UsageRow(api=LEDGER_API, model=model, platform="local" if client.config.embedded else
                                     "cloud", prompt_tokens=tokens, total_tokens=tokens))
    return body
