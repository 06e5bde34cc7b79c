"""The text a JSON schema forces next (:mod:`bench.jump_forward`): what llama.cpp's
converter's grammar leaves one choice for (key names, commas between required keys, the rest of a
lone enum/const value), nothing where the model chooses (whitespace, values, which optional key),
and nothing, never a guess, where a schema is beyond it; every forced character agrees with every
answer the grammar admits (a property over random answers, their whitespace drawn as the grammar
allows it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.jump_forward import Forced, forced_runs, forced_text

USER = {"type": "object", "additionalProperties": False, "required": ["id", "name", "role", "active"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                       "role": {"type": "string", "enum": ["admin", "editor", "viewer"]},
                       "active": {"type": "boolean"}}}
USERS = {"type": "array", "minItems": 2, "maxItems": 2, "items": USER}


@pytest.mark.parametrize(("prefix", "forced"), [
    ("", "["),  # the root is an array
    ("[", ""), ("[{", ""), ("[{\n  ", ""),  # whitespace may follow (a newline, then up to 20 blanks)
    ('[{"', 'id"'),  # the first required key, once its quote is written
    ('[{"id": 1', ""),  # digits may follow
    ('[{"id": 1,', ""), ('[{"id": 1, ', '"name"'),  # one blank is all the space rule takes after a comma
    ('[{"id":1,"name":"A', ""), ('[{"id":1,"name":"A"', ","),  # the next required key needs its comma
    ('[{"id":1,"name":"A","role":"e', 'ditor",'),  # the one enum value left, and the comma after it
    ('[{"id":1,"name":"A","role":"admin","active":f', "alse"),
    ('[{"id":1,"name":"A","role":"admin","active":true}', ","),  # two items: the second is due
    ('[{"id":1,"name":"A","role":"admin","active":true},{"id":2,"name":"B","role":"viewer","active":true}', ""),
])
def test_forced_text_of_an_array_of_objects(prefix: str, forced: str) -> None:
    assert forced_text(USERS, prefix) == forced


def test_optional_keys_leave_the_choice() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"},
                                               "c": {"type": "integer"}}, "required": ["b"]}
    assert forced_text(schema, '{"') == 'b"'  # the required key comes first, whatever the listed order
    assert forced_text(schema, '{"b":1') == ""  # a digit, a comma, space or the end
    assert forced_text(schema, '{"b":1,"') == ""  # a or c
    assert forced_text(schema, '{"b":1,"c":2,"') == ""  # nothing comes after c: the comma was no answer
    assert Forced(schema).lost is False
    lost = Forced(schema)
    lost.feed('{"b":1,"c":2,"')
    assert lost.lost
    assert forced_text({"type": "object", "properties": {"a": {}, "b": {}}}, '{"') == ""


def test_any_of_forces_what_its_branches_share() -> None:
    call = {"anyOf": [{"type": "object", "required": ["name", "arguments"], "properties": {
        "name": {"const": f"tool_{i}"}, "arguments": {"type": "object", "properties": {"x": {"type": "integer"}},
                                                      "required": ["x"]}}} for i in (1, 2)]}
    assert forced_text(call, '{"') == 'name"'
    assert forced_text(call, '{"name": "') == "tool_"  # both names start so; then 1 or 2
    assert forced_text(call, '{"name": "tool_2') == '",'  # only the second branch is left; space may follow
    assert forced_text(call, '{"name": "tool_2", "') == 'arguments"'
    assert forced_text(call, '{"name":"tool_2","arguments":{"') == 'x"'
    assert forced_text({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "") == ""
    assert forced_text({"type": ["null", "boolean"]}, "n") == "ull"


def test_nested_objects_unicode_keys_and_consts() -> None:
    schema = {"type": "object", "required": ["外层", "kind"], "properties": {
        "外层": {"type": "object", "required": ["名字"], "properties": {"名字": {"type": "string"}}},
        "kind": {"const": {"v": [1, "é"]}}}}
    assert forced_text(schema, '{"') == '外层"'
    assert forced_text(schema, '{"外层": {"') == '名字"'
    assert forced_text(schema, '{"外层": {"名字": "x"') == ""  # space, then the brace
    assert forced_text(schema, '{"外层": {"名字": "x"}') == ","
    assert forced_text(schema, '{"外层": {"名字": "x"}, "kind": ') == '{"v":[1,"é"]}'  # nlohmann's compact dump


def test_arrays_bounds_and_tuples() -> None:
    assert forced_text({"type": "array", "items": {"type": "integer"}, "maxItems": 0}, "[") == ""  # space, then ]
    assert forced_text({"type": "array", "items": {"type": "integer"}, "maxItems": 0}, "[ ") == ""  # two spaces
    assert forced_text({"type": "array", "items": {"type": "integer"}, "maxItems": 0}, "[  ") == "]"
    assert forced_text({"type": "array", "items": {"type": "integer"}, "minItems": 3}, "[1") == ""
    assert forced_text({"type": "array", "items": {"type": "integer"}, "minItems": 3}, "[1,2") == ""
    assert forced_text({"type": "array", "items": {"const": "x"}, "minItems": 2, "maxItems": 2}, '["x"') == ','
    pair = {"type": "array", "prefixItems": [{"const": 1}, {"type": "string"}]}
    assert forced_text(pair, "[") == ""
    assert forced_text(pair, "[ ") == "1,"


def test_recursive_refs() -> None:
    tree = {"type": "object", "required": ["name", "children"], "properties": {
        "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}}}
    assert forced_text(tree, '{"name": "a", "children": [{"') == 'name"'
    defs = {"$defs": {"leaf": {"type": "object", "required": ["v"], "properties": {"v": {"type": "boolean"}}}},
            "type": "object", "required": ["leaf"], "properties": {"leaf": {"$ref": "#/$defs/leaf"}}}
    assert forced_text(defs, '{"leaf": {"v": t') == "rue"


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^ab+c$"},  # a pattern's string could hold a quote: any text until the last
    {"allOf": [{"type": "object", "required": ["a"], "properties": {"a": {"const": 1}}}]},
    {"$ref": "#/nowhere"}, {"$ref": "other.json#/a"}, {}, True, {"type": "object"},
    {"type": "string", "format": "date"}, {"type": "object", "additionalProperties": {"type": "integer"}},
])
def test_what_it_cannot_follow_forces_nothing(schema: Any) -> None:
    assert forced_text(schema, "") in ("", '"', "{")  # at most what its type starts with
    assert forced_text(schema, '"ab') == ""
    assert forced_text(schema, '{"a":') == ""
    assert forced_text(schema, '{"a":1,"') == ""


def test_a_text_the_grammar_refuses_forces_nothing() -> None:
    f = Forced(USERS)
    f.feed("{")  # the root is an array
    assert f.lost and f.next_forced() is None and f.forced() == ""
    assert forced_text(USERS, '[{"id": "x"') == ""  # a string where an integer belongs


def test_forced_runs_count_whole_tokens() -> None:
    pieces = ["[", "{\n", " ", ' "', "id", '":', " ", "1", ",\n", " ", ' "', "name", '":', ' "', "Jo", '",', ' "',
              "role", '":', ' "', "adm", "in", '",', ' "', "act", "ive", '":', " true", "}"]
    # "[" at the start, the key names (two tokens for "active": one run), and "in" of "admin" with
    # the quote and comma after it
    assert forced_runs(USERS, pieces) == [1, 1, 1, 1, 2, 2]


#: the grammar's string characters (JSON's, less DEL, which it writes escaped only)
NAME_CHARS = st.characters(exclude_characters="\x7f")
WS = st.sampled_from(["", " ", "\n", "\n  ", "\n\n\t"])


@st.composite
def answers(draw: st.DrawFn) -> str:
    """A text of ``USERS`` with whitespace wherever the converter's grammar takes it."""
    def user() -> str:
        values = {"id": str(draw(st.integers(-999, 10**6))),
                  "name": json.dumps(draw(st.text(NAME_CHARS, max_size=8)), ensure_ascii=draw(st.booleans())),
                  "role": json.dumps(draw(st.sampled_from(["admin", "editor", "viewer"]))),
                  "active": draw(st.sampled_from(["true", "false"]))}
        kvs = [f'"{k}"{draw(WS)}:{draw(WS)}{v}' for k, v in values.items()]
        return "{" + draw(WS) + ("," + draw(WS)).join(kvs) + draw(WS) + "}"
    return "[" + draw(WS) + user() + "," + draw(WS) + user() + draw(WS) + "]"


@settings(max_examples=60, deadline=None)
@given(answers())
def test_every_forced_character_is_the_answers_own(text: str) -> None:
    f = Forced(USERS)
    for c in text:
        assert f.next_forced() in (None, c)
        f.feed(c)
        assert not f.lost
    assert f.next_forced() is None  # whole: the answer may end
