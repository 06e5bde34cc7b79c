"""``--forecast`` and ``--dry-run`` on ``%qfeval``, ``%qfbatch`` and ``%qftrain``: the forecast
(:func:`qfnb.forecast`) shown before the first call (``--dry-run``: shown, and nothing run), the active
budget checked against its upper bound (with a budget set, also without ``--forecast``; a refused run
shows its forecast with the line saying so), and the run's recorded figures beside it when it ends."""

from __future__ import annotations

import dataclasses
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
from qfnb.resources.inference.base import BaseInference

log = logging.getLogger("qfnb.notebook.forecasts")

__all__ = ["RunForecast", "batch_forecasts", "begin", "checked_forecast", "eval_forecasts", "refused"]

T = TypeVar("T")
F = TypeVar("F")


def checked_forecast(make: Callable[[], T], *, shown: bool, magic: str, dry_run: bool = False) -> T | None:
    """``make()``, a run's forecast shown (``--forecast``, ``--dry-run``) and checked against the budget
    before it starts; None when neither those nor a budget ask for one, or when it cannot be made
    unasked (each call still reserves its worst case). Over budget (its forecast shown first), or an
    asked-for forecast that fails: the cell's error."""
    if not (shown or dry_run or active_budget() is not None):
        return None
    try:
        return make()
    except BudgetExceeded as exc:
        raise QfnbCellError(str(exc), title=f"{magic} refused: over budget") from exc
    except Exception as exc:  # the forecast could not be made: with --forecast that is the cell's error
        if shown or dry_run:
            raise QfnbCellError(f"{type(exc).__name__}: {exc}", title=f"{magic} could not forecast") from exc
        log.warning("%s: no forecast (each call still reserves its worst case): %s", magic, exc)
        return None


def refused(found: F, check: Callable[[], None], *, shown: bool, dry_run: bool = False) -> F:
    """``found`` (a forecast) after the budget's ``check``: refused, it is shown (unless already)
    with the line saying the budget refuses it, and the refusal raised, nothing sent; a dry run
    shows that line and raises nothing."""
    try:
        check()
    except BudgetExceeded as exc:
        found = dataclasses.replace(found, verdict=str(exc))  # type: ignore[type-var]
        if not shown:
            display(found)
        if not dry_run:
            raise
    return found


def _model_of(llm: Any) -> str | None:
    """The model or endpoint a platform chat resource asks (None for a notebook function or a Model)."""
    return llm.model or llm.endpoint if isinstance(llm, BaseInference) else None


def eval_forecasts(llms: Mapping[str, Any], items: Sequence[Any], *, max_tokens: int | None,
                   repeats: int, batch: bool = False, params: Mapping[str, Any] | None = None,
                   store: Any = None) -> tuple[list[Forecast], list[str]]:
    """One forecast per model asked on the platform (the generations; a judge's calls are not in
    it) and a note per model that cannot be forecast (a notebook function); a ``--prompts`` variant
    is forecast as its model will be asked (the template filled, or its system prompt sent with
    each item), under its tag (the report compares it with that variant's calls only); ``batch``:
    priced as a durable batch job (``--batch``). Answers the run's answer ``store`` holds, or the
    response cache holds for the calls made with ``params`` (the run's sampling fields), are no calls."""
    # deferred: loads pandas (`%qftrain` and `%qfbatch` do not)
    from qfnb.evaluation.llm import PromptVariant, as_target
    from qfnb.evaluation.runs.answers import stored_flags

    found, notes = [], []
    prompts = [i if isinstance(i, str | list) else str(i) for i in items]
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
        held = stored_flags(store, as_target(llm, tag), list(items), dict(params or {}), repeats)
        found.append(forecast(asked, model=name, system=system, max_tokens=max_tokens, n=repeats, batch=batch,
                              params=params, stored=held, tag=tag))
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
    #: ``--dry-run``: shown, and the run is not to start
    dry_run: bool = False

    @classmethod
    def none(cls) -> RunForecast:
        """A run that was not forecast."""
        return cls([], [], 0.0, 0.0)

    def of_tasks(self, tasks: Mapping[str, str | None]) -> RunForecast:
        """``--batch``: each forecast compared with its model's batch task only (``{tag: task id}``;
        None: every answer was stored, no task)."""
        return dataclasses.replace(self, forecasts=[dataclasses.replace(f, jobs=(f"batch-job {tasks[f.tag]}",))
                                                    if tasks.get(f.tag) else f for f in self.forecasts])

    def checks(self) -> list[ForecastCheck]:
        seconds = time.perf_counter() - self.started
        return [f.against(since=self.since, seconds=seconds) for f in self.forecasts]


def begin(forecasts: list[Forecast], notes: Sequence[str] = (), *, shown: bool, what: str,
          dry_run: bool = False) -> RunForecast:
    """Show the forecasts (``shown``, ``dry_run``), refuse the run when their upper bound exceeds what
    the budget has left (BudgetExceeded, nothing sent: the forecasts shown with the line saying so;
    a dry run shows that line and raises nothing), and start the clock."""
    shown = shown or dry_run
    try:
        check_budget(forecasts, what)
    except BudgetExceeded as exc:
        if forecasts:  # the refusal's line goes with the last table
            forecasts = [*forecasts[:-1], dataclasses.replace(forecasts[-1], verdict=str(exc))]
        _show(forecasts, notes)
        if not dry_run:
            raise
    else:
        if shown:
            _show(forecasts, notes)
    return RunForecast(list(forecasts), list(notes), time.time(), time.perf_counter(), dry_run=dry_run)


def _show(forecasts: Sequence[Forecast], notes: Sequence[str]) -> None:
    for found in forecasts:
        display(found)
    for note in notes:
        log.info("forecast: %s", note)
