"""``LLMFinetune`` under a budget: a run on a local dataset is forecast before anything is sent (the
dataset's upload included): refused, with the budget and the forecast, when the budget cannot fit it;
else its training step holds the forecast from the run's create until it ends
(:meth:`~qfnb.trainer.actions.TrainAction._start_run`)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from qfnb._core.record.budget import BudgetExceeded, active_budget

if TYPE_CHECKING:  # pragma: no cover
    from ..records.finetune_run import FinetuneRun

__all__ = ["hold_forecast"]

logger = logging.getLogger("qfnb.trainer")


async def hold_forecast(trainer: FinetuneRun) -> None:
    """Under a budget, the forecast of ``trainer``'s run on its local dataset checked against it
    (``BudgetExceeded``: nothing is sent) and handed to its training step to hold; nothing where no budget
    is set, the run exists already, a forecast was given (``forecast_tokens=``) or the rows are on the platform
    (a forecast that cannot be made is logged: the run still settles on its trained tokens)."""
    from qfnb.dataset import Dataset  # deferred: loads pandas (`import qfnb.trainer` does not)

    from .forecast import aforecast_training  # deferred: reads the ledger and the price table

    action = trainer.train_action
    local = isinstance(trainer.dataset, Dataset) and trainer.dataset.qianfan_dataset_id is None
    if active_budget() is None or action.task_id is not None or action.forecast_tokens is not None or not local:
        return
    hyper = trainer.train_config
    with tempfile.TemporaryDirectory(prefix="qfnb-forecast-") as tmp:
        rows = Path(trainer.dataset_file) if trainer.dataset_file else Path(tmp) / "rows.jsonl"
        try:
            if not rows.exists():
                trainer.dataset.save(data_file=rows)
            found = await aforecast_training(rows, base=action.train_type, epochs=hyper.epoch,
                                             batch_size=hyper.batch_size, max_steps=hyper.max_steps,
                                             max_seq_len=hyper.max_seq_len, config=trainer.config,
                                             train_mode=action.train_mode, min_steps=hyper.min_steps)
        except BudgetExceeded:
            raise
        except Exception as exc:  # the run still settles on what it trained
            logger.warning("no forecast of the fine-tune of %s to hold against the budget: %s", action.train_type, exc)
            return
    found.check_budget(f"the fine-tune of {action.train_type}")
    action.forecast_tokens = found.tokens
