"""What a fine-tune used, in the usage ledger: one row per run with the tokens it trained on.

The platform reports them in the run's ``metrics`` (the local platform: ``trained_tokens``, every
token of every step's batch, padding excluded). A reused run (:mod:`qfnb.trainer.replay`) is
recorded as a cache hit: what it would have cost is what the replay saved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qfnb._core.record.ledger import UsageRow, default_ledger

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

__all__ = ["TRAINED_TOKEN_KEYS", "record_training", "trained_tokens"]

logger = logging.getLogger("qfnb.trainer")

#: where a run's metrics may name the tokens it trained on (qfnb's local platform writes the first)
TRAINED_TOKEN_KEYS = ("trained_tokens", "trainedTokens", "trainTokens", "tokens")


def trained_tokens(detail: Mapping[str, Any]) -> int:
    """The tokens a finished run trained on, as its detail's metrics report them (0 when unknown)."""
    metrics = detail.get("metrics")
    if isinstance(metrics, Mapping):
        for key in TRAINED_TOKEN_KEYS:
            value = metrics.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return int(value)
    return 0


def record_training(detail: Mapping[str, Any], base_model: str, config: Config, *, reused: bool) -> None:
    """One ledger row for a finished run (``api`` ``fine-tune``, ``job`` its task id)."""
    tokens = trained_tokens(detail)
    if not tokens:
        logger.info("fine-tune task %s reported no trained-token count", detail.get("taskId"))
    elapsed = detail.get("elapsedSeconds")
    default_ledger().record(UsageRow(
        api="fine-tune", model=str(detail.get("model") or base_model), platform="local" if config.embedded else "cloud",
        trained_tokens=tokens,
        latency_s=float(elapsed) if isinstance(elapsed, int | float) and not reused else 0.0,
        cache_hit=reused, job=f"fine-tune {detail.get('taskId') or ''}".strip()))
