"""The Qianfan v2 platform's models as of a date: kind, context window, output cap and list price.

Data, not code (``cloud_models.json``, with the source of every figure; a figure not found is
null, never a guess). The 2024 v1 names (``ERNIE-Bot``, ``ERNIE-3.5-8K``, ``bge_large_zh``...)
reach their v2 ids through :func:`successor`.

>>> cloud_model("ERNIE-4.0-Turbo-8K").price.cache_hit
0.0012
>>> successor("ERNIE-Bot")
'ernie-3.5-8k'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["CATALOG_DATE", "KINDS", "CloudModel", "Price", "catalog", "cloud_model", "cloud_models", "name_key",
           "successor"]

#: the kinds of model the catalog knows
KINDS = ("chat", "embeddings", "reranker", "text2image")


@dataclass(frozen=True, slots=True)
class Price:
    """A list price in CNY per 1,000 tokens (``cache_hit``: a cached prompt token's, where published)."""

    input: float
    output: float
    cache_hit: float | None
    #: the Files + Batch price class (input, output), where Baidu states one (or the table's batch rule)
    batch: tuple[float, float] | None
    as_of: str
    source: str


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


def name_key(name: str) -> str:
    """The spelling-free key of a model name: lower case, ``_`` and spaces as ``-``."""
    return "-".join(name.strip().lower().replace("_", "-").split())


@cache
def catalog() -> dict[str, Any]:
    """The packaged ``cloud_models.json`` as read (its ``as_of``, ``sources``, ``not_found``...)."""
    text = resources.files("qfnb.protocol").joinpath("cloud_models.json").read_text(encoding="utf-8")
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
    return Price(inp, out, float(hit) if hit is not None else None, batch, str(raw["as_of"]), _url(raw["source"]))


@cache
def _models() -> dict[str, CloudModel]:
    return {name: CloudModel(id=name, kind=raw["kind"], context_window=raw.get("context_window"),
                             max_output_tokens=raw.get("max_output_tokens"),
                             price=_price(raw.get("price"), raw["kind"]), source=_url(raw["source"]),
                             note=raw.get("note", ""))
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
