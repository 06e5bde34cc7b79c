"""JSON schemas for grammar-constrained answers: which are accepted, and the caps.

Every valid JSON Schema is accepted (``response_format``, tools' parameters, Responses'
``text.format``, Messages' ``output_config``): the engine's grammar enforces what it can
(:mod:`.schema_enforced` says which part) and the answer is checked against the whole schema
with ``jsonschema``. Refused, each with one :class:`ProtocolError` naming the client's own field
path and why, before any engine work: a schema ``jsonschema`` calls invalid, a ``$ref`` that
cannot be resolved inside the schema (or a cycle of them that writes nothing), a ``pattern``
Python's ``re`` or RE2 cannot read or that is unsafe for the grammar
(:func:`.schema_patterns.pattern_hazard`; answers are checked with RE2, in linear time:
:mod:`.schema_regex`), ``unevaluatedProperties`` in a schema with ``patternProperties``
(``jsonschema`` would run those with ``re``), and a schema past a cap (:mod:`.limits`;
``docs/local-platform.md`` lists them).

Pure (no I/O).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.limits import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, MAX_SCHEMA_ENUM_VALUES
from qfnb.protocol.schema.patterns import pattern_hazard

#: keywords whose value is one subschema / a list of them / a mapping of names to them
_ONE = ("additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "additionalItems")
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def refuse(where: str, why: str) -> ProtocolError:
    return ProtocolError(where, why)


def check_schema(schema: Any, where: str) -> None:
    """``schema`` is a valid JSON Schema, safe for the engine's grammar and within the caps;
    otherwise one :class:`ProtocolError` names the place and why."""
    if not isinstance(schema, dict):
        raise refuse(where, "must be a JSON schema object")
    enum_values = 0
    for node, at, depth in _nodes(schema, where, 0):
        if depth > MAX_SCHEMA_DEPTH:
            raise refuse(at, f"nests deeper than {MAX_SCHEMA_DEPTH} levels (MAX_SCHEMA_DEPTH)")
        enum_values += len(node["enum"]) if isinstance(node.get("enum"), list) else 0
        enum_values += "const" in node
        if enum_values > MAX_SCHEMA_ENUM_VALUES:
            key = "enum" if "enum" in node else "const"
            raise refuse(f"{at}.{key}", f"brings the schema's enum and const values past {MAX_SCHEMA_ENUM_VALUES:,} "
                         "(MAX_SCHEMA_ENUM_VALUES): their grammar would hold the engine for every other request")
        for key, pattern in _patterns(node, at):
            problem = pattern_hazard(pattern)
            if problem:
                raise refuse(key, f"{pattern!r:.80} is refused: {problem}")
        if "$ref" in node:
            _check_ref(schema, node["$ref"], f"{at}.$ref")
        if "unevaluatedProperties" in node and _has_pattern_properties(schema):
            raise refuse(f"{at}.unevaluatedProperties", "cannot sit in a schema with patternProperties: its check "
                         "runs their patterns with Python's re, which backtracks (answers are checked with RE2, "
                         "in linear time); use additionalProperties beside them instead")
    size = len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_SCHEMA_BYTES:
        raise refuse(where, f"is {size:,} bytes of JSON; a schema is capped at {MAX_SCHEMA_BYTES:,} bytes "
                     "(MAX_SCHEMA_BYTES): its grammar would hold the engine for every other request")
    _check_valid(schema, where)
    _check_ref_cycles(schema, where)


def check_schema_total(schemas: Iterable[Any], where: str) -> None:
    """The schemas of one request (its answer format and every tool's parameters) total at most
    :data:`MAX_SCHEMA_BYTES` bytes: a required call's grammar joins all of them."""
    size = sum(len(json.dumps(s, ensure_ascii=False, separators=(",", ":")).encode()) for s in schemas
               if s is not None)
    if size > MAX_SCHEMA_BYTES:
        raise refuse(where, f"the request's schemas are {size:,} bytes of JSON in all; they are capped at "
                     f"{MAX_SCHEMA_BYTES:,} bytes (MAX_SCHEMA_BYTES)")


def _check_valid(schema: dict[str, Any], where: str) -> None:
    """Valid under its ``$schema``'s metaschema (2020-12 when unsaid), as ``jsonschema`` reads it."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    try:
        cls = validator_for(schema, default=Draft202012Validator)
    except Exception as exc:  # an unknown $schema URI
        raise refuse(f"{where}.$schema", f"names no JSON Schema draft jsonschema knows ({exc})") from exc
    error = best_match(cls(cls.META_SCHEMA).iter_errors(schema))
    if error is not None:
        place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise refuse(f"{where}{place}", f"is not a valid JSON Schema: {error.message[:200]}")


def _nodes(s: Any, at: str, depth: int) -> Iterator[tuple[dict[str, Any], str, int]]:
    """Every subschema object with its place and depth (boolean schemas have nothing to check)."""
    if not isinstance(s, dict):
        return
    yield s, at, depth
    for key in _ONE:
        yield from _nodes(s.get(key), f"{at}.{key}", depth + 1)
    for key in _LIST:
        if isinstance(s.get(key), list):
            for i, sub in enumerate(s[key]):
                yield from _nodes(sub, f"{at}.{key}[{i}]", depth + 1)
    for key in _MAP:
        if isinstance(s.get(key), dict):
            for name, sub in s[key].items():
                yield from _nodes(sub, f"{at}.{key}.{name}", depth + 1)


def _has_pattern_properties(schema: dict[str, Any]) -> bool:
    return any(isinstance(node.get("patternProperties"), dict) for node, _, _ in _nodes(schema, "", 0))


def _patterns(node: dict[str, Any], at: str) -> Iterator[tuple[str, str]]:
    """The regular expressions of one node: its ``pattern`` and its ``patternProperties``' names."""
    if isinstance(node.get("pattern"), str):
        yield f"{at}.pattern", node["pattern"]
    if isinstance(node.get("patternProperties"), dict):
        for name in node["patternProperties"]:
            yield f"{at}.patternProperties", name


def resolve(root: Any, ref: str) -> Any:
    """The subschema a ``#/...`` JSON pointer names inside ``root`` (KeyError when none)."""
    target: Any = root
    for raw in ref[2:].split("/") if ref != "#" else ():
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            raise KeyError(ref)
    return target


def _check_ref(root: dict[str, Any], ref: Any, at: str) -> None:
    if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
        raise refuse(at, f"{ref!r:.80}: only references inside the schema (#/...) are supported; the platform "
                     "fetches nothing")
    try:
        resolve(root, ref)
    except KeyError:
        raise refuse(at, f"{ref!r} points at nothing in the schema (a dangling reference)") from None


def _check_ref_cycles(root: dict[str, Any], where: str) -> None:
    """No ``$ref`` leads back to itself through ``$ref`` s, ``allOf``/``anyOf``/``oneOf`` alone
    (before any object or array opens): its grammar rule would refer to itself before writing."""
    for node, at, _ in _nodes(root, where, 0):
        if not isinstance(node.get("$ref"), str):
            continue
        seen, todo = {node["$ref"]}, [node["$ref"]]
        while todo:
            for nxt in _heads(resolve(root, todo.pop())):
                if nxt == node["$ref"]:
                    raise refuse(f"{at}.$ref", f"{nxt!r} refers back to itself before any object or array opens "
                                 "(a $ref cycle): no answer can be written")
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)


def _heads(s: Any) -> Iterator[str]:
    """The ``$ref`` s a node leads to before writing anything (its own, and its alternatives')."""
    if not isinstance(s, dict):
        return
    if isinstance(s.get("$ref"), str):
        yield s["$ref"]
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(s.get(key), list):
            for sub in s[key]:
                yield from _heads(sub)
