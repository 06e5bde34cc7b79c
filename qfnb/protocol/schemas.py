"""JSON schemas for grammar-constrained answers: the caps, and the subset the engine's grammar enforces.

A schema constrains decoding through llama.cpp's schema-to-grammar converter (the one in the
llama.cpp that ``scripts/build_llama_server.sh`` builds). That converter drops what it cannot
express: a keyword it ignores, a ``pattern`` it cannot translate ("accepting any string"), a
``format`` it does not know. An answer would then look enforced and not be. So every schema, on
every route and in the client before sending, is checked here: a keyword the grammar would not
enforce, a ``$ref`` that cannot be resolved and a schema past a cap are refused, each with one
:class:`ProtocolError` naming the place and the keyword (``docs/local-platform.md`` lists them).

Pure (no I/O). Beside it: the caps (:mod:`.limits`), node kinds (:mod:`.schema_kinds`), patterns
(:mod:`.schema_patterns`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from .errors import ProtocolError
from .limits import MAX_SCHEMA_BOUND, MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, MAX_SCHEMA_ENUM_VALUES, MAX_SCHEMA_REPEAT
from .schema_kinds import ENFORCED_FORMATS, TYPES, answer_types, node_kind, told_apart
from .schema_patterns import pattern_problem

#: JSON-schema keywords the grammar cannot enforce anywhere
UNSUPPORTED_SCHEMA_KEYWORDS = ("not", "if", "then", "else", "patternProperties", "dependentRequired",
                               "dependentSchemas", "uniqueItems", "multipleOf", "contains", "minContains",
                               "maxContains", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
                               "minProperties", "maxProperties", "dependencies", "additionalItems",
                               "$dynamicRef", "$recursiveRef", "$anchor", "$dynamicAnchor")
#: the keywords that constrain an answer (JSON Schema 2020-12's validation and applicator vocabularies);
#: any other key (title, description, default, examples, ...) is an annotation and constrains nothing
CONSTRAINTS = frozenset({"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                         "minLength", "maxLength", "pattern", "format", "minItems", "maxItems", "required",
                         "properties", "additionalProperties", "items", "prefixItems", "allOf", "anyOf", "oneOf",
                         "$ref", *UNSUPPORTED_SCHEMA_KEYWORDS})
#: the formats JSON Schema 2020-12 defines (a format outside this list is an annotation, as in ``jsonschema``)
STANDARD_FORMATS = ("date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
                    "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
                    "json-pointer", "relative-json-pointer", "regex")
_KEYWORD_TYPES = {"minimum": ("integer", "number"), "maximum": ("integer", "number"),
                  "exclusiveMinimum": ("integer", "number"), "exclusiveMaximum": ("integer", "number"),
                  "minLength": ("string",), "maxLength": ("string",), "pattern": ("string",), "format": ("string",),
                  "minItems": ("array",), "maxItems": ("array",), "items": ("array",), "prefixItems": ("array",),
                  "required": ("object",), "properties": ("object",), "additionalProperties": ("object",)}
_HINT = "; remove it (or check it after parsing the answer)"


def refuse(where: str, why: str) -> ProtocolError:
    return ProtocolError(where, why)


def check_schema(schema: Any, where: str) -> None:
    """``schema`` is within the caps and every constraint in it is one the grammar enforces;
    otherwise one :class:`ProtocolError` names the place, the keyword and why."""
    if not isinstance(schema, dict):
        raise refuse(where, "must be a JSON schema object")
    _Walk(schema, where).run()
    size = len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_SCHEMA_BYTES:
        raise refuse(where, f"is {size:,} bytes of JSON; a schema is capped at {MAX_SCHEMA_BYTES:,} bytes "
                     "(MAX_SCHEMA_BYTES): its grammar would hold the engine for every other request")


def check_schema_total(schemas: Iterable[Any], where: str) -> None:
    """The schemas of one request (its answer format and every tool's parameters) total at most
    :data:`MAX_SCHEMA_BYTES` bytes: a required call's grammar joins all of them."""
    size = sum(len(json.dumps(s, ensure_ascii=False, separators=(",", ":")).encode()) for s in schemas
               if s is not None)
    if size > MAX_SCHEMA_BYTES:
        raise refuse(where, f"the request's schemas are {size:,} bytes of JSON in all; they are capped at "
                     f"{MAX_SCHEMA_BYTES:,} bytes (MAX_SCHEMA_BYTES)")


class _Walk:
    """One pass over a schema, as the grammar converter reads it (which keyword wins where)."""

    def __init__(self, root: dict[str, Any], where: str) -> None:
        self.root, self.where = root, where
        self.enum_values = 0
        self.seen: set[str] = set()

    def run(self) -> None:
        self.node(self.root, self.where, 0, frozenset())
        for key in ("$defs", "definitions"):  # unreferenced definitions too: the engine reads them
            defs = self.root.get(key)
            if isinstance(defs, dict):
                for name, sub in defs.items():
                    ref = f"#/{key}/{name}"
                    if ref not in self.seen:
                        self.seen.add(ref)
                        self.node(sub, f"{self.where}.{key}.{name}", 1, frozenset())

    # ---- one node -------------------------------------------------------------------------------

    def node(self, s: Any, at: str, depth: int, refs: frozenset[str]) -> None:
        """``refs``: the ``$ref`` s followed since the answer last opened an object or array (a
        cycle among them would be a grammar rule that refers to itself before writing anything)."""
        _check_node(s, at, depth)
        if "$ref" in s:
            self._only(s, at, "$ref")
            return self._ref(s["$ref"], at, depth, refs)
        if "oneOf" in s or "anyOf" in s:
            return self._alternatives(s, at, depth, refs)
        kind = s.get("type")
        if isinstance(kind, list):
            if not kind or not all(k in TYPES for k in kind) or len(set(kind)) != len(kind):
                raise refuse(f"{at}.type", f"must be one of {', '.join(TYPES)} or a list of distinct ones")
            for k in kind:
                self.typed({**s, "type": k}, at, depth, refs)
            return None
        if kind is not None and kind not in TYPES:
            raise refuse(f"{at}.type", f"must be one of {', '.join(TYPES)}, got {kind!r:.40}")
        return self.typed(s, at, depth, refs)

    def _alternatives(self, s: dict[str, Any], at: str, depth: int, refs: frozenset[str]) -> None:
        key = "oneOf" if "oneOf" in s else "anyOf"
        self._only(s, at, key)
        alts = self._list(s[key], f"{at}.{key}")
        for i, alt in enumerate(alts):
            self.node(alt, f"{at}.{key}[{i}]", depth + 1, refs)
        if key == "oneOf":
            self._disjoint(alts, f"{at}.oneOf")

    def typed(self, s: dict[str, Any], at: str, depth: int, refs: frozenset[str]) -> None:
        """A node without ``$ref``/``anyOf``/``oneOf`` and with one ``type`` (or none)."""
        if "const" in s or "enum" in s:
            return self._values(s, at)
        kind = node_kind(s)
        if kind == "allOf":
            return self._all_of(s, at, depth, refs)
        if kind == "object":
            return self._object(s, at, depth)
        if kind == "array":
            return self._array(s, at, depth)
        if kind == "string":
            return self._string(s, at)
        if kind == "integer":
            return self._integer(s, at)
        if kind == "any":
            for key in s:
                if key in CONSTRAINTS:
                    raise refuse(f"{at}.{key}", f"is not enforced on a schema without a \"type\" (the engine "
                                 f"reads it as any value); add the type it applies to{_HINT}")
            return None
        number = " (the grammar bounds integers only; use \"type\": \"integer\" or an enum)" if kind == "number" else ""
        self._ignored(s, at, kind, {"type"}, f"on type {kind!r}{number}")
        return None

    # ---- the kinds --------------------------------------------------------------------------------

    def _object(self, s: dict[str, Any], at: str, depth: int) -> None:
        props = s.get("properties", {})
        if not isinstance(props, dict):
            raise refuse(f"{at}.properties", "must be an object mapping names to schemas")
        required = s.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise refuse(f"{at}.required", "must be a list of property names")
        extra = s.get("additionalProperties")
        for name in required:
            if name not in props:
                raise refuse(f"{at}.required", f"names {name!r}, which is not in properties: the grammar enforces "
                             "required only for listed properties; add it to properties")
        if len(set(required)) != len(required):
            raise refuse(f"{at}.required", "names a property twice")
        for name, sub in props.items():
            self.node(sub, f"{at}.properties.{name}", depth + 1, frozenset())
        if extra is not None and not isinstance(extra, bool):
            self.node(extra, f"{at}.additionalProperties", depth + 1, frozenset())
        self._ignored(s, at, "object", {"type", "properties", "required", "additionalProperties"}, "on an object")

    def _all_of(self, s: dict[str, Any], at: str, depth: int, refs: frozenset[str]) -> None:
        """The converter merges allOf's objects (their properties) or intersects its enums;
        anything else in it would be dropped."""
        parts = self._list(s["allOf"], f"{at}.allOf")
        resolved = []
        for i, part in enumerate(parts):
            self.node(part, f"{at}.allOf[{i}]", depth + 1, refs)
            target = self._target(part, f"{at}.allOf[{i}]")
            resolved.append(target)
        if all("enum" in t for t in resolved):
            common = [v for v in resolved[0]["enum"] if all(v in t["enum"] for t in resolved[1:])]
            if not common:
                raise refuse(f"{at}.allOf", "its enums have no value in common")
        else:
            names: set[str] = set()
            for i, t in enumerate(resolved):
                props = t.get("properties")
                if not isinstance(props, dict) or t.get("type", "object") != "object" or "anyOf" in t or "oneOf" in t:
                    raise refuse(f"{at}.allOf[{i}]", "allOf is enforced only over objects with properties (merged) "
                                 "or over enums")
                twice = names & set(props)
                if twice:
                    raise refuse(f"{at}.allOf[{i}]", f"property {sorted(twice)[0]!r} is in two parts of allOf")
                names |= set(props)
        self._ignored(s, at, "object", {"type", "allOf"}, "beside allOf")

    def _array(self, s: dict[str, Any], at: str, depth: int) -> None:
        items = s.get("items")
        if isinstance(items, list):
            raise refuse(f"{at}.items", "a list of item schemas is draft 4's form; use prefixItems")
        if "items" in s and "prefixItems" in s:
            raise refuse(f"{at}.prefixItems", "is not enforced beside items (the engine reads items only)")
        lo, hi = self._count(s, at, "minItems"), self._count(s, at, "maxItems")
        if "prefixItems" in s:
            prefix = self._list(s["prefixItems"], f"{at}.prefixItems")
            n = len(prefix)  # the grammar writes exactly n items
            if (lo is not None and lo > n) or (hi is not None and hi < n):
                raise refuse(f"{at}.minItems" if lo is not None and lo > n else f"{at}.maxItems",
                             f"conflicts with prefixItems: the grammar writes exactly its {n} items")
            for i, sub in enumerate(prefix):
                self.node(sub, f"{at}.prefixItems[{i}]", depth + 1, frozenset())
        elif items is not None and not isinstance(items, bool):
            self.node(items, f"{at}.items", depth + 1, frozenset())
        elif isinstance(items, bool):
            raise refuse(f"{at}.items", "a boolean schema is not supported here; write {} for any value")
        self._ignored(s, at, "array", {"type", "items", "prefixItems", "minItems", "maxItems"}, "on an array")

    def _string(self, s: dict[str, Any], at: str) -> None:
        consumed = {"type"}
        if "pattern" in s:
            pattern = s["pattern"]
            if not isinstance(pattern, str):
                raise refuse(f"{at}.pattern", "must be a string")
            problem = pattern_problem(pattern)
            if problem:
                raise refuse(f"{at}.pattern", f"{pattern!r:.80} cannot be enforced by the engine's grammar: "
                             f"{problem}{_HINT}")
            consumed.add("pattern")
            beside = "beside pattern (the engine reads the pattern only)"
        else:
            fmt = s.get("format")
            if fmt is not None and not isinstance(fmt, str):
                raise refuse(f"{at}.format", "must be a string")
            if fmt in ENFORCED_FORMATS:
                consumed.add("format")
                beside = f"beside format {fmt!r} (the engine reads the format only)"
            else:
                if fmt in STANDARD_FORMATS:
                    raise refuse(f"{at}.format", f"{fmt!r} cannot be enforced by the engine's grammar (it writes "
                                 f"{', '.join(ENFORCED_FORMATS)}); use a pattern it can enforce, or remove it "
                                 "and check the answer")
                consumed |= {"format", "minLength", "maxLength"}  # an unknown format is an annotation
                lo, hi = self._count(s, at, "minLength"), self._count(s, at, "maxLength")
                if lo is not None and hi is not None and lo > hi:
                    raise refuse(f"{at}.minLength", f"is more than maxLength ({lo} > {hi}): no string fits")
                beside = "on a string"
        self._ignored(s, at, "string", consumed, beside)

    def _integer(self, s: dict[str, Any], at: str) -> None:
        bounds: dict[str, float] = {}
        for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            if key in s:
                value = s[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > MAX_SCHEMA_BOUND:
                    raise refuse(f"{at}.{key}", f"must be a number within ±{MAX_SCHEMA_BOUND:,} "
                                 "(MAX_SCHEMA_BOUND; draft 4's boolean form is not supported)")
                bounds[key] = value
        for kept, dropped in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            if kept in bounds and dropped in bounds:
                raise refuse(f"{at}.{dropped}", f"is not enforced beside {kept} (the engine reads {kept} only); "
                             "give one of them")
        lo = math.ceil(bounds["minimum"]) if "minimum" in bounds else (
            math.floor(bounds["exclusiveMinimum"]) + 1 if "exclusiveMinimum" in bounds else None)
        hi = math.floor(bounds["maximum"]) if "maximum" in bounds else (
            math.ceil(bounds["exclusiveMaximum"]) - 1 if "exclusiveMaximum" in bounds else None)
        if lo is not None and hi is not None and lo > hi:
            raise refuse(f"{at}.minimum" if "minimum" in bounds else f"{at}.exclusiveMinimum",
                         "leaves no integer between the bounds")
        self._ignored(s, at, "integer", {"type", *bounds}, "on an integer")

    def _values(self, s: dict[str, Any], at: str) -> None:
        """``const``/``enum``: the grammar writes one of the values and reads nothing else, so
        every value must satisfy the keywords beside it."""
        if "const" in s:
            values, key = [s["const"]], "const"
            if "enum" in s:
                raise refuse(f"{at}.enum", "is not enforced beside const (the engine reads const only)")
        else:
            values, key = s["enum"], "enum"
            if not isinstance(values, list) or not values:
                raise refuse(f"{at}.enum", "must be a non-empty list")
        self.enum_values += len(values)
        if self.enum_values > MAX_SCHEMA_ENUM_VALUES:
            raise refuse(f"{at}.{key}", f"brings the schema's enum and const values past {MAX_SCHEMA_ENUM_VALUES:,} "
                         "(MAX_SCHEMA_ENUM_VALUES): their grammar would hold the engine for every other request")
        beside = {k: v for k, v in s.items() if k in CONSTRAINTS and k not in ("const", "enum")}
        if beside:
            from jsonschema import Draft202012Validator

            # 2020-12's formats (a bare FormatChecker() checks "time" as draft 3's, with no offset)
            check = Draft202012Validator(beside, format_checker=Draft202012Validator.FORMAT_CHECKER)
            for v in values:
                errors = sorted(check.iter_errors(v), key=lambda e: str(e.validator))
                if errors:
                    raise refuse(f"{at}.{errors[0].validator}", f"the {key} value {json.dumps(v)[:40]} fails it: the "
                                 f"engine writes the {key} values only, so keep just values that pass")

    # ---- $ref -------------------------------------------------------------------------------------

    def _ref(self, ref: Any, at: str, depth: int, refs: frozenset[str]) -> None:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise refuse(f"{at}.$ref", "only references inside the schema (#/...) are supported")
        if ref in refs:
            raise refuse(f"{at}.$ref", f"{ref!r} refers back to itself before any object or array opens (a $ref "
                         "cycle): no answer can be written")
        target = self._resolve(ref, at)
        if ref in self.seen:
            return
        self.seen.add(ref)
        self.node(target, self.where + "".join(f".{part}" for part in ref[2:].split("/")), depth + 1, refs | {ref})

    def _resolve(self, ref: str, at: str) -> Any:
        if "~" in ref or "%" in ref:
            raise refuse(f"{at}.$ref", f"{ref!r}: escaped pointers (~0, ~1, %xx) are not supported")
        target: Any = self.root
        for part in ref[2:].split("/"):
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise refuse(f"{at}.$ref", f"{ref!r} points at nothing in the schema (a dangling reference)")
        return target

    def _target(self, s: Any, at: str) -> dict[str, Any]:
        """``s`` with its ``$ref`` s followed."""
        hops = 0
        while isinstance(s, dict) and "$ref" in s and hops <= MAX_SCHEMA_DEPTH:
            s, hops = self._resolve(s["$ref"], at), hops + 1
        return s if isinstance(s, dict) else {}

    # ---- helpers ----------------------------------------------------------------------------------

    def _only(self, s: dict[str, Any], at: str, key: str) -> None:
        for other in s:
            if other in CONSTRAINTS and other != key:
                raise refuse(f"{at}.{other}", f"is not enforced beside {key} (the engine reads {key} only); move it "
                             f"into the referenced or alternative schemas{_HINT}")

    def _ignored(self, s: dict[str, Any], at: str, kind: str, consumed: set[str], beside: str) -> None:
        for key in s:
            if key in CONSTRAINTS and key not in consumed and kind in _KEYWORD_TYPES.get(key, (kind,)):
                raise refuse(f"{at}.{key}", f"is not enforced {beside}{_HINT}")

    def _count(self, s: dict[str, Any], at: str, key: str) -> int | None:
        if key not in s:
            return None
        value = s[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise refuse(f"{at}.{key}", "must be a whole number, at least 0")
        if value > MAX_SCHEMA_REPEAT:
            raise refuse(f"{at}.{key}", f"is {value:,}; it is capped at {MAX_SCHEMA_REPEAT:,} (MAX_SCHEMA_REPEAT): the "
                         "grammar repeats its rule that many times")
        return value

    @staticmethod
    def _list(value: Any, at: str) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise refuse(at, "must be a non-empty list of schemas")
        return value

    def _disjoint(self, alts: list[Any], at: str) -> None:
        """oneOf is written as anyOf: enforced only when no answer can match two alternatives
        (their types differ, or a required property tells them apart by its const/enum values)."""
        targets = [self._target(a, at) for a in alts]
        kinds = [answer_types(t) for t in targets]
        for i in range(len(targets)):
            for j in range(i):
                if kinds[i] & kinds[j] and not told_apart(targets[i], targets[j]):
                    raise refuse(at, f"alternatives {j} and {i} may both match an answer, and the grammar does not "
                                 "enforce 'exactly one'; use anyOf, or tell them apart by a required property's "
                                 "const")


def _check_node(s: Any, at: str, depth: int) -> None:
    """A schema object within the depth cap, with no keyword the grammar never enforces."""
    if depth > MAX_SCHEMA_DEPTH:
        raise refuse(at, f"nests deeper than {MAX_SCHEMA_DEPTH} levels (MAX_SCHEMA_DEPTH)")
    if isinstance(s, bool):
        raise refuse(at, f"a boolean schema ({str(s).lower()}) is not supported here; write {{}} for any value")
    if not isinstance(s, dict):
        raise refuse(at, "must be a JSON schema object")
    for key in s:
        if key in UNSUPPORTED_SCHEMA_KEYWORDS:
            raise refuse(f"{at}.{key}", f"the JSON-schema keyword {key!r} cannot be enforced by the engine's "
                         f"grammar{_HINT}")

