"""The grammar of the rest of a schema answer whose start is already sent: :func:`rest_grammar`.

A streamed answer caught in a loop inside a string (:mod:`qfnb.local.engines.loop_guard`) cannot be
taken back: the client already holds its start. It can go on instead: the same prompt with that
start opened as the assistant's reply, under a grammar for what may follow it, so the whole text
is still one value under the schema. That grammar is written here: ``text`` (one-line JSON, as our
engines' converter lays it out) is walked with the schema to the string it ends in; that string is
closed at once (the loop is cut where it was caught: the model would not end it; a ``minLength``
not yet reached is filled first), and the rest of each object (the properties not yet written, the
required ones kept) and of each array around it is written with :class:`.gbnf.Writer`'s rules.

Where the rest cannot be written exactly, :class:`~.gbnf.Unwritable` is raised and the caller
leaves the answer as it was: the text ends outside a string value (or inside a key), inside a
string with a pattern or a fixed format, inside an escape, or where more than one branch of an
``anyOf`` reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from qfnb.local.engines.llama import grammar
from qfnb.local.engines.llama.gbnf import COLON, COMMA, Unwritable, Writer
from qfnb.protocol.schema.accepted import resolve
from qfnb.protocol.schema.enforced import enforced_part

__all__ = ["rest_grammar"]

_SCALAR_END = ',]}'
#: what a value's first character says it is, and a type's first character
_HEADS = {"{": "object", "[": "array", '"': "string"}
_OPENERS = {"object": "{", "array": "[", "string": '"'}
#: a string's schema keys that fix its characters beyond a length (their rest is not written here)
_SHAPED = ("pattern", "format", "enum", "const")


def rest_grammar(schema: dict[str, Any], text: str) -> str:
    """The GBNF of what may follow ``text``, the start of a one-line JSON answer under ``schema`` that
    ends inside a string value (closed at once, see the module doc), so that ``text`` and the rest are
    one value under the schema's enforced part (as :func:`.grammar.engine_fields` sends it). Raises
    :class:`~.gbnf.Unwritable` where that rest cannot be written (see the module doc)."""
    sent = grammar.engine_schema(enforced_part(schema).schema)
    writer = Writer(sent)
    walk = _Walk(text, sent, writer)
    rest = walk.value(sent)
    if rest is None:
        raise Unwritable("the text is a whole value: nothing is left to write")
    return writer.text(rest)


class _Walk:
    """``text`` read with the schema, value by value; each reader returns None when its value ends
    within the text, else the GBNF of that value's rest (the text ends inside it)."""

    def __init__(self, text: str, root: dict[str, Any], writer: Writer) -> None:
        self.text, self.root, self.writer, self.at = text, root, writer, 0

    def ended(self) -> bool:
        return self.at >= len(self.text)

    def expect(self, literal: str) -> None:
        """Read ``literal``; the text ending inside it, or anything else there, cannot be continued."""
        if not self.text.startswith(literal, self.at):
            raise Unwritable(f"expected {literal!r} at character {self.at}")
        self.at += len(literal)

    def value(self, s: Any) -> str | None:
        if self.ended():
            raise Unwritable("the text ends between values")
        if isinstance(s, dict) and "$ref" in s:
            return self.value(resolve(self.root, s["$ref"]))
        if isinstance(s, dict) and "anyOf" in s:
            return self.any_of(s["anyOf"])
        kind, head = _kind(s), self.text[self.at]
        found = _HEADS.get(head, "scalar")
        if kind is not None and _HEADS.get(_OPENERS.get(kind, ""), "scalar") != found:
            raise Unwritable(f"a {kind} is not written with {head!r}")
        node = s if isinstance(s, dict) else {}
        if found == "object":
            return self.obj(node)
        if found == "array":
            return self.arr(node)
        if found == "string":
            return self.string(node)
        self.scalar()
        return None

    def any_of(self, options: list[Any]) -> str | None:
        """The one branch that reads the text from here (two that read it leave the rest unwritable)."""
        read: list[tuple[int, str | None]] = []
        for option in options:
            branch = _Walk(self.text, self.root, self.writer)
            branch.at = self.at
            try:
                rest = branch.value(option)
            except Unwritable:
                continue
            read.append((branch.at, rest))
        if len(read) != 1:
            raise Unwritable(f"{len(read)} branches of an anyOf read the text")
        self.at, rest = read[0]
        return rest

    def obj(self, s: dict[str, Any]) -> str | None:
        self.expect("{")
        props: dict[str, Any] = s.get("properties") or {}
        extra = s.get("additionalProperties", True if not props else None)
        seen: list[str] = []
        for _ in self.members("}", "an object, between its pairs"):
            name = self.key()
            self.expect(": ")
            sub = props[name] if name in props else (extra if isinstance(extra, dict) else {})
            seen.append(name)
            rest = self.value(sub)
            if rest is not None:
                return f"{rest} {self.object_rest(s, props, seen, extra)}"
        return None

    def object_rest(self, s: dict[str, Any], props: dict[str, Any], seen: list[str], extra: Any) -> str:
        """The pairs an object may still have (its unwritten properties, the required ones kept) and its close."""
        left = [name for name in props if name not in seen]
        if not props and extra is not False:  # any object: any more pairs
            more = self.writer.rule(f"{COMMA} string {COLON} " + (self.writer.value(extra) if isinstance(extra, dict)
                                                                   else "value"), "extra")
            return f'({more})* "}}" space'
        required = set(s.get("required") or ())
        body = self.writer.pairs({**s, "additionalProperties": extra}, left, required, first=False)
        return f'{body} "}}" space'.strip()

    def key(self) -> str:
        start = self.at
        self.expect('"')
        if self.read_string_body():
            raise Unwritable("the text ends inside a key")
        return str(json.loads(self.text[start:self.at]))

    def arr(self, s: dict[str, Any]) -> str | None:
        self.expect("[")
        prefix: list[Any] = s.get("prefixItems") or []
        for count in self.members("]", "an array, between its items"):
            item = prefix[count] if count < len(prefix) else s.get("items")
            rest = self.value(item if isinstance(item, dict) else {})
            if rest is not None:
                return f"{rest} {self.array_rest(s, prefix, count + 1)}"
        return None

    def members(self, close: str, where: str) -> Iterator[int]:
        """Each member of the container being read, by its index (its separator read), until ``close``."""
        count = 0
        while True:
            if self.ended():
                raise Unwritable(f"the text ends inside {where}")
            if self.text[self.at] == close:
                self.at += 1
                return
            if count:
                self.expect(", ")
            yield count
            count += 1

    def array_rest(self, s: dict[str, Any], prefix: list[Any], count: int) -> str:
        """The items an array may still have after its ``count`` th and its close."""
        if prefix:
            return " ".join([f"{COMMA} {self.writer.value(p)}" for p in prefix[count:]] + ['"]" space'])
        item = self.writer.value(s.get("items"))
        low, high = max(int(s.get("minItems", 0)) - count, 0), s.get("maxItems")
        high = None if high is None else max(int(high) - count, 0)
        return f'({COMMA} {item}){_count(low, high)} "]" space'

    def string(self, s: dict[str, Any]) -> str | None:
        self.expect('"')
        start = self.at
        if not self.read_string_body():
            return None
        if any(k in s for k in _SHAPED):
            raise Unwritable("the text ends inside a string whose characters the schema shapes")
        written = len(json.loads('"' + self.text[start:] + '"'))
        short = max(int(s.get("minLength", 0)) - written, 0)  # what its minLength still wants before the close
        return (f"char{{{short}}} " if short else "") + '"\\"" space'

    def read_string_body(self) -> bool:
        """Read a string's characters and its closing quote; True when the text ends inside it (not inside
        an escape, which cannot be continued)."""
        while self.at < len(self.text):
            ch = self.text[self.at]
            if ch == '"':
                self.at += 1
                return False
            if ch == "\\":
                if not _whole_escape(self.text, self.at):
                    raise Unwritable("the text ends inside an escape")
                self.at += 6 if self.text[self.at + 1] == "u" else 2
                continue
            self.at += 1
        return True

    def scalar(self) -> None:
        """A number, ``true``, ``false`` or ``null``, whole (the text ending inside one cannot be continued)."""
        end = self.at
        while end < len(self.text) and self.text[end] not in _SCALAR_END:
            end += 1
        if end == len(self.text):
            raise Unwritable("the text ends inside a number or literal")
        self.at = end


def _count(low: int, high: int | None) -> str:
    """A GBNF repeat of ``low`` to ``high`` (None: no bound) times."""
    if high is None:
        return "*" if low == 0 else f"{{{low},}}"
    return f"{{{low},{high}}}"


def _kind(s: Any) -> str | None:
    if not isinstance(s, dict):
        return None
    kind = s.get("type")
    if isinstance(kind, str):
        return kind
    return "object" if "properties" in s else "array" if "items" in s or "prefixItems" in s else None


def _whole_escape(text: str, at: int) -> bool:
    """Whether the escape at ``at`` is whole within ``text``."""
    return at + 1 < len(text) and (text[at + 1] != "u" or at + 6 <= len(text))
