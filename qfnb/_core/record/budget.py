"""A spending budget for this process: a call that would cross it is refused before it is sent.

``budget(tokens=..., yuan=...)`` starts counting from zero; every call the ledger records adds to
it. A call is checked against what it may use at most (its prompt, estimated, plus its output cap
or, without one, the largest answer seen so far), so a batch stops *before* the call that would
cross the line, and what was already answered is kept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from qfnb._core.errors import QfnbError

__all__ = ["Budget", "BudgetExceeded", "active_budget", "budget", "clear_budget"]


class BudgetExceeded(QfnbError):
    """The next call would cross the budget set with :func:`budget`; nothing was sent."""


@dataclass
class Budget:
    tokens: int | None = None
    yuan: float | None = None
    spent_tokens: int = 0
    spent_yuan: float = 0.0
    largest_answer: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, estimate_tokens: int, estimate_yuan: float = 0.0) -> None:
        """Raise :class:`BudgetExceeded` if a call of this size would cross the budget."""
        with self._lock:
            if self.tokens is not None and self.spent_tokens + estimate_tokens > self.tokens:
                raise BudgetExceeded(
                    f"token budget: {self.spent_tokens:,} of {self.tokens:,} used and the next call may use up to "
                    f"{estimate_tokens:,}; stopped before sending it (qfnb.usage.budget(tokens=...) raises it)")
            if self.yuan is not None and self.spent_yuan + estimate_yuan > self.yuan:
                raise BudgetExceeded(
                    f"budget: ¥{self.spent_yuan:.4f} of ¥{self.yuan:.4f} spent and the next call may cost up to "
                    f"¥{estimate_yuan:.4f}; stopped before sending it")

    def add(self, tokens: int, completion_tokens: int, yuan: float) -> None:
        with self._lock:
            self.spent_tokens += tokens
            self.spent_yuan += yuan
            self.largest_answer = max(self.largest_answer, completion_tokens)

    def __str__(self) -> str:
        parts = []
        if self.tokens is not None:
            parts.append(f"{self.spent_tokens:,}/{self.tokens:,} tokens")
        if self.yuan is not None:
            parts.append(f"¥{self.spent_yuan:.4f}/¥{self.yuan:.4f}")
        return "budget: " + (", ".join(parts) or "none")


_active: Budget | None = None


def budget(tokens: int | None = None, yuan: float | None = None) -> Budget:
    """Set this process's budget (counting from now); ``budget()`` with neither clears it."""
    global _active
    for name, value in (("tokens", tokens), ("yuan", yuan)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ValueError(f"budget {name} must be a number >= 0, got {value!r}")
    _active = Budget(tokens=int(tokens) if tokens is not None else None,
                     yuan=float(yuan) if yuan is not None else None) if (tokens, yuan) != (None, None) else None
    return _active or Budget()


def clear_budget() -> None:
    global _active
    _active = None


def active_budget() -> Budget | None:
    return _active
