"""JSON-schema ``pattern``s: :func:`pattern_hazard` says why one is unsafe for the engine's grammar
(refused by :mod:`.schemas`), :func:`pattern_problem` why the grammar cannot enforce one exactly
(llama.cpp's schema-to-grammar converter takes a subset of regex syntax and quietly replaces the
rest with "any string"; such a pattern is left to the answer's check). Pure."""

from __future__ import annotations

import re
import re._constants as _sre_constants
import re._parser as _sre_parser
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from qfnb.protocol.limits import MAX_PATTERN_REPEAT_PRODUCT, MAX_SCHEMA_REPEAT
from qfnb.protocol.schema.regex import pattern_unreadable

__all__ = ["pattern_hazard", "pattern_problem"]

#: Python's regex parser and its node kinds, read as one namespace
_sre = SimpleNamespace(parse=_sre_parser.parse, **{k: getattr(_sre_constants, k) for k in (
    "MAXREPEAT", "MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT", "SUBPATTERN", "BRANCH", "ASSERT", "ASSERT_NOT",
    "ATOMIC_GROUP", "GROUPREF_EXISTS", "AT", "GROUPREF")})
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)

#: the escapes the grammar takes, in and out of a character class (llama.cpp's ``gbnf_escape_length``)
_GRAMMAR_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[trn\\\"\[\]-])")
#: regex metacharacters a literal may escape
_META = set("^$.[]()|{}*+?")
#: what a string's grammar must never write raw (JSON would need an escape for them)
_UNSAFE = {'"', "\\"} | {chr(c) for c in range(0x20)}


def pattern_problem(pattern: str) -> str | None:
    """Why the grammar cannot enforce ``pattern`` exactly (None when it can): its converter takes
    an anchored pattern of literals, escapes of its own, character classes, groups (``(?:``
    too), ``|`` and the quantifiers ``* + ? {m,n}``; anything else it replaces with "any string".
    A class or ``.`` that admits a quote, a backslash or a control character is refused too (the
    grammar would write it raw, and the answer would not be the JSON string the pattern matched)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"it is not a valid regular expression ({exc})"
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$" or pattern.endswith("\\$"):
        return "it must be anchored with '^' at the start and '$' at the end"
    depth, kinds = 0, ["", ""]
    for token, kind in _tokens(pattern[1:-1]):
        depth += {"open": 1, "close": -1}.get(kind, 0)
        problem = "it nests groups deeper than 100" if depth > 100 else _token_problem(token, kind, kinds)
        if problem:
            return problem
        kinds = [kinds[-1], kind]
    return None


def _token_problem(token: str, kind: str, before: list[str]) -> str | None:
    """Why one token of a pattern (after the kinds of the two ``before`` it) is not enforced."""
    if kind == "error":
        return token
    if kind == "quant":
        if before[-1] == "escaped" and before[-2] in ("escaped", "literal"):
            return (f"a quantifier after an escaped character in a run of literals ({token!r}) is applied by "
                    "the engine to the whole run; wrap the character in a group: a(\\.)+")
        return _quantifier_problem(token)
    if kind == "class":
        return _class_problem(token)
    if kind == "dot":
        return ("'.' admits a quote and a backslash, which the grammar would write raw; use a class such "
                "as [^\"\\\\\\x00-\\x1F]")
    if kind in ("literal", "escaped") and _char(token) in _UNSAFE:
        return f"the character {_char(token)!r} would be written raw in the JSON string; leave it out"
    return None


def _char(token: str) -> str:
    """The character a literal or an escape stands for."""
    if len(token) == 1:
        return token
    if len(token) == 2:
        return {"t": "\t", "r": "\r", "n": "\n"}.get(token[1], token[1])
    return chr(int(token[2:], 16))


def _tokens(body: str) -> Iterator[tuple[str, str]]:
    """``body`` as (text, kind): open, close, alt, quant, class, dot, escaped, literal or error
    (the last one)."""
    i = 0
    while i < len(body):
        token, kind, i = _token(body, i)
        yield token, kind
        if kind == "error":
            return


_SIMPLE = {")": "close", "|": "alt", ".": "dot"}


def _token(body: str, i: int) -> tuple[str, str, int]:
    """The token at ``i``: its text, kind and end."""
    c = body[i]
    if c in _SIMPLE:
        return c, _SIMPLE[c], i + 1
    if c == "(":
        if body.startswith("(?", i) and not body.startswith("(?:", i):
            return "lookaround, named groups and inline flags such as (?i) are not supported", "error", i
        return "(", "open", i + (3 if body.startswith("(?:", i) else 1)
    if c in "*+?{":
        return _quantifier_token(body, i)
    if c == "[":
        return _class_token(body, i)
    if c == "\\":
        return _escape_token(body, i)
    if c in "^$":
        return "an anchor inside the pattern is not supported", "error", i
    if c in "]}":
        return f"a stray {c!r} is not supported", "error", i
    return c, "literal", i + 1


def _quantifier_token(body: str, i: int) -> tuple[str, str, int]:
    if body[i] == "{":
        end = body.find("}", i)
        return (body[i:end + 1], "quant", end + 1) if end > 0 else ("an unterminated '{' is not supported", "error", i)
    if i + 1 < len(body) and body[i + 1] in "?+":
        return "lazy and possessive quantifiers (*? +? ??) are not supported", "error", i
    return body[i], "quant", i + 1


def _class_token(body: str, i: int) -> tuple[str, str, int]:
    j = i + 1
    while j < len(body) and body[j] != "]":
        if body[j] == "\\":
            m = _GRAMMAR_ESCAPE.match(body, j)
            if not m:
                return (f"the escape {body[j:j + 2]!r} in a character class is not supported (the grammar takes "
                        "\\t \\r \\n \\\\ \\\" \\[ \\] \\- \\xHH \\uHHHH)", "error", i)
            j = m.end()
        else:
            j += 1
    if j >= len(body):
        return "an unterminated character class is not supported", "error", i
    return body[i:j + 1], "class", j + 1


def _escape_token(body: str, i: int) -> tuple[str, str, int]:
    if i + 1 < len(body) and body[i + 1] in _META:
        return body[i + 1], "escaped", i + 2
    m = _GRAMMAR_ESCAPE.match(body, i)
    if not m:
        return (f"the escape {body[i:i + 2]!r} is not supported (no \\d, \\w, \\s or \\b: write a class such "
                "as [0-9] instead)", "error", i)
    return m.group(), "escaped", m.end()


def _quantifier_problem(token: str) -> str | None:
    if not token.startswith("{"):
        return None
    parts = token[1:-1].split(",")
    if len(parts) > 2 or not all(p.strip().isdigit() or (p == "" and k == 1) for k, p in enumerate(parts)):
        return f"the quantifier {token} is not one the grammar takes ({{m}}, {{m,}} or {{m,n}})"
    numbers = [int(p) for p in parts if p]
    if any(n > MAX_SCHEMA_REPEAT for n in numbers):
        return f"the quantifier {token} exceeds {MAX_SCHEMA_REPEAT:,} (MAX_SCHEMA_REPEAT)"
    if len(numbers) == 2 and numbers[0] > numbers[1]:
        return f"the quantifier {token} has its minimum above its maximum"
    return None


def _class_problem(token: str) -> str | None:
    """A class must not admit a quote, a backslash or a control character."""
    inner, negated = token[1:-1], token.startswith("[^")
    if negated:
        inner = inner[1:]
    chars: list[tuple[int, int]] = []
    i = 0
    while i < len(inner):
        lo, i = _class_char(inner, i)
        if i + 1 < len(inner) and inner[i] == "-":
            hi, i = _class_char(inner, i + 1)
            chars.append((lo, hi))
        else:
            chars.append((lo, lo))
    admits = [c for c in (0x22, 0x5C, *range(0x20)) if any(a <= c <= b for a, b in chars) != negated]
    if admits:
        shown = ", ".join(repr(chr(c)) for c in admits[:3])
        return f"the class {token} admits {shown}, which the grammar would write raw in the JSON string; " \
               "leave them out of it" + (" (a negated class must exclude \" \\\\ and \\x00-\\x1F)" if negated else "")
    return None


def _class_char(inner: str, i: int) -> tuple[int, int]:
    if inner[i] == "\\":
        m = _GRAMMAR_ESCAPE.match(inner, i)
        assert m is not None  # checked by _tokens
        return ord(_char(m.group())), m.end()
    return ord(inner[i]), i + 1


def pattern_hazard(pattern: str) -> str | None:
    """Why ``pattern`` would make the engine's grammar explore exponentially many paths (None when
    it would not), read from Python's own parse of it (``re._parser``): a quantified group that can
    match the empty string inside another quantifier (``([a-z]{0,40}){0,40}``: each empty turn is a
    new way through), a quantifier past :data:`MAX_SCHEMA_REPEAT`, or nested quantifiers whose
    bounds multiply past :data:`MAX_PATTERN_REPEAT_PRODUCT`. A pattern Python cannot read is named
    too, and one RE2 cannot (the answer is checked with it, in linear time: :mod:`.schema_regex`)."""
    try:
        parsed = _sre.parse(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        return f"it is not a regular expression Python's re reads ({exc})"
    return _hazard(list(parsed), 1) or pattern_unreadable(pattern)


def _hazard(items: list[Any], product: int) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            bound = high if high != _sre.MAXREPEAT else max(low, 1)
            if (high != _sre.MAXREPEAT and high > MAX_SCHEMA_REPEAT) or low > MAX_SCHEMA_REPEAT:
                return f"a quantifier repeats up to {max(low, high):,} times; it is capped at " \
                       f"{MAX_SCHEMA_REPEAT:,} (MAX_SCHEMA_REPEAT)"
            if (high == _sre.MAXREPEAT or high > 1) and _nullable(list(body)):
                return ("a quantified group that can match the empty string sits inside another quantifier "
                        "(a nested nullable quantifier, as in ([a-z]{0,40}){0,40}): the engine's grammar would "
                        "follow exponentially many ways through it; make the inner part match at least one "
                        "character")
            if product * bound > MAX_PATTERN_REPEAT_PRODUCT:
                return (f"its nested quantifiers repeat {product * bound:,} times in all (the product of their "
                        f"bounds); it is capped at {MAX_PATTERN_REPEAT_PRODUCT:,} (MAX_PATTERN_REPEAT_PRODUCT)")
            problem = _hazard(list(body), product * bound)
        else:
            problem = next((p for sub in _children(op, av) if (p := _hazard(list(sub), product))), None)
        if problem:
            return problem
    return None


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns of one parsed item (groups, alternatives, lookarounds)."""
    if op is _sre.SUBPATTERN:
        return [av[3]]
    if op is _sre.BRANCH:
        return list(av[1])
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return [av[1]]
    if op is _sre.ATOMIC_GROUP:
        return [av]
    if op is _sre.GROUPREF_EXISTS:
        return [p for p in av[1:] if p is not None]
    return []


def _nullable(items: list[Any]) -> bool:
    """Whether a parsed (sub-)pattern can match the empty string."""
    return all(_item_nullable(op, av) for op, av in items)


def _item_nullable(op: Any, av: Any) -> bool:
    if op in _REPEATS:
        return bool(av[0] == 0 or _nullable(list(av[2])))
    if op is _sre.BRANCH:
        return any(_nullable(list(p)) for p in av[1])
    if op is _sre.SUBPATTERN or op is _sre.ATOMIC_GROUP:
        return _nullable(list(av[3] if op is _sre.SUBPATTERN else av))
    if op is _sre.GROUPREF_EXISTS:
        return any(p is None or _nullable(list(p)) for p in av[1:])
    return op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT, _sre.GROUPREF)  # else a character, a class, '.'
