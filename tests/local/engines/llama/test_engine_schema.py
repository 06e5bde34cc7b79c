"""The schema our own engine gets (:mod:`qfnb.local.engines.llama.grammar`): an enum of plain strings is
sent as a trie pattern that matches exactly its values, one the grammar converter takes whole; a calendar
``format`` is sent as a pattern that admits only real dates and times (as ``jsonschema`` checks them)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from qfnb.local.engines.llama.grammar import FORMAT_PATTERNS, engine_schema, trie_pattern
from qfnb.protocol.schema.patterns import pattern_problem

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


def _conforms(value: str, fmt: str) -> bool:
    """As ``jsonschema`` checks a 2020-12 ``format`` (a bare FormatChecker() checks draft 3's time)."""
    return bool(Draft202012Validator.FORMAT_CHECKER.conforms(value, fmt))


YEARS = [*range(0, 9), *range(1896, 1905), *range(1999, 2002), *range(2023, 2026), *range(2096, 2105),
         *range(2399, 2402), *range(9995, 10_000)]


def test_a_date_is_a_day_of_the_calendar_exactly_as_jsonschema_checks_it() -> None:
    # llama.cpp's own rule writes any day 01-31 in any month: 2023-02-30 and 2023-04-31 were possible
    pattern = FORMAT_PATTERNS["date"]
    assert pattern_problem(pattern) is None  # the converter takes it whole
    for year in YEARS:
        for month in range(14):
            for day in range(33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                assert (re.fullmatch(pattern[1:-1], text) is not None) == _conforms(text, "date"), text
    assert not re.fullmatch(pattern[1:-1], "2024-13-01") and not re.fullmatch(pattern[1:-1], "2024-01-32")


def test_a_time_and_a_date_time_the_pattern_admits_are_valid() -> None:
    time, stamp = FORMAT_PATTERNS["time"], FORMAT_PATTERNS["date-time"]
    assert pattern_problem(time) is None and pattern_problem(stamp) is None
    for h, m, s in ((0, 0, 0), (23, 59, 59), (24, 0, 0), (12, 60, 0), (12, 0, 61), (9, 5, 7)):
        for tail in ("Z", ".123Z", "+05:30", "-23:59", "+24:00", "", ".5Z"):
            text = f"{h:02d}:{m:02d}:{s:02d}{tail}"
            if re.fullmatch(time[1:-1], text):
                assert _conforms(text, "time"), text
            for day in ("2024-02-29", "2023-02-29", "2023-12-31"):
                if re.fullmatch(stamp[1:-1], f"{day}T{text}"):
                    assert _conforms(f"{day}T{text}", "date-time"), (day, text)
    assert re.fullmatch(stamp[1:-1], "2024-02-29T23:59:59.123+05:30")
    assert not re.fullmatch(stamp[1:-1], "2023-02-29T10:00:00Z")


def test_the_calendar_formats_are_sent_as_their_patterns() -> None:
    schema = {"type": "object", "properties": {"due": {"type": "string", "format": "date"},
                                               "at": {"type": ["string", "null"], "format": "date-time"},
                                               "id": {"type": "string", "format": "uuid"}}}
    sent = engine_schema(schema)["properties"]
    assert sent["due"] == {"type": "string", "pattern": FORMAT_PATTERNS["date"]}
    assert sent["at"] == {"type": ["string", "null"], "pattern": FORMAT_PATTERNS["date-time"]}
    assert sent["id"] == {"type": "string", "format": "uuid"}  # the converter's own uuid rule is exact
    assert schema["properties"]["due"]["format"] == "date"  # the caller's schema is untouched
