"""A batch task on the record, whichever face made it: a durable ``BatchJob`` (``durable=True``,
``%qfbatch``) or an OpenAI batch made through ``qfnb.openai_client()``.

Its rows' worst case (:class:`RowTally`: each row as a v2 chat call,
:func:`~qfnb._core.http.recording.recorded.worst_case`) is held against the active budget before the task is
created (:func:`hold_rows`; ``BudgetExceeded`` naming the figures, and nothing is created). The
hold is kept under the task's id (:func:`keep`) and, when the task is seen to end
(:func:`settle_task`), settles to the task's real usage; the task's tokens go to the ledger once
per platform and task, whichever process or face reads it first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qfnb._core.config import Config
from qfnb._core.http.recording.recorded import worst_case
from qfnb._core.record.budget import Budget, BudgetExceeded, Reservation, active_budget
from qfnb._core.record.ledger import SESSION, UsageRow, default_ledger
from qfnb._core.record.prices import is_local, price_label, prices, worst_yuan

__all__ = ["Hold", "RowTally", "hold_rows", "keep", "platform_of", "settle_task", "task_key"]


@dataclass
class RowTally:
    """A batch's rows and their worst case, counted as the rows stream by."""

    rows: int = 0
    tokens: int = 0

    def add(self, body: Mapping[str, Any]) -> None:
        """Count one row's request body (a chat call: its prompt, tools, ``n`` answers of its cap)."""
        self.rows += 1
        self.tokens += worst_case(body, "v2/chat")


@dataclass(frozen=True, slots=True)
class Hold:
    """What one task (a batch, a fine-tune run) holds against a budget until it ends."""

    budget: Budget
    reservation: Reservation
    model: str

    def release(self) -> None:
        """The task was not created: give the hold back."""
        self.budget.release(self.reservation)


#: per task created here (:func:`task_key`): what it holds
_HELD: dict[str, Hold] = {}


def task_key(config: Config, task_id: str) -> str:
    """The ledger key of a platform's task (the same for every face and process)."""
    return f"batch-job {config.base_url.rstrip('/')} {task_id}"


def platform_of(config: Config, platform: str | None = None) -> str:
    """The ledger's ``platform`` of a task: ``platform`` where its target names one (a cluster's kind: its
    cluster's own engines), else ``"local"`` on the embedded platform, ``"cloud"`` otherwise."""
    return platform or ("local" if config.embedded else "cloud")


def hold_rows(tally: RowTally, model: str, config: Config, *, what: str, platform: str | None = None) -> Hold | None:
    """Hold ``tally``'s worst case against the active budget (None without one); BudgetExceeded
    names the budget and ``what`` may use: nothing is held, the task is not to be created."""
    budget = active_budget()
    if budget is None:
        return None
    where = platform_of(config, platform)
    yuan = worst_yuan(model, tally.tokens, 0, local=is_local(where), batch=True)  # unpriced: UnpricedModel
    try:
        return Hold(budget, budget.reserve(tally.tokens, yuan, what=what), model)
    except BudgetExceeded as exc:  # said with the one price the forecast and the ledger use
        raise BudgetExceeded(f"{exc} (price of {model}: {price_label(model, where)})") from None


def _yuan(platform: str, model: str, prompt: int, completion: int) -> float:
    """A batch task's price at the batch price class (¥0 locally, or for a model the table lacks)."""
    return 0.0 if is_local(platform) else (prices().cost(model, prompt, completion, batch=True) or 0.0)


def keep(config: Config, task_id: str, hold: Hold) -> None:
    """Keep ``hold`` until the task ``task_id`` is seen to end."""
    _HELD[task_key(config, task_id)] = hold


def settle_task(config: Config, task_id: str, *, prompt: int, completion: int, seconds: float,
                model: str | None = None, reused: bool = False, platform: str | None = None,
                rows: int = 1) -> bool:
    """An ended task: its hold (if made here) settles to ``prompt`` + ``completion``, and its tokens
    are in the ledger once (job ``batch-job <id>``, ``platform`` as :func:`platform_of` says). A reused
    task (``submit(reuse=True)``) settles nothing and adds a cache-hit row once per session: its tokens
    count as saved, never as calls or ¥ (:func:`qfnb.usage.summary`). ``rows``: the answered rows the
    task's row stands for (its ``requests``: the model calls ``/metrics`` counts one by one). Whether
    this call wrote the row (a task's row spans are then written once too)."""
    key = task_key(config, task_id)
    hold = None if reused else _HELD.pop(key, None)
    name = model or (hold.model if hold is not None else "") or "batch"
    where = platform_of(config, platform)
    if hold is not None:
        hold.budget.settle(hold.reservation, prompt + completion, _yuan(where, name, prompt, completion))
    row = UsageRow(api="batch-job", model=name, platform=where,
                   prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                   latency_s=0.0 if reused else seconds, cache_hit=reused, job=f"batch-job {task_id}",
                   requests=max(int(rows), 0))
    return default_ledger().record_once(row, f"{key} reused in {SESSION}" if reused else key)
