"""The part of a JSON schema the engine's grammar enforces: :func:`enforced_part`.

A schema is accepted whole (:mod:`.schemas`), but llama.cpp's schema-to-grammar converter writes
only some keywords; one it cannot write it drops (or, for an unanchored pattern, fails on). So
the engine gets the schema with every keyword it would not enforce exactly taken out: a looser
schema (every answer the full schema admits still fits it, or the engine writes a narrower but
valid form, as an object without unlisted properties), and the answer is checked against the
full schema afterwards. ``exact`` says whether anything was taken out (then no check is needed).

Number bounds (``minimum``... on ``"type": "number"``) are kept: the converter drops them, so a
schema that keeps one is written as a grammar of our own (``qfnb.local.engines.llama.gbnf``).
Pure (no I/O).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from qfnb.protocol.limits import MAX_SCHEMA_BOUND, MAX_SCHEMA_REPEAT
from qfnb.protocol.schema.accepted import resolve
from qfnb.protocol.schema.kinds import ENFORCED_FORMATS, TYPES, node_kind
from qfnb.protocol.schema.patterns import pattern_problem

__all__ = ["Enforced", "enforced_part"]

_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
#: keys that say nothing about an answer (kept as they are: titles help the model)
_NOTES = ("title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
          "writeOnly", "contentMediaType", "contentEncoding", "$defs", "definitions")


@dataclass
class Enforced:
    """The schema sent to the engine, and what of the client's schema it leaves to the answer's check."""

    schema: dict[str, Any]
    #: the keywords taken out, as ``place.keyword`` (empty: the grammar enforces the whole schema)
    dropped: list[str] = field(default_factory=list)
    #: whether a number bound was kept (the converter cannot write it: a grammar of our own is needed)
    number_bounds: bool = False

    @property
    def exact(self) -> bool:
        return not self.dropped


def enforced_part(schema: dict[str, Any]) -> Enforced:
    """``schema`` (already accepted by :func:`.schemas.check_schema`) as the engine's grammar can
    enforce it exactly, with what was taken out."""
    out = Enforced({})
    out.schema = _Relax(schema, out).node(schema, "#")
    return out


class _Relax:
    def __init__(self, root: dict[str, Any], out: Enforced) -> None:
        self.root, self.out = root, out

    def drop(self, at: str, key: str) -> None:
        self.out.dropped.append(f"{at}/{key}")

    def node(self, s: Any, at: str) -> dict[str, Any]:
        """``s`` relaxed, with its definitions (wherever they sit: a ``$ref`` may point at them)."""
        body = self._node(s, at)
        for key in ("$defs", "definitions"):
            if isinstance(s, dict) and isinstance(s.get(key), dict):
                body[key] = {name: self.node(sub, f"{at}/{key}/{name}") for name, sub in s[key].items()}
        return body

    def _node(self, s: Any, at: str) -> dict[str, Any]:
        if isinstance(s, bool):
            if not s:
                self.drop(at, "false")
            return {}
        notes = {k: v for k, v in s.items() if k in _NOTES and k not in ("$defs", "definitions")}
        if "$ref" in s:
            self._drop_beside(s, at, "$ref")
            return {**notes, "$ref": s["$ref"]}
        if "anyOf" in s or "oneOf" in s:
            key = "anyOf" if "anyOf" in s else "oneOf"
            self._drop_beside(s, at, key)
            if key == "oneOf" or ("oneOf" in s and "anyOf" in s):
                self.drop(at, "oneOf")  # written as anyOf: "exactly one" is the answer's check
            return {**notes, "anyOf": [self.node(a, f"{at}/{key}/{i}") for i, a in enumerate(s[key])]}
        kind = s.get("type")
        if isinstance(kind, list):
            if len(kind) == 1:
                return self.node({**s, "type": kind[0]}, at)
            return {**notes, "anyOf": [self.node({**s, "type": k}, at) for k in kind]}
        if "const" in s or "enum" in s:
            key = "const" if "const" in s else "enum"
            self._drop_beside(s, at, key, keep=("type",))
            typed = {"type": kind} if kind in TYPES and key == "enum" and _all_typed(s["enum"], kind) else {}
            return {**notes, **typed, key: s[key]}
        return {**notes, **self._typed(s, at, node_kind(s))}

    def _typed(self, s: dict[str, Any], at: str, kind: str) -> dict[str, Any]:
        if kind == "allOf":
            return self._all_of(s, at)
        keep: dict[str, Any] = {"type": s["type"]} if "type" in s else {}
        consumed: list[str] = []
        if kind == "object":
            self._object(s, at, keep)
        elif kind == "array":
            self._array(s, at, keep)
        elif kind == "string":
            self._string(s, at, keep)
        elif kind in ("integer", "number"):
            self._bounds(s, at, keep, kind)
            consumed = [k for k in _BOUNDS if _fits(s.get(k))]  # folded into one bound a side
        self._drop_beside(s, at, *keep, *consumed, *_not_for(kind, s), "type")
        return keep

    def _object(self, s: dict[str, Any], at: str, keep: dict[str, Any]) -> None:
        props = s.get("properties") or {}
        if "properties" in s:  # without it, and without additionalProperties, the converter writes any object
            keep["properties"] = {name: self.node(sub, f"{at}/properties/{name}") for name, sub in props.items()}
        required = [r for r in s.get("required") or () if r in props]
        if len(required) < len(s.get("required") or ()):
            self.drop(at, "required")
        if required:
            keep["required"] = list(dict.fromkeys(required))
        extra = s.get("additionalProperties")
        if isinstance(extra, bool):
            keep["additionalProperties"] = extra
        elif isinstance(extra, dict):
            keep["additionalProperties"] = self.node(extra, f"{at}/additionalProperties")
        keep.setdefault("type", "object")

    def _array(self, s: dict[str, Any], at: str, keep: dict[str, Any]) -> None:
        lo, hi = _count(s, "minItems"), _count(s, "maxItems")
        if "prefixItems" in s:  # the converter writes exactly its items, and reads items only when both are given
            n = len(s["prefixItems"])
            if "items" not in s and (lo is None or lo <= n) and (hi is None or hi >= n):
                keep["prefixItems"] = [self.node(p, f"{at}/prefixItems/{i}") for i, p in enumerate(s["prefixItems"])]
                return
            self.drop(at, "prefixItems")
            return
        if isinstance(s.get("items"), dict):
            keep["items"] = self.node(s["items"], f"{at}/items")
        elif s.get("items") is False:
            self.drop(at, "items")
        for key, value in (("minItems", lo), ("maxItems", hi)):
            if value is not None:
                keep[key] = value
        keep.setdefault("type", "array")

    def _string(self, s: dict[str, Any], at: str, keep: dict[str, Any]) -> None:
        pattern, fmt = s.get("pattern"), s.get("format")
        if isinstance(pattern, str) and pattern_problem(pattern) is None:
            keep["pattern"] = pattern  # the converter reads the pattern only
            return
        if fmt in ENFORCED_FORMATS and pattern is None:
            keep["format"] = fmt
            return
        for key in ("minLength", "maxLength"):
            value = _count(s, key)
            if value is not None:
                keep[key] = value
        lo, hi = keep.get("minLength"), keep.get("maxLength")
        if lo is not None and hi is not None and lo > hi:  # no string fits: the answer's check says so
            keep.pop("minLength")
        keep.setdefault("type", "string")

    def _bounds(self, s: dict[str, Any], at: str, keep: dict[str, Any], kind: str) -> None:
        """The tighter lower and upper bound, each as one keyword (integers: whole ``minimum`` and
        ``maximum``); a bound past :data:`MAX_SCHEMA_BOUND` is left to the answer's check."""
        lows: list[tuple[float, bool]] = [(s[k], k != "minimum") for k in ("minimum", "exclusiveMinimum")
                                          if _fits(s.get(k))]
        highs: list[tuple[float, bool]] = [(s[k], k != "maximum") for k in ("maximum", "exclusiveMaximum")
                                           if _fits(s.get(k))]
        low = max(lows, key=lambda b: (b[0], b[1])) if lows else None
        high = min(highs, key=lambda b: (b[0], not b[1])) if highs else None
        if kind == "integer":
            if low is not None:
                keep["minimum"] = math.floor(low[0]) + 1 if low[1] else math.ceil(low[0])
            if high is not None:
                keep["maximum"] = math.ceil(high[0]) - 1 if high[1] else math.floor(high[0])
            return
        for bound, names in ((low, ("minimum", "exclusiveMinimum")), (high, ("maximum", "exclusiveMaximum"))):
            if bound is not None:
                keep[names[bound[1]]] = bound[0]
                self.out.number_bounds = True

    def _all_of(self, s: dict[str, Any], at: str) -> dict[str, Any]:
        """allOf of objects with distinct properties is merged (as the converter does); any other is
        left to the answer's check."""
        parts = [_target(self.root, p) for p in s["allOf"]]
        names = [set(p.get("properties") or {}) for p in parts]
        merged = all(p.get("type", "object") == "object" and isinstance(p.get("properties"), dict)
                     and not {"anyOf", "oneOf", "enum", "const"} & set(p) for p in parts) \
            and sum(map(len, names)) == len(set().union(*names))
        if not merged:
            self.drop(at, "allOf")
            rest = {k: v for k, v in s.items() if k != "allOf"}
            return self._typed(rest, at, node_kind(rest))
        props = {k: v for p in parts for k, v in p["properties"].items()}
        required = [r for p in parts for r in p.get("required") or ()]
        for i, p in enumerate(parts):
            self._drop_beside(p, f"{at}/allOf/{i}", "type", "properties", "required", "additionalProperties")
        self._drop_beside(s, at, "allOf", "type")
        return self._typed({"type": "object", "properties": props, "required": required}, at, "object")

    def _drop_beside(self, s: dict[str, Any], at: str, *kept: str, keep: tuple[str, ...] = ()) -> None:
        for key in s:
            if key not in kept and key not in keep and key not in _NOTES:
                self.drop(at, key)


#: the keywords that constrain one JSON type only (any other node kind ignores them)
_APPLIES = {**dict.fromkeys(("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
                            ("integer", "number")),
            **dict.fromkeys(("minLength", "maxLength", "pattern", "format", "contentSchema"), ("string",)),
            **dict.fromkeys(("items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains",
                             "maxContains", "unevaluatedItems"), ("array",)),
            **dict.fromkeys(("properties", "required", "additionalProperties", "patternProperties", "minProperties",
                             "maxProperties", "propertyNames", "dependentRequired", "dependentSchemas",
                             "unevaluatedProperties"), ("object",))}


def _not_for(kind: str, s: dict[str, Any]) -> list[str]:
    """The keywords of ``s`` that say nothing about a value of ``kind`` (nothing to drop)."""
    return [k for k in s if k in _APPLIES and kind not in _APPLIES[k]]


def _all_typed(values: list[Any], kind: str) -> bool:
    checks = {"string": lambda v: isinstance(v, str), "null": lambda v: v is None,
              "boolean": lambda v: isinstance(v, bool),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool)}
    check = checks.get(kind)
    return check is not None and all(check(v) for v in values)


def _count(s: dict[str, Any], key: str) -> int | None:
    """A length or item count the grammar repeats (None when absent or past :data:`MAX_SCHEMA_REPEAT`)."""
    value = s.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value <= MAX_SCHEMA_REPEAT else None


def _fits(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= MAX_SCHEMA_BOUND


def _target(root: dict[str, Any], s: Any) -> dict[str, Any]:
    """``s`` with its ``$ref`` s followed (a pointer inside ``root``)."""
    for _ in range(32):
        if not (isinstance(s, dict) and isinstance(s.get("$ref"), str)):
            break
        s = resolve(root, s["$ref"])
    return s if isinstance(s, dict) else {}
