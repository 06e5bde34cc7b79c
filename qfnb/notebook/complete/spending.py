"""What completions may spend, held by the Jupyter server (never by the page, never by asking the kernel):

- the daily caps (tokens; ¥ for cloud completions) from the server's configuration: the
  ``QfnbCompletions`` section of ``jupyter_server_config`` (``c.QfnbCompletions.daily_tokens = …``) or
  the ``QFNB_COMPLETION_*`` variables; the page may ask for a lower token cap, never a higher one;
- a rate per user (completions a minute);
- the notebook's budget (``%qfusage --budget`` / ``qfnb.usage.budget(...)`` in its kernel), read from
  the ledger the kernel writes it to, with what the kernel's session spent since, so it holds whether
  the kernel is idle or busy; its ¥ part covers cloud completions (an unpriced cloud model is refused);
- what completions in flight may still use (their worst case), held until they end.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qfnb._core.record.ledger import Ledger, SessionBudget, UsageRow, default_ledger
from qfnb._core.record.prices import is_local, prices
from qfnb.protocol.wires.local.completion import COMPLETION_KIND

__all__ = ["WITHDRAWN_JOB", "Limits", "Refused", "Spending", "Worst", "completion_rows"]

#: the ledger's job of a suggestion withdrawn before it was shown (the user typed on, or it was late)
WITHDRAWN_JOB = f"{COMPLETION_KIND} · withdrawn"
#: the daily cap on completions' tokens when the server's configuration names none
DAILY_TOKENS = 200_000
#: completions a user may ask of the models a minute when the configuration names no rate
PER_MINUTE = 60
#: the configuration's names (``c.QfnbCompletions.<name>``) and their variables
_SETTINGS = {"daily_tokens": "QFNB_COMPLETION_DAILY_TOKENS", "daily_yuan": "QFNB_COMPLETION_DAILY_YUAN",
             "per_minute": "QFNB_COMPLETION_PER_MINUTE"}


class Refused(Exception):
    """A completion not sent: ``notice`` is the reason's code, the message says it to the user."""

    def __init__(self, notice: str, message: str) -> None:
        super().__init__(message)
        self.notice = notice


def _number(name: str, raw: Any, *, whole: bool) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if value < 0 or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"QfnbCompletions.{name} ({_SETTINGS[name]}): {kind} of 0 or more, got {raw!r:.60}")
    return value


@dataclass(frozen=True)
class Limits:
    """The server's limits on completions: ``daily_tokens``, ``daily_yuan`` (None: no ¥ cap), ``per_minute``."""

    daily_tokens: int = DAILY_TOKENS
    daily_yuan: float | None = None
    per_minute: int = PER_MINUTE

    @classmethod
    def of(cls, config: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> Limits:
        """From the ``QfnbCompletions`` config section, else the variables, else the defaults; a bad
        value is refused naming its setting."""
        found: dict[str, Any] = {}
        for name, variable in _SETTINGS.items():
            raw = config.get(name, env.get(variable))
            if raw is not None and raw != "":
                found[name] = _number(name, raw, whole=name != "daily_yuan")
        return cls(daily_tokens=int(found.get("daily_tokens", DAILY_TOKENS)), daily_yuan=found.get("daily_yuan"),
                   per_minute=int(found.get("per_minute", PER_MINUTE)))

    def token_cap(self, asked: int | None) -> int:
        """The daily token cap: the server's, or the page's when that is lower."""
        return self.daily_tokens if asked is None else min(self.daily_tokens, asked)


@dataclass(frozen=True)
class Worst:
    """What one completion may use at most: tokens, and ¥ (0 for the local model)."""

    tokens: int
    yuan: float


def _sum(holds: Iterable[Worst]) -> Worst:
    """What ``holds`` hold together (an unpriced hold's ¥ counted as 0: it was refused under a ¥ limit)."""
    tokens, yuan = 0, 0.0
    for held in holds:
        tokens += held.tokens
        yuan += held.yuan if held.yuan == held.yuan else 0.0
    return Worst(tokens, yuan)


def row_yuan(row: UsageRow) -> float:
    """A ledger row's cost (¥0 locally and where the model has no price)."""
    if is_local(row.platform) or row.cache_hit:
        return 0.0
    return prices().cost(row.model, row.prompt_tokens, row.completion_tokens) or 0.0


def completion_rows(ledger: Ledger | None = None, *, since: float | None = None,
                    session: str | None = None) -> list[UsageRow]:
    """The completions in the ledger (their job, local or cloud, shown or withdrawn), not cache hits."""
    rows = (ledger or default_ledger()).rows(since=since, session=session)
    return [r for r in rows if (r.job or "").startswith(COMPLETION_KIND) and not r.cache_hit]


def _midnight(now: float | None = None) -> float:
    today = dt.datetime.fromtimestamp(now if now is not None else time.time())
    return today.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


@dataclass
class Spending:
    """The server's hold on completions' spending (one per Jupyter server)."""

    limits: Limits = field(default_factory=Limits)
    _asked: defaultdict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _held: dict[str, tuple[str | None, Worst]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def worst(self, tokens: int, model: str | None, cloud: bool) -> Worst:
        """A completion's worst case: ``tokens`` and, on a cloud ``model``, its ¥ at the list price
        (None when it has no price: :meth:`admit` refuses it under a ¥ limit)."""
        if not cloud:
            return Worst(tokens, 0.0)
        yuan = prices().cost(model or "", tokens, 0)
        return Worst(tokens, float("nan") if yuan is None else yuan)

    def admit(self, user: str, session: str | None, worst: Worst, asked_cap: int | None) -> str:
        """Hold ``worst`` for a completion ``user`` asks for the notebook of ``session``, or raise
        :class:`Refused`; the hold's key (:meth:`release` it when the completion ended)."""
        with self._lock:
            self._rate(user)
            held = _sum(w for _, w in self._held.values())
            self._daily(worst, held, asked_cap)
            if session is not None:
                self._budget(session, worst)
            key = f"{user}:{time.monotonic_ns()}"
            self._held[key] = (session, worst)
            self._asked[user].append(time.monotonic())
            return key

    def release(self, key: str) -> None:
        """The completion of ``key`` ended (its ledger row holds what it used)."""
        with self._lock:
            self._held.pop(key, None)

    def _rate(self, user: str) -> None:
        asked = self._asked[user]
        while asked and asked[0] < time.monotonic() - 60:
            asked.popleft()
        if len(asked) >= self.limits.per_minute:
            raise Refused("rate", f"qfnb inline completions paused: {len(asked)} asked in the last minute, the "
                          f"server allows {self.limits.per_minute} a user (QfnbCompletions.per_minute)")

    def _daily(self, worst: Worst, held: Worst, asked_cap: int | None) -> None:
        rows = completion_rows(since=_midnight())
        tokens = sum(r.total_tokens for r in rows) + held.tokens
        cap = self.limits.token_cap(asked_cap)
        if tokens + worst.tokens > cap:
            raise Refused("daily-cap", f"qfnb inline completions stopped for today: {tokens:,} of the daily {cap:,} "
                          "tokens used (the server's QfnbCompletions.daily_tokens sets it; the page may only "
                          "lower it)")
        if self.limits.daily_yuan is not None:
            yuan = sum(row_yuan(r) for r in rows) + held.yuan
            if worst.yuan != worst.yuan:
                raise Refused("unpriced", "qfnb inline completions: the cloud model has no price, so it cannot be "
                              "held to the server's daily ¥ cap (qfnb.usage.prices or QFNB_PRICES gives one)")
            if yuan + worst.yuan > self.limits.daily_yuan:
                raise Refused("daily-cap", f"qfnb inline completions stopped for today: ¥{yuan:.4f} of the daily "
                              f"¥{self.limits.daily_yuan:.4f} spent (QfnbCompletions.daily_yuan)")

    def _budget(self, session: str, worst: Worst) -> None:
        found: SessionBudget | None = default_ledger().budget_of(session)
        if found is None:
            return
        held = _sum(w for s, w in self._held.values() if s == session)
        if found.tokens is not None:
            left = found.tokens - found.spent_tokens - held.tokens
            if worst.tokens > left:
                raise Refused("budget", f"qfnb inline completions paused: the notebook's budget has {max(0, left):,} "
                              f"tokens left and a completion may use {worst.tokens:,} (%qfusage --budget raises it)")
        if found.yuan is not None:
            if worst.yuan != worst.yuan:
                raise Refused("unpriced", "qfnb inline completions: the cloud model has no price, so it cannot be "
                              "held to the notebook's ¥ budget (qfnb.usage.prices or QFNB_PRICES gives one)")
            left_yuan = found.yuan - sum(row_yuan(r) for r in found.spent) - held.yuan
            if worst.yuan > left_yuan:
                raise Refused("budget", f"qfnb inline completions paused: the notebook's budget has "
                              f"¥{max(0.0, left_yuan):.4f} left and a cloud completion may cost ¥{worst.yuan:.4f}")
