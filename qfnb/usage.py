"""What your calls used and cost: the usage ledger, the response cache and a spending budget.

>>> import qfnb.usage
>>> qfnb.usage.budget(tokens=50_000)        # a call that would cross it is refused before it is sent
>>> qfnb.usage.budget(yuan=5)               # a ¥ budget also refuses a model without a price
>>> qfnb.usage.prices({"my-model": {"input": 0.004, "output": 0.016}})  # CNY per 1,000 tokens (or QFNB_PRICES)
>>> qfnb.usage.frame(today=True)            # every call: tokens, latency, cache hit, cell, cost
>>> qfnb.usage.summary(by="model")          # totals, priced at the dated list prices
>>> qfnb.usage.cache("on")                  # this process's calls answer identical requests from the cache
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from qfnb._core.record import budget as _budget
from qfnb._core.record.budget import Budget, BudgetExceeded, UnpricedModel, active_budget
from qfnb._core.record.cache import CacheStats, default_cache, process_mode, set_process_mode
from qfnb._core.record.ledger import SESSION, STORE_API, Figures, default_ledger, figures
from qfnb._core.record.prices import clear_prices, prices

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SESSION", "Budget", "BudgetExceeded", "Figures", "UnpricedModel", "active_budget", "budget", "cache",
           "cache_stats", "clear_budget", "clear_cache", "clear_prices", "figures", "frame", "prices", "summary"]

def budget(tokens: int | None = None, yuan: float | None = None) -> Budget:
    """Set this process's budget (counting from now; ``budget()`` with neither clears it). It is also
    written in the ledger under this session, so the Jupyter server holds this notebook's inline
    completions to it too, whatever the kernel is doing."""
    found = _budget.budget(tokens, yuan)
    held = _budget.active_budget()
    default_ledger().set_budget(SESSION, held.tokens if held else None, held.yuan if held else None)
    return found


def clear_budget() -> None:
    """No budget for this process (nor for its notebook's completions)."""
    _budget.clear_budget()
    default_ledger().set_budget(SESSION, None, None)


#: the groupings :func:`summary` knows
GROUPS = ("cell", "model", "session", "job", "day")


def frame(*, today: bool = False, session: str | None = None) -> pd.DataFrame:
    """Every recorded call as a DataFrame (newest last), with ``cost_yuan`` and
    ``cloud_equivalent_yuan`` priced from the shipped table (``real_time_yuan``: a batch job's tokens at
    the real-time price, beside its ``cost_yuan`` at the batch price)."""
    since = None
    if today:
        now = time.localtime()
        since = time.mktime((now.tm_year, now.tm_mon, now.tm_mday, 0, 0, 0, 0, 0, -1))
    return default_ledger().frame(since=since, session=session)


def summary(by: str = "model", *, today: bool = False, session: str | None = None) -> pd.DataFrame:
    """Totals per ``by`` (cell, model, session, job or day): calls made, tokens (``trained_tokens``: what
    fine-tunes trained on), cache hits (a replayed answer, a reused batch or fine-tune: never a call,
    never ¥) and what they saved, answers ``reused`` from an evaluation's answer store (no call made),
    cost, the ``target`` the calls ran on (local, ray, cloud) and the ``price`` they were priced at."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}, got {by!r}")
    rows = frame(today=today, session=session)
    if by == "day":
        import pandas as pd

        rows = rows.assign(day=pd.to_datetime(rows["ts"], unit="s").dt.strftime("%Y-%m-%d"))
    # a replayed answer saved its tokens; a reused fine-tune saved the tokens it trained on. Those
    # are counted once, as saved: a fully replayed batch spent none (its tokens are not stacked twice)
    # an answer an evaluation took from its answer store made no call: counted as reused
    stored = rows["api"] == STORE_API
    hit = rows["cache_hit"].astype(bool)
    saved = (rows["total_tokens"] + rows["trained_tokens"]).where(hit, 0)
    spent = {col: rows[col].where(~hit, 0)
             for col in ("prompt_tokens", "completion_tokens", "total_tokens", "trained_tokens")}
    # a batch job's row stands for its answered rows (``requests``): each a model call, as /metrics counts it
    calls = rows["requests"].astype(int).where(~stored & ~hit, 0)
    rows = rows.assign(calls=calls, cache_hit=hit & ~stored, reused=stored.astype(int),
                       saved_tokens=saved, model=rows["model"].map(display_names(rows["model"])), **spent)
    columns = ["calls", "prompt_tokens", "completion_tokens", "total_tokens", "trained_tokens", "cache_hit",
               "reused", "saved_tokens", "latency_s", "cost_yuan", "real_time_yuan", "cloud_equivalent_yuan"]
    groups = rows.groupby(rows[by].fillna("—") if by in ("cell", "job") else rows[by], sort=False)
    out = groups[columns].sum(min_count=1)
    for column in ("cost_yuan", "real_time_yuan", "cloud_equivalent_yuan"):  # NaN only where a model is unpriced
        out[column] = out[column].astype(float)
    out["cache_hit"] = out["cache_hit"].astype(int)
    out["target"] = groups["platform"].agg(_joined)
    out["price"] = groups["price"].agg(_joined)
    return out.rename(columns={"cache_hit": "cache_hits"})


def _joined(values: pd.Series) -> str:
    return ", ".join(dict.fromkeys(str(v) for v in values))


def _name_key(model: str) -> str:
    return model.strip().lower().replace("_", "-")


def display_names(models: Iterable[str]) -> dict[str, str]:
    """One display name per model: spellings that differ only in case, ``_`` or ``-`` (the served
    ``Gemma-3-270M``, the fine-tune base ``gemma_3_270m``) map to the one with capitals, else the first."""
    chosen: dict[str, str] = {}
    for model in models:
        key = _name_key(model)
        best = chosen.get(key)
        if best is None or (best == best.lower() and model != model.lower()):
            chosen[key] = model
    return {model: chosen[_name_key(model)] for model in models}


def cache(mode: str | None = None) -> str:
    """The cache mode of calls that leave it unset (``on``, ``off`` or ``refresh``); set it with ``mode``."""
    if mode is not None:
        set_process_mode(mode)
    return process_mode()


def cache_stats() -> CacheStats:
    return default_cache().stats()


def clear_cache() -> int:
    """Forget every cached answer; the number forgotten."""
    return default_cache().clear()
