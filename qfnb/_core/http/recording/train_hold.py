"""A fine-tune on the record, whichever door made it: its forecast trained tokens held against the
active budget before it is created, settled to the tokens it trained on when it ends (succeeded,
failed or cancelled alike), and in the usage ledger once per platform and run.

:func:`hold_training` reserves the forecast (``BudgetExceeded`` naming the budget and the forecast:
nothing is created); :func:`keep` keeps the hold under the run's id until :func:`settle_training`
sees the run end. The doors: ``qfnb.openai_client()``'s fine-tuning jobs
(:mod:`qfnb._core.runtime.openai_fine_tuning`), the console's run creates however they are called
(the ``train`` stage: :mod:`qfnb._core.http.stages.train`) and ``TrainAction`` (the console,
``LLMFinetune``, ``%qftrain``: :mod:`qfnb.trainer.steps.accounting`), which holds its own forecast and says
so (:func:`caller_holds`) so that its create is not held twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from qfnb._core.config import Config
from qfnb._core.http.recording.batch_hold import Hold
from qfnb._core.record.budget import BudgetExceeded, active_budget
from qfnb._core.record.ledger import UsageRow, default_ledger
from qfnb._core.record.prices import prices
from qfnb.protocol.console.training import DEFAULTS, TRAINED_TOKEN_KEYS

__all__ = ["caller_holds", "held_for", "hold_training", "holding", "keep", "rows_worst_case",
           "run_key", "settle_training", "trained_tokens", "training_yuan", "worst_case_tokens"]

#: set while a caller that holds its own forecast (``TrainAction``) creates its run
_CALLER_HOLDS: ContextVar[bool] = ContextVar("qfnb_train_caller_holds", default=False)


#: per run created here (:func:`run_key`): what it holds
_HELD: dict[str, Hold] = {}


def run_key(config: Config, run_id: str) -> str:
    """The ledger key of a platform's fine-tune run (the same for every door and process)."""
    return f"fine-tune {config.base_url.rstrip('/')} {run_id}"


def training_yuan(base: str, tokens: int, config: Config) -> float | None:
    """What training ``tokens`` on ``base`` costs: ¥0 on the local platform, the price table's fine-tune
    price on the cloud, None where the table has none."""
    if config.embedded:
        return 0.0
    table = prices()
    rate = table.training.get(base.lower())
    return None if rate is None else tokens * rate / table.per_tokens


def hold_training(tokens: int, base: str, config: Config, *, what: str) -> Hold | None:
    """Hold a fine-tune's forecast ``tokens`` (and their price) against the active budget (None without
    one). ``BudgetExceeded`` names the budget and the forecast: nothing is held, the run is not to be
    created."""
    budget = active_budget()
    if budget is None:
        return None
    yuan = training_yuan(base, tokens, config) or 0.0
    try:
        return Hold(budget, budget.reserve(tokens, yuan, what=f"{what} (forecast: {tokens:,} trained tokens "
                                                                 f"on {base})"), base)
    except BudgetExceeded as exc:
        raise BudgetExceeded(f"fine-tune refused: {exc}") from None


def worst_case_tokens(hyper: Any) -> int:
    """A run's forecast from its hyperparameters: where ``maxSteps`` bounds it, its worst case (steps x batch
    x sequence length, the platform's defaults where unset); else 0 (the run settles on its tokens at its end)."""
    if not isinstance(hyper, Mapping):
        return 0
    steps = hyper.get("maxSteps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        return 0
    return steps * _size(hyper, "batchSize") * _size(hyper, "maxSeqLen")


def rows_worst_case(rows: int, hyper: Mapping[str, Any]) -> int:
    """A run over ``rows`` rows that ``maxSteps`` does not bound: rows x epochs x sequence length (each row's
    sequence at most that long; the platform's defaults where unset)."""
    return max(rows, 0) * _size(hyper, "epoch") * _size(hyper, "maxSeqLen")


def _size(hyper: Mapping[str, Any], key: str) -> int:
    value = hyper.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else int(DEFAULTS[key])


def trained_tokens(detail: Mapping[str, Any]) -> int:
    """The tokens a finished run trained on, as its detail's metrics report them (0 when unknown)."""
    metrics = detail.get("metrics")
    if isinstance(metrics, Mapping):
        for key in TRAINED_TOKEN_KEYS:
            value = metrics.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return int(value)
    return 0


@contextmanager
def holding() -> Iterator[None]:
    """The run created inside is held by the caller (``TrainAction``): the console's create is not held again."""
    token = _CALLER_HOLDS.set(True)
    try:
        yield
    finally:
        _CALLER_HOLDS.reset(token)


def caller_holds() -> bool:
    """Whether a caller holds the forecast of the run being created (:func:`holding`)."""
    return _CALLER_HOLDS.get()


def keep(config: Config, run_id: str, hold: Hold | None) -> None:
    """Keep ``hold`` until the run ``run_id`` is seen to end (nothing without a hold)."""
    if hold is not None:
        _HELD[run_key(config, run_id)] = hold


def held_for(config: Config, run_id: str) -> Hold | None:
    """What the run ``run_id`` holds, if it was created here and has not ended."""
    return _HELD.get(run_key(config, run_id))


def settle_training(config: Config, run_id: str, *, base: str, tokens: int, seconds: float,
                    model: str | None = None) -> bool:
    """An ended run (succeeded, failed or cancelled): its hold (if made here) settles to the ``tokens`` it
    trained on, and it is in the ledger once (``api`` ``fine-tune``, ``job`` ``fine-tune <run id>``),
    whichever door or process reads it first. Whether this call wrote the row."""
    key = run_key(config, run_id)
    hold = _HELD.pop(key, None)
    if hold is not None:
        hold.budget.settle(hold.reservation, tokens, training_yuan(hold.model or base, tokens, config) or 0.0)
    row = UsageRow(api="fine-tune", model=model or base, platform="local" if config.embedded else "cloud",
                   trained_tokens=max(int(tokens), 0), latency_s=max(float(seconds), 0.0), job=f"fine-tune {run_id}")
    wrote = default_ledger().record_once(row, key)
    if wrote and hold is None:  # a run this process did not hold for (attached to, resumed): spent all the same
        budget = active_budget()
        if budget is not None and tokens:
            budget.settle(None, tokens, training_yuan(base, tokens, config) or 0.0)
    return wrote
