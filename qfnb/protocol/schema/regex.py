"""A schema's regular expressions run in linear time: ``pattern``, ``patternProperties`` (and the
``additionalProperties`` beside them) checked with RE2 (``google-re2``), which never backtracks,
instead of Python's ``re``.

Python's ``re`` backtracks: ``^(\\d+)+$`` against a 28-character answer held the daemon's event loop
for 16 s, and each more character doubles it. RE2 answers in time linear in the text for any
pattern it reads; it reads no lookaround and no backreference (``(?=...)``, ``\\1``), which
:func:`pattern_unreadable` names so the request is refused before any work. ``jsonschema``'s own
``unevaluatedProperties`` runs ``patternProperties`` with ``re``: :mod:`.schemas` refuses the two
in one schema.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["RE2_MAX_MEM", "pattern_unreadable", "search", "validator_for", "warm"]


def warm() -> None:
    """Import ``jsonschema`` (with its format checkers) and RE2 and build one validator: the first
    call with a schema would otherwise do it on the daemon's event loop (5.6 s at a load of 9.7 on
    2 cores, every client waiting). The daemon runs this in a thread as it starts."""
    schema = {"type": "string", "pattern": "^a+$", "format": "date"}
    cls = validator_for(schema)
    cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid("a")


#: the memory one pattern's RE2 program (and its matching caches) may take: a 442-character pattern
#: (``[^"]{1000}`` 40 times) took 31 MiB and 0.7 s to compile without it; with it, it is refused in 0.03 s
RE2_MAX_MEM = 2 << 20


@functools.lru_cache(maxsize=64)  # at most 64 programs of RE2_MAX_MEM kept
def _compiled(pattern: str) -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # its own stderr log of each refused pattern
    options.max_mem = RE2_MAX_MEM
    return re2.compile(pattern, options)


def pattern_unreadable(pattern: str) -> str | None:
    """Why RE2 cannot read ``pattern`` (None when it can)."""
    import re2

    try:
        _compiled(pattern)
    except re2.error as exc:
        why = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return (f"answers are checked with RE2, a linear-time engine, which cannot take it ({why}): it reads no "
                "lookaround or backreference, and a pattern's program is capped at 2 MiB (RE2_MAX_MEM)")
    return None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (JSON Schema's reading of ``pattern``)."""
    return _compiled(pattern).search(text) is not None


def validator_for(schema: Mapping[str, Any] | bool) -> Any:
    """The ``jsonschema`` validator class of ``schema``'s draft (2020-12 when unsaid), its
    ``pattern`` and ``patternProperties`` run with RE2."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for as draft_of

    return _linear(draft_of(schema, default=Draft202012Validator))


@functools.cache
def _linear(cls: Any) -> Any:
    from jsonschema.validators import extend

    return extend(cls, {"pattern": _pattern, "patternProperties": _pattern_properties,
                        "additionalProperties": _additional_properties})


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string"):
        problem = pattern_unreadable(pattern)
        if problem is not None:
            yield ValidationError(f"{pattern!r:.80} cannot be checked: {problem}")
        elif not search(pattern, instance):
            yield ValidationError(f"{instance!r:.200} does not match {pattern!r:.200}")


def _pattern_properties(validator: Any, properties: Mapping[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        problem = pattern_unreadable(pattern)
        if problem is not None:
            yield ValidationError(f"{pattern!r:.80} cannot be checked: {problem}")
            continue
        for name, value in instance.items():
            if search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """The properties neither ``properties`` names nor a ``patternProperties`` pattern matches, each
    against ``extra`` (``false``: refused)."""
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    named, patterns = schema.get("properties") or {}, list(schema.get("patternProperties") or {})
    if any(pattern_unreadable(p) for p in patterns):
        return  # named by _pattern_properties
    extras = sorted(k for k in instance if k not in named and not any(search(p, k) for p in patterns))
    if validator.is_type(extra, "object"):
        for name in extras:
            yield from validator.descend(instance[name], extra, path=name)
    elif extra is False and extras:
        shown = ", ".join(repr(name)[:80] for name in extras[:5]) + (", ..." if len(extras) > 5 else "")
        yield ValidationError(f"Additional properties are not allowed ({shown} "
                              f"{'was' if len(extras) == 1 else 'were'} unexpected)")
