"""What a fine-tune used, in the usage ledger and against the active budget: one row per run with
the tokens it trained on.

The platform reports them in the run's ``metrics`` (the local platform: ``trained_tokens``, every
token of every step's batch, padding excluded). A reused run (:mod:`qfnb.trainer.records.replay`) is
recorded as a cache hit: what it would have cost is what the replay saved, and it spends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qfnb._core.http.recording.train_hold import settle_training, trained_tokens
from qfnb._core.record.ledger import UsageRow, default_ledger
from qfnb.protocol.console.training import TRAINED_TOKEN_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

__all__ = ["TRAINED_TOKEN_KEYS", "record_training", "trained_tokens"]

logger = logging.getLogger("qfnb.trainer")


def record_training(detail: Mapping[str, Any], base_model: str, config: Config, *, reused: bool) -> None:
    """One ledger row for an ended run (``api`` ``fine-tune``, ``job`` its task id), succeeded, failed or
    stopped alike: a run that trained settles what its create held against the budget to its tokens (on the
    cloud their price too, where the price table has the base's fine-tune price), once per platform and
    run (:func:`qfnb._core.http.recording.train_hold.settle_training`). A reused run is a cache hit: it spends
    nothing."""
    tokens = trained_tokens(detail)
    if not tokens:
        logger.info("fine-tune task %s reported no trained-token count", detail.get("taskId"))
    elapsed = detail.get("elapsedSeconds")
    seconds = float(elapsed) if isinstance(elapsed, int | float) else 0.0
    model = str(detail.get("model") or base_model)
    if not reused and detail.get("taskId"):
        settle_training(config, str(detail["taskId"]), base=base_model, tokens=tokens, seconds=seconds, model=model)
        return
    default_ledger().record(UsageRow(
        api="fine-tune", model=model, platform="local" if config.embedded else "cloud", trained_tokens=tokens,
        latency_s=0.0 if reused else seconds, cache_hit=reused, job=f"fine-tune {detail.get('taskId') or ''}".strip()))
