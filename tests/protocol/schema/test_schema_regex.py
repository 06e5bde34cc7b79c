"""A schema's patterns run with RE2 (:mod:`qfnb.protocol.schema.regex`): the probe's patterns against
their near misses where Python's ``re`` would take 2^n steps (n = 5,000 here: it would never end),
the keys an answer writes matched against ``patternProperties`` (and ``additionalProperties``
beside them) the same way, and JSON Schema's reading kept (``pattern`` matches anywhere)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from qfnb.protocol.schema.regex import pattern_unreadable, validator_for

NEAR_MISS = {r"^(\d+)+$": "1", r"^(\d|\d)+$": "1", r"^(\w+\s?)+$": "a", r"^([a-z]+)*$": "a"}


@pytest.fixture(autouse=True, scope="module")
def _imported() -> None:
    """jsonschema's import (seconds on a loaded machine) is not what is timed."""
    _errors({"pattern": "^a$", "format": "date"}, "a")


def _errors(schema: dict[str, Any], value: Any) -> list[str]:
    cls = validator_for(schema)
    return [e.message for e in cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value)]


@pytest.mark.parametrize("pattern", list(NEAR_MISS))
def test_the_probes_patterns_answer_at_once_on_their_near_miss(pattern: str) -> None:
    text = NEAR_MISS[pattern] * 5000 + "!"
    begun = time.perf_counter()
    errors = _errors({"type": "string", "pattern": pattern}, text)
    assert time.perf_counter() - begun < 2.0  # Python's re: 2^5000 steps
    assert len(errors) == 1 and "does not match" in errors[0]
    assert _errors({"type": "string", "pattern": pattern}, NEAR_MISS[pattern] * 5000) == []


def test_a_hostile_key_is_matched_in_linear_time_by_pattern_and_additional_properties() -> None:
    schema = {"type": "object", "patternProperties": {r"^(\w+\s?)+$": {"type": "integer"}},
              "properties": {"the-id": {"type": "string"}}, "additionalProperties": False}
    key = "a" * 5000 + "!"
    begun = time.perf_counter()
    errors = _errors(schema, {key: 1, "the-id": "x", "ok": 2})
    assert time.perf_counter() - begun < 2.0
    assert len(errors) == 1 and "was unexpected" in errors[0] and "aaaa" in errors[0]
    assert _errors(schema, {"ok": "two"}) == ["'two' is not of type 'integer'"]
    assert _errors({**schema, "additionalProperties": {"type": "boolean"}}, {"?": 1}) == [
        "1 is not of type 'boolean'"]


def test_json_schemas_reading_is_kept() -> None:
    assert _errors({"pattern": "b"}, "abc") == []  # anywhere, not anchored
    assert _errors({"pattern": "^b"}, "abc") != []
    assert _errors({"pattern": "^[0-9]+$"}, 12) == []  # a pattern applies to strings only
    assert _errors({"pattern": "^é+$"}, "éé") == []
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": "^a$"}
    assert _errors(draft7, "b") != []


def test_what_re2_cannot_read_is_named_and_never_passes() -> None:
    assert "lookaround" in str(pattern_unreadable("^(?=a)a$"))
    assert pattern_unreadable(r"^(\d+)+$") is None
    errors = _errors({"pattern": "(a)\\1"}, "aa")
    assert len(errors) == 1 and "cannot be checked" in errors[0]


def test_a_pattern_whose_program_is_huge_is_refused_at_once() -> None:
    """The fresh probe: 442 characters (``[^"]{1000}`` 40 times) passed every cap, and its RE2 program
    took 31 MiB and 0.7 s to compile, kept in a cache of 1,024."""
    huge = "^" + '[^"]{1000}' * 40 + "$"
    begun = time.perf_counter()
    problem = pattern_unreadable(huge)
    assert problem is not None and "too large" in problem and "RE2_MAX_MEM" in problem
    assert time.perf_counter() - begun < 1.0
    assert pattern_unreadable("^" + '[^"]{1000}' * 4 + "$") is None  # a long one that is not huge
