"""A JSON schema as our own engine's grammar converter should get it: the same answers, cheaper to decode.

llama.cpp's grammar turns an ``enum`` into one alternative per value, and while a value is being
written the engine tests each candidate token against every alternative still open, in its one
decode loop, so every other request waits (the probe's 20,000-value enum held each step 15 s).
An enum of plain strings is sent instead as an anchored ``pattern`` that spells the values as a
trie (``^value_(0|1)$``): the same strings, but only the branches at the current character are
open. The checks of :mod:`qfnb.protocol.schema.accepted` have already refused what the grammar cannot
enforce; this only changes how the enforced schema is written.

The converter's own ``date`` rule admits any day 01-31 in any month and the year 0000
(``2023-02-30`` is not a date, and ``jsonschema``'s format checker says so), so the ``format``
values ``date``, ``time`` and ``date-time`` are sent as anchored patterns that spell the calendar:
days per month, 29 February in leap years only, years 0001-9999.
"""

from __future__ import annotations

import logging
from typing import Any

from qfnb.local.engines.llama import gbnf
from qfnb.protocol.schema.enforced import enforced_part

log = logging.getLogger(__name__)

#: characters a pattern literal must escape (llama.cpp's converter takes them escaped)
_META = set("^$.[]()|{}*+?\\")
#: the converter gives up on patterns nested deeper than 100 groups
_MAX_NESTING = 90

_YEAR = "([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001-9999
#: years divisible by 4, less the centuries not divisible by 400 (0000 is no year)
_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = ("((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
              "|02-(0[1-9]|1[0-9]|2[0-8]))")
_DATE = f"({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
#: RFC 3339's full-time as the converter's own rule writes it (milliseconds optional, an offset required)
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
#: the calendar formats, as the anchored patterns sent in their place
FORMAT_PATTERNS = {"date": f"^{_DATE}$", "time": f"^{_TIME}$", "date-time": f"^{_DATE}T{_TIME}$"}


def engine_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """The engine's request fields for an answer under ``schema``: its enforced part
    (:mod:`qfnb.protocol.schema.enforced`) as ``json_schema`` for llama.cpp's converter, or, where
    that part bounds a number (which the converter drops), as a ``grammar`` of our own
    (:mod:`.gbnf`)."""
    part = enforced_part(schema)
    sent = engine_schema(part.schema)
    if part.number_bounds:
        try:
            return {"grammar": gbnf.schema_grammar(sent)}
        except gbnf.Unwritable as exc:  # the converter's form, number bounds left to the answer's check
            log.info("the schema's number bounds are left to the answer's check: %s", exc)
    return {"json_schema": sent}


def grammar_is_exact(schema: dict[str, Any]) -> bool:
    """Whether the grammar :func:`engine_fields` sends enforces all of ``schema``."""
    part = enforced_part(schema)
    if part.number_bounds:
        try:
            gbnf.schema_grammar(engine_schema(part.schema))
        except gbnf.Unwritable:
            return False
    return part.exact


def engine_schema(schema: Any) -> Any:
    """``schema`` with each enum of plain strings written as a trie pattern and each calendar
    ``format`` as its pattern (else as it is)."""
    if isinstance(schema, list):
        return [engine_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in ("enum", "const", "default", "examples") else engine_schema(v)) for k, v in schema.items()}
    values = schema.get("enum")
    if isinstance(values, list) and len(values) > 1 and schema.get("type", "string") == "string" \
            and all(isinstance(v, str) and v and _plain(v) for v in values):
        pattern = trie_pattern(values)
        if pattern is not None:
            out.pop("enum")
            out.update(type="string", pattern=pattern)
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in FORMAT_PATTERNS and "pattern" not in schema:
        out.pop("format")
        out["pattern"] = FORMAT_PATTERNS[fmt]
    return out


def _plain(value: str) -> bool:
    """A string the grammar writes as it is inside JSON quotes (no quote, backslash or control char)."""
    return not any(c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def trie_pattern(values: list[str]) -> str | None:
    """An anchored pattern matching exactly ``values`` (None when it would nest too deep)."""
    root: dict[str, Any] = {}
    for value in values:
        node = root
        for c in value:
            node = node.setdefault(c, {})
        node[""] = {}  # the end of a value
    body, depth = _alternatives(root)
    return f"^{body}$" if depth <= _MAX_NESTING else None


def _alternatives(node: dict[str, Any]) -> tuple[str, int]:
    """The pattern of the values below ``node`` and its group nesting."""
    ends = "" in node
    branches = []
    depth = 0
    for c in sorted(k for k in node if k):
        text, inner = c, node[c]
        while len(inner) == 1 and "" not in inner:  # a run of single children is one literal
            (c2, inner), = inner.items()
            text += c2
        rest, sub = _alternatives(inner)
        branches.append(_literal(text) + rest)
        depth = max(depth, sub)
    if not branches:
        return "", 0
    if len(branches) == 1 and not ends:
        return branches[0], depth
    return "(" + "|".join(branches) + (")?" if ends else ")"), depth + 1


def _literal(text: str) -> str:
    return "".join("\\" + c if c in _META else c for c in text)
