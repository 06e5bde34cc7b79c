"""What a JSON-schema node is to the engine's grammar: the rule its converter builds for it
(:func:`node_kind`). Pure; :mod:`.schema_enforced` walks a schema with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ENFORCED_FORMATS", "TYPES", "node_kind"]

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
