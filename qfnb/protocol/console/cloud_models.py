"""The Qianfan v2 platform's models as of a date: kind, context window, output cap, list price, retirement.

Data, not code (``cloud_models.json``, with the source and date of every figure; a figure not found
is null, never a guess). The 2024 v1 names (``ERNIE-Bot``, ``ERNIE-3.5-8K``, ``bge_large_zh``...)
reach their v2 ids through :func:`successor`; a retired v2 id reaches the one that replaces it
through :func:`retirement` and :func:`current_id`.

>>> cloud_model("ERNIE-4.5-Turbo-128K").price.cache_hit
0.0002
>>> successor("ERNIE-Bot")
'ernie-3.5-8k'
>>> retirement("ernie-3.5-8k")
('2026-06-30', 'ernie-4.5-turbo-128k')
>>> current_id("ERNIE-Bot", date(2026, 7, 1))
'ernie-4.5-turbo-128k'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["CATALOG_DATE", "KINDS", "CloudModel", "Price", "PriceTier", "catalog", "cloud_model", "cloud_models",
           "current_id", "name_key", "retirement", "successor"]

#: the kinds of model the catalog knows
KINDS = ("chat", "embeddings", "reranker", "text2image")


@dataclass(frozen=True, slots=True)
class PriceTier:
    """A higher price that applies when a call's input is longer than ``above_input_tokens`` (CNY per 1,000)."""

    above_input_tokens: int
    input: float
    output: float
    cache_hit: float | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """A list price in CNY per 1,000 tokens (``cache_hit``: a cached prompt token's, where published).

    ``input``/``output`` are the first tier's (the shortest inputs); ``tiers`` holds the higher tiers,
    which the ledger does not apply: it prices every call at the first tier."""

    input: float
    output: float
    cache_hit: float | None
    #: the Files + Batch price class (input, output), where Baidu states one (or the table's batch rule)
    batch: tuple[float, float] | None
    as_of: str
    source: str
    tiers: tuple[PriceTier, ...] = ()


@dataclass(frozen=True, slots=True)
class CloudModel:
    """One v2 model id; ``None`` fields were not found in the sources (see ``source``)."""

    id: str
    kind: str
    context_window: int | None
    max_output_tokens: int | None
    price: Price | None
    source: str
    note: str = ""
    #: the date the entry's figures were read (its source's date)
    as_of: str = ""
    #: the ISO date from which Baidu no longer serves the model, where a notice gives one
    retired_on: str | None = None
    #: the v2 id the retirement notice names to use instead (None: none named)
    replacement: str | None = None


def name_key(name: str) -> str:
    """The spelling-free key of a model name: lower case, ``_`` and spaces as ``-``."""
    return "-".join(name.strip().lower().replace("_", "-").split())


@cache
def catalog() -> dict[str, Any]:
    """The packaged ``cloud_models.json`` as read (its ``as_of``, ``sources``, ``not_found``...)."""
    text = resources.files(__package__).joinpath("cloud_models.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _url(ref: str) -> str:
    return str(catalog()["sources"].get(ref, ref))


def _price(raw: dict[str, Any] | None, kind: str) -> Price | None:
    if raw is None:
        return None
    rule = catalog().get("batch_rule") or {}
    inp, out = float(raw["input"]), float(raw["output"])
    batch: tuple[float, float] | None = None
    if isinstance(raw.get("batch"), dict):
        batch = (float(raw["batch"]["input"]), float(raw["batch"]["output"]))
    elif kind in rule.get("kinds", ()):
        batch = (round(inp * float(rule["fraction"]), 10), round(out * float(rule["fraction"]), 10))
    hit = raw.get("cache_hit")
    tiers = tuple(PriceTier(int(t["above_input_tokens"]), float(t["input"]), float(t["output"]),
                            float(t["cache_hit"]) if t.get("cache_hit") is not None else None)
                  for t in raw.get("tiers") or ())
    return Price(inp, out, float(hit) if hit is not None else None, batch, str(raw["as_of"]), _url(raw["source"]),
                 tiers)


@cache
def _models() -> dict[str, CloudModel]:
    return {name: CloudModel(id=name, kind=raw["kind"], context_window=raw.get("context_window"),
                             max_output_tokens=raw.get("max_output_tokens"),
                             price=_price(raw.get("price"), raw["kind"]), source=_url(raw["source"]),
                             note=raw.get("note", ""), as_of=str(raw.get("as_of", "")),
                             retired_on=raw.get("retired_on"), replacement=raw.get("replacement"))
            for name, raw in catalog()["models"].items()}


@cache
def _successors() -> dict[str, str]:
    data = catalog()
    table = {name_key(old): new for old, new in {**data["v1_endpoints"], **data["successors"]}.items()}
    table.update({name_key(name): name for name in data["models"]})  # a v2 id is its own successor
    return table


#: the date of the catalog (the newest page it was read from)
CATALOG_DATE: str = str(catalog()["as_of"])


def cloud_model(name: str) -> CloudModel | None:
    """The catalog's entry for the v2 id ``name`` (any case); None for a name it lacks (v1 names:
    ``cloud_model(successor(name))``)."""
    return _models().get(name_key(name))


def cloud_models(kind: str | None = None) -> list[CloudModel]:
    """Every catalogued model, or those of one ``kind`` (chat, embeddings, reranker, text2image)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return [m for m in _models().values() if kind is None or m.kind == kind]


def successor(name: str) -> str | None:
    """The v2 id that serves ``name`` today (any case, ``_`` or ``-``; a v1 model name or v1 endpoint
    slug); a v2 id is its own; None for a name with no v2 equivalent (``no_successor`` in the JSON)
    or one the catalog does not know."""
    return _successors().get(name_key(name))


def retirement(name: str) -> tuple[str, str | None] | None:
    """When the model ``name`` (a v2 id, or any name :func:`successor` knows) is retired and what replaces it:
    ``(retired_on, replacement)`` — the ISO date from which Baidu no longer serves it and the v2 id its
    notice names (None where the notice names none); None for a model with no retirement on record
    (or a name the catalog does not know)."""
    new = successor(name)
    model = _models().get(new) if new is not None else None
    if model is None or model.retired_on is None:
        return None
    return model.retired_on, model.replacement


def current_id(name: str, today: date | None = None) -> str:
    """The v2 id to call for ``name`` on ``today`` (default: :meth:`datetime.date.today`).

    ``name``'s :func:`successor`, then, while that id is retired on or before ``today``, its
    replacement, and so on; it stops at a retired id whose notice names no replacement (returned as
    is) and at a cycle. A name with no v2 successor is returned unchanged."""
    day = (today or date.today()).isoformat()
    current = successor(name)
    if current is None:
        return name
    seen = {current}
    while (ret := retirement(current)) is not None and ret[0] <= day and ret[1] is not None:
        nxt = successor(ret[1]) or ret[1]
        if nxt in seen:
            break
        seen.add(nxt)
        current = nxt
    return current
