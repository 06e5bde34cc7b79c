"""Cloud list prices (a dated table shipped as data, ``prices.json``) and what calls cost.

A cloud model is priced at its list price (unknown models: no price, not a guess). A local model
costs ¥0, and the ledger also shows what the same tokens would cost on the table's cloud
equivalent (``QFNB_PRICE_AS`` names another).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PriceTable", "price_rows", "prices"]


@dataclass(frozen=True)
class PriceTable:
    date: str
    source: str
    per_tokens: int
    cloud_equivalent: str
    models: dict[str, tuple[float, float]]  # lower-case name -> (input, output) per ``per_tokens``
    #: the batch-inference price class, where the table has one (a model's ``"batch"`` entry)
    batch: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: fine-tune prices per ``per_tokens`` trained tokens, where the table has them (its ``"fine_tune"``)
    training: dict[str, float] = field(default_factory=dict)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float | None:
        """Yuan for these tokens on ``model``; None when the table has no price for it. ``batch``: the
        batch-inference price class, or the online list price where the table has none."""
        price = (self.batch.get(model.lower()) if batch else None) or self.models.get(model.lower())
        if price is None:
            return None
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / self.per_tokens

    def batch_source(self, model: str) -> str:
        """Where a batch run's price on ``model`` comes from (said beside the figure)."""
        if model.lower() in self.batch:
            return f"batch price of {self.date}"
        if model.lower() in self.models:
            return f"the price table of {self.date} has no batch price for {model}: its online list price"
        return f"{model} is not in the price table of {self.date}"


@functools.cache
def prices() -> PriceTable:
    """The shipped price table."""
    data = json.loads(resources.files("qfnb._core.record").joinpath("prices.json").read_text(encoding="utf-8"))
    models = {name.lower(): (float(p["input"]), float(p["output"])) for name, p in data["models"].items()}
    batch = {name.lower(): (float(p["batch"]["input"]), float(p["batch"]["output"]))
             for name, p in data["models"].items() if "batch" in p}
    training = {name.lower(): float(p) for name, p in (data.get("fine_tune") or {}).items()}
    return PriceTable(date=data["date"], source=data["source"], per_tokens=int(data["per_tokens"]),
                      cloud_equivalent=data["cloud_equivalent"], models=models, batch=batch, training=training)


def price_rows(frame: Any) -> pd.DataFrame:
    """``frame`` (ledger rows) with ``cost_yuan`` and ``cloud_equivalent_yuan`` columns.

    Cached answers cost nothing; their tokens are what the cache saved.
    """
    table = prices()
    twin = os.environ.get("QFNB_PRICE_AS") or table.cloud_equivalent

    def cost(row: Any) -> float | None:
        if row["cache_hit"] or row["platform"] == "local":
            return 0.0
        return table.cost(str(row["model"]), int(row["prompt_tokens"]), int(row["completion_tokens"]),
                          batch=row.get("api") == "batch-job")

    def equivalent(row: Any) -> float | None:
        return table.cost(twin, int(row["prompt_tokens"]), int(row["completion_tokens"]))

    frame = frame.copy()
    if frame.empty:
        frame["cost_yuan"] = []
        frame["cloud_equivalent_yuan"] = []
        return frame
    frame["cost_yuan"] = frame.apply(cost, axis=1)
    frame["cloud_equivalent_yuan"] = frame.apply(equivalent, axis=1)
    return frame
