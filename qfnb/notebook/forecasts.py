"""``--forecast`` on ``%qfeval``, ``%qfbatch`` and ``%qftrain``: the forecast (:func:`qfnb.forecast`) shown
before the first call, the active budget checked against its upper bound (with a budget set, also
without ``--forecast``), and the run's recorded figures beside it when it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from qfnb._core.record.budget import BudgetExceeded, active_budget
from qfnb.notebook._ipython import display
from qfnb.notebook.errors import QfnbCellError
from qfnb.resources.forecast_result import Forecast, ForecastCheck, check_budget
from qfnb.resources.forecasting import forecast

log = logging.getLogger("qfnb.notebook.forecasts")

__all__ = ["RunForecast", "batch_forecasts", "begin", "checked_forecast", "eval_forecasts"]

T = TypeVar("T")


def checked_forecast(make: Callable[[], T], *, shown: bool, magic: str) -> T | None:
    """``make()``, a run's forecast shown (``--forecast``) and checked against the budget before it starts;
    None when neither ``--forecast`` nor a budget asks for one, or when it cannot be made unasked (each
    call still reserves its worst case). Over budget, or an asked-for forecast that fails: the cell's error."""
    if not (shown or active_budget() is not None):
        return None
    try:
        return make()
    except BudgetExceeded as exc:
        raise QfnbCellError(str(exc), title=f"{magic} refused: over budget") from exc
    except Exception as exc:  # the forecast could not be made: with --forecast that is the cell's error
        if shown:
            raise QfnbCellError(f"{type(exc).__name__}: {exc}", title=f"{magic} could not forecast") from exc
        log.warning("%s: no forecast (each call still reserves its worst case): %s", magic, exc)
        return None


def _model_of(llm: Any) -> str | None:
    """The model or endpoint a platform chat resource asks (None for a notebook function or a Model)."""
    return getattr(llm, "_model", None) or getattr(llm, "_endpoint", None)


def eval_forecasts(llms: Mapping[str, Any], prompts: Sequence[str], *, max_tokens: int | None,
                   repeats: int, batch: bool = False) -> tuple[list[Forecast], list[str]]:
    """One forecast per model asked on the platform (the generations; a judge's calls are not in
    it) and a note per model that cannot be forecast (a notebook function); a ``--prompts`` variant
    is forecast as its model will be asked (the template filled, or its system prompt sent with
    each item); ``batch``: priced as a durable batch job (``--batch``)."""
    from qfnb.evaluation.llm import PromptVariant  # deferred: loads pandas (`%qftrain` and `%qfbatch` do not)

    found, notes = [], []
    for tag, llm in llms.items():
        variant = llm if isinstance(llm, PromptVariant) else None
        name = _model_of(variant.model if variant is not None else llm)
        if name is None:
            notes.append(f"{tag}: a notebook function or model object, not forecast")
            continue
        asked: list[Any] = list(prompts)
        system = None
        if variant is not None and variant.is_template:
            asked = [variant.fill(p) for p in prompts]
        elif variant is not None:
            system = variant.prompt
        found.append(forecast(asked, model=name, system=system, max_tokens=max_tokens, n=repeats, batch=batch))
    return found, notes


def _conversation(item: Any) -> Any:
    return item.get("messages") if isinstance(item, Mapping) and "messages" in item else item


def batch_forecasts(inputs: Iterable[Any], *, model: str, max_tokens: int | None) -> list[Forecast]:
    """The forecast of a batch's rows (prompts, message lists or bodies with ``messages``)."""
    return [forecast([_conversation(i) for i in inputs], model=model, max_tokens=max_tokens, batch=True)]


@dataclass(frozen=True)
class RunForecast:
    """A run's forecasts, from the moment it started: :meth:`checks` read the ledger when it ends."""

    forecasts: list[Forecast]
    notes: list[str]
    since: float
    started: float

    @classmethod
    def none(cls) -> RunForecast:
        """A run that was not forecast."""
        return cls([], [], 0.0, 0.0)

    def checks(self) -> list[ForecastCheck]:
        seconds = time.perf_counter() - self.started
        return [f.against(since=self.since, seconds=seconds) for f in self.forecasts]


def begin(forecasts: list[Forecast], notes: Sequence[str] = (), *, shown: bool, what: str) -> RunForecast:
    """Show the forecasts (``shown``), refuse the run when their upper bound exceeds what the budget
    has left (BudgetExceeded, nothing sent), and start the clock."""
    if shown:
        for found in forecasts:
            display(found)
        for note in notes:
            log.info("forecast: %s", note)
    check_budget(forecasts, what)
    return RunForecast(list(forecasts), list(notes), time.time(), time.perf_counter())
