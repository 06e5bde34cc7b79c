"""What a callable *is*, as a short stable digest: the answer store's key for a notebook function.

A qualified name is not enough: two closures from one factory (``make_asker("Be terse")`` and
``make_asker("Be polite")``), two instances of one class, or a function edited and run again all
share it, and would share stored answers. The digest covers the code (compiled, so a comment or a
blank line does not count, nested functions included), the defaults, the closure's values, the
plain-data globals the code reads (a ``PROMPT`` string defined in another cell), and for a callable
object its ``__call__`` and its attributes. Lists, dicts and sets count by their type only: they are
usually state (a call counter, a cache) that changes as the callable runs, not what it is. A callable
is described as it was when this process first asked (so an ``int`` call counter does not move its
key mid-run); a new object, or the function defined again, is asked anew. Values are written without
memory addresses, so the same function defined again in a new kernel has the same digest and its
answers are reused.
"""

from __future__ import annotations

import hashlib
import re
import types
import weakref
from collections.abc import Callable, Mapping
from typing import Any

#: ``<object at 0x7f…>``: an address changes from one kernel to the next
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
#: how deep containers, closures and attributes are followed (a cycle stops here)
_DEPTH = 4
#: plain data a function may read from its module: part of what it is
_PLAIN = (str, bytes, int, float, bool, type(None))

#: ``known(value)``: a caller's own identity for a value it can name (a model resource), or None
Known = Callable[[Any], str | None]


def _items(mapping: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Named values (attributes, keyword defaults, globals read) as a sorted tuple: described in full."""
    return tuple(sorted((mapping or {}).items()))


def _cell(cell: Any, fn: Any) -> Any:
    try:
        value = cell.cell_contents
    except ValueError:  # a name the function closes over, not yet assigned
        return "<empty>"
    return "<self>" if value is fn else value


def _code(code: types.CodeType, depth: int) -> list[Any]:
    consts = [_code(c, depth) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return [code.co_code.hex(), consts, list(code.co_names), code.co_argcount, code.co_kwonlyargcount]


def _value(value: Any, known: Known, depth: int) -> Any:
    """A JSON-able, address-free description of ``value``."""
    if isinstance(value, _PLAIN):
        return repr(value)
    name = known(value)
    if name is not None:
        return name
    if depth <= 0:
        return type(value).__qualname__
    if isinstance(value, tuple | frozenset):
        items = [_value(v, known, depth - 1) for v in value]
        return [type(value).__name__, sorted(map(repr, items)) if isinstance(value, frozenset) else items]
    if isinstance(value, list | set | Mapping):  # state (a call counter, a cache): not what the callable is
        return type(value).__qualname__
    if isinstance(value, types.FunctionType | types.MethodType) or (callable(value) and hasattr(value, "__dict__")):
        return _callable(value, known, depth - 1)
    if hasattr(value, "__dict__"):
        return [type(value).__qualname__, _value(_items(vars(value)), known, depth - 1)]
    return _ADDRESS.sub("", repr(value))


def _callable(fn: Any, known: Known, depth: int) -> list[Any]:
    parts: list[Any] = []
    if isinstance(fn, types.MethodType):  # a bound method: its function and its instance
        parts.append(_value(fn.__self__, known, depth - 1))
        fn = fn.__func__
    if isinstance(fn, types.FunctionType):
        cells = tuple(_cell(c, fn) for c in fn.__closure__ or ())
        found = fn.__globals__
        reads = _items({n: found[n] for n in fn.__code__.co_names if n in found and isinstance(found[n], _PLAIN)})
        parts += [fn.__qualname__, _code(fn.__code__, depth), _value(fn.__defaults__, known, depth),
                  _value(_items(fn.__kwdefaults__), known, depth), _value(cells, known, depth),
                  _value(reads, known, depth)]
    elif callable(fn) and not isinstance(fn, types.BuiltinFunctionType | type):  # an object with __call__
        call = next((vars(c)["__call__"] for c in type(fn).__mro__ if "__call__" in vars(c)), None)
        parts.append(type(fn).__qualname__)
        if isinstance(call, types.FunctionType):
            parts.append(_callable(call, known, depth))
        if hasattr(fn, "__dict__"):
            parts.append(_value(_items(vars(fn)), known, depth))
    else:  # a builtin or a class: its name says what it is
        parts.append(getattr(fn, "__qualname__", type(fn).__qualname__))
    return parts


#: each callable's digest as first taken in this process, per ``known`` rule
_FIRST_SEEN: weakref.WeakKeyDictionary[Any, dict[Known, str]] = weakref.WeakKeyDictionary()


def fingerprint(fn: Any, known: Known = lambda _: None) -> str:
    """A 16-hex-digit digest of what ``fn`` is, as it was when first asked (see the module docstring)."""
    try:
        seen = _FIRST_SEEN.setdefault(fn, {})
    except TypeError:  # no weak reference to it (a builtin): described each time
        seen = {}
    if known not in seen:
        blob = repr(_callable(fn, known, _DEPTH))
        seen[known] = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return seen[known]
