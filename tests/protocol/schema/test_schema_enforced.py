"""The part of a schema the engine's grammar enforces (:func:`enforced_part`): what it keeps, what it
leaves to the answer's check, and that it never admits less than the whole schema does."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from qfnb.protocol.schema.enforced import enforced_part

SENTIMENT = {"type": "object", "required": ["label", "confidence"], "properties": {
    "label": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}


def test_number_bounds_are_kept_and_nothing_is_left_to_the_check() -> None:
    part = enforced_part(SENTIMENT)
    assert part.exact and part.number_bounds
    assert part.schema["properties"]["confidence"] == {"type": "number", "minimum": 0, "maximum": 1}


def test_integer_bounds_fold_into_one_whole_bound_a_side() -> None:
    part = enforced_part({"type": "integer", "exclusiveMinimum": 0.5, "minimum": 0, "maximum": 9.5})
    assert part.schema == {"type": "integer", "minimum": 1, "maximum": 9} and part.exact


@pytest.mark.parametrize(("schema", "dropped"), [
    ({"type": "integer", "multipleOf": 5}, ["#/multipleOf"]),
    ({"type": "string", "format": "email", "minLength": 3}, ["#/format"]),
    ({"type": "string", "pattern": r"^\d{3}$", "maxLength": 3}, ["#/pattern"]),
    ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, ["#/oneOf"]),
    ({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}, ["#/properties/a/uniqueItems"]),
    ({"type": ["string", "null"], "maxLength": 8}, []),  # maxLength says nothing about null
    ({"type": "object"}, []),
])
def test_what_the_grammar_cannot_enforce_is_named_for_the_check(schema: dict[str, Any], dropped: list[str]) -> None:
    assert enforced_part(schema).dropped == dropped


@pytest.mark.parametrize(("schema", "value"), [
    ({"type": "integer", "multipleOf": 5}, 10),
    ({"type": "string", "pattern": r"^\d{3}$"}, "123"),
    ({"allOf": [{"type": "string"}, {"maxLength": 3}]}, "abc"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/n"}}, "$defs": {"n": {"type": "number",
                                                                                 "exclusiveMaximum": 2}}}, {"a": 1.5}),
    ({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, ["a", 1, 2]),
    ({"not": {"type": "string"}}, 3),
])
def test_the_enforced_part_admits_every_answer_the_schema_does(schema: dict[str, Any], value: Any) -> None:
    jsonschema.validate(value, schema)
    jsonschema.validate(value, enforced_part(schema).schema)
