"""What a JSON-schema node is to the engine's grammar: the rule its converter builds for it
(:func:`node_kind`), the JSON types an answer under it may have (:func:`answer_types`) and whether
a required property tells two alternatives apart (:func:`told_apart`). Pure; :mod:`.schemas`
walks a schema with them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ENFORCED_FORMATS", "TYPES", "answer_types", "node_kind", "told_apart"]

#: the ``format`` values the grammar writes (llama.cpp's string formats)
ENFORCED_FORMATS = ("date", "time", "date-time", "uuid")
#: the JSON-schema type names
TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def node_kind(s: Mapping[str, Any]) -> str:
    """What the converter builds for a node with one type or none (its order: object, allOf,
    array, string, else any value): a type name, ``allOf`` or ``any``."""
    kind = s.get("type")
    has_properties = "properties" in s or ("additionalProperties" in s and s["additionalProperties"] is not True)
    if kind is None:
        if has_properties:
            return "object"
        if "allOf" in s:
            return "allOf"
        if "items" in s or "prefixItems" in s:
            return "array"
        if any(k in s for k in ("pattern", "minLength", "maxLength")) or s.get("format") in ENFORCED_FORMATS:
            return "string"
        return "any"
    if (kind == "object" and not has_properties and "allOf" in s) or (kind == "string" and "allOf" in s):
        return "allOf"
    return str(kind)


def answer_types(s: Mapping[str, Any]) -> set[str]:
    """The JSON types an answer under ``s`` may have (all of them when unsaid)."""
    if "const" in s or "enum" in s:
        values = [s["const"]] if "const" in s else s["enum"]
        return {_type_of(v) for v in values}
    kind = s.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set(TYPES)
    return kinds | {"number", "integer"} if kinds & {"number", "integer"} else kinds


def _type_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    return "string" if isinstance(v, str) else "array" if isinstance(v, list) else "object"


def told_apart(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Both are objects with a property required in both whose const/enum values do not overlap."""
    for name in set(a.get("required") or ()) & set(b.get("required") or ()):
        va, vb = _fixed((a.get("properties") or {}).get(name)), _fixed((b.get("properties") or {}).get(name))
        if va is not None and vb is not None and not any(x == y for x in va for y in vb):
            return True
    return False


def _fixed(s: Any) -> list[Any] | None:
    if isinstance(s, dict) and "const" in s:
        return [s["const"]]
    if isinstance(s, dict) and isinstance(s.get("enum"), list):
        return list(s["enum"])
    return None
