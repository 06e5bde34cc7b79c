"""Our own grammar for schemas with number bounds (:mod:`qfnb.local.engines.llama.gbnf`): the decimals
between the bounds, digit by digit, read back as a regular expression and checked against the
numbers themselves; and the resampling check of what the grammar leaves to the answer
(:mod:`qfnb.local.engines.llama.answer_check`)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfnb.local.engines.ask import GenParams
from qfnb.local.engines.base import Delta
from qfnb.local.engines.llama import answer_check, grammar
from qfnb.local.engines.llama.gbnf import decimal_range, pattern_body, schema_grammar

SENTIMENT = {"properties": {"label": {"title": "Label", "type": "string"},
                            "confidence": {"maximum": 1, "minimum": 0, "title": "Confidence", "type": "number"}},
             "required": ["label", "confidence"], "title": "Sentiment", "type": "object"}


def as_regex(expr: str) -> re.Pattern[str]:
    """A GBNF expression of literals, classes, groups, ``|`` and quantifiers (no rule names) as a regex."""
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c == '"':
            j = i + 1
            while expr[j] != '"':
                j += 2 if expr[j] == "\\" else 1
            out.append(re.escape(json.loads(expr[i:j + 1])))
            i = j + 1
        elif c == "[":
            j = expr.index("]", i + 1)
            out.append(expr[i:j + 1])
            i = j + 1
        elif c == "{":
            j = expr.index("}", i)
            out.append(expr[i:j + 1])
            i = j + 1
        elif c in "()|?*+":
            out.append(c)
            i += 1
        elif c == " ":
            i += 1
        else:
            raise AssertionError(f"not a plain expression at {expr[i:i + 20]!r}")
    return re.compile("".join(out))


def written_iff_inside(regex: re.Pattern[str], text: str, low: Any, high: Any) -> None:
    """What the grammar writes lies between the bounds, and it writes every such number (but -0,
    which it writes as 0)."""
    x = Decimal(text)
    if regex.fullmatch(text):
        assert inside(x, low, high), (text, low, high)
    elif not (x == 0 and text.startswith("-")):
        assert not inside(x, low, high), (text, low, high)


def inside(x: Decimal, low: tuple[Decimal, bool] | None, high: tuple[Decimal, bool] | None) -> bool:
    return (low is None or (x > low[0] if low[1] else x >= low[0])) and \
        (high is None or (x < high[0] if high[1] else x <= high[0]))


CASES = [((Decimal(0), False), (Decimal(1), False)), ((Decimal("-2.5"), True), (Decimal("3.25"), False)),
         ((Decimal("0.05"), False), None), (None, (Decimal("-0.5"), True)),
         ((Decimal("-1"), False), (Decimal(0), True)),
         ((Decimal("12.5"), True), (Decimal("130.04"), True)), ((Decimal("0.999"), False), (Decimal("1.001"), False))]
PROBES = ["0", "1", "0.5", "1.0", "1.5", "-0.5", "-0.25", "3.25", "3.250", "3.251", "-2.5", "-2.4999", "0.05",
          "0.049", "0.0500", "0.051", "12.5", "12.50001", "130.04", "130.039", "0.999", "1.001", "1.0011", "-1",
          "-0.0", "131", "99", "100", "7", "-3", "-0.50", "-0.51", "2", "0.9989", "1.00"]


@pytest.mark.parametrize(("low", "high"), CASES)
def test_a_bounded_number_is_exactly_the_decimals_between_the_bounds(low: Any, high: Any) -> None:
    regex = as_regex(decimal_range(low, high))
    for text in PROBES:
        written_iff_inside(regex, text, low, high)


@settings(max_examples=200, deadline=None)
@given(st.decimals(-1000, 1000, places=3), st.decimals(0, 500, places=2), st.booleans(), st.booleans(),
       st.lists(st.decimals(-1100, 1600, places=4), min_size=5, max_size=12))
def test_fuzz_bounded_numbers(lo: Decimal, span: Decimal, lo_out: bool, hi_out: bool, xs: list[Decimal]) -> None:
    low, high = (lo, lo_out), (lo + span, hi_out)
    try:
        regex = as_regex(decimal_range(low, high))
    except ValueError:  # an empty range (equal bounds, one excluded)
        assert span == 0 and (lo_out or hi_out)
        return
    for x in [*xs, lo, lo + span, (lo + lo + span) / 2]:
        written_iff_inside(regex, format(x.normalize(), "f") if x != 0 else "0", low, high)


def test_integers_between_bounds_have_no_fraction() -> None:
    regex = as_regex(decimal_range((Decimal(-7), False), (Decimal(123), True), fraction=False))
    for n in range(-20, 200):
        assert bool(regex.fullmatch(str(n))) == (-7 <= n < 123), n
    assert not regex.fullmatch("5.0") and not regex.fullmatch("007")


def test_patterns_are_written_as_their_regex_reads() -> None:
    regex = as_regex(pattern_body("^[A-Z]{2}-(ab|c)+[^a-z]?$"))
    for text, ok in (("AB-ab", True), ("XY-cabc9", True), ("XY-", False), ("xY-ab", False), ("AB-abx", False)):
        assert bool(regex.fullmatch(text)) == ok, text


def test_the_sentiment_schema_is_sent_as_a_grammar_with_its_bounds() -> None:
    fields = grammar.engine_fields(SENTIMENT)
    assert set(fields) == {"grammar"}
    text = fields["grammar"]
    assert text == schema_grammar(SENTIMENT) and grammar.grammar_is_exact(SENTIMENT)
    rules = dict(line.split(" ::= ", 1) for line in text.splitlines())
    root, bounded = rules["root"], next(body for name, body in rules.items() if name.startswith("number-range"))
    assert '"\\"confidence\\""' in root and "number-range" in root
    regex = as_regex(bounded)
    assert regex.fullmatch("0.87") and regex.fullmatch("1")
    assert not regex.fullmatch("1.5") and not regex.fullmatch("-0.1")


def inlined(text: str, rule: str = "root") -> str:
    """A grammar's rule with every rule it names written in its place (the rules must not recurse)."""
    rules = dict(line.split(" ::= ", 1) for line in text.splitlines())
    out, body, i = [], rules[rule], 0
    while i < len(body):
        c = body[i]
        if c in '"[':  # a literal or a class, as it stands
            j = i + 1
            while body[j] != ('"' if c == '"' else "]"):
                j += 2 if body[j] == "\\" else 1
            out.append(body[i:j + 1])
            i = j + 1
        elif c.isalpha():
            name = re.match(r"[a-zA-Z0-9-]+", body[i:]).group(0)  # type: ignore[union-attr]
            out.append(f"({inlined(text, name)})")
            i += len(name)
        else:
            out.append(c)
            i += 1
    return "".join(out)


@pytest.mark.parametrize("answer", [{"label": "good", "confidence": 0.87}, {"label": "a, b: c", "confidence": 1}])
def test_our_grammar_writes_one_line_json_as_json_dumps_does(answer: dict[str, Any]) -> None:
    """One space after each ``:`` and ``,``, none elsewhere (the layout our engines' converter writes,
    so every character but the values' is fixed and drafted): ``json.dumps``' layout, no other."""
    regex = as_regex(inlined(schema_grammar(SENTIMENT)))
    assert regex.fullmatch(json.dumps(answer))
    for other in (json.dumps(answer, separators=(",", ":")), json.dumps(answer, indent=2), " " + json.dumps(answer)):
        assert not regex.fullmatch(other), other


def test_a_schema_without_number_bounds_goes_to_the_converter_and_says_what_it_leaves() -> None:
    schema = {"type": "object", "properties": {"mail": {"type": "string", "format": "email"}}}
    assert grammar.engine_fields(schema) == {"json_schema": {"type": "object", "properties": {
        "mail": {"type": "string"}}}}
    assert not grammar.grammar_is_exact(schema)
    assert grammar.grammar_is_exact({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}})


# ---- the answer's check -----------------------------------------------------------------------------

def _answers(texts: list[str], seen: list[GenParams], gp: GenParams, finish: str = "stop") -> Any:
    def answer(attempt: int) -> AsyncIterator[Delta]:
        seen.append(answer_check.resample_params(gp, attempt))

        async def gen() -> AsyncIterator[Delta]:
            yield Delta(texts[attempt][:3])
            yield Delta(texts[attempt][3:], finish_reason=finish, prompt_tokens=10, completion_tokens=5)
        return gen()
    return answer


async def _collect(stream: AsyncIterator[Delta]) -> list[Delta]:
    return [d async for d in stream]


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5}}, "required": ["n"]}


def test_a_miss_is_resampled_and_the_usage_counts_every_answer() -> None:
    seen: list[GenParams] = []
    gp = GenParams(temperature=0.0)
    deltas = asyncio.run(_collect(answer_check.checked(_answers(['{"n": 3}', '{"n": 10}'], seen, gp),
                                                       lambda ds: answer_check.text_miss(
                                                           "".join(d.text for d in ds), SCHEMA))))
    assert "".join(d.text for d in deltas) == '{"n": 10}' and deltas[-1].schema_miss is None
    assert (deltas[-1].prompt_tokens, deltas[-1].completion_tokens) == (20, 10)
    assert seen[0].greedy and not seen[1].greedy and seen[1].seed == 1  # greedy would write the same again


def test_a_final_miss_names_the_keyword_on_the_last_delta() -> None:
    seen: list[GenParams] = []
    texts = ['{"n": 3}'] * (answer_check.RESAMPLES + 1)
    deltas = asyncio.run(_collect(answer_check.checked(_answers(texts, seen, GenParams()), lambda ds: (
        answer_check.text_miss("".join(d.text for d in ds), SCHEMA)))))
    assert len(seen) == answer_check.RESAMPLES + 1
    assert deltas[-1].schema_miss is not None and deltas[-1].schema_miss.startswith("multipleOf at n")
    assert all(d.schema_miss is None for d in deltas[:-1])


@pytest.mark.parametrize("text", ['{"n": 3}', '{"n": 3'])
def test_an_answer_cut_by_the_token_cap_is_not_written_again_but_its_miss_is_named(text: str) -> None:
    """Another answer would be cut too; what was written is answered, and why it is not the structured
    output is said (a whole value that misses a keyword, or a value left unfinished)."""
    seen: list[GenParams] = []
    deltas = asyncio.run(_collect(answer_check.checked(_answers([text] * 3, seen, GenParams(), finish="length"),
                                                       lambda ds: answer_check.text_miss(
                                                           "".join(d.text for d in ds), SCHEMA))))
    assert len(seen) == 1 and "".join(d.text for d in deltas) == text and deltas[-1].finish_reason == "length"
    miss = deltas[-1].schema_miss
    assert miss is not None and miss.startswith("multipleOf at n" if text.endswith("}") else "the answer is not JSON")


def test_a_forced_calls_nested_model_keeps_its_definitions_and_bounds() -> None:
    from qfnb.local.engines.llama.tool_calls import call_schema

    params = {"type": "object", "properties": {"inner": {"$ref": "#/$defs/Inner"}}, "required": ["inner"],
              "$defs": {"Inner": {"type": "object", "properties": {"score": {"type": "number", "minimum": 0,
                                                                             "maximum": 10}},
                                  "required": ["score"]}}}
    text = grammar.engine_fields(call_schema([{"type": "function", "function": {"name": "f",
                                                                                "parameters": params}}]))["grammar"]
    rules = dict(line.split(" ::= ", 1) for line in text.splitlines())
    assert '"\\"score\\""' in rules["ref-0"] and "ref-0" in rules["root"]
    regex = as_regex(next(body for name, body in rules.items() if name.startswith("number-range")))
    assert regex.fullmatch("9.75") and regex.fullmatch("10") and not regex.fullmatch("10.5")


# ---- the rest of a streamed answer after its start (loop_guard.streamed) ------------------------------

JOKE = {"description": "Joke to tell user.", "type": "object", "additionalProperties": False,
        "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
        "required": ["setup", "punchline"]}
ARTICLE = {"type": "object", "required": ["title", "tags", "author"], "properties": {
    "title": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    "author": {"type": "object", "required": ["name"],
               "properties": {"email": {"type": ["string", "null"]}, "name": {"type": "string"}}},
    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "score": {"type": "integer", "minimum": 0, "maximum": 10}}}


def value_strings(doc: str) -> list[tuple[int, int]]:
    """Where each string value of one-line JSON ``doc`` starts (after its quote) and ends (at its closing quote)."""
    spans, i = [], 0
    while i < len(doc):
        if doc[i] != '"':
            i += 1
            continue
        j = i + 1
        while doc[j] != '"':
            j += 2 if doc[j] == "\\" else 1
        if not doc.startswith(": ", j + 1):  # a key is followed by its colon
            spans.append((i + 1, j))
        i = j + 1
    return spans


def inside_escape(doc: str, i: int) -> bool:
    """Whether ``doc[:i]`` ends inside an escape (a backslash, or a ``\\u`` and fewer than four digits)."""
    k = doc.rfind("\\", 0, i)
    if k < 0 or (doc[k - 1] == "\\" and not inside_escape(doc, k - 1)):
        return False
    return i == k + 1 or (doc[k + 1] == "u" and i < k + 6)


@pytest.mark.parametrize(("schema", "answer"), [
    (JOKE, {"setup": "Why did the cat sit?", "punchline": 'To "watch" the mouse \u00e9'}),
    (ARTICLE, {"title": 'Cats "and" dogs\n', "tags": ["a", "b"], "author": {"email": None, "name": "Ann"},
               "note": "ok", "score": 7}),
    (ARTICLE, {"tags": [], "author": {"name": "Bo \\ \u2603", "email": "b@x"}, "title": "t"}),
])
def test_the_rest_after_a_cut_in_a_string_closes_it_there_and_accepts_the_answers_own_rest(
        schema: dict[str, Any], answer: dict[str, Any]) -> None:
    """Cut anywhere inside a string value (not inside an escape), the rest closes that string at once and
    takes what the answer itself has after it; cut anywhere else, it cannot be written."""
    from qfnb.local.engines.llama.continuation import rest_grammar
    from qfnb.local.engines.llama.gbnf import Unwritable

    doc = json.dumps(answer, ensure_ascii=False)
    inside = {i: end for start, end in value_strings(doc) for i in range(start, end + 1) if not inside_escape(doc, i)}
    assert inside
    for i in range(len(doc) + 1):
        if i not in inside:
            with pytest.raises(Unwritable):
                rest_grammar(schema, doc[:i])
            continue
        rest = as_regex(inlined(rest_grammar(schema, doc[:i])))
        assert rest.fullmatch(doc[inside[i]:]), (doc[:i], doc[inside[i]:])


def test_the_rest_keeps_what_the_schema_still_wants_and_no_more() -> None:
    from qfnb.local.engines.llama.continuation import rest_grammar

    def rest(schema: dict[str, Any], text: str) -> re.Pattern[str]:
        return as_regex(inlined(rest_grammar(schema, text)))

    joke = rest(JOKE, '{"setup": "A cat. A cat. A cat')
    assert joke.fullmatch('", "punchline": "Meow."}') and not joke.fullmatch('"}')  # a required pair is kept
    assert not joke.fullmatch(' more", "punchline": "x"}')  # the looping string is closed at once
    assert not joke.fullmatch('", "punchline": "x", "extra": "y"}')
    tags = rest(ARTICLE, '{"title": "t", "tags": ["a", "b')
    assert tags.fullmatch('", "c"], "author": {"name": "n"}}')
    assert not tags.fullmatch('", "c", "d"], "author": {"name": "n"}}')  # maxItems 3
    assert not tags.fullmatch('", "c"], "author": {"name": "n"}, "score": 11}')  # its bounds are kept
    short = rest({"type": "object", "properties": {"code": {"type": "string", "minLength": 5}}, "required": ["code"]},
                 '{"code": "ab')
    assert short.fullmatch('xyz"}') and not short.fullmatch('"}')  # its minLength is still met
    extra = rest({"type": "object", "additionalProperties": {"type": "string"}}, '{"a": "x", "b": "y')
    assert extra.fullmatch('"}') and extra.fullmatch('", "c": "z"}') and not extra.fullmatch('", "c": 1}')


@pytest.mark.parametrize(("schema", "text", "why"), [
    ({"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}}, '{"id": "ab', "shapes"),
    ({"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}, '{"d": "2024-', "shapes"),
    ({"anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}},
                {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}]},
     '{"a": "x', "2 branches"),
    (JOKE, '{"setup": "x", "punchline": "y"}', "whole value"),
    (JOKE, '{"set', "inside a key"),
])
def test_a_rest_that_cannot_be_written_exactly_says_why(schema: dict[str, Any], text: str, why: str) -> None:
    from qfnb.local.engines.llama.continuation import rest_grammar
    from qfnb.local.engines.llama.gbnf import Unwritable

    with pytest.raises(Unwritable, match=why):
        rest_grammar(schema, text)


def test_the_rest_of_any_json_value_is_any_more_pairs_and_items() -> None:
    from qfnb.local.engines.llama.continuation import rest_grammar

    root = rest_grammar({}, '[{"k": ["v", 1, "w')
    assert root.splitlines()[-1] == ('root ::= "\\"" space (", " value)* "]" space (extra-0)* "}" space '
                                     '(", " value)* "]" space')
