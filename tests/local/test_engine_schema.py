"""The schema our own engine gets (:mod:`qfnb.local.engines.llama.grammar`): an enum of plain strings is
sent as a trie pattern that matches exactly its values, one the grammar converter takes whole."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from qfnb.local.engines.llama.grammar import engine_schema, trie_pattern
from qfnb.protocol.schema_patterns import pattern_problem

ALPHABET = "ab.(|-x"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(ALPHABET, min_size=1, max_size=5), min_size=2, max_size=12, unique=True),
       st.lists(st.text(ALPHABET, max_size=6), max_size=30))
def test_the_trie_pattern_matches_exactly_the_values(values: list[str], others: list[str]) -> None:
    pattern = trie_pattern(values)
    assert pattern is not None and pattern_problem(pattern) is None  # the converter takes it as it is
    for text in values + others:
        assert (re.fullmatch(pattern[1:-1], text) is not None) == (text in values), (pattern, text)


def test_only_plain_string_enums_are_rewritten_and_nothing_else_moves() -> None:
    schema = {"type": "object", "properties": {
        "v": {"enum": ["value_01", "value_02", "value_1"], "description": "d"},
        "n": {"enum": [1, 2]}, "q": {"enum": ['say "hi"', "bye"]}, "one": {"enum": ["x"]}}, "required": ["v"]}
    sent = engine_schema(schema)
    assert sent["properties"]["v"] == {"description": "d", "type": "string", "pattern": "^value_(0(1|2)|1)$"}
    assert {k: sent["properties"][k] for k in ("n", "q", "one")} == {k: schema["properties"][k]
                                                                      for k in ("n", "q", "one")}
    assert sent["required"] == ["v"] and schema["properties"]["v"]["enum"]  # the caller's schema is untouched
    big = trie_pattern([f"value_{i:08d}" for i in range(1000)])
    assert big is not None and big.startswith("^value_00000(")  # the shared prefix is written once
