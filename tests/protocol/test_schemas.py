"""JSON schemas: every valid one accepted on every path that takes one, the invalid and unsafe ones
(a nested nullable quantifier, a blown-up repetition, a dangling $ref, a cap) refused by name (a 400
naming the place and why); and a fuzz that no schema gets anything but a named refusal or a pass."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.limits import MAX_SCHEMA_BYTES, MAX_SCHEMA_ENUM_VALUES, MAX_TOOLS
from qfnb.protocol.schema.accepted import check_schema
from qfnb.protocol.schema.patterns import pattern_hazard, pattern_problem
from qfnb.protocol.wires.anthropic import messages as anthropic
from qfnb.protocol.wires.openai.requests import OpenAIChatRequest, V2ChatRequest
from qfnb.protocol.wires.qianfan.inference import ChatRequest, parse_request
from qfnb.protocol.wires.responses import request as responses

WHERE = "response_format.json_schema.schema"


def _obj(prop: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"x": prop}, "required": ["x"]}


NESTED_NULLABLE = "^([a-z]{0,40}){0,40}$"  # the probe's pattern: 56.8 s for 10 tokens at K=12

#: what stays refused: invalid schemas and unsafe ones (schema, the refused place under WHERE, a word of the reason)
REFUSED = [
    (_obj({"type": "string", "pattern": NESTED_NULLABLE}), ".properties.x.pattern", "nested nullable"),
    (_obj({"type": "string", "pattern": "^([a-z]{0,12}){0,12}$"}), ".properties.x.pattern", "nested nullable"),
    (_obj({"type": "string", "pattern": "^((ab){10}){101}$"}), ".properties.x.pattern",
     "MAX_PATTERN_REPEAT_PRODUCT"),
    (_obj({"type": "string", "pattern": "^[a-z]{5000}$"}), ".properties.x.pattern", "MAX_SCHEMA_REPEAT"),
    (_obj({"type": "string", "pattern": "^[a-"}), ".properties.x.pattern", "not a regular expression"),
    ({"type": "object", "patternProperties": {"^(a*)*$": {"type": "string"}}}, ".patternProperties",
     "nested nullable"),
    (_obj({"type": "number", "minimum": "0"}), ".properties.x.minimum", "not a valid JSON Schema"),
    (_obj({"type": "number", "exclusiveMinimum": True}), ".properties.x.exclusiveMinimum",
     "not a valid JSON Schema"),
    (_obj({"type": "array", "items": [{"type": "string"}]}), ".properties.x.items", "not a valid JSON Schema"),
    (_obj({"type": "strung"}), ".properties.x.type", "not a valid JSON Schema"),
    ({"$ref": "#/$defs/missing"}, ".$ref", "dangling"),
    ({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}},
     ".$ref", "cycle"),
    ({"$ref": "https://example.com/s.json"}, ".$ref", "inside the schema"),
    (_obj({"type": "string", "enum": [f"v{i:05d}" for i in range(20_000)]}), ".properties.x.enum",
     "MAX_SCHEMA_ENUM_VALUES"),
    # answers are checked with RE2 (linear time), which reads no lookaround or backreference
    (_obj({"type": "string", "pattern": r"^(?=a)[a-z]+$"}), ".properties.x.pattern", "RE2"),
    (_obj({"type": "string", "pattern": r"^(a)\1$"}), ".properties.x.pattern", "RE2"),
    ({"type": "object", "patternProperties": {"^(?!x)": {"type": "string"}}}, ".patternProperties", "RE2"),
    # jsonschema's own unevaluatedProperties runs patternProperties with Python's re
    ({"type": "object", "patternProperties": {"^a": {"type": "string"}}, "unevaluatedProperties": False},
     ".unevaluatedProperties", "patternProperties"),
    ({"allOf": [{"patternProperties": {"^a": True}}], "unevaluatedProperties": False},
     ".unevaluatedProperties", "patternProperties"),
]


@pytest.mark.parametrize(("schema", "place", "why"), REFUSED, ids=[f"{p}:{w}" for _, p, w in REFUSED])
def test_invalid_and_unsafe_schemas_are_refused_by_name(schema: dict[str, Any], place: str, why: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        check_schema(schema, WHERE)
    assert refused.value.field == WHERE + place, str(refused.value)
    assert why in str(refused.value)


class Color(BaseModel):
    name: Literal["red", "green"]
    shade: int = Field(ge=0, le=255)


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Order(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}-[0-9]{4}$")
    note: str | None = Field(default=None, max_length=40)
    tags: list[str] = Field(max_length=5)
    color: Color
    pet: Cat | Dog = Field(discriminator="kind")
    due: str = Field(json_schema_extra={"format": "date"})


ENFORCED = [
    Order.model_json_schema(),
    _obj({"type": "string", "pattern": r"^[0-9]{3}-[0-9]{4}$"}),
    _obj({"type": "string", "pattern": r"^(\+|00)[1-9][0-9]{6,12}$"}),
    _obj({"type": "integer", "exclusiveMinimum": 0, "maximum": 10}),
    _obj({"type": ["string", "null"], "maxLength": 8}),
    _obj({"type": "string", "format": "date-time"}),
    _obj({"enum": ["a", "b", None]}),
    {"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}}}}},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
               {"type": "object", "properties": {"b": {"type": "string"}}}]},
    _obj({"type": "string", "format": "password"}),  # not a standard format: an annotation
]
#: valid schemas the grammar enforces only in part (refused before; the answer's check covers the rest)
CHECKED_ON_THE_ANSWER = [
    _obj({"type": "number", "minimum": 0, "maximum": 1}),  # pydantic's Field(ge=0, le=1) on a float
    _obj({"type": "number", "exclusiveMinimum": -0.5, "maximum": 0.5}),
    _obj({"type": "string", "pattern": r"^\d{3}-\d{4}$"}),
    _obj({"type": "string", "pattern": r"^(\d+)+$"}),  # the probe's: RE2 checks it in linear time
    _obj({"type": "string", "pattern": r"^[a-z]+"}),
    _obj({"type": "string", "format": "email"}),
    _obj({"type": "string", "minLength": 100_000}),
    {"type": "object", "required": ["a"]},
    {"type": "object", "properties": {"a": {"type": "integer"}}, "minProperties": 1},
    _obj({"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
    _obj({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 2}]}),
    _obj({"$ref": "#/$defs/s", "maxLength": 3}) | {"$defs": {"s": {"type": "string"}}},
    _obj({"type": "string", "enum": ["a", 1]}),
    _obj({"minimum": 3}),
    _obj({"type": "integer", "minimum": 5, "maximum": 4, "multipleOf": 3}),
    _obj({"type": "array", "items": True}),
    _obj({"allOf": [{"type": "string"}, {"minLength": 2}]}),
    _obj({"not": {"type": "string"}}),
    _obj({"if": {"type": "string"}, "then": {"minLength": 2}}),
]


@pytest.mark.parametrize("schema", ENFORCED + CHECKED_ON_THE_ANSWER, ids=range(len(ENFORCED + CHECKED_ON_THE_ANSWER)))
def test_every_valid_schema_passes(schema: dict[str, Any]) -> None:
    check_schema(schema, WHERE)
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_the_caps_hold_on_bytes_depth_and_tools() -> None:
    big = _obj({"type": "string", "enum": ["x" * 200 + str(i) for i in range(MAX_SCHEMA_ENUM_VALUES)]})
    with pytest.raises(ProtocolError, match="MAX_SCHEMA_BYTES"):
        check_schema(big, WHERE)
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = _obj(deep)
    with pytest.raises(ProtocolError, match="MAX_SCHEMA_DEPTH"):
        check_schema(deep, WHERE)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    tools = [{**tool, "function": {**tool["function"], "name": f"f{i}"}} for i in range(MAX_TOOLS + 1)]
    with pytest.raises(ProtocolError, match="MAX_TOOLS") as refused:
        parse_request(OpenAIChatRequest, {"messages": [{"role": "user", "content": "hi"}], "tools": tools})
    assert refused.value.field == "tools"
    v1 = [t["function"] for t in tools]
    with pytest.raises(ProtocolError, match="MAX_TOOLS"):
        parse_request(ChatRequest, {"messages": [{"role": "user", "content": "hi"}], "functions": v1})
    half = {"type": "object", "properties": {"x": {"type": "string", "description": "d" * (MAX_SCHEMA_BYTES // 2)}}}
    with pytest.raises(ProtocolError, match="in all") as refused:  # each fits, together they do not
        parse_request(OpenAIChatRequest, {"messages": [{"role": "user", "content": "hi"}],
                                          "tools": [{**tool, "function": {"name": "f", "parameters": half}}],
                                          "response_format": {"type": "json_schema", "json_schema": {
                                              "name": "a", "schema": half}}})
    assert refused.value.field == "response_format"


BAD = {"type": "object", "properties": {"when": {"type": "string", "pattern": NESTED_NULLABLE}}}
USER = [{"role": "user", "content": "hi"}]


def _fmt(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}


@pytest.mark.parametrize(("check", "field"), [
    (lambda: parse_request(ChatRequest, {"messages": USER, "response_format": _fmt(BAD)}),
     "response_format.json_schema.schema.properties.when.pattern"),
    (lambda: parse_request(V2ChatRequest, {"model": "m", "messages": USER, "response_format": _fmt(BAD)}),
     "response_format.json_schema.schema.properties.when.pattern"),
    (lambda: parse_request(OpenAIChatRequest, {"messages": USER, "tools": [{"type": "function", "function": {
        "name": "f", "strict": True, "parameters": BAD}}]}), "tools[0].function.parameters.properties.when.pattern"),
    (lambda: parse_request(ChatRequest, {"messages": USER, "functions": [{"name": "f", "parameters": BAD}]}),
     "functions[0].parameters.properties.when.pattern"),
    (lambda: responses.check_request({"model": "m", "input": "hi", "text": {"format": {
        "type": "json_schema", "name": "a", "schema": BAD}}}), "text.format.schema.properties.when.pattern"),
    (lambda: responses.check_request({"model": "m", "input": "hi", "tools": [{
        "type": "function", "name": "f", "parameters": BAD}]}), "tools[0].parameters.properties.when.pattern"),
    (lambda: anthropic.check_request({"model": "m", "max_tokens": 5, "messages": USER, "output_config": {
        "format": {"type": "json_schema", "schema": BAD}}}), "output_config.format.schema.properties.when.pattern"),
    (lambda: anthropic.check_request({"model": "m", "max_tokens": 5, "messages": USER, "tools": [{
        "name": "f", "input_schema": BAD, "strict": True}]}), "tools[0].input_schema.properties.when.pattern"),
], ids=["v1", "v2", "openai-tools", "v1-functions", "responses-format", "responses-tools", "anthropic-format",
        "anthropic-tools"])
def test_every_path_that_takes_a_schema_refuses_by_name(check: Any, field: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        check()
    assert refused.value.field == field
    assert "nested nullable" in str(refused.value)


@pytest.mark.parametrize("k", [12, 40])
def test_every_path_takes_number_bounds_and_refuses_the_probes_pattern(k: int) -> None:
    bounded = {"type": "object", "properties": {"confidence": {"type": "number", "minimum": 0, "maximum": 1}}}
    parse_request(OpenAIChatRequest, {"model": "m", "messages": USER, "response_format": _fmt(bounded)})
    parse_request(OpenAIChatRequest, {"model": "m", "messages": USER, "tools": [{"type": "function", "function": {
        "name": "f", "strict": True, "parameters": bounded}}]})
    responses.check_request({"model": "m", "input": "hi", "text": {"format": {
        "type": "json_schema", "name": "a", "schema": bounded}}})
    anthropic.check_request({"model": "m", "max_tokens": 5, "messages": USER, "output_config": {
        "format": {"type": "json_schema", "schema": bounded}}})
    probe = {"type": "object", "properties": {"s": {"type": "string", "pattern": f"^([a-z]{{0,{k}}}){{0,{k}}}$"}}}
    for check in (lambda: parse_request(OpenAIChatRequest, {"model": "m", "messages": USER,
                                                            "response_format": _fmt(probe)}),
                  lambda: responses.check_request({"model": "m", "input": "hi", "text": {"format": {
                      "type": "json_schema", "name": "a", "schema": probe}}}),
                  lambda: anthropic.check_request({"model": "m", "max_tokens": 5, "messages": USER, "output_config": {
                      "format": {"type": "json_schema", "schema": probe}}})):
        with pytest.raises(ProtocolError, match="nested nullable"):
            check()


@pytest.mark.parametrize(("pattern", "safe"), [
    (NESTED_NULLABLE, False), ("^([a-z]{0,12}){0,12}$", False), ("^(a*)*$", False), ("^(a|)+$", False),
    ("^(?:x?y?)*$", False), ("^((ab){10}){101}$", False), ("^((a|b)(c|d)){1001}$", False),
    (r"^[A-Z]{2}-\d{4}$", True), ("^(ab)+$", True), (r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", True),
    (r"^\d{4}-\d{2}-\d{2}$", True), ("^(a{0,3}b){0,40}$", True), (r"^(\+|00)[1-9][0-9]{6,12}$", True),
    ("^((ab){10}){100}$", True),
])
def test_the_pattern_walker_refuses_only_blowups(pattern: str, safe: bool) -> None:
    assert (pattern_hazard(pattern) is None) == safe, pattern_hazard(pattern)


@pytest.mark.parametrize(("pattern", "ok"), [
    (r"^[A-Z]{2}[0-9]{2}$", True), (r"^(ab|cd)+$", True), (r"^\.\.$", True), (r"^a(\.)*$", True),
    (r"^[^\"\\\x00-\x1F]+$", True), (r"^\x41+$", True), (r"^[a-z]+?$", False), (r"^\bab$", False),
    (r"^(?P<n>a)$", False), (r"^a{2,1}$", False), (r"^[a-", False), (r"^\\$", False), (r'^a"b$', False),
    (r"^[^a]$", False), (r"^a\tb$", False),
])
def test_patterns_are_checked_as_the_engine_reads_them(pattern: str, ok: bool) -> None:
    assert (pattern_problem(pattern) is None) == ok, pattern_problem(pattern)


# ---- the fuzz: any schema gets a pass or a named refusal, nothing else --------------------------------

_leaf = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])}),
    st.fixed_dictionaries({"type": st.just("string")}, optional={
        "minLength": st.integers(0, 1500), "maxLength": st.integers(0, 1500),
        "format": st.sampled_from(["date", "email", "uuid", "uri", "date-time", "hostname", "x-custom"]),
        "pattern": st.sampled_from([r"^[a-z]+$", r"^\d+$", r"^(?i)a$", r"^[0-9]{2,4}$", "^.*$", "abc",
                                    r"^(a|b)c?$", "^[", r"^\w{3}$", r"^[A-F0-9]{8}$"])}),
    st.fixed_dictionaries({"type": st.sampled_from(["integer", "number"])}, optional={
        "minimum": st.one_of(st.integers(-10**17, 10**17), st.floats(-1e3, 1e3), st.booleans()),
        "maximum": st.integers(-100, 100), "exclusiveMinimum": st.integers(-5, 5), "multipleOf": st.just(2)}),
    st.fixed_dictionaries({"enum": st.lists(st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=4)},
                          optional={"type": st.sampled_from(["string", "integer"])}),
    st.fixed_dictionaries({"const": st.text(max_size=4)}),
    st.fixed_dictionaries({"$ref": st.sampled_from(["#/$defs/a", "#/$defs/zz", "#", "other.json", "#/$defs/a/x"])}),
    st.just(True), st.just({}), st.just({"not": {"type": "string"}}),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.text("abcxyz", min_size=1, max_size=3)
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(names, children, max_size=3)},
                              optional={"required": st.lists(names, max_size=3),
                                        "additionalProperties": st.one_of(st.booleans(), children),
                                        "minProperties": st.just(1)}),
        st.fixed_dictionaries({"type": st.just("array"), "items": children},
                              optional={"minItems": st.integers(0, 3), "maxItems": st.integers(0, 2000),
                                        "uniqueItems": st.booleans()}),
        st.fixed_dictionaries({"type": st.just("array"), "prefixItems": st.lists(children, min_size=1, max_size=3)}),
        st.builds(lambda key, alts: {key: alts}, st.sampled_from(["anyOf", "oneOf", "allOf"]),
                  st.lists(children, max_size=3)),
        st.fixed_dictionaries({"type": st.lists(st.sampled_from(["string", "integer", "null", "number"]),
                                                min_size=1, max_size=3)}, optional={"maxLength": st.integers(0, 9),
                                                                                    "maximum": st.integers(0, 9)}),
    )


SCHEMAS = st.builds(lambda body, a: {**body, "$defs": {"a": a}} if isinstance(body, dict) else body,
                    st.recursive(_leaf, _extend, max_leaves=12), st.recursive(_leaf, _extend, max_leaves=4))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMAS)
def test_fuzz_every_schema_passes_or_is_refused_by_name(schema: Any) -> None:
    try:
        check_schema(schema, WHERE)
    except ProtocolError as exc:
        assert exc.field == WHERE or exc.field.startswith((WHERE + ".", WHERE + "[")), exc.field
        return
    # what passes is a valid JSON schema, and small enough to be sent
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert len(json.dumps(schema)) <= MAX_SCHEMA_BYTES
