"""A spending budget for this process: a call that would cross it is refused before it is sent.

``budget(tokens=..., yuan=...)`` starts counting from zero. A call *reserves* what it may use at
most (its prompt and tool schemas, estimated, plus ``n`` answers of its output cap, which a call
without one is sent with: :func:`qfnb._core.http.recording.recorded.worst_case`) before it is sent, and
*settles* to its real usage when its answer is in (or releases the reservation when nothing was
generated). Calls in flight hold their reservations, so twenty
concurrent calls can never pass the line together: the one that would cross it is refused, and
what was already answered is kept.
"""

from __future__ import annotations

import math
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field

from qfnb._core.errors import QfnbError

__all__ = ["Budget", "BudgetExceeded", "Reservation", "UnpricedModel", "active_budget", "batch_rows_reserved",
           "budget", "check_unreserved_batch", "clear_budget"]

#: set while a durable batch job that reserved its rows' worst case creates its platform task
batch_rows_reserved: ContextVar[bool] = ContextVar("qfnb_batch_rows_reserved", default=False)


class BudgetExceeded(QfnbError):
    """The next call would cross the budget set with :func:`budget`; nothing was sent."""


class UnpricedModel(BudgetExceeded):
    """A ¥ budget is set and the next call's model has no price (``qfnb.usage.prices({...})`` or
    ``QFNB_PRICES`` supplies one); nothing was sent."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one call holds against a budget until it settles."""

    tokens: int
    yuan: float


@dataclass
class Budget:
    tokens: int | None = None
    yuan: float | None = None
    spent_tokens: int = 0
    spent_yuan: float = 0.0
    #: held by calls in flight (their worst case), not yet settled
    reserved_tokens: int = 0
    reserved_yuan: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reserve(self, estimate_tokens: int, estimate_yuan: float = 0.0, *, what: str = "the next call") -> Reservation:
        """Hold a call's worst case, or raise :class:`BudgetExceeded` (holding nothing) if what is
        spent, what calls in flight hold and this would cross the budget."""
        if not math.isfinite(estimate_yuan) or estimate_yuan < 0:  # a NaN compares false: never let one pass
            raise BudgetExceeded(f"budget: what {what} may cost came out as ¥{estimate_yuan} (check the prices "
                                 "given to qfnb.usage.prices or QFNB_PRICES); stopped before sending it")
        with self._lock:
            held = self.spent_tokens + self.reserved_tokens
            if self.tokens is not None and held + estimate_tokens > self.tokens:
                raise BudgetExceeded(
                    f"token budget: {self.spent_tokens:,} of {self.tokens:,} used ({self.reserved_tokens:,} more held "
                    f"by calls in flight) and {what} may use up to {estimate_tokens:,}; stopped before sending it "
                    "(qfnb.usage.budget(tokens=...) raises it)")
            if self.yuan is not None and self.spent_yuan + self.reserved_yuan + estimate_yuan > self.yuan:
                raise BudgetExceeded(
                    f"budget: ¥{self.spent_yuan:.4f} of ¥{self.yuan:.4f} spent (¥{self.reserved_yuan:.4f} more held "
                    f"by calls in flight) and {what} may cost up to ¥{estimate_yuan:.4f}; stopped before sending it")
            self.reserved_tokens += estimate_tokens
            self.reserved_yuan += estimate_yuan
        return Reservation(estimate_tokens, estimate_yuan)

    def settle(self, held: Reservation | None, tokens: int, yuan: float) -> None:
        """Replace what ``held`` reserved with what the call used."""
        with self._lock:
            if held is not None:
                self.reserved_tokens -= held.tokens
                self.reserved_yuan -= held.yuan
            self.spent_tokens += tokens
            self.spent_yuan += yuan

    def release(self, held: Reservation) -> None:
        """Give back what ``held`` reserved (the call failed before anything was generated)."""
        self.settle(held, 0, 0.0)

    def __str__(self) -> str:
        parts = (f"{self.spent_tokens:,}/{self.tokens:,} tokens" if self.tokens is not None else "",
                 f"¥{self.spent_yuan:.4f}/¥{self.yuan:.4f}" if self.yuan is not None else "")
        return "budget: " + (", ".join(part for part in parts if part) or "none")


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


def check_unreserved_batch() -> None:
    """Refuse a batch-inference task created directly while a budget is set: its rows lie in object
    storage, unseen by this process, so their worst case cannot be reserved (``BatchJob`` /
    ``durable=True`` / ``%qfbatch`` stream the rows and reserve it)."""
    held = active_budget()
    if held is not None and (held.tokens is not None or held.yuan is not None) and not batch_rows_reserved.get():
        raise BudgetExceeded("a batch-inference task created directly cannot be held to the budget (its rows are "
                             "in object storage, unseen here): submit it with qfnb.resources.BatchJob.submit "
                             "(durable=True, %qfbatch), which reserves each row's worst case, or clear the budget "
                             "(qfnb.usage.clear_budget())")
