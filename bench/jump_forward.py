"""The text a JSON schema forces next: where jump-forward decoding could skip the engine's decode steps.

llama.cpp's grammar for a schema (its converter, ``common/json-schema-to-grammar.cpp``) leaves the
model a choice at every whitespace slot (``space ::= | " " | "\\n"{1,2} [ \\t]{0,20}`` after ``{``,
``[``, ``,``, ``:`` and before ``}``, ``]``, ``:``) and inside every free value; what it forces are
a required key's name once its quote is written, the comma between required keys, the rest of an
``enum``/``const`` value once it is the only one left, ``rue``/``alse``. :class:`Forced` follows an
answer character by character on a grammar built here the way that converter builds it, and says
which characters had one choice (:meth:`Forced.next_forced`; :func:`forced_text` from a prefix).

Where this grammar cannot mirror the converter exactly (a ``pattern``, a ``format``, a length or
number bound, ``allOf``, an unresolved ``$ref``), it is looser: any string, any number, any value.
A looser grammar never calls a character forced that the engine's grammar leaves open, so the
forced text is a part of what the engine forces, never more; a prefix it cannot follow forces
nothing (plain decoding).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Forced", "forced_runs", "forced_text"]

#: a grammar symbol: one character set (``only``: its one character, if it has one) or a rule's index
_Rule = int


@dataclass(frozen=True)
class _Chars:
    test: Callable[[str], bool]
    only: str | None = None


_Element = _Chars | _Rule
_Frame = tuple[int, int, int]  # (rule, alternative, position)
_Stack = tuple[_Frame, ...]


def _char(c: str) -> _Chars:
    return _Chars(c.__eq__, c)


def _among(chars: str) -> _Chars:
    return _Chars(frozenset(chars).__contains__, chars if len(chars) == 1 else None)


_STRING_CHAR = _Chars(lambda c: c not in '"\\' and 0x20 <= ord(c) != 0x7F)
_ANY = _Chars(lambda c: True)
_DIGIT, _NONZERO = _among("0123456789"), _among("123456789")
_HEX = _among("0123456789abcdefABCDEF")


class _Grammar:
    """Rules of alternatives of element sequences, written from a schema as llama.cpp's converter
    writes them (looser where it cannot follow)."""

    def __init__(self, root: Any) -> None:
        self.rules: list[list[tuple[_Element, ...]]] = []
        self.root_schema = root
        self.refs: dict[str, _Rule] = {}
        self.space = self.rule([(), (_char(" "),), (_char("\n"), *self.repeat((_among(" \t"),), 0, 20)),
                                (_char("\n"), _char("\n"), *self.repeat((_among(" \t"),), 0, 20))])
        self._string = self.rule([(_char('"'), self.star((self.string_char(),)), _char('"'))])
        self._loose_string = self.rule([(_char('"'), self.star((_ANY,)), _char('"'))])
        integral = self.rule([(_char("0"),), (_NONZERO, *self.repeat((_DIGIT,), 0, 15))])
        self._integer = self.rule([(self.optional((_char("-"),)), integral)])
        self._number = self.rule([(self.optional((_char("-"),)), integral,
                                   self.optional((_char("."), *self.repeat((_DIGIT,), 1, 16))),
                                   self.optional((_among("eE"), self.optional((_among("-+"),)), integral)))])
        self._boolean = self.rule([self.literal("true"), self.literal("false")])
        self._null = self.rule([self.literal("null")])
        self._value = self.rule([])  # filled below: it refers to the generic object and array
        kv = (self._string, _char(":"), self.space, self._value)
        kvs = self.optional((*kv, self.star((_char(","), self.space, *kv))))
        self._object = self.rule([(_char("{"), self.space, kvs, self.space, _char("}"))])
        self._array = self.rule([(_char("["), self.space,
                                  self.optional((self._value, self.star((_char(","), self.space, self._value)))),
                                  self.space, _char("]"))])
        self.rules[self._value] = [(r,) for r in (self._object, self._array, self._string, self._number,
                                                  self._boolean, self._null)]
        self.root = self.visit(root)

    # -- building blocks
    def rule(self, alternatives: list[tuple[_Element, ...]]) -> _Rule:
        self.rules.append(alternatives)
        return len(self.rules) - 1

    def optional(self, seq: tuple[_Element, ...]) -> _Rule:
        return self.rule([seq, ()])

    def star(self, seq: tuple[_Element, ...]) -> _Rule:
        r = self.rule([])
        self.rules[r] = [(*seq, r), ()]
        return r

    def repeat(self, seq: tuple[_Element, ...], low: int, high: int | None) -> tuple[_Element, ...]:
        """``seq`` ``low`` times, then up to ``high`` (None: any number) in all."""
        tail: tuple[_Element, ...] = (self.star(seq),) if high is None else ()
        for _ in range((high or low) - low if high is not None else 0):
            tail = (self.optional((*seq, *tail)),)
        return seq * low + tail

    def literal(self, text: str) -> tuple[_Element, ...]:
        return tuple(_char(c) for c in text)

    def string_char(self) -> _Rule:
        escape = self.rule([(_among('"\\bfnrt'),), (_char("u"), _HEX, _HEX, _HEX, _HEX)])
        return self.rule([(_STRING_CHAR,), (_char("\\"), escape)])

    # -- the schema
    def visit(self, s: Any) -> _Rule:
        if not isinstance(s, dict) or not s:
            return self._value
        if isinstance(s.get("$ref"), str):
            return self.ref(s["$ref"])
        for key in ("anyOf", "oneOf"):
            if isinstance(s.get(key), list) and s[key]:
                return self.rule([(self.visit(branch),) for branch in s[key]])
        if "const" in s:
            return self.rule([self.literal(_dump(s["const"]))])
        if isinstance(s.get("enum"), list) and s["enum"]:
            return self.rule([self.literal(_dump(v)) for v in s["enum"]])
        return self.typed(s)

    def typed(self, s: dict[str, Any]) -> _Rule:
        kind = s.get("type")
        if isinstance(kind, list):
            return self.rule([(self.visit({**s, "type": t}),) for t in kind]) if kind else self._value
        if kind == "object" or (kind is None and "properties" in s):
            return self.obj(s)
        if kind == "array" or (kind is None and ("items" in s or "prefixItems" in s)):
            return self.arr(s)
        if kind == "string":
            plain = not any(k in s for k in ("pattern", "format", "minLength", "maxLength"))
            return self._string if plain else self._loose_string
        return {"integer": self._integer, "number": self._number, "boolean": self._boolean,
                "null": self._null}.get(kind, self._value) if isinstance(kind, str) else self._value

    def ref(self, ref: str) -> _Rule:
        if ref in self.refs:
            return self.refs[ref]
        if not ref.startswith("#"):  # another document's: any value
            return self._value
        target: Any = self.root_schema
        for part in (p.replace("~1", "/").replace("~0", "~") for p in ref[1:].split("/") if p):
            if not isinstance(target, dict) or part not in target:
                return self._value
            target = target[part]
        r = self.refs[ref] = self.rule([])  # a recursive schema refers to itself
        self.rules[r] = [(self.visit(target),)]
        return r

    def obj(self, s: dict[str, Any]) -> _Rule:
        listed = s.get("properties")
        props: dict[str, Any] = listed if isinstance(listed, dict) else {}
        extra = s.get("additionalProperties")
        if not props and (extra is None or extra is True or extra == {}):
            return self._object
        required = set(s.get("required") or ()) if isinstance(s.get("required"), list) else set()
        kvs = {name: (*self.literal(_dump(name)), self.space, _char(":"), self.space, self.visit(sub))
               for name, sub in props.items()}
        names = [n for n in props if n in required]
        optional = [n for n in props if n not in required]
        if extra is not None and extra is not False:  # any other key (looser than the converter's)
            other = self.visit(extra if extra is not True else {})
            kvs["*"] = (self._string, self.space, _char(":"), self.space, other)
            optional.append("*")
        if not names and not optional:
            return self.rule([(_char("{"), self.space, _char("}"))])
        seq: list[_Element] = [_char("{"), self.space]
        for i, name in enumerate(names):
            seq += [_char(","), self.space, *kvs[name]] if i else list(kvs[name])
        if optional:
            choices = self.rule([self.rest(kvs, optional[i:], False) for i in range(len(optional))])
            seq.append(self.optional((_char(","), self.space, choices) if names else (choices,)))
        return self.rule([(*seq, self.space, _char("}"))])

    def rest(self, kvs: dict[str, tuple[_Element, ...]], keys: list[str], first_optional: bool) -> tuple[_Element, ...]:
        """The converter's ``get_recursive_refs``: the optional keys from ``keys[0]`` on, in their order."""
        kv, comma = kvs[keys[0]], (_char(","), self.space, *kvs[keys[0]])
        if first_optional:
            head: tuple[_Element, ...] = (self.star(comma) if keys[0] == "*" else self.optional(comma),)
        else:
            head = (*kv, self.star(comma)) if keys[0] == "*" else kv
        return (*head, self.rule([self.rest(kvs, keys[1:], True)])) if len(keys) > 1 else head

    def arr(self, s: dict[str, Any]) -> _Rule:
        tuple_items = s.get("prefixItems") if isinstance(s.get("prefixItems"), list) else s.get("items")
        if isinstance(tuple_items, list):  # a tuple: each item in its place
            seq: list[_Element] = [_char("["), self.space]
            for i, sub in enumerate(tuple_items):
                seq += [_char(","), self.space, self.visit(sub)] if i else [self.visit(sub)]
            return self.rule([(*seq, self.space, _char("]"))])
        low = s.get("minItems", 0) if isinstance(s.get("minItems"), int) else 0
        high = s.get("maxItems") if isinstance(s.get("maxItems"), int) else None
        if "items" not in s and not low and high is None:
            return self._array
        item = self.visit(s.get("items"))
        if high == 0:
            return self.rule([(_char("["), self.space, self.space, _char("]"))])
        more = self.repeat((_char(","), self.space, item), max(low - 1, 0), None if high is None else high - 1)
        items: tuple[_Element, ...] = (item, *more)
        return self.rule([(_char("["), self.space, *(items if low else (self.optional(items),)), self.space,
                           _char("]"))])


def _dump(value: Any) -> str:
    """A JSON value as the converter's literals write it (nlohmann's ``dump()``: compact, UTF-8 kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Forced:
    """An answer under ``schema`` followed character by character (:meth:`feed`), with the
    character the grammar forces next (:meth:`next_forced`)."""

    def __init__(self, schema: Any) -> None:
        self._g = _Grammar(schema)
        self._stacks = self._expand([((self._g.rule([(self._g.root,)]), 0, 0),)])

    @property
    def lost(self) -> bool:
        """Whether the text fed is no prefix of an answer this grammar admits (nothing is forced then)."""
        return not self._stacks

    def feed(self, text: str) -> None:
        for c in text:
            if not self._stacks:
                return
            self._stacks = self._expand(self._step(s) for s in self._stacks if self._top_accepts(s, c))

    def next_forced(self) -> str | None:
        """The one character the grammar admits next, or None (a choice, the answer may end here, or lost)."""
        if not self._stacks or () in self._stacks:
            return None
        chars = {self._top(s).only for s in self._stacks}
        return chars.pop() if len(chars) == 1 and None not in chars else None

    def forced(self, limit: int = 256) -> str:
        """The text forced from here on (fed on; at most ``limit`` characters)."""
        out: list[str] = []
        while len(out) < limit and (c := self.next_forced()) is not None:
            out.append(c)
            self.feed(c)
        return "".join(out)

    def _top(self, stack: _Stack) -> _Chars:
        r, a, p = stack[-1]
        el = self._g.rules[r][a][p]
        assert isinstance(el, _Chars)
        return el

    def _top_accepts(self, stack: _Stack, c: str) -> bool:
        return bool(stack) and self._top(stack).test(c)

    def _step(self, stack: _Stack) -> _Stack:
        r, a, p = stack[-1]
        return self._after(stack[:-1], (r, a, p + 1))

    def _after(self, below: _Stack, frame: _Frame) -> _Stack:
        """``below`` with ``frame`` on top, unless ``frame`` is its alternative's end (a tail call)."""
        r, a, p = frame
        return below if p == len(self._g.rules[r][a]) else (*below, frame)

    def _expand(self, stacks: Iterable[_Stack]) -> frozenset[_Stack]:
        """Each stack moved on to a character set on top (or to the empty stack: the answer is whole)."""
        out: set[_Stack] = set()
        todo, seen = list(stacks), set()
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            if not s:
                out.add(s)
                continue
            r, a, p = s[-1]
            alt = self._g.rules[r][a]
            if p == len(alt):
                todo.append(s[:-1])
                continue
            el = alt[p]
            if isinstance(el, _Chars):
                out.add(s)
                continue
            below = self._after(s[:-1], (r, a, p + 1))
            todo.extend(self._after(below, (el, i, 0)) if self._g.rules[el][i] else below
                        for i in range(len(self._g.rules[el])))
        return frozenset(out)


def forced_text(schema: Any, prefix: str, limit: int = 256) -> str:
    """The text ``schema``'s grammar forces right after ``prefix`` ('' where the next character is
    a choice, the answer may end, or ``prefix`` is no answer's beginning)."""
    f = Forced(schema)
    f.feed(prefix)
    return f.forced(limit)


def forced_runs(schema: Any, pieces: Iterable[str]) -> list[int]:
    """The lengths of the runs of whole tokens (``pieces``: each token's text, in order) whose every
    character was forced: the tokens a jump forward would have added without a decode step."""
    f = Forced(schema)
    runs: list[int] = []
    run = 0
    for piece in pieces:
        whole = bool(piece)
        for c in piece:
            whole = whole and f.next_forced() == c
            f.feed(c)
        if whole:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    if run:
        runs.append(run)
    return runs
