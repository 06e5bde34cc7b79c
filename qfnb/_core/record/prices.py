"""Cloud list prices (a dated table shipped as data) and what calls cost.

The table is the v2 catalog's priced rows (``qfnb/protocol/console/cloud_models.json``, each with its date
and source) plus ``prices.json``; a 2024 v1 name (``ERNIE-Bot``, ``ERNIE-3.5-8K``) is priced as its
v2 successor. Unknown models have no price, not a guess: supply one with ``prices({...})`` or a
``QFNB_PRICES`` file (JSON or TOML of the same shape, read once), which win over the table::

    qfnb.usage.prices({"my-model": {"input": 0.004, "output": 0.016,          # CNY per 1,000 tokens
                                    "batch": {"input": 0.0016, "output": 0.0064},  # optional
                                    "cache_hit": 0.0016}})                        # optional

A local model costs ¥0, and the ledger also shows what the same tokens would cost on the table's
cloud equivalent (``QFNB_PRICE_AS`` names another). Under a ¥ budget a cloud call whose model has
no price is refused before it is sent (:func:`worst_yuan`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import QfnbError
from qfnb._core.record.budget import UnpricedModel, active_budget
from qfnb.protocol.console.cloud_models import catalog, cloud_models, name_key, successor
from qfnb.protocol.platform.targets import CLUSTERS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LOCAL_PLATFORMS", "LOCAL_PRICE", "PRICES_ENV", "PriceError", "PriceTable", "clear_prices", "is_local",
           "price_label", "price_rows", "prices", "worst_yuan"]

logger = logging.getLogger(__name__)

#: names a JSON or TOML file of user prices (the shape :func:`prices` takes), read once
PRICES_ENV = "QFNB_PRICES"
_FIELDS = ("input", "output", "batch", "cache_hit")
#: the largest prices file read (a table of a thousand models is about 100 KB)
MAX_PRICES_FILE_BYTES = 1 << 20
#: the highest price taken, CNY per 1,000 tokens (the dearest list price is under ¥1)
MAX_PRICE = 1_000_000.0


class PriceError(QfnbError, ValueError):
    """User-supplied prices that cannot be read: names where (the file or the call) and the field."""


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
    #: a cached prompt token's price, where published (lower-case name -> price per ``per_tokens``)
    cache_hit: dict[str, float] = field(default_factory=dict)
    #: any spelling's :func:`~qfnb.protocol.console.cloud_models.name_key` -> the row that prices it
    aliases: dict[str, str] = field(default_factory=dict)
    #: the rows the user supplied (``prices({...})`` / ``QFNB_PRICES``)
    user: frozenset[str] = frozenset()

    def key(self, model: str) -> str | None:
        """The row that prices ``model`` (its own, any spelling, or its v2 successor's); None if none."""
        low = model.strip().lower()
        if low in self.models:
            return low
        spelled = name_key(model)
        if spelled in self.models:
            return spelled
        row = self.aliases.get(spelled)
        return row if row in self.models else None

    def knows(self, model: str) -> bool:
        """Whether ``model`` can be priced."""
        return self.key(model) is not None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, *, batch: bool = False,
             cached_tokens: int = 0) -> float | None:
        """Yuan for these tokens on ``model``; None when the table has no price for it. ``batch``: the
        batch-inference price class, or the online list price where the table has none.
        ``cached_tokens`` (of the prompt) cost the cache-hit price where one is known (online calls)."""
        row = self.key(model)
        if row is None:
            return None
        price = (self.batch.get(row) if batch else None) or self.models[row]
        hit = None if batch else self.cache_hit.get(row)
        cached = min(max(int(cached_tokens), 0), prompt_tokens) if hit is not None else 0
        return ((prompt_tokens - cached) * price[0] + cached * (hit or 0.0)
                + completion_tokens * price[1]) / self.per_tokens

    def batch_source(self, model: str) -> str:
        """Where a batch run's price on ``model`` comes from (said beside the figure)."""
        row = self.key(model)
        if row is not None and row in self.batch:
            return f"batch price of {self.date}"
        if row is not None:
            return f"the price table of {self.date} has no batch price for {model}: its online list price"
        return f"{model} is not in the price table of {self.date}"


@functools.cache
def shipped() -> PriceTable:
    """The shipped table: the catalog's priced models, ``prices.json``'s rows, the successor names."""
    data = json.loads(resources.files("qfnb._core.record").joinpath("prices.json").read_text(encoding="utf-8"))
    models: dict[str, tuple[float, float]] = {}
    batch: dict[str, tuple[float, float]] = {}
    hits: dict[str, float] = {}
    for entry in cloud_models():
        if entry.price is not None:
            models[entry.id] = (entry.price.input, entry.price.output)
            if entry.price.batch is not None:
                batch[entry.id] = entry.price.batch
            if entry.price.cache_hit is not None:
                hits[entry.id] = entry.price.cache_hit
    for name, row in _parse(data["models"], "prices.json").items():
        _put(name, row, models, batch, hits)
    info = catalog()
    aliases = {name_key(old): new for old in (*info["successors"], *info["v1_endpoints"])
               if (new := successor(old)) is not None}
    training = {name.lower(): float(p) for name, p in (data.get("fine_tune") or {}).items()}
    return PriceTable(date=data["date"], source=data["source"], per_tokens=int(data["per_tokens"]),
                      cloud_equivalent=data["cloud_equivalent"], models=models, batch=batch, training=training,
                      cache_hit=hits, aliases=aliases)


_Row = tuple[tuple[float, float], tuple[float, float] | None, float | None]
_user: dict[str, _Row] = {}


def prices(supplied: Mapping[str, Mapping[str, Any]] | None = None, /) -> PriceTable:
    """The effective price table: the shipped one, then ``QFNB_PRICES``'s file, then prices given here.

    ``supplied`` adds or overrides prices for this process, CNY per 1,000 tokens::

        prices({"my-model": {"input": 0.004, "output": 0.016,
                             "batch": {"input": 0.0016, "output": 0.0064}, "cache_hit": 0.0016}})

    ``batch`` and ``cache_hit`` are optional. A name is matched in any case (``_`` or ``-``)."""
    if supplied is not None:
        _user.update(_parse(supplied, "qfnb.usage.prices()"))
        _effective.cache_clear()
    return _effective(os.environ.get(PRICES_ENV, "").strip())


def clear_prices() -> None:
    """Forget the prices given to :func:`prices` (and read ``QFNB_PRICES`` again)."""
    _user.clear()
    _effective.cache_clear()
    _read_file.cache_clear()


@functools.cache
def _effective(path: str) -> PriceTable:
    base = shipped()
    rows = {**(_read_file(path) if path else {}), **_user}
    if not rows:
        return base
    models, batch, hits = dict(base.models), dict(base.batch), dict(base.cache_hit)
    for name, row in rows.items():
        _put(name, row, models, batch, hits)
    return PriceTable(date=base.date, source=base.source + "; with user-supplied prices", per_tokens=base.per_tokens,
                      cloud_equivalent=base.cloud_equivalent, models=models, batch=batch, training=base.training,
                      cache_hit=hits, aliases=base.aliases, user=frozenset(rows))


def _put(name: str, row: _Row, models: dict[str, tuple[float, float]], batch: dict[str, tuple[float, float]],
         hits: dict[str, float]) -> None:
    """Set ``name``'s row (its batch and cache-hit prices replaced too, not left from the table)."""
    models[name] = row[0]
    batch.pop(name, None)
    hits.pop(name, None)
    if row[1] is not None:
        batch[name] = row[1]
    if row[2] is not None:
        hits[name] = row[2]


@functools.cache
def _read_file(path: str) -> dict[str, _Row]:
    """``QFNB_PRICES``'s file (JSON, or TOML by its ``.toml`` suffix), read once: a regular file of
    at most :data:`MAX_PRICES_FILE_BYTES`."""
    where = f"{PRICES_ENV}={path}"
    kind = "TOML" if path.lower().endswith(".toml") else "JSON"
    try:
        with Path(path).expanduser().open("rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise PriceError(f"{where}: not a regular file (a device or a pipe is not read)")
            data = file.read(MAX_PRICES_FILE_BYTES + 1)
    except OSError as e:
        raise PriceError(f"{where}: cannot read the price file ({e.strerror or e})") from None
    if len(data) > MAX_PRICES_FILE_BYTES:
        raise PriceError(f"{where}: the price file is over {MAX_PRICES_FILE_BYTES:,} bytes (MAX_PRICES_FILE_BYTES)")
    try:
        text = data.decode("utf-8")
        raw: Any = _loads_toml(text) if kind == "TOML" else json.loads(text)
    except RecursionError:
        raise PriceError(f"{where}: not valid {kind}: it nests too deeply (a price row is three levels: "
                         "model, batch, price)") from None
    except (ValueError, TypeError) as e:
        raise PriceError(f"{where}: not valid {kind}: {e}") from None
    rows = _parse(raw, where)
    logger.info("%d user price(s) read from %s", len(rows), path)
    return rows


def _loads_toml(text: str) -> Any:
    import tomllib

    return tomllib.loads(text)


def _parse(raw: Any, where: str) -> dict[str, _Row]:
    """Check a mapping of model name -> {input, output, batch?, cache_hit?}; PriceError names the field."""
    if not isinstance(raw, Mapping):
        raise PriceError(f"{where}: prices must be a mapping of model name to {{input, output}}, "
                         f"got {type(raw).__name__}")
    rows: dict[str, _Row] = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise PriceError(f"{where}: a model name must be a non-empty string, got {name!r}")
        if not isinstance(entry, Mapping):
            raise PriceError(f"{where}: {name}: must be a mapping with input and output, got {type(entry).__name__}")
        if unknown := sorted(set(map(str, entry)) - set(_FIELDS)):
            raise PriceError(f"{where}: {name}.{unknown[0]}: unknown field (known: {', '.join(_FIELDS)})")
        online = (_number(entry, "input", f"{where}: {name}"), _number(entry, "output", f"{where}: {name}"))
        batch = None
        if entry.get("batch") is not None:
            if not isinstance(entry["batch"], Mapping):
                raise PriceError(f"{where}: {name}.batch: must be a mapping with input and output")
            batch = (_number(entry["batch"], "input", f"{where}: {name}.batch"),
                     _number(entry["batch"], "output", f"{where}: {name}.batch"))
        hit = _number(entry, "cache_hit", f"{where}: {name}") if entry.get("cache_hit") is not None else None
        rows[name.strip().lower()] = (online, batch, hit)
    return rows


def _number(entry: Mapping[str, Any], key: str, where: str) -> float:
    """A price: a finite number from 0 to :data:`MAX_PRICE` (NaN or Infinity would make every cost
    NaN or infinite, and a ¥ budget compares nothing against NaN)."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_PRICE:
        raise PriceError(f"{where}.{key}: must be a finite number from 0 to {MAX_PRICE:,.0f} (CNY per 1,000 "
                         f"tokens), got {value!r:.40}")
    return float(value)


def worst_yuan(model: str, prompt_tokens: int, completion_tokens: int, *, local: bool, batch: bool = False) -> float:
    """What a call about to be sent may cost at most, for its reservation: ¥0 locally; a cloud model
    without a price is refused (:class:`UnpricedModel`, nothing sent) while a ¥ budget is set, and
    costs ¥0 (unknown) otherwise."""
    if local:
        return 0.0
    yuan = prices().cost(model, prompt_tokens, completion_tokens, batch=batch)
    if yuan is not None:
        return yuan
    held = active_budget()
    if held is not None and held.yuan is not None:
        raise UnpricedModel(
            f"budget: ¥{held.yuan:.4f} is set but {model or 'this model'} has no price in the table of "
            f"{prices().date}, so what the call costs cannot be held to it; stopped before sending it. Supply "
            f"its price (CNY per 1,000 tokens): qfnb.usage.prices({{{model or 'model'!r}: {{'input': ..., "
            f"'output': ...}}}}) or a {PRICES_ENV}=path/to/prices.json file of the same shape")
    return 0.0


#: the ledger's platforms whose calls ran on engines of this user's own (¥0): the embedded platform's,
#: a cluster's (its kind: a cluster job's rows are in the ledger under it)
LOCAL_PLATFORMS = ("local", *CLUSTERS)
#: the price a local call is said to have
LOCAL_PRICE = "local"


def is_local(platform: str) -> bool:
    """Whether the ledger's ``platform`` ran on the user's own engines (priced ¥0, "local")."""
    return platform in LOCAL_PLATFORMS


def price_label(model: str, platform: str, table: PriceTable | None = None) -> str:
    """The one price every figure of ``model`` uses, in words: ``local`` (¥0), ``¥0.0008 in / ¥0.0032
    out per 1k, 2026-07-28`` from ``table`` (default :func:`prices`), or ``no list price``."""
    if is_local(platform):
        return LOCAL_PRICE
    table = table or prices()
    row = table.key(model)
    if row is None:
        return "no list price"
    per = "1k" if table.per_tokens == 1000 else f"{table.per_tokens:,}"
    head = f"¥{table.models[row][0]:g} in / ¥{table.models[row][1]:g} out per {per}"
    batch = table.batch.get(row)
    return head + (f" (batch ¥{batch[0]:g} / ¥{batch[1]:g})" if batch else "") + f", {table.date}"


def price_rows(frame: Any) -> pd.DataFrame:
    """``frame`` (ledger rows) with ``cost_yuan`` (a batch job's rows at the batch price),
    ``real_time_yuan`` (the same tokens at the real-time price: what a batch saved),
    ``cloud_equivalent_yuan`` and ``price`` (:func:`price_label`) columns.

    A local call (the embedded platform's, a Ray cluster's) costs ¥0 at the ``local`` price. Cached
    answers and reused jobs cost nothing in every column; their tokens are what the cache saved.
    """
    table = prices()
    twin = os.environ.get("QFNB_PRICE_AS") or table.cloud_equivalent

    def cost(row: Any) -> float | None:
        if row["cache_hit"] or is_local(row["platform"]):
            return 0.0
        return table.cost(str(row["model"]), int(row["prompt_tokens"]), int(row["completion_tokens"]),
                          batch=row.get("api") == "batch-job")

    def real_time(row: Any) -> float | None:
        if row["cache_hit"] or is_local(row["platform"]):
            return 0.0
        return table.cost(str(row["model"]), int(row["prompt_tokens"]), int(row["completion_tokens"]))

    def equivalent(row: Any) -> float | None:
        if row["cache_hit"]:
            return 0.0
        return table.cost(twin, int(row["prompt_tokens"]), int(row["completion_tokens"]))

    frame = frame.copy()
    if frame.empty:
        for column in ("cost_yuan", "real_time_yuan", "cloud_equivalent_yuan", "price"):
            frame[column] = []
        return frame
    frame["cost_yuan"] = frame.apply(cost, axis=1).astype(float)
    frame["real_time_yuan"] = frame.apply(real_time, axis=1).astype(float)
    frame["cloud_equivalent_yuan"] = frame.apply(equivalent, axis=1).astype(float)
    labels = {key: price_label(*key, table) for key in set(zip(frame["model"], frame["platform"], strict=True))}
    frame["price"] = [labels[key] for key in zip(frame["model"], frame["platform"], strict=True)]
    return frame
