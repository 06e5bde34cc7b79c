"""Cloud list prices (a dated table shipped as data, ``prices.json``) and what calls cost.

A cloud model is priced at its list price (unknown models: no price, not a guess). A local model
costs ¥0, and the ledger also shows what the same tokens would cost on the table's cloud
equivalent (``QFNB_PRICE_AS`` names another).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
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

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Yuan for these tokens on ``model``; None when the table has no price for it."""
        price = self.models.get(model.lower())
        if price is None:
            return None
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / self.per_tokens


@functools.cache
def prices() -> PriceTable:
    """The shipped price table."""
    data = json.loads(resources.files("qfnb._core.record").joinpath("prices.json").read_text(encoding="utf-8"))
    models = {name.lower(): (float(p["input"]), float(p["output"])) for name, p in data["models"].items()}
    return PriceTable(date=data["date"], source=data["source"], per_tokens=int(data["per_tokens"]),
                      cloud_equivalent=data["cloud_equivalent"], models=models)


def price_rows(frame: Any) -> pd.DataFrame:
    """``frame`` (ledger rows) with ``cost_yuan`` and ``cloud_equivalent_yuan`` columns.

    Cached answers cost nothing; their tokens are what the cache saved.
    """
    table = prices()
    twin = os.environ.get("QFNB_PRICE_AS") or table.cloud_equivalent

    def cost(row: Any) -> float | None:
        if row["cache_hit"] or row["platform"] == "local":
            return 0.0
        return table.cost(str(row["model"]), int(row["prompt_tokens"]), int(row["completion_tokens"]))

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
