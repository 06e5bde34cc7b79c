"""A grammar (llama.cpp's GBNF) of our own for a schema with number bounds: :func:`schema_grammar`.

llama.cpp's schema-to-grammar converter bounds integers but drops ``minimum``/``maximum`` on
``"type": "number"``, so pydantic's ``confidence: float = Field(ge=0, le=1)`` would be written as
any number. A schema whose enforced part (:mod:`qfnb.protocol.schema.enforced`) keeps a number
bound is written here instead, whole, and sent as ``grammar``: the same JSON rules as the
converter's (one-line layout, strings, objects with their listed properties, arrays, patterns,
enums, ``$ref`` s as rules), and a bounded number as the decimals between its bounds, digit by
digit (:func:`decimal_range`; no exponent form, at most 15 digits after the point).
"""

from __future__ import annotations

import json
import re
import re._constants as _c
import re._parser as _p
from decimal import Decimal
from typing import Any

from qfnb.protocol.schema.accepted import resolve

__all__ = ["COLON", "COMMA", "Unwritable", "Writer", "decimal_range", "literal", "schema_grammar"]

#: digits a written number may have after its point
FRACTION_DIGITS = 15
# one-line JSON, as our engines' own converter writes it (``LLAMA_ARG_JSON_ONE_LINE``): one space after each
# separator and none elsewhere (the space rule is empty), so the grammar fixes every character but the values'
COMMA, COLON = '", "', '": "'
_BASE = {
    "space": '""',
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | [\\\\] (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": '"\\"" char* "\\"" space',
    "integral": '"0" | [1-9] [0-9]{0,15}',
    "number": '"-"? integral ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,4})? space',
    "integer": '"-"? integral space',
    "boolean": '("true" | "false") space',
    "null": '"null" space',
    "value": "object | array | string | number | boolean | null",
    "object": f'"{{" space (string {COLON} value ({COMMA} string {COLON} value)*)? "}}" space',
    "array": f'"[" space (value ({COMMA} value)*)? "]" space',
}


class Unwritable(ValueError):
    """A schema node this writer does not cover (the caller sends the converter's form instead)."""


def schema_grammar(schema: dict[str, Any]) -> str:
    """The GBNF text of ``schema``: an enforced part (the keywords :mod:`qfnb.protocol.schema.enforced`
    keeps) as :func:`.grammar.engine_schema` writes it (calendar formats as their patterns)."""
    return Writer(schema).text()


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class Writer:
    """GBNF rules for the nodes of one schema (``root``), named once each, and the text of them all."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.rules: dict[str, str] = {}
        self.refs: dict[str, str] = {}

    def text(self, root: str | None = None) -> str:
        """The grammar whose ``root`` rule is ``root`` (default: a value under the schema), with every rule written."""
        root = self.value(self.root) if root is None else root
        used = dict(_BASE)
        used.update(self.rules)
        used["root"] = root
        return "\n".join(f"{name} ::= {body}" for name, body in used.items()) + "\n"

    def rule(self, body: str, hint: str = "r") -> str:
        """A named rule for ``body`` (the same body gets the same name)."""
        for name, existing in self.rules.items():
            if existing == body:
                return name
        name = f"{re.sub('[^a-zA-Z0-9]+', '-', hint).strip('-') or 'r'}-{len(self.rules)}"
        self.rules[name] = body
        return name

    def value(self, s: Any) -> str:
        """A GBNF expression for a JSON value under ``s`` (whitespace after it included)."""
        if not isinstance(s, dict) or not s:
            return "value"
        if "$ref" in s:
            return self.ref(s["$ref"])
        if "anyOf" in s:
            return "(" + " | ".join(self.value(a) for a in s["anyOf"]) + ")"
        if "const" in s or "enum" in s:
            values = [s["const"]] if "const" in s else s["enum"]
            return "(" + " | ".join(literal(json.dumps(v, ensure_ascii=False)) for v in values) + ") space"
        kind = s.get("type") or ("object" if "properties" in s else
                                 "array" if "items" in s or "prefixItems" in s else None)
        if kind in ("integer", "number"):
            return self.number(s, str(kind))
        if kind in ("boolean", "null"):
            return str(kind)
        if kind is None:
            return "value"
        writer = {"object": self.obj, "array": self.arr, "string": self.string}.get(str(kind))
        if writer is None:
            raise Unwritable(f"type {kind!r}")
        return writer(s)

    def number(self, s: dict[str, Any], kind: str) -> str:
        def bound(keys: tuple[str, str]) -> Bound | None:
            return next(((Decimal(repr(s[k])), k != keys[0]) for k in keys if k in s), None)

        low, high = bound(("minimum", "exclusiveMinimum")), bound(("maximum", "exclusiveMaximum"))
        if low is None and high is None:
            return kind
        return "(" + self.rule(decimal_range(low, high, fraction=kind == "number"), f"{kind}-range") + ") space"

    def ref(self, ref: str) -> str:
        if ref not in self.refs:
            name = f"ref-{len(self.refs)}"
            self.refs[ref] = name
            self.rules[name] = "value"  # a placeholder while the target is written (recursion)
            self.rules[name] = self.value(resolve(self.root, ref))
        return self.refs[ref]

    def obj(self, s: dict[str, Any]) -> str:
        if "properties" not in s and "additionalProperties" not in s:
            return "object"  # any object, as the converter writes it
        props: dict[str, Any] = s.get("properties") or {}
        required = set(s.get("required") or ())
        return f'"{{" space {self.pairs(s, list(props), required, first=True)} "}}" space'

    def pairs(self, s: dict[str, Any], names: list[str], required: set[str], *, first: bool) -> str:
        """The pairs of object ``s``'s properties ``names`` (in that order; those not ``required`` may be
        left out), then any more its ``additionalProperties`` allow; the first with no comma before it
        when ``first``."""
        props: dict[str, Any] = s.get("properties") or {}
        pairs = [(literal(json.dumps(name, ensure_ascii=False)) + f" space {COLON} " + self.value(props[name]),
                  name in required) for name in names]
        extra = s.get("additionalProperties")
        extra_pair = None
        if extra is True or (isinstance(extra, dict) and extra):
            extra_pair = f"string {COLON} " + (self.value(extra) if isinstance(extra, dict) else "value")

        def tail(i: int, first: bool) -> str:
            """Pairs ``i`` on, the first of them without a comma when ``first``."""
            sep = "" if first else f"{COMMA} "
            if i == len(pairs):
                if extra_pair is None:
                    return ""
                more = self.rule(f"{COMMA} {extra_pair}", "extra")
                return f"({extra_pair} ({more})*)?" if first else f"({more})*"
            pair, needed = pairs[i]
            rest = tail(i + 1, False)
            this = f"{sep}{pair} {rest}".strip()
            if needed:
                return this
            skip = tail(i + 1, first)
            return f"({this} | {skip})" if skip else f"({this})?"

        return tail(0, first)

    def arr(self, s: dict[str, Any]) -> str:
        if "prefixItems" in s:
            items = [self.value(p) for p in s["prefixItems"]]
            return '"[" space ' + f" {COMMA} ".join(items) + ' "]" space' if items else '"[" space "]" space'
        item = self.value(s.get("items"))
        lo, hi = int(s.get("minItems", 0)), s.get("maxItems")
        if hi == 0:
            return '"[" space "]" space'
        more = f"({COMMA} {item})"
        count = "*" if hi is None and lo <= 1 else f"{{{max(lo - 1, 0)},{'' if hi is None else hi - 1}}}"
        body = f"{item} {more}{count}"
        return f'"[" space ({body}){"?" if lo == 0 else ""} "]" space'

    def string(self, s: dict[str, Any]) -> str:
        if "pattern" in s:
            return '"\\"" (' + self.rule(pattern_body(s["pattern"]), "pattern") + ') "\\"" space'
        if s.get("format") == "uuid":
            hexes = " ".join(f'[0-9a-fA-F]{{{n}}}' + (' "-"' if i < 4 else "")
                             for i, n in enumerate((8, 4, 4, 4, 12)))
            return f'"\\"" {hexes} "\\"" space'
        lo, hi = s.get("minLength"), s.get("maxLength")
        if lo is None and hi is None:
            return "string"
        return f'"\\"" char{{{lo or 0},{"" if hi is None else hi}}} "\\"" space'


# ---- patterns ---------------------------------------------------------------------------------------


def pattern_body(pattern: str) -> str:
    """The GBNF of an anchored ``^...$`` pattern in the subset the converter takes (literals,
    classes, groups, ``|``, quantifiers), from Python's parse of it."""
    items = list(_p.parse(pattern))
    if not items or items[0] != (_c.AT, _c.AT_BEGINNING) or items[-1] != (_c.AT, _c.AT_END):
        raise Unwritable(f"pattern {pattern!r} is not anchored")
    return _seq(items[1:-1]) or '""'


def _seq(items: list[Any]) -> str:
    return " ".join(_item(op, av) for op, av in items)


def _item(op: Any, av: Any) -> str:
    if op is _c.LITERAL:
        return literal(chr(av))
    if op is _c.IN:
        return _class(av)
    if op is _c.SUBPATTERN:
        return f"({_seq(list(av[3]))})"
    if op is _c.BRANCH:
        return "(" + " | ".join(_seq(list(b)) or '""' for b in av[1]) + ")"
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
        low, high, body = av
        inner = f"({_seq(list(body))})"
        if high == _c.MAXREPEAT:
            return f"{inner}*" if low == 0 else f"{inner}+" if low == 1 else f"{inner}{{{low},}}"
        return f"{inner}?" if (low, high) == (0, 1) else f"{inner}{{{low},{high}}}"
    raise Unwritable(f"regex node {op}")


def _class(av: list[Any]) -> str:
    out, negate = [], False
    for op, arg in av:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            out.append(_class_char(arg))
        elif op is _c.RANGE:
            out.append(f"{_class_char(arg[0])}-{_class_char(arg[1])}")
        else:
            raise Unwritable(f"class item {op}")
    return "[" + ("^" if negate else "") + "".join(out) + "]"


def _class_char(code: int) -> str:
    ch = chr(code)
    if ch in "]\\-^[":
        return "\\" + ch
    return f"\\x{code:02X}" if code < 0x20 or code == 0x7F else ch


# ---- numbers between bounds -------------------------------------------------------------------------

Bound = tuple[Decimal, bool]  # a value and whether it is excluded


def decimal_range(low: Bound | None, high: Bound | None, *, fraction: bool = True) -> str:
    """A GBNF expression for the JSON numbers (``fraction``: with up to 15 digits after a point,
    else integers) between ``low`` and ``high`` (each may be missing); an empty range raises."""
    alts = []
    if high is None or high[0] > 0 or (high[0] == 0 and not high[1]):  # the values >= 0
        lo = (max(low[0], Decimal(0)), low[1] and low[0] >= 0) if low is not None else (Decimal(0), False)
        alts.append(_magnitudes(lo, high, fraction))
    if low is None or low[0] < 0:  # the values < 0: "-" and a magnitude in (|high|, |low|]
        lo = (-high[0], high[1]) if high is not None and high[0] < 0 else (Decimal(0), True)
        hi = (-low[0], low[1]) if low is not None else None
        alts.append(f'"-" ({_magnitudes(lo, hi, fraction)})')
    alts = [a for a in alts if a]
    if not alts:
        raise Unwritable("no number lies between the bounds")
    return " | ".join(f"({a})" for a in alts)


def _digits(d: Decimal) -> tuple[int, str]:
    """A non-negative decimal's whole part and the digits after its point (no trailing zeros)."""
    text = format(d, "f")
    whole, _, frac = text.partition(".")
    return int(whole), frac.rstrip("0")


def _magnitudes(low: Bound, high: Bound | None, fraction: bool) -> str:
    """Non-negative numbers in the range, written without a sign."""
    (a, la), sl = _digits(low[0]), low[1]
    if not fraction:  # whole numbers: the bounds rounded inwards
        lo_int = a + 1 if (sl and not la) or la else a
        hi_int = None
        if high is not None:
            b, hb = _digits(high[0])
            hi_int = b - 1 if high[1] and not hb else b
        return "" if hi_int is not None and lo_int > hi_int else _uint(lo_int, hi_int)
    low_tail: tuple[str, bool] | None = (la, sl) if la or sl else None
    if high is None:
        alts = [_whole_and_tail(str(a), low_tail, None), f"({_uint(a + 1, None)}) {_tail(None, None)}"]
        return " | ".join(x for x in alts if x)
    (b, hb), sh = _digits(high[0]), high[1]
    high_tail: tuple[str, bool] | None = (hb, sh)
    if a > b:
        return ""
    if a == b:
        return _whole_and_tail(str(a), low_tail, high_tail)
    alts = [_whole_and_tail(str(a), low_tail, None)]
    if a + 1 <= b - 1:
        alts.append(f"({_uint(a + 1, b - 1)}) {_tail(None, None)}")
    alts.append(_whole_and_tail(str(b), None, high_tail))
    return " | ".join(x for x in alts if x)


def _whole_and_tail(whole: str, low: tuple[str, bool] | None, high: tuple[str, bool] | None) -> str:
    tail = _tail(low, high)
    return "" if tail is None else f'"{whole}" {tail}'.strip()


def _tail(low: tuple[str, bool] | None, high: tuple[str, bool] | None) -> str | None:
    """What follows a whole part: nothing or ``.`` and digits, the fraction within the bounds
    (None: nothing fits)."""
    digits, empty = _fraction(low, high, FRACTION_DIGITS)
    if digits is None:
        return "" if empty else None
    return f'("." {digits})?' if empty else f'"." {digits}'


def _fraction(low: tuple[str, bool] | None, high: tuple[str, bool] | None,
              room: int) -> tuple[str | None, bool]:
    """Digit strings D (at most ``room`` long) with 0.D between ``low`` and ``high`` (each: the
    bound's digits after the point and whether it is excluded): the expression for the non-empty
    ones, and whether the empty string fits."""
    if low is not None and low == ("", False):
        low = None
    if high is not None and high == ("", True):
        return None, False  # below 0.000...: nothing
    if room == 0:
        return None, low is None
    base = _fraction_base(low, high, room)
    if base is not None:
        return base
    lo_d = int(low[0][0]) if low is not None and low[0] else 0
    hi_d = int(high[0][0]) if high is not None and high[0] else (0 if high is not None else 9)
    alts = []
    for d in range(lo_d, hi_d + 1):
        next_low = (low[0][1:], low[1]) if low is not None and d == lo_d else None
        next_high = (high[0][1:], high[1]) if high is not None and d == hi_d else None
        if next_low is None and next_high is None and lo_d < d < hi_d:
            continue  # written below as one class
        rest, rest_empty = _fraction(next_low, next_high, room - 1)
        if rest is None and not rest_empty:
            continue
        alts.append(f'"{d}"' + (f" ({rest})?" if rest and rest_empty else f" ({rest})" if rest else ""))
    if hi_d - lo_d >= 2:
        span = f"[{lo_d + 1}-{hi_d - 1}]" if hi_d - lo_d > 2 else f'"{lo_d + 1}"'
        alts.append(f"{span} [0-9]{{0,{room - 1}}}")
    return ("(" + " | ".join(alts) + ")" if alts else None), low is None


def _fraction_base(low: tuple[str, bool] | None, high: tuple[str, bool] | None,
                   room: int) -> tuple[str | None, bool] | None:
    """:func:`_fraction` where no bound has digits left (None: a bound has)."""
    if low is None and high is None:
        return f"[0-9]{{1,{room}}}", True
    if low is None and high == ("", False):
        return f'"0"{{1,{room}}}', True
    if low == ("", True) and high is None:
        return f'"0"{{0,{room - 1}}} [1-9] [0-9]{{0,{room - 1}}}', False
    return None


def _uint(low: int, high: int | None) -> str:
    """Whole numbers from ``low`` to ``high`` (None: no end), written without leading zeros."""
    alts = []
    top = len(str(high)) if high is not None else len(str(low))
    for n in range(len(str(low)), top + 1):
        lo_n = max(low, 10 ** (n - 1) if n > 1 else 0)
        hi_n = min(high, 10 ** n - 1) if high is not None else 10 ** n - 1
        if lo_n <= hi_n:
            alts.append(_same_length(str(lo_n), str(hi_n)))
    if high is None:
        alts.append(f"[1-9] [0-9]{{{len(str(low))},15}}")
    return " | ".join(f"({a})" for a in alts)


def _same_length(lo: str, hi: str) -> str:
    if not lo:
        return ""
    if lo == hi:
        return literal(lo)
    rest = len(lo) - 1
    if lo[1:] == "0" * rest and hi[1:] == "9" * rest:
        return f"[{lo[0]}-{hi[0]}]" + (f" [0-9]{{{rest}}}" if rest else "")
    if lo[0] == hi[0]:
        return f'"{lo[0]}" ({_same_length(lo[1:], hi[1:])})'
    alts = [f'"{lo[0]}" ({_same_length(lo[1:], "9" * rest)})']
    if int(hi[0]) - int(lo[0]) >= 2:
        alts.append(f"[{int(lo[0]) + 1}-{int(hi[0]) - 1}] [0-9]{{{rest}}}")
    alts.append(f'"{hi[0]}" ({_same_length("0" * rest, hi[1:])})')
    return " | ".join(alts)
